"""Operations: read one, list a tenant's or a site's, and read their events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.engine.catalogue import new_operation
from controlplane.kernel.identity import Principal
from controlplane.kernel.logs import current_request_id
from controlplane.kernel.vocabulary import OperationKind
from controlplane.models import Operation, OperationEvent, Site
from controlplane.permissions import Action, NotVisible, authorize
from controlplane.schemas import OperationRead


def to_read(op: Operation) -> OperationRead:
    """The API view of an operation."""
    return OperationRead.model_validate(op)


def record_operation(
    session: Session,
    *,
    kind: OperationKind,
    tenant_id: str,
    principal: Principal,
    site: Site | None = None,
    params: dict[str, Any] | None = None,
) -> Operation:
    """A new operation on `site` (None: a tenant-level kind), flushed so it has its id; the
    caller commits."""
    op = new_operation(
        kind=kind,
        tenant_id=tenant_id,
        site=site,
        requested_by=principal.sub,
        request_id=current_request_id(),
        params=params,
    )
    session.add(op)
    session.flush()
    return op


def get_operation(session: Session, *, principal: Principal, operation_id: str) -> Operation:
    """An operation of a tenant the caller can read; 404 otherwise."""
    op = session.get(Operation, operation_id)
    if op is None or not principal.sees_tenant(op.tenant_id):
        raise NotVisible(f"operation {operation_id!r} not found")
    authorize(principal, Action.READ_SITES, op.tenant_id)
    return op


def list_operations(
    session: Session, *, tenant_id: str, site_name: str | None = None, limit: int = 50
) -> list[Operation]:
    """Newest first; the caller has checked access to the tenant."""
    query = select(Operation).where(Operation.tenant_id == tenant_id)
    if site_name is not None:
        query = query.where(Operation.site_name == site_name)
    return list(session.scalars(query.order_by(Operation.created_at.desc()).limit(limit)))


def events_after(session: Session, *, operation_id: str, after_id: int) -> list[OperationEvent]:
    """Events of an operation with an id above `after_id`, oldest first."""
    return list(
        session.scalars(
            select(OperationEvent)
            .where(OperationEvent.operation_id == operation_id, OperationEvent.id > after_id)
            .order_by(OperationEvent.id)
        )
    )


def latest_event_id(session: Session) -> int:
    """The newest event id of any operation (0 when there is none)."""
    return session.scalar(select(func.max(OperationEvent.id))) or 0


def replay_floor(session: Session, *, tenant_id: str, max_events: int, since: datetime) -> int:
    """The event id a replay of the tenant's events starts after: the newest `max_events`
    events at most, and none from before `since`, whichever are fewer."""
    tenant_events = (
        select(OperationEvent.id)
        .join(Operation, Operation.id == OperationEvent.operation_id)
        .where(Operation.tenant_id == tenant_id)
    )
    beyond_count = session.scalar(
        tenant_events.order_by(OperationEvent.id.desc()).offset(max_events).limit(1)
    )
    too_old = session.scalar(
        select(func.max(OperationEvent.id))
        .join(Operation, Operation.id == OperationEvent.operation_id)
        .where(Operation.tenant_id == tenant_id, OperationEvent.at < since)
    )
    return max(beyond_count or 0, too_old or 0)


def tenant_events_after(
    session: Session, *, tenant_id: str, after_id: int
) -> list[tuple[OperationEvent, Operation]]:
    """Events of a tenant's operations with an id above `after_id`, oldest first, each with
    its operation; the caller has checked access to the tenant."""
    rows = session.execute(
        select(OperationEvent, Operation)
        .join(Operation, Operation.id == OperationEvent.operation_id)
        .where(Operation.tenant_id == tenant_id, OperationEvent.id > after_id)
        .order_by(OperationEvent.id)
    )
    return [(event, op) for event, op in rows]
