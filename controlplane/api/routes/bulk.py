"""/v1/tenants/{tenant_id}/bulk, the admin's /v1/bulk, and /v1/operations/{id}/cancel."""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep
from controlplane.schemas import (
    AdminBulkAccepted,
    AdminBulkRequest,
    BulkAccepted,
    BulkRequest,
    OperationRead,
)
from controlplane.services import bulk as service
from controlplane.services import operations as operations_service

router = APIRouter(tags=["bulk"])


@router.post("/v1/tenants/{tenant_id}/bulk", status_code=202, response_model=BulkAccepted)
def start_bulk(
    tenant_id: str,
    body: BulkRequest,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> BulkAccepted:
    """One action on many sites: a parent operation, one child per site; follow the
    parent's events ("3 of 10 done, 1 failed")."""
    op, sites = service.start_bulk(session, principal=principal, tenant_id=tenant_id, request=body)
    platform.engine.submit(op.id)
    return BulkAccepted(operation=operations_service.to_read(op), sites=sites)


@router.post("/v1/bulk", status_code=202, response_model=AdminBulkAccepted)
def start_admin_bulk(
    body: AdminBulkRequest,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> AdminBulkAccepted:
    """An admin's bulk across tenants: one parent operation per tenant."""
    ops = service.start_admin_bulk(session, principal=principal, request=body)
    for op in ops:
        platform.engine.submit(op.id)
    return AdminBulkAccepted(operations=[operations_service.to_read(op) for op in ops])


@router.post("/v1/operations/{operation_id}/cancel", response_model=OperationRead)
def cancel_operation(
    operation_id: str, session: SessionDep, principal: CurrentPrincipal
) -> OperationRead:
    """Stop a bulk: its children not started end cancelled, the running ones finish."""
    op = service.cancel_bulk(session, principal=principal, operation_id=operation_id)
    return operations_service.to_read(op)
