"""The durable operation engine: walks a kind from the catalogue, one committed step at a time.

Each step's start and end is committed with an event, a failing step is retried per its
policy, and a failed operation either stops where it is or undoes its steps in reverse
(as its kind declares). An operation that a crash interrupted is resumed by `recover`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from controlplane.crypto import Keyring
from controlplane.engine.catalogue import CATALOGUE, KindSpec, OnFailure, Scope, StepSpec
from controlplane.engine.context import ContextBuilder, Work
from controlplane.engine.leases import Leases
from controlplane.engine.locks import SiteLocks
from controlplane.engine.provider import Provider, SiteContext
from controlplane.kernel.logs import get_logger
from controlplane.kernel.vocabulary import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    EventType,
    OperationKind,
    OperationStatus,
    StepStatus,
)
from controlplane.models import Operation, OperationEvent, OperationStep, Site, utcnow

__all__ = ["ACTIVE_STATUSES", "FINISHED_STATUSES", "BoundaryHook", "Engine", "StepFailed"]

log = get_logger("aipress.engine")

# Called with a boundary name ("before:dns", "after-call:dns"...): the crash tests kill there.
BoundaryHook = Callable[[str], None]


class StepFailed(Exception):
    """A step failed for good (retries spent); carries the step's message."""


def add_event(
    session: Session,
    operation_id: str,
    type_: EventType,
    message: str,
    step: str | None = None,
) -> None:
    """Append a progress event (committed by the caller)."""
    session.add(OperationEvent(operation_id=operation_id, type=type_, step=step, message=message))


