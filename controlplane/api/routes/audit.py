"""/v1/audit"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from controlplane.api.deps import CurrentPrincipal, SessionDep
from controlplane.errors import Invalid
from controlplane.kernel.identity import Role
from controlplane.models import AuditEvent, Tenant
from controlplane.permissions import Action, NotVisible, authorize
from controlplane.schemas import AuditRead
from controlplane.services.tenants import DELETED, get_visible_tenant

router = APIRouter(tags=["audit"])


@router.get("/v1/audit", response_model=list[AuditRead])
def list_audit(
    session: SessionDep,
    principal: CurrentPrincipal,
    tenant_id: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditRead]:
    """Audit events, newest first: admins see all, others their tenants."""
    authorize(principal, Action.READ_AUDIT, tenant_id)
    query = select(AuditEvent)
    visible = principal.visible_tenants()
    if visible is not None:
        # A deleted tenant's history is the admins' to read: its old tokens get a 404, as
        # for any other read of a deleted tenant.
        if tenant_id is not None:
            get_visible_tenant(
                session, principal=principal, tenant_id=tenant_id, action=Action.READ_AUDIT
            )
        live = set(
            session.scalars(
                select(Tenant.id).where(Tenant.id.in_(visible), Tenant.status != DELETED)
            )
        )
        if not live and principal.role is Role.TENANT:
            raise NotVisible(f"tenant {next(iter(visible))!r} not found")
        query = query.where(AuditEvent.tenant_id.in_(live))
    if tenant_id is not None:
        query = query.where(AuditEvent.tenant_id == tenant_id)
    if since is not None:
        query = query.where(AuditEvent.at >= _as_utc(since))
    events = session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit))
    return [AuditRead.model_validate(e) for e in events]


def _as_utc(since: datetime) -> datetime:
    """`since` in UTC; a time without an offset is read as UTC (the database refuses naive
    times, and the conversion overflows at the ends of the calendar: both were 500s)."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    try:
        return since.astimezone(UTC)
    except OverflowError as exc:
        raise Invalid("since is out of range; send a time such as 2024-01-31T00:00:00Z") from exc
