"""/v1/tenants/{tenant_id}/bundle and /v1/bundle: the plugins and themes new sites get."""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.api.deps import CurrentPrincipal, SessionDep
from controlplane.schemas import BundleRead, BundleWrite
from controlplane.services import bundles as service

router = APIRouter(tags=["bundles"])
TENANT = "/v1/tenants/{tenant_id}/bundle"


@router.get(TENANT, response_model=BundleRead)
def get_bundle(tenant_id: str, session: SessionDep, principal: CurrentPrincipal) -> BundleRead:
    """The tenant's bundle, or the platform default it inherits (`inherited`)."""
    return service.get_bundle(session, principal=principal, tenant_id=tenant_id)


@router.put(TENANT, response_model=BundleRead)
def put_bundle(
    tenant_id: str, data: BundleWrite, session: SessionDep, principal: CurrentPrincipal
) -> BundleRead:
    """Set the tenant's bundle (checked against the catalogue; applies to sites made next)."""
    return service.put_bundle(session, principal=principal, tenant_id=tenant_id, data=data)


@router.delete(TENANT, response_model=BundleRead)
def delete_bundle(tenant_id: str, session: SessionDep, principal: CurrentPrincipal) -> BundleRead:
    """Drop the tenant's own bundle: its new sites get the platform default again."""
    return service.delete_bundle(session, principal=principal, tenant_id=tenant_id)


@router.get("/v1/bundle", response_model=BundleRead)
def get_platform_bundle(session: SessionDep, principal: CurrentPrincipal) -> BundleRead:
    """The platform default bundle: what tenants without their own get."""
    return service.get_platform_bundle(session, principal=principal)


@router.put("/v1/bundle", response_model=BundleRead)
def put_platform_bundle(
    data: BundleWrite, session: SessionDep, principal: CurrentPrincipal
) -> BundleRead:
    """Set the platform default bundle (admins)."""
    return service.put_platform_bundle(session, principal=principal, data=data)
