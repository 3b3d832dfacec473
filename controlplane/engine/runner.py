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
from concurrent.futures import wait as futures_wait
from contextlib import nullcontext
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from controlplane.crypto import Keyring
from controlplane.engine.catalogue import CATALOGUE, KindSpec, OnFailure, Scope, StepSpec
from controlplane.engine.context import Cancelled, ContextBuilder, Deferred, Work
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


# op.params key of a step that is waiting (Deferred): {"step", "since", "times", "notice"}.
WAITING = "waiting"
# op.params key of what a kind says about a success that was not complete (a bulk: which of
# its sites failed); kept as the operation's error.
NOTE = "note"


class _Requeue(Exception):
    """The operation waits: give the worker back and run it again in `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"run again in {delay:.2f} s")
        self.delay = delay


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
        self._max_workers = max_workers
        self._hook = boundary_hook
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="aipress-op")
        self._futures: dict[str, Future[None]] = {}
        # Operations waiting to be run again (a Deferred step): they hold no worker meanwhile.
        self._timers: dict[str, threading.Timer] = {}
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
        return self._submit(operation_id, structlog.contextvars.get_contextvars(), False)

    def _submit(self, operation_id: str, context: dict[str, Any], requeued: bool) -> Future[None]:
        with self._submit_lock:
            running = self._futures.get(operation_id)
            if running is not None and not running.done():
                return running
            future = self._pool.submit(self._run_with_context, operation_id, context, requeued)
            self._futures[operation_id] = future
        future.add_done_callback(lambda done: self._forget(operation_id, done))
        return future

    def _later(self, operation_id: str, context: dict[str, Any], delay: float) -> None:
        """Run a waiting operation again in `delay` seconds (its lease stays renewed)."""

        def again() -> None:
            running = self._futures.get(operation_id)
            if running is not None:  # the run that asked for this may still be returning
                futures_wait([running])
            if self._stopping.is_set():
                return
            try:
                self._submit(operation_id, context, True)
            finally:
                self._timers.pop(operation_id, None)

        timer = threading.Timer(delay, again)
        timer.daemon = True
        self._timers[operation_id] = timer
        timer.start()

    def _forget(self, operation_id: str, done: Future[None]) -> None:
        if self._futures.get(operation_id) is done:
            del self._futures[operation_id]

    def wait(self, operation_id: str, timeout: float | None = None) -> None:
        """Block until a submitted operation ends, waits included (tests and the CLI)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            future = self._futures.get(operation_id)
            if future is not None:
                future.result(timeout=left)
            elif operation_id not in self._timers:
                return
            elif deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"operation {operation_id} is still waiting")
            else:
                time.sleep(0.02)

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
        for operation_id, timer in list(self._timers.items()):
            timer.cancel()  # another engine (or the next start) takes the waiting ones over
            self._leases.release(operation_id)
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self._lease_thread.join(timeout=5)

    def _run_with_context(
        self, operation_id: str, context: dict[str, Any], requeued: bool = False
    ) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**context)
        if not self._leases.claim(operation_id, ours=requeued):
            return  # finished, or another engine (or thread) holds it
        waits = False
        try:
            self.run(operation_id, requeued=requeued)
        except _Requeue as requeue:
            waits = not self._stopping.is_set()
            if waits:
                self._later(operation_id, context, requeue.delay)
        except Exception:
            log.exception("operation.crashed", operation_id=operation_id)
            raise
        finally:
            if not waits:
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

    def run(self, operation_id: str, *, requeued: bool = False) -> None:
        """Run (or resume) one operation to its end, synchronously; `_Requeue` when a step
        waits (`requeued`: this engine runs it again after such a wait)."""
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
            work = Work(session, op, self._provider, self._contexts, site, ctx,
                        submit=self.submit, workers=self._max_workers)  # fmt: skip
            if not self._begin(work, spec, requeued):
                return
            if op.status == OperationStatus.RUNNING and not self._forward(work, spec):
                return
            self._roll_back(work, spec)

    def _begin(self, work: Work, spec: KindSpec, requeued: bool = False) -> bool:
        """Count the attempt and say so; False when the engine gave up on the operation."""
        session, op = work.session, work.operation
        if requeued and op.status == OperationStatus.RUNNING and WAITING in op.params:
            return True  # the same attempt, back from a wait: not a restart
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
        except Cancelled as exc:
            spec.failed(work)
            self._finish(session, op, OperationStatus.CANCELLED, str(exc))
            return False
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
        note = op.params.get(NOTE)
        self._finish(
            session, op, OperationStatus.SUCCEEDED, note if isinstance(note, str) else None
        )
        return False

    def _do_step(self, work: Work, step: OperationStep, spec: StepSpec) -> None:
        session, op = work.session, work.operation
        waited = op.params.get(WAITING)
        if not (waited and waited.get("step") == step.name):
            waited = None
            self._boundary(f"before:{step.name}")
            step.status = StepStatus.RUNNING
            step.started_at = utcnow()
            step.error = None
            add_event(session, op.id, EventType.STEP_STARTED, f"{step.name} started", step.name)
            session.commit()
        started = time.monotonic()
        work.detail = None
        try:
            try:
                self._attempt(work, step, spec, spec.do, "")
            except Deferred as exc:
                self._wait(work, step, spec, exc, waited)  # raises _Requeue, or gives up
        except _Requeue:
            raise
        except Cancelled as exc:
            # Asked to stop, with nothing of it left running: the step ends here.
            op.params = {k: v for k, v in op.params.items() if k != WAITING}
            step.status = StepStatus.DONE
            step.finished_at = utcnow()
            add_event(session, op.id, EventType.STEP_FINISHED, f"{step.name} stopped: {exc}",
                      step.name)  # fmt: skip
            session.commit()
            raise
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
        if waited:
            started = time.monotonic() - (utcnow() - _when(waited["since"])).total_seconds()
            op.params = {k: v for k, v in op.params.items() if k != WAITING}
        elapsed = time.monotonic() - started
        log.info("step.finished", step=step.name, seconds=round(elapsed, 3))
        step.status = StepStatus.DONE
        step.finished_at = utcnow()
        work.save_progress()
        add_event(
            session,
            op.id,
            EventType.STEP_FINISHED,
            f"{step.name} done in {elapsed:.2f} s" + (f": {work.detail}" if work.detail else ""),
            step.name,
        )
        session.commit()
        self._boundary(f"after:{step.name}")

    def _wait(
        self,
        work: Work,
        step: OperationStep,
        spec: StepSpec,
        exc: Deferred,
        waited: dict[str, Any] | None,
    ) -> None:
        """Record that the step waits and requeue the operation; past the step's timeout the
        wait is a failure (`exc` is re-raised)."""
        session, op = work.session, work.operation
        now = utcnow()
        since = _when(waited["since"]) if waited else now
        times = int(waited["times"]) + 1 if waited else 1
        delay = spec.retry.delay(times)
        if (now - since).total_seconds() + delay > spec.timeout_seconds:
            op.params = {k: v for k, v in op.params.items() if k != WAITING}
            raise exc
        notice = f"{step.name}: {_describe(exc)}; waiting"
        if waited is None or waited.get("notice") != notice:  # one event per reason
            log.info("step.waiting", step=step.name, error=_describe(exc)[:300])
            add_event(session, op.id, EventType.STEP_RETRYING, notice, step.name)
        op.params = {
            **op.params,
            WAITING: {"step": step.name, "since": since.isoformat(), "times": times,
                      "notice": notice},
        }  # fmt: skip
        session.commit()
        raise _Requeue(delay)

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
            except (Deferred, Cancelled):
                session.rollback()
                raise  # waits are the caller's: no worker sleeps through them
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
                f"{op.kind} {subject} succeeded" + (f": {error}" if error else ""),
            ),
            OperationStatus.CANCELLED: (
                EventType.OPERATION_CANCELLED,
                f"{op.kind} {subject} cancelled: {error}",
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


def _when(stamp: str) -> datetime:
    """A stored ISO time, back as a datetime."""
    return datetime.fromisoformat(stamp)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:2000]
