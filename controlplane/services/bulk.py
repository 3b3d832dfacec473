"""Bulk operations: one action on many sites (a parent per tenant, a child per site), and
cancelling one."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane import audit
from controlplane.engine.bulk_steps import CHILDREN, bulk_params, cancel_requested
from controlplane.errors import BadRequest, Conflict
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import (
    FINISHED_STATUSES,
    BulkAction,
    EventType,
    OperationKind,
)
from controlplane.models import Operation, OperationEvent, Site, Tenant
from controlplane.permissions import (
    BULK_ACTIONS,
    Action,
    SiteAction,
    authorize,
    bulk_permission,
    site_actions,
)
from controlplane.schemas import AdminBulkRequest, BulkRequest, UpdateRequest
from controlplane.services.operations import get_operation, record_operation
from controlplane.services.tenants import DELETED, get_visible_tenant

# How long a cancel waits for the bulk to record its not-started children as cancelled.
CANCEL_SETTLE_SECONDS = 2.0


def _site_action(action: BulkAction) -> SiteAction:
    site_action = BULK_ACTIONS.get(action)
    if site_action is None:
        raise BadRequest(f"bulk {action} is not available on this control plane")
    return site_action


def _sites_for(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    action: BulkAction,
    sites: Sequence[str] | Literal["all"],
) -> list[str]:
    """The sites a bulk of `action` works on, in order: the named ones (400 naming any the
    tenant lacks), or "all": every site the action applies to now (its allowed_actions)."""
    site_action = _site_action(action)
    rows = session.execute(
        select(Site.name, Site.status, Site.current_operation_id, Site.role)
        .where(Site.tenant_id == tenant_id)
        .order_by(Site.name)
    ).all()
    if sites == "all":
        return [
            row.name
            for row in rows
            if site_action
            in site_actions(
                principal,
                tenant_id,
                row.status,
                busy=row.current_operation_id is not None,
                role=row.role,
            )
        ]
    if not sites:
        raise BadRequest('name at least one site in "sites", or give "all"')
    repeated = sorted(name for name, seen in Counter(sites).items() if seen > 1)
    if repeated:
        more = f" and {len(repeated) - 10} more" if len(repeated) > 10 else ""
        raise BadRequest(f"name each site once; repeated: {', '.join(repeated[:10])}{more}")
    known = {row.name for row in rows}
    unknown = [name for name in sites if name not in known]
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise BadRequest(
            f"tenant {tenant_id!r} has no site {', '.join(map(repr, unknown[:10]))}{more}; "
            f"list its sites with GET /v1/tenants/{tenant_id}/sites"
        )
    return list(sites)


def _record_parent(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    action: BulkAction,
    sites: list[str],
    concurrency: int,
    update: dict[str, Any] | None,
) -> Operation:
    """A pending bulk of one tenant, audited, flushed (the caller commits)."""
    op = record_operation(
        session, kind=OperationKind.BULK, tenant_id=tenant_id, principal=principal,
        params=bulk_params(action=action, sites=sites, concurrency=concurrency,
                           role=principal.role, update=update),
    )  # fmt: skip
    audit.record(
        session,
        principal=principal,
        action=f"tenant.bulk_{action}",
        tenant_id=tenant_id,
        target=tenant_id,
        detail={"operation_id": op.id, "sites": sites, "concurrency": concurrency},
    )
    return op


def _update_of(action: BulkAction, update: UpdateRequest | None) -> dict[str, Any] | None:
    """What each child of a bulk update puts in place, as its params keep it."""
    if update is None:
        return None
    if action is not BulkAction.UPDATE:
        raise BadRequest(f'"update" is for action update only; drop it for {action}')
    if update.dry_run:
        raise BadRequest("a bulk runs the update; for a plan, ask each site with "
                         "POST .../sites/{site}/updates and dry_run true")  # fmt: skip
    return update.model_dump(mode="json", exclude_none=True)


def start_bulk(
    session: Session, *, principal: Principal, tenant_id: str, request: BulkRequest
) -> tuple[Operation, list[str]]:
    """Record a bulk of one tenant (the engine runs it after commit) and its sites."""
    get_visible_tenant(
        session, principal=principal, tenant_id=tenant_id, action=bulk_permission_of(request.action)
    )
    update = _update_of(request.action, request.update)
    sites = _sites_for(session, principal=principal, tenant_id=tenant_id,
                       action=request.action, sites=request.sites)  # fmt: skip
    if not sites:
        raise Conflict(
            f"no site of tenant {tenant_id!r} can {request.action} now (each is busy or in a "
            "state the action does not apply to); name the sites instead"
        )
    op = _record_parent(session, principal=principal, tenant_id=tenant_id, action=request.action,
                        sites=sites, concurrency=request.concurrency, update=update)  # fmt: skip
    session.commit()
    return op, sites


def start_admin_bulk(
    session: Session, *, principal: Principal, request: AdminBulkRequest
) -> list[Operation]:
    """An admin's bulk across tenants: one parent per tenant, all recorded in one commit
    (400 naming a tenant or site that does not exist: nothing recorded)."""
    authorize(principal, Action.MANAGE_TENANTS)
    update = _update_of(request.action, request.update)
    wanted: dict[str, list[str]] | None = None
    if request.sites == "all":
        tenants = list(session.scalars(
            select(Tenant.id).where(Tenant.status != DELETED).order_by(Tenant.id)
        ))  # fmt: skip
    else:
        if not request.sites:
            raise BadRequest('name at least one {tenant_id, site} in "sites", or give "all"')
        wanted = {}
        for entry in request.sites:
            wanted.setdefault(entry.tenant_id, []).append(entry.site)
        tenants = list(wanted)
        live = set(session.scalars(
            select(Tenant.id).where(Tenant.id.in_(tenants), Tenant.status != DELETED)
        ))  # fmt: skip
        missing = [t for t in tenants if t not in live]
        if missing:
            raise BadRequest(f"no tenant {', '.join(map(repr, missing))}; list them with "
                             "GET /v1/tenants")  # fmt: skip
    plan: list[tuple[str, list[str]]] = []
    for tenant_id in tenants:
        names = _sites_for(session, principal=principal, tenant_id=tenant_id,
                           action=request.action,
                           sites=wanted[tenant_id] if wanted is not None else "all")  # fmt: skip
        if names:
            plan.append((tenant_id, names))
    if not plan:
        raise Conflict(f"no site of any tenant can {request.action} now")
    ops = [
        _record_parent(
            session,
            principal=principal,
            tenant_id=tenant_id,
            action=request.action,
            sites=names,
            concurrency=request.concurrency,
            update=update,
        )
        for tenant_id, names in plan
    ]
    session.commit()
    return ops


def bulk_permission_of(action: BulkAction) -> Action:
    """The permission a bulk of `action` needs (400 for an action not available here)."""
    _site_action(action)
    return bulk_permission(action)


def cancel_bulk(session: Session, *, principal: Principal, operation_id: str) -> Operation:
    """Ask a running bulk to stop: its children not started end cancelled, the running ones
    finish (409 for an operation that is not a bulk, or has ended)."""
    op = get_operation(session, principal=principal, operation_id=operation_id)
    if op.kind != OperationKind.BULK:
        authorize(principal, Action.CHANGE_SITES, op.tenant_id)  # who could cancel a bulk
        raise Conflict(
            f"operation {operation_id!r} is a {op.kind}, not a bulk operation; only a bulk's "
            "children not started can be cancelled"
        )
    authorize(principal, bulk_permission(BulkAction(op.params["action"])), op.tenant_id)
    if op.status in FINISHED_STATUSES:
        raise Conflict(f"operation {operation_id!r} has already ended ({op.status})")
    if not cancel_requested(session, op.id):
        session.add(
            OperationEvent(
                operation_id=op.id,
                type=EventType.CANCEL_REQUESTED,
                message=f"cancel requested by {principal.sub}: the children not started will "
                "not run",
            )
        )
        audit.record(session, principal=principal, action="tenant.bulk_cancel",
                     tenant_id=op.tenant_id, target=op.tenant_id,
                     detail={"operation_id": op.id})  # fmt: skip
        session.commit()
    return settled(session, op.id, CANCEL_SETTLE_SECONDS)


def settled(session: Session, operation_id: str, seconds: float) -> Operation:
    """The bulk once every site has its child (cancelled ones included) or it has ended, or as
    it is after `seconds`: its engine may be busy or in another process."""
    deadline = time.monotonic() + seconds
    while True:
        session.expire_all()
        op = session.get(Operation, operation_id)
        assert op is not None  # read just before; operations are never deleted
        started = op.params.get(CHILDREN, {})
        if op.status in FINISHED_STATUSES or all(name in started for name in op.params["sites"]):
            return op
        if time.monotonic() > deadline:
            return op
        time.sleep(0.05)
