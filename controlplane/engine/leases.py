"""Operation leases: one engine runs an operation; a dead engine's work is taken over.

Several control-plane processes may share one database: each operation is leased to one
engine, renewed while it runs, and taken over when the lease lapses, or at once when the
engine holding it was a process on this host that no longer exists.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from controlplane.kernel.vocabulary import ACTIVE_STATUSES
from controlplane.models import Operation, utcnow

# Lease bookkeeping is not a change of the operation: keep its updated_at as it is.
_KEEP_UPDATED_AT = {"updated_at": Operation.updated_at}


def new_worker_id() -> str:
    """ "host:pid:nonce": unique per engine, and the pid tells whether a local one died."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    """Claims, renews and releases operation leases for one engine (`worker_id`)."""

    def __init__(self, sessions: sessionmaker[Session], lease_seconds: float) -> None:
        self._sessions = sessions
        self.worker_id = new_worker_id()
        self.lease = timedelta(seconds=lease_seconds)

    def claimable(self) -> list[str]:
        """Unfinished operations nobody holds (dead local engines released first), oldest first."""
        with self._sessions() as session:
            self._release_dead_local_workers(session)
            return list(
                session.scalars(
                    select(Operation.id)
                    .where(
                        Operation.status.in_(ACTIVE_STATUSES),
                        or_(Operation.worker_id.is_(None), Operation.lease_expires_at < utcnow()),
                    )
                    .order_by(Operation.created_at)
                )
            )

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
            if worker and not process_alive(int(worker.split(":")[1])):
                session.execute(
                    update(Operation)
                    .where(Operation.id == op_id, Operation.worker_id == worker)
                    .values(lease_expires_at=None, worker_id=None, **_KEEP_UPDATED_AT)
                )
        session.commit()

    def claim(self, operation_id: str, *, ours: bool = False) -> bool:
        """Take the lease of an operation nobody else holds (`ours`: or this engine holds,
        as it does for an operation waiting to run again)."""
        now = utcnow()
        free = or_(Operation.worker_id.is_(None), Operation.lease_expires_at < now)
        if ours:
            free = or_(free, Operation.worker_id == self.worker_id)
        with self._sessions() as session:
            claimed = session.execute(  # type: ignore[attr-defined]
                update(Operation)
                .where(
                    Operation.id == operation_id,
                    Operation.status.in_(ACTIVE_STATUSES),
                    free,
                )
                .values(
                    worker_id=self.worker_id,
                    lease_expires_at=now + self.lease,
                    **_KEEP_UPDATED_AT,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            session.commit()
        return bool(claimed == 1)

    def renew(self) -> None:
        """Push out the expiry of every lease this engine holds."""
        with self._sessions() as session:
            session.execute(
                update(Operation)
                .where(
                    Operation.worker_id == self.worker_id,
                    Operation.status.in_(ACTIVE_STATUSES),
                )
                .values(lease_expires_at=utcnow() + self.lease, **_KEEP_UPDATED_AT)
            )
            session.commit()

    def release(self, operation_id: str) -> None:
        """Drop the lease; an operation still unfinished is retried by the next recovery."""
        with self._sessions() as session:
            session.execute(
                update(Operation)
                .where(Operation.id == operation_id, Operation.worker_id == self.worker_id)
                .values(worker_id=None, lease_expires_at=None, **_KEEP_UPDATED_AT)
            )
            session.commit()


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
