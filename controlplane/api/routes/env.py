"""/v1/tenants/{tenant_id}/env"""

from __future__ import annotations

from fastapi import APIRouter, Response

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep
from controlplane.errors import ApplyFailed
from controlplane.logs import current_request_id
from controlplane.schemas import EnvBulkWrite, EnvVarRead, EnvVarWrite
from controlplane.services import env as service

router = APIRouter(prefix="/v1/tenants/{tenant_id}/env", tags=["env"])


@router.get("", response_model=list[EnvVarRead])
def list_env(tenant_id: str, session: SessionDep, principal: CurrentPrincipal) -> list[EnvVarRead]:
    """The tenant's env vars; secret values are masked."""
    return [
        service.to_read(v)
        for v in service.list_env(session, principal=principal, tenant_id=tenant_id)
    ]


@router.put("", response_model=list[EnvVarRead])
def put_env_bulk(
    tenant_id: str,
    data: EnvBulkWrite,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> list[EnvVarRead]:
    """Create or replace several env vars at once."""
    changed = service.put_env(
        session,
        principal=principal,
        keyring=platform.keyring,
        tenant_id=tenant_id,
        values=data.vars,
    )
    apply_to_sites(platform, tenant_id)
    return [service.to_read(v) for v in changed]


@router.get("/{name}", response_model=EnvVarRead)
def get_env(
    tenant_id: str, name: str, session: SessionDep, principal: CurrentPrincipal
) -> EnvVarRead:
    """One env var (a secret's value masked)."""
    return service.to_read(
        service.get_env(session, principal=principal, tenant_id=tenant_id, name=name)
    )


@router.put("/{name}", response_model=EnvVarRead)
def put_env(
    tenant_id: str,
    name: str,
    data: EnvVarWrite,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> EnvVarRead:
    """Create or replace one env var."""
    (changed,) = service.put_env(
        session,
        principal=principal,
        keyring=platform.keyring,
        tenant_id=tenant_id,
        values={name: data},
    )
    apply_to_sites(platform, tenant_id)
    return service.to_read(changed)


@router.delete("/{name}", status_code=204)
def delete_env(
    tenant_id: str,
    name: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> Response:
    """Remove one env var."""
    service.delete_env(session, principal=principal, tenant_id=tenant_id, name=name)
    apply_to_sites(platform, tenant_id)
    return Response(status_code=204)


def apply_to_sites(platform: PlatformDep, tenant_id: str) -> None:
    """Push the tenant's env to its running sites; a failure says what was saved."""
    try:
        platform.engine.apply_tenant_env(tenant_id, current_request_id())
    except Exception as exc:
        raise ApplyFailed(
            f"saved, but applying the env to the tenant's sites failed: {exc}; retry the request"
        ) from exc
