"""/v1/tenants/{tenant_id}/env"""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep
from controlplane.schemas import (
    EnvBulkAccepted,
    EnvBulkWrite,
    EnvChangeAccepted,
    EnvVarRead,
    EnvVarWrite,
)
from controlplane.services import env as service
from controlplane.services import operations as operations_service

router = APIRouter(prefix="/v1/tenants/{tenant_id}/env", tags=["env"])


@router.get("", response_model=list[EnvVarRead])
def list_env(tenant_id: str, session: SessionDep, principal: CurrentPrincipal) -> list[EnvVarRead]:
    """The tenant's env vars; secret values are masked."""
    return [
        service.to_read(v)
        for v in service.list_env(session, principal=principal, tenant_id=tenant_id)
    ]


@router.put("", status_code=202, response_model=EnvBulkAccepted)
def put_env_bulk(
    tenant_id: str,
    data: EnvBulkWrite,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> EnvBulkAccepted:
    """Create or replace several env vars at once; the operation applies them to the sites."""
    changed, op = service.put_env(
        session,
        principal=principal,
        keyring=platform.keyring,
        tenant_id=tenant_id,
        values=data.vars,
    )
    platform.engine.submit(op.id)
    return EnvBulkAccepted(
        variables=[service.to_read(v) for v in changed],
        operation=operations_service.to_read(op),
    )


@router.get("/{name}", response_model=EnvVarRead)
def get_env(
    tenant_id: str, name: str, session: SessionDep, principal: CurrentPrincipal
) -> EnvVarRead:
    """One env var (a secret's value masked)."""
    return service.to_read(
        service.get_env(session, principal=principal, tenant_id=tenant_id, name=name)
    )


@router.put("/{name}", status_code=202, response_model=EnvChangeAccepted)
def put_env(
    tenant_id: str,
    name: str,
    data: EnvVarWrite,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> EnvChangeAccepted:
    """Create or replace one env var; the operation applies it to the tenant's sites."""
    (changed,), op = service.put_env(
        session,
        principal=principal,
        keyring=platform.keyring,
        tenant_id=tenant_id,
        values={name: data},
    )
    platform.engine.submit(op.id)
    return EnvChangeAccepted(
        variable=service.to_read(changed), operation=operations_service.to_read(op)
    )


@router.delete("/{name}", status_code=202, response_model=EnvChangeAccepted)
def delete_env(
    tenant_id: str,
    name: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> EnvChangeAccepted:
    """Remove one env var; the operation removes it from the tenant's sites."""
    before, op = service.delete_env(session, principal=principal, tenant_id=tenant_id, name=name)
    platform.engine.submit(op.id)
    return EnvChangeAccepted(variable=before, operation=operations_service.to_read(op))