class Engine:
    """Runs operations in worker threads; each step's start and end is committed."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        provider: Provider,
        keyring: Keyring,
        max_workers: int = 4,
        max_attempts: int = 3,
        boundary_hook: BoundaryHook | None = None,
        lease_seconds: float = 30,
    ) -> None:
        self._sessions = sessions
        self._provider = provider
        self._contexts = ContextBuilder(keyring)
        self._max_attempts = max_attempts
        self._hook = boundary_hook
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="aipress-op")
        self._futures: dict[str, Future[None]] = {}
        self._submit_lock = threading.Lock()
        self.site_locks = SiteLocks()
        self._leases = Leases(sessions, lease_seconds)
        self.worker_id = self._leases.worker_id
        self._stopping = threading.Event()
        self._lease_thread = threading.Thread(
            target=self._lease_loop, name="aipress-lease", daemon=True
        )
        self._lease_thread.start()

    @property
    def provider(self) -> Provider:
        """The provider the engine drives."""
        return self._provider

    def submit(self, operation_id: str) -> Future[None]:
        """Run an operation in the background (once: a second submit returns the same run)."""
        with self._submit_lock:
            running = self._futures.get(operation_id)
            if running is not None and not running.done():
                return running
            context = structlog.contextvars.get_contextvars()
            future = self._pool.submit(self._run_with_context, operation_id, context)
            self._futures[operation_id] = future
        future.add_done_callback(lambda done: self._forget(operation_id, done))
        return future

    def _forget(self, operation_id: str, done: Future[None]) -> None:
        if self._futures.get(operation_id) is done:
            del self._futures[operation_id]

    def wait(self, operation_id: str, timeout: float | None = None) -> None:
        """Block until a submitted operation ends (tests and the CLI use it)."""
        future = self._futures.get(operation_id)
        if future is not None:
            future.result(timeout=timeout)

    def recover(self) -> list[str]:
        """Resume (or roll back) unfinished operations nobody holds; returns their ids.

        Runs at start-up and then periodically: an operation whose engine died is taken over
        once its lease lapses, or at once when that engine was a dead process on this host.
        """
        ids = self._leases.claimable()
        for op_id in ids:
            if op_id not in self._futures:
                log.info("operation.recover", operation_id=op_id)
            self.submit(op_id)
        return ids

    def _claim(self, operation_id: str) -> bool:
        """Take the lease of an operation nobody else holds."""
        return self._leases.claim(operation_id)

    def _lease_loop(self) -> None:
        """Renew the leases this engine holds and pick up operations whose engine died."""
        while not self._stopping.wait(self._leases.lease.total_seconds() / 3):
            try:
                self._leases.renew()
                self.recover()
            except Exception as exc:  # the loop must survive a busy or restarting database
                log.warning("lease.renew_failed", error=type(exc).__name__)

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work; optionally wait for running operations."""
        self._stopping.set()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self._lease_thread.join(timeout=5)

    def _run_with_context(self, operation_id: str, context: dict[str, Any]) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**context)
        if not self._leases.claim(operation_id):
            return  # finished, or another engine (or thread) holds it
        try:
            self.run(operation_id)
        except Exception:
            log.exception("operation.crashed", operation_id=operation_id)
            raise
        finally:
            self._leases.release(operation_id)

    def _boundary(self, name: str) -> None:
        if self._hook is not None:
            self._hook(name)

    def read_context(self, session: Session, site: Site) -> SiteContext:
        """A context for reading a site (logs, metrics): no secrets decrypted."""
        return self._contexts.read(session, site)

    def announce(self, site_id: str) -> None:
        """Before a create is answered: a provider that can show the site as being built
        (locally: a 503 server block) does so now, so no one ever sees the name unknown."""
        hook = getattr(self._provider, "announce", None)
        if hook is None:
            return
        with self._sessions() as session:
            site = session.get(Site, site_id)
            if site is None:
                return
            try:
                hook(self.read_context(session, site))
                session.commit()  # the probe secret it may have made
            except Exception as exc:  # the create's first step announces (or fails) again
                session.rollback()
                log.warning("site.announce_failed", site=site.name, error=str(exc)[:300])

    # --- walking one operation -------------------------------------------------------------

    def run(self, operation_id: str) -> None:
        """Run (or resume) one operation to its end, synchronously."""
        with self._sessions() as session:
            op = session.get(Operation, operation_id)
            if op is None or op.status in FINISHED_STATUSES:
                return
            if op.request_id:
                structlog.contextvars.bind_contextvars(request_id=op.request_id)
            structlog.contextvars.bind_contextvars(operation_id=op.id, site=op.site_name)
            spec = _spec_of(op.kind)
            if spec is None:
                self._finish(session, op, OperationStatus.FAILED, f"unknown kind {op.kind!r}")
                return
            site = session.get(Site, op.site_id) if op.site_id else None
            if spec.scope is Scope.SITE and site is None:
                self._finish(session, op, OperationStatus.FAILED, "the site record is gone")
                return
            ctx = self._contexts.change(session, site, op.request_id) if site else None
            work = Work(session, op, self._provider, self._contexts, site, ctx)
            if not self._begin(work, spec):
                return
            if op.status == OperationStatus.RUNNING and not self._forward(work, spec):
                return
            self._roll_back(work, spec)

    def _begin(self, work: Work, spec: KindSpec) -> bool:
        """Count the attempt and say so; False when the engine gave up on the operation."""
        session, op = work.session, work.operation
        op.attempts += 1
        if op.status == OperationStatus.PENDING:
            op.status = OperationStatus.RUNNING
            add_event(
                session, op.id, EventType.OPERATION_STARTED, f"{op.kind} {_subject(op)} started"
            )
        else:
            add_event(
                session,
                op.id,
                EventType.OPERATION_RESUMED,
                f"resumed after a restart ({op.status})",
            )
        gave_up = f"gave up after {op.attempts - 1} attempts"
        if (
            spec.on_failure is OnFailure.ROLL_BACK
            and op.status == OperationStatus.RUNNING
            and op.attempts > self._max_attempts
        ):
            op.status = OperationStatus.ROLLING_BACK
            op.error = gave_up
        elif op.attempts > 2 * self._max_attempts:
            # Undo and roll-forward kinds: after this many crashes, stop and say so.
            spec.failed(work)
            self._finish(session, op, OperationStatus.FAILED, gave_up)
            return False
        session.commit()
        return True

    def _forward(self, work: Work, spec: KindSpec) -> bool:
        """Do every step not yet done; False when the operation ended here."""
        session, op = work.session, work.operation
        spec.started(work)
        session.commit()
        try:
            for step in op.steps:
                if step.status != StepStatus.DONE:
                    self._do_step(work, step, spec.step(step.name))
        except StepFailed as exc:
            if spec.on_failure is OnFailure.ROLL_BACK:
                op.status = OperationStatus.ROLLING_BACK
                op.error = str(exc)
                session.commit()
                return True
            spec.failed(work)
            work.save_progress()
            self._finish(session, op, OperationStatus.FAILED, f"{exc}{spec.failure_hint}")
            return False
        spec.succeeded(work)
        self._finish(session, op, OperationStatus.SUCCEEDED, None)
        return False

    def _do_step(self, work: Work, step: OperationStep, spec: StepSpec) -> None:
        session, op = work.session, work.operation
        self._boundary(f"before:{step.name}")
        step.status = StepStatus.RUNNING
        step.started_at = utcnow()
        step.error = None
        add_event(session, op.id, EventType.STEP_STARTED, f"{step.name} started", step.name)
        session.commit()
        started = time.monotonic()
        try:
            self._attempt(work, step, spec, spec.do, "")
        except Exception as exc:
            message = f"{step.name} failed: {_describe(exc)}"
            log.warning("step.failed", step=step.name, error=message)
            step.status = StepStatus.FAILED
            step.error = message
            step.finished_at = utcnow()
            add_event(session, op.id, EventType.STEP_FAILED, message, step.name)
            session.commit()
            raise StepFailed(message) from exc
        self._boundary(f"after-call:{step.name}")
        elapsed = time.monotonic() - started
        log.info("step.finished", step=step.name, seconds=round(elapsed, 3))
        step.status = StepStatus.DONE
        step.finished_at = utcnow()
        work.save_progress()
        add_event(
            session,
            op.id,
            EventType.STEP_FINISHED,
            f"{step.name} done in {elapsed:.2f} s",
            step.name,
        )
        session.commit()
        self._boundary(f"after:{step.name}")

    def _attempt(
        self,
        work: Work,
        step: OperationStep,
        spec: StepSpec,
        action: Callable[[Work], None],
        verb: str,
    ) -> None:
        """Run `action`, retrying what is worth retrying with backoff; re-raise the last error."""
        session, op, policy = work.session, work.operation, spec.retry
        deadline = time.monotonic() + spec.timeout_seconds
        site_id = op.site_id if spec.needs_site_lock else None
        last_notice = None
        for tried in range(1, policy.attempts + 1):
            try:
                with self.site_locks.hold(site_id) if site_id else nullcontext():
                    action(work)
                return
            except Exception as exc:
                session.rollback()
                delay = policy.delay(tried)
                if (
                    tried == policy.attempts
                    or not policy.worth_retrying(exc)
                    or time.monotonic() + delay > deadline
                ):
                    raise
                notice = f"{verb}{step.name}: {_describe(exc)}; trying again"
                log.info("step.retry", step=step.name, tried=tried, error=_describe(exc)[:300])
                if notice != last_notice:  # a long wait is one event, not one per try
                    add_event(session, op.id, EventType.STEP_RETRYING, notice, step.name)
                    session.commit()
                    last_notice = notice
                time.sleep(delay)

    def _roll_back(self, work: Work, spec: KindSpec) -> None:
        """Undo every step that ran, in reverse; the kind's `rolled_back` ends it."""
        session, op = work.session, work.operation
        add_event(session, op.id, EventType.ROLLBACK_STARTED, f"undoing finished steps: {op.error}")
        session.commit()
        for step in reversed(op.steps):
            step_spec = spec.step(step.name)
            if step.status in (StepStatus.PENDING, StepStatus.UNDONE) or step_spec.undo is None:
                continue
            self._boundary(f"before-undo:{step.name}")
            step.status = StepStatus.UNDOING
            session.commit()
            try:
                self._attempt(work, step, step_spec, step_spec.undo, "undo of ")
            except Exception as exc:
                message = f"undo of {step.name} failed: {_describe(exc)}"
                step.status = StepStatus.FAILED
                step.error = message
                spec.failed(work)
                work.save_progress()
                add_event(session, op.id, EventType.STEP_FAILED, message, step.name)
                self._finish(session, op, OperationStatus.FAILED, f"{op.error}; {message}")
                return
            self._boundary(f"after-undo-call:{step.name}")
            step.status = StepStatus.UNDONE
            step.finished_at = utcnow()
            work.save_progress()
            add_event(session, op.id, EventType.STEP_UNDONE, f"{step.name} undone", step.name)
            session.commit()
            self._boundary(f"after-undo:{step.name}")
        spec.rolled_back(work)
        self._finish(session, op, OperationStatus.ROLLED_BACK, op.error)

    def _finish(
        self, session: Session, op: Operation, status: OperationStatus, error: str | None
    ) -> None:
        op.status = status
        op.error = error
        op.finished_at = utcnow()
        subject = _subject(op)
        event, message = {
            OperationStatus.SUCCEEDED: (
                EventType.OPERATION_SUCCEEDED,
                f"{op.kind} {subject} succeeded",
            ),
            OperationStatus.ROLLED_BACK: (
                EventType.OPERATION_ROLLED_BACK,
                f"{op.kind} {subject} rolled back: {error}",
            ),
            OperationStatus.FAILED: (
                EventType.OPERATION_FAILED,
                f"{op.kind} {subject} failed: {error}",
            ),
        }[status]
        add_event(session, op.id, event, message)
        session.commit()
        log.info("operation.finished", status=status, kind=op.kind)


def _spec_of(kind: str) -> KindSpec | None:
    """The catalogue entry of a stored kind (None for one this version does not know)."""
    try:
        return CATALOGUE[OperationKind(kind)]
    except ValueError:
        return None


def _subject(op: Operation) -> str:
    """What the operation works on, for its messages: the site, or the tenant."""
    return op.site_name or f"tenant {op.tenant_id}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:2000]
