"""The durable provisioning engine: named steps, persisted progress, undo in reverse, resume."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from controlplane.credentials import DatabaseVault, tenant_env_plaintext
from controlplane.crypto import Keyring
from controlplane.engine.provider import Provider, SiteContext, SiteStep
from controlplane.logs import get_logger
from controlplane.models import Operation, OperationEvent, OperationStep, Site, utcnow

log = get_logger("aipress.engine")

CREATE_SITE = "create_site"
DELETE_SITE = "delete_site"
START_SITE = "start_site"
STOP_SITE = "stop_site"
# A verified or removed custom domain: the serving config and the names applied again.
UPDATE_DOMAINS = "update_domains"
CREATE_STEPS = ("database", "secrets", "storage", "runtime", "dns", "wordpress")
# Delete is roll-forward: a backup first, then every step's `remove` in reverse order.
DELETE_STEPS = ("backup", "wordpress", "dns", "runtime", "storage", "secrets", "database")
STEPS_BY_KIND = {
    CREATE_SITE: CREATE_STEPS,
    DELETE_SITE: DELETE_STEPS,
    START_SITE: ("runtime",),
    STOP_SITE: ("runtime",),
    # wordpress too: the site's own names are in its config (loopback, outbound allow-list).
    UPDATE_DOMAINS: ("runtime", "dns", "wordpress"),
}
ACTIVE_STATUSES = ("pending", "running", "rolling_back")
FINISHED_STATUSES = ("succeeded", "failed", "rolled_back")

BoundaryHook = Callable[[str], None]
# Lease bookkeeping is not a change of the operation: keep its updated_at as it is.
_KEEP_UPDATED_AT = {"updated_at": Operation.updated_at}


class StepFailed(Exception):
    """A provider step raised; carries the step name for the operation's error."""


def add_event(
    session: Session, operation_id: str, type_: str, message: str, step: str | None = None
) -> None:
    """Append a progress event (committed by the caller)."""
    session.add(OperationEvent(operation_id=operation_id, type=type_, step=step, message=message))


