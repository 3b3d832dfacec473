"""Tenant env vars and secrets for third-party integrations (secret values write-only).

A change is saved at once and applied to the tenant's serving sites by an `apply_env`
operation recorded in the same transaction: it has events, survives a crash, and waits for
any other change on a site to finish first.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane import audit
from controlplane.credentials import env_context
from controlplane.crypto import Keyring
from controlplane.errors import Invalid
from controlplane.kernel import names
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import OperationKind
from controlplane.models import EnvVar, Operation, utcnow
from controlplane.permissions import Action, NotVisible
from controlplane.schemas import MASK, EnvVarRead, EnvVarWrite
from controlplane.services.operations import record_operation
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


def _apply_operation(
    session: Session, *, principal: Principal, tenant_id: str, change: str, variables: list[str]
) -> Operation:
    """The operation that applies the tenant's env to its sites (flushed: it has its id)."""
    return record_operation(
        session, kind=OperationKind.APPLY_ENV, tenant_id=tenant_id, principal=principal,
        params={"change": change, "variables": variables},  # names only, never values
    )  # fmt: skip


def put_env(
    session: Session,
    *,
    principal: Principal,
    keyring: Keyring,
    tenant_id: str,
    values: dict[str, EnvVarWrite],
) -> tuple[list[EnvVar], Operation]:
    """Create or replace env vars (secrets stored encrypted only) and the operation that
    applies them; nothing is saved when a name is refused."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.WRITE_ENV)
    for name in values:
        try:
            names.check_env_name(name)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
    changed = []
    for name, write in values.items():
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
    op = _apply_operation(
        session, principal=principal, tenant_id=tenant_id, change="put", variables=sorted(values)
    )
    audit.record(
        session,
        principal=principal,
        action="env.put",
        tenant_id=tenant_id,
        target=",".join(sorted(values)),
        detail={"secret": sorted(n for n, w in values.items() if w.secret), "operation_id": op.id},
    )
    session.commit()
    return changed, op


def delete_env(
    session: Session, *, principal: Principal, tenant_id: str, name: str
) -> tuple[EnvVarRead, Operation]:
    """Remove one env var (404 if absent) and start removing it from the sites."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.WRITE_ENV)
    var = session.get(EnvVar, (tenant_id, name))
    if var is None:
        raise NotVisible(f"env var {name!r} not found in tenant {tenant_id!r}")
    before = to_read(var)
    session.delete(var)
    op = _apply_operation(
        session, principal=principal, tenant_id=tenant_id, change="delete", variables=[name]
    )
    audit.record(
        session,
        principal=principal,
        action="env.delete",
        tenant_id=tenant_id,
        target=name,
        detail={"operation_id": op.id},
    )
    session.commit()
    return before, op
