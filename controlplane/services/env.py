"""Tenant env vars and secrets for third-party integrations (secret values write-only)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane import audit, names
from controlplane.credentials import env_context
from controlplane.crypto import Keyring
from controlplane.errors import Invalid
from controlplane.models import EnvVar, utcnow
from controlplane.permissions import Action, NotVisible, Principal
from controlplane.schemas import MASK, EnvVarRead, EnvVarWrite
from controlplane.services.tenants import get_visible_tenant


def to_read(var: EnvVar) -> EnvVarRead:
    """The API view: a secret's value is always masked."""
    return EnvVarRead(
        name=var.name,
        value=MASK if var.secret else (var.value or ""),
        secret=var.secret,
        updated_at=var.updated_at,
        updated_by=var.updated_by,
    )


def list_env(session: Session, *, principal: Principal, tenant_id: str) -> list[EnvVar]:
    """A tenant's env vars, by name."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.READ_ENV)
    return list(
        session.scalars(select(EnvVar).where(EnvVar.tenant_id == tenant_id).order_by(EnvVar.name))
    )


def get_env(session: Session, *, principal: Principal, tenant_id: str, name: str) -> EnvVar:
    """One env var; 404 if absent."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.READ_ENV)
    var = session.get(EnvVar, (tenant_id, name))
    if var is None:
        raise NotVisible(f"env var {name!r} not found in tenant {tenant_id!r}")
    return var


def put_env(
    session: Session,
    *,
    principal: Principal,
    keyring: Keyring,
    tenant_id: str,
    values: dict[str, EnvVarWrite],
) -> list[EnvVar]:
    """Create or replace env vars; secrets are stored encrypted only."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.WRITE_ENV)
    changed = []
    for name, write in values.items():
        try:
            names.check_env_name(name)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        var = session.get(EnvVar, (tenant_id, name))
        if var is None:
            var = EnvVar(tenant_id=tenant_id, name=name, updated_by=principal.sub)
            session.add(var)
        var.secret = write.secret
        if write.secret:
            var.value = None
            var.ciphertext = keyring.encrypt(write.value, env_context(tenant_id, name))
            var.key_id = keyring.active_key_id
        else:
            var.value = write.value
            var.ciphertext = None
            var.key_id = None
        var.updated_by = principal.sub
        var.updated_at = utcnow()
        changed.append(var)
    audit.record(
        session,
        principal=principal,
        action="env.put",
        tenant_id=tenant_id,
        target=",".join(sorted(values)),
        detail={"secret": sorted(n for n, w in values.items() if w.secret)},
    )
    session.commit()
    return changed


def delete_env(session: Session, *, principal: Principal, tenant_id: str, name: str) -> None:
    """Remove one env var; 404 if absent."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.WRITE_ENV)
    var = session.get(EnvVar, (tenant_id, name))
    if var is None:
        raise NotVisible(f"env var {name!r} not found in tenant {tenant_id!r}")
    session.delete(var)
    audit.record(
        session, principal=principal, action="env.delete", tenant_id=tenant_id, target=name
    )
    session.commit()