def new_operation(
    *,
    kind: str,
    tenant_id: str,
    site: Site,
    requested_by: str,
    request_id: str | None,
    params: dict[str, Any] | None = None,
) -> Operation:
    """A pending operation with its steps, ready to be added to a session."""
    op = Operation(
        kind=kind,
        tenant_id=tenant_id,
        site_id=site.id,
        site_name=site.name,
        status="pending",
        requested_by=requested_by,
        request_id=request_id,
        params=params or {},
        steps=[
            OperationStep(position=i, name=name, status="pending")
            for i, name in enumerate(STEPS_BY_KIND[kind])
        ],
    )
    return op


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
        self._keyring = keyring
        self._max_attempts = max_attempts
        self._hook = boundary_hook
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="aipress-op")
        self._futures: dict[str, Future[None]] = {}
        self._site_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._submit_lock = threading.Lock()
        # Several control-plane processes may share one database: each operation is leased
        # to one engine, renewed while it runs, and taken over when the lease lapses.
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease = timedelta(seconds=lease_seconds)
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
        now = utcnow()
        with self._sessions() as session:
            self._release_dead_local_workers(session)
            ids = list(
                session.scalars(
                    select(Operation.id)
                    .where(
                        Operation.status.in_(ACTIVE_STATUSES),
                        or_(Operation.worker_id.is_(None), Operation.lease_expires_at < now),
                    )
                    .order_by(Operation.created_at)
                )
            )
        for op_id in ids:
            if op_id not in self._futures:
                log.info("operation.recover", operation_id=op_id)
            self.submit(op_id)
        return ids

    def _release_dead_local_workers(self, session: Session) -> None:
        host = socket.gethostname()
        held = session.execute(
            select(Operation.id, Operation.worker_id).where(
                Operation.status.in_(ACTIVE_STATUSES),
                Operation.worker_id.like(f"{host}:%"),
                Operation.worker_id != self.worker_id,
            )
        ).all()
        for op_id, worker in held:
            if worker and not _process_alive(int(worker.split(":")[1])):
                session.execute(
                    update(Operation)
                    .where(Operation.id == op_id, Operation.worker_id == worker)
                    .values(lease_expires_at=None, worker_id=None, **_KEEP_UPDATED_AT)
                )
        session.commit()

    def _claim(self, operation_id: str) -> bool:
        """Take the lease of an operation nobody else holds."""
        now = utcnow()
        with self._sessions() as session:
            claimed = session.execute(  # type: ignore[attr-defined]
                update(Operation)
                .where(
                    Operation.id == operation_id,
                    Operation.status.in_(ACTIVE_STATUSES),
                    or_(Operation.worker_id.is_(None), Operation.lease_expires_at < now),
                )
                .values(
                    worker_id=self.worker_id,
                    lease_expires_at=now + self._lease,
                    **_KEEP_UPDATED_AT,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            session.commit()
        return bool(claimed == 1)

    def _lease_loop(self) -> None:
        """Renew the leases this engine holds and pick up operations whose engine died."""
        while not self._stopping.wait(self._lease.total_seconds() / 3):
            try:
                with self._sessions() as session:
                    session.execute(
                        update(Operation)
                        .where(
                            Operation.worker_id == self.worker_id,
                            Operation.status.in_(ACTIVE_STATUSES),
                        )
                        .values(lease_expires_at=utcnow() + self._lease, **_KEEP_UPDATED_AT)
                    )
                    session.commit()
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
        if not self._claim(operation_id):
            return  # finished, or another engine (or thread) holds it
        try:
            self.run(operation_id)
        except Exception:
            log.exception("operation.crashed", operation_id=operation_id)
            raise
        finally:
            self._release(operation_id)

    def _release(self, operation_id: str) -> None:
        """Drop the lease; an operation still unfinished is retried by the next recovery."""
        with self._sessions() as session:
            session.execute(
                update(Operation)
                .where(Operation.id == operation_id, Operation.worker_id == self.worker_id)
                .values(worker_id=None, lease_expires_at=None, **_KEEP_UPDATED_AT)
            )
            session.commit()

    def _boundary(self, name: str) -> None:
        if self._hook is not None:
            self._hook(name)

    def _site_lock(self, site_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._site_locks.setdefault(site_id, threading.Lock())

    def run(self, operation_id: str) -> None:
        """Run (or resume) one operation to its end, synchronously."""
        with self._sessions() as session:
            op = session.get(Operation, operation_id)
            site_id = op.site_id if op is not None else None
        if site_id is None:
            self._run_locked(operation_id)
            return
        with self._site_lock(site_id):  # env re-application waits for the site's change
            self._run_locked(operation_id)

    def _run_locked(self, operation_id: str) -> None:
        with self._sessions() as session:
            op = session.get(Operation, operation_id)
            if op is None or op.status in FINISHED_STATUSES:
                return
            if op.request_id:
                structlog.contextvars.bind_contextvars(request_id=op.request_id)
            structlog.contextvars.bind_contextvars(operation_id=op.id, site=op.site_name)
            site = session.get(Site, op.site_id) if op.site_id else None
            if site is None:
                self._finish(session, op, "failed", "the site record is gone")
                return
            op.attempts += 1
            resumed = op.status != "pending"
            if op.status == "pending":
                op.status = "running"
                add_event(session, op.id, "operation_started", f"{op.kind} {op.site_name} started")
            elif resumed:
                add_event(
                    session, op.id, "operation_resumed", f"resumed after a restart ({op.status})"
                )
            if (
                op.kind == CREATE_SITE
                and op.status == "running"
                and op.attempts > self._max_attempts
            ):
                op.status = "rolling_back"
                op.error = f"gave up after {op.attempts - 1} attempts"
            elif op.attempts > 2 * self._max_attempts:
                # Undo and delete roll forward: after this many crashes, stop and say so.
                site.status = "error"
                site.current_operation_id = None
                self._finish(session, op, "failed", f"gave up after {op.attempts - 1} attempts")
                return
            session.commit()
            ctx = self._context(session, site, op.request_id)
            if op.kind == CREATE_SITE:
                self._run_create(session, op, site, ctx)
            elif op.kind == DELETE_SITE:
                self._run_delete(session, op, site, ctx)
            elif op.kind in (START_SITE, STOP_SITE):
                self._run_serving(session, op, site, ctx, serving=op.kind == START_SITE)
            elif op.kind == UPDATE_DOMAINS:
                self._run_update_domains(session, op, site, ctx)
            else:
                self._finish(session, op, "failed", f"unknown operation kind {op.kind!r}")

    def apply_tenant_env(
        self, tenant_id: str, request_id: str | None = None, wait_seconds: float = 120
    ) -> list[str]:
        """Re-apply a tenant's env vars and secrets to its serving sites, in one reload.

        Each site's lock is held while its runtime is rewritten, so a site being created or
        deleted is handled after that change (and a deleted one is skipped).
        """
        with self._sessions() as session:
            site_ids = sorted(session.scalars(select(Site.id).where(Site.tenant_id == tenant_id)))
        held: list[threading.Lock] = []
        try:
            for site_id in site_ids:
                lock = self._site_lock(site_id)
                if not lock.acquire(timeout=wait_seconds):
                    raise StepFailed(f"a change to a site kept it busy for {wait_seconds:.0f} s")
                held.append(lock)
            with self._sessions() as session:
                sites = session.scalars(
                    select(Site).where(Site.id.in_(site_ids), Site.status.in_(("ready", "stopped")))
                ).all()
                contexts = [self._context(session, site, request_id) for site in sites]
                if contexts:
                    self._provider.runtime.apply_env(contexts)
        finally:
            for lock in held:
                lock.release()
        log.info("env.applied", tenant_id=tenant_id, sites=len(contexts))
        return [ctx.site_name for ctx in contexts]

    def _run_serving(
        self, session: Session, op: Operation, site: Site, ctx: SiteContext, *, serving: bool
    ) -> None:
        runtime = self._provider.runtime
        action = partial(runtime.start if serving else runtime.stop, ctx)
        try:
            self._do_step(session, op, op.steps[0], action)
        except StepFailed as exc:
            site.current_operation_id = None
            self._finish(session, op, "failed", str(exc))
            return
        self._save_resources(site, ctx)
        site.status = "ready" if serving else "stopped"
        site.current_operation_id = None
        self._finish(session, op, "succeeded", None)

    def _run_update_domains(
        self, session: Session, op: Operation, site: Site, ctx: SiteContext
    ) -> None:
        """Serve the site's verified domains (and no others): its runtime, then its names."""
        try:
            for step in op.steps:
                if step.status == "done":
                    continue
                self._do_step(session, op, step, partial(self._step_impl(step.name).ensure, ctx))
                self._save_resources(site, ctx)
                session.commit()
        except StepFailed as exc:
            site.current_operation_id = None
            self._finish(session, op, "failed", f"{exc}; verify the domain again to retry")
            return
        site.current_operation_id = None
        self._finish(session, op, "succeeded", None)

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

    def read_context(self, session: Session, site: Site) -> SiteContext:
        """A context for reading a site (logs, metrics): no secrets decrypted."""
        return SiteContext(
            tenant_id=site.tenant_id,
            site_id=site.id,
            site_name=site.name,
            title=site.title,
            admin_email=site.admin_email,
            admin_user=site.admin_user,
            domains=site.verified_domains,  # a pending claim proves nothing: never served
            credentials=DatabaseVault(session, self._keyring, site.id),
            resources=dict(site.resources or {}),
        )

    def _context(self, session: Session, site: Site, request_id: str | None) -> SiteContext:
        """A context for changing a site: with the tenant's env (secrets decrypted)."""
        ctx = self.read_context(session, site)
        ctx.tenant_env = tenant_env_plaintext(session, self._keyring, site.tenant_id)
        ctx.request_id = request_id
        return ctx

    def _step_impl(self, name: str) -> SiteStep:
        step: SiteStep = getattr(self._provider, name)
        return step

    def _save_resources(self, site: Site, ctx: SiteContext) -> None:
        site.resources = dict(ctx.resources)

    def _run_create(self, session: Session, op: Operation, site: Site, ctx: SiteContext) -> None:
        if op.status == "running":
            try:
                for step in op.steps:
                    if step.status == "done":
                        continue
                    self._do_step(
                        session, op, step, partial(self._step_impl(step.name).ensure, ctx)
                    )
                    self._save_resources(site, ctx)
                    session.commit()
                    self._boundary(f"after:{step.name}")
            except StepFailed as exc:
                op.status = "rolling_back"
                op.error = str(exc)
                session.commit()
            else:
                site.status = "ready"
                site.preview_url = self._provider.dns.preview_url(ctx)
                site.current_operation_id = None
                self._finish(session, op, "succeeded", None)
                return
        self._rollback_create(session, op, site, ctx)

    def _rollback_create(
        self, session: Session, op: Operation, site: Site, ctx: SiteContext
    ) -> None:
        add_event(session, op.id, "rollback_started", f"undoing finished steps: {op.error}")
        session.commit()
        for step in reversed(op.steps):
            if step.status in ("pending", "undone"):
                continue
            self._boundary(f"before-undo:{step.name}")
            step.status = "undoing"
            session.commit()
            try:
                self._step_impl(step.name).remove(ctx)
            except Exception as exc:
                message = f"undo of {step.name} failed: {_describe(exc)}"
                step.status = "failed"
                step.error = message
                site.status = "error"
                site.current_operation_id = None
                self._save_resources(site, ctx)
                add_event(session, op.id, "step_failed", message, step.name)
                self._finish(session, op, "failed", f"{op.error}; {message}")
                return
            step.status = "undone"
            step.finished_at = utcnow()
            self._save_resources(site, ctx)
            add_event(session, op.id, "step_undone", f"{step.name} undone", step.name)
            session.commit()
            self._boundary(f"after-undo:{step.name}")
        op.site_id = None
        session.delete(site)
        self._finish(session, op, "rolled_back", op.error)

    def _run_delete(self, session: Session, op: Operation, site: Site, ctx: SiteContext) -> None:
        site.status = "deleting"
        session.commit()
        try:
            for step in op.steps:
                if step.status == "done":
                    continue
                if step.name == "backup":
                    action: Callable[[], None] = partial(self._backup, op, ctx)
                else:
                    action = partial(self._step_impl(step.name).remove, ctx)
                self._do_step(session, op, step, action)
                self._save_resources(site, ctx)
                session.commit()
                self._boundary(f"after:{step.name}")
        except StepFailed as exc:
            site.status = "error"
            site.current_operation_id = None
            self._finish(
                session, op, "failed", f"{exc}; the site is partly deleted: delete it again"
            )
            return
        op.site_id = None
        session.delete(site)
        self._finish(session, op, "succeeded", None)

    def _backup(self, op: Operation, ctx: SiteContext) -> None:
        if "backup" in op.params:
            return
        location = self._provider.backups.backup(ctx, label="before-delete")
        op.params = {**op.params, "backup": location}

    def _do_step(
        self, session: Session, op: Operation, step: OperationStep, action: Callable[[], None]
    ) -> None:
        self._boundary(f"before:{step.name}")
        step.status = "running"
        step.started_at = utcnow()
        step.error = None
        add_event(session, op.id, "step_started", f"{step.name} started", step.name)
        session.commit()
        started = time.monotonic()
        try:
            action()
        except Exception as exc:
            session.rollback()
            message = f"{step.name} failed: {_describe(exc)}"
            log.warning("step.failed", step=step.name, error=message)
            step.status = "failed"
            step.error = message
            step.finished_at = utcnow()
            add_event(session, op.id, "step_failed", message, step.name)
            session.commit()
            raise StepFailed(message) from exc
        elapsed = time.monotonic() - started
        log.info("step.finished", step=step.name, seconds=round(elapsed, 3))
        step.status = "done"
        step.finished_at = utcnow()
        add_event(
            session, op.id, "step_finished", f"{step.name} done in {elapsed:.2f} s", step.name
        )

    def _finish(self, session: Session, op: Operation, status: str, error: str | None) -> None:
        op.status = status
        op.error = error
        op.finished_at = utcnow()
        message = {
            "succeeded": f"{op.kind} {op.site_name} succeeded",
            "rolled_back": f"{op.kind} {op.site_name} rolled back: {error}",
            "failed": f"{op.kind} {op.site_name} failed: {error}",
        }[status]
        add_event(session, op.id, f"operation_{status}", message)
        session.commit()
        log.info("operation.finished", status=status, kind=op.kind)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:2000]
