"""/v1/tenants"""

from __future__ import annotations

from fastapi import APIRouter, Response

from controlplane.api.deps import CurrentPrincipal, SessionDep
from controlplane.permissions import Action
from controlplane.schemas import TenantCreate, TenantRead
from controlplane.services import tenants as service

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


@router.post("", status_code=201, response_model=TenantRead)
def create_tenant(
    data: TenantCreate, session: SessionDep, principal: CurrentPrincipal
) -> TenantRead:
    """Create a tenant (admins)."""
    tenant = service.create_tenant(session, principal=principal, data=data)
    return TenantRead.model_validate(tenant)


@router.get("", response_model=list[TenantRead])
def list_tenants(session: SessionDep, principal: CurrentPrincipal) -> list[TenantRead]:
    """Tenants visible to the caller."""
    return [
        TenantRead.model_validate(t) for t in service.list_tenants(session, principal=principal)
    ]


@router.get("/{tenant_id}", response_model=TenantRead)
def get_tenant(tenant_id: str, session: SessionDep, principal: CurrentPrincipal) -> TenantRead:
    """One tenant."""
    tenant = service.get_visible_tenant(
        session, principal=principal, tenant_id=tenant_id, action=Action.READ_TENANT
    )
    return TenantRead.model_validate(tenant)


@router.delete("/{tenant_id}", status_code=204)
def delete_tenant(tenant_id: str, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Delete a tenant with no sites (admins)."""
    service.delete_tenant(session, principal=principal, tenant_id=tenant_id)
    return Response(status_code=204)
