"""/v1/tenants"""

from __future__ import annotations

from fastapi import APIRouter, Response

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep
from controlplane.cells import open_cells, site_cap
from controlplane.kernel.identity import Principal
from controlplane.models import Tenant
from controlplane.permissions import Action, tenant_actions
from controlplane.schemas import TenantCreate, TenantRead
from controlplane.services import tenants as service

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


def _read(tenant: Tenant, principal: Principal) -> TenantRead:
    """The API view of a tenant, with what `principal` may do in it."""
    fields = {
        k: getattr(tenant, k) for k in ("id", "name", "status", "cell", "created_at", "created_by")
    }
    return TenantRead.model_validate(
        {**fields, "allowed_actions": tenant_actions(principal, tenant.id)}
    )


@router.post("", status_code=201, response_model=TenantRead)
def create_tenant(
    data: TenantCreate, session: SessionDep, principal: CurrentPrincipal, platform: PlatformDep
) -> TenantRead:
    """Create a tenant (admins), in the first open cell with room."""
    settings = platform.settings
    tenant = service.create_tenant(session, principal=principal, data=data,
                                   cells=open_cells(settings),
                                   max_tenants=settings.cell_max_tenants,
                                   max_sites=site_cap(settings))  # fmt: skip
    return _read(tenant, principal)


@router.get("", response_model=list[TenantRead])
def list_tenants(session: SessionDep, principal: CurrentPrincipal) -> list[TenantRead]:
    """Tenants visible to the caller."""
    return [_read(t, principal) for t in service.list_tenants(session, principal=principal)]


@router.get("/{tenant_id}", response_model=TenantRead)
def get_tenant(tenant_id: str, session: SessionDep, principal: CurrentPrincipal) -> TenantRead:
    """One tenant."""
    tenant = service.get_visible_tenant(
        session, principal=principal, tenant_id=tenant_id, action=Action.READ_TENANT
    )
    return _read(tenant, principal)


@router.delete("/{tenant_id}", status_code=204)
def delete_tenant(tenant_id: str, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Delete a tenant with no sites (admins)."""
    service.delete_tenant(session, principal=principal, tenant_id=tenant_id)
    return Response(status_code=204)
