"""Tenants: create, list, read, delete."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from controlplane import audit
from controlplane.cells import place_tenant
from controlplane.errors import Conflict
from controlplane.kernel.identity import Principal, Role
from controlplane.models import EnvVar, Site, Tenant, User
from controlplane.permissions import Action, NotVisible, authorize
from controlplane.schemas import TenantCreate

DELETED = "deleted"


def get_visible_tenant(
    session: Session, *, principal: Principal, tenant_id: str, action: Action
) -> Tenant:
    """The tenant, if the caller may do `action` on it; 404 if it is not visible or absent."""
    authorize(principal, action, tenant_id)
    tenant = session.get(Tenant, tenant_id)
    if tenant is None or tenant.status == DELETED:
        raise NotVisible(f"tenant {tenant_id!r} not found")
    return tenant


def still_visible(session: Session, *, principal: Principal, tenant_id: str) -> bool:
    """Whether the caller still sees the tenant now: it is not deleted and, when an admin has
    stored the user's role, that role still grants it (a token keeps the claims it was issued
    with until it expires; a long-lived answer asks again)."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None or tenant.status == DELETED or not principal.sees_tenant(tenant_id):
        return False
    user = session.get(User, principal.sub)
    if user is None:
        return True
    return user.role == Role.ADMIN.value or tenant_id in user.tenants


def create_tenant(
    session: Session, *, principal: Principal, data: TenantCreate,
    cells: tuple[str, ...] = ("cell-1",), max_tenants: int = 1_400, max_sites: int | None = None,
) -> Tenant:  # fmt: skip
    """Create a tenant (admins only), placed in the first of `cells` with room."""
    authorize(principal, Action.MANAGE_TENANTS)
    existing = session.get(Tenant, data.id)
    if existing is not None and existing.status == DELETED:
        # Old tokens, claims and history still name it: a new customer must not inherit them.
        raise Conflict(f"tenant id {data.id!r} belonged to a deleted tenant and is not reused")
    if existing is not None:
        raise Conflict(f"tenant {data.id!r} already exists; choose another id")
    cell = place_tenant(session, cells, max_tenants, max_sites)
    tenant = Tenant(id=data.id, name=data.name, created_by=principal.sub, cell=cell)
    session.add(tenant)
    audit.record(
        session, principal=principal, action="tenant.create", tenant_id=data.id, target=data.id
    )
    session.commit()
    return tenant


def list_tenants(session: Session, *, principal: Principal) -> list[Tenant]:
    """Tenants the caller can see."""
    authorize(principal, Action.LIST_TENANTS)
    query = select(Tenant).where(Tenant.status != DELETED).order_by(Tenant.id)
    visible = principal.visible_tenants()
    if visible is not None:
        query = query.where(Tenant.id.in_(visible))
    return list(session.scalars(query))


def delete_tenant(session: Session, *, principal: Principal, tenant_id: str) -> None:
    """Delete a tenant that has no sites left (admins only)."""
    tenant = get_visible_tenant(
        session, principal=principal, tenant_id=tenant_id, action=Action.MANAGE_TENANTS
    )
    sites = session.scalar(
        select(func.count()).select_from(Site).where(Site.tenant_id == tenant_id)
    )
    if sites:
        raise Conflict(f"tenant {tenant_id!r} still has {sites} site(s); delete them first")
    # A tombstone, not a row deletion: the id is never handed to another customer.
    tenant.status = DELETED
    session.execute(delete(EnvVar).where(EnvVar.tenant_id == tenant_id))
    audit.record(
        session, principal=principal, action="tenant.delete", tenant_id=tenant_id, target=tenant_id
    )
    session.commit()
