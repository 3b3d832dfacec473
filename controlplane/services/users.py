"""Users: admins assign roles and tenants (Firebase custom claims in gcp mode)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane import audit
from controlplane.errors import BadRequest
from controlplane.kernel.identity import InvalidClaims, Principal, Role
from controlplane.models import Tenant, User
from controlplane.permissions import Action, NotVisible, authorize
from controlplane.schemas import UserWrite
from controlplane.services.tenants import DELETED
from controlplane.users import ClaimsWriter


def list_users(session: Session, *, principal: Principal) -> list[User]:
    """Every user with an assigned role (admins only)."""
    authorize(principal, Action.MANAGE_USERS)
    return list(session.scalars(select(User).order_by(User.uid)))


def get_user(session: Session, *, principal: Principal, uid: str) -> User:
    """One user (admins only); 404 if unknown."""
    authorize(principal, Action.MANAGE_USERS)
    user = session.get(User, uid)
    if user is None:
        raise NotVisible(f"user {uid!r} not found")
    return user


def put_user(
    session: Session, *, principal: Principal, claims: ClaimsWriter, uid: str, data: UserWrite
) -> User:
    """Set a user's role and tenants, then publish them as claims."""
    authorize(principal, Action.MANAGE_USERS)
    if not uid or len(uid) > 128 or any(ord(c) < 33 for c in uid):
        raise BadRequest("uid must be 1-128 visible characters")
    if data.role is Role.ADMIN and data.tenants:
        raise BadRequest("admins see every tenant: send an empty tenants list")
    missing = [
        t for t in data.tenants if (row := session.get(Tenant, t)) is None or row.status == DELETED
    ]
    if missing:
        raise BadRequest(f"unknown tenant(s): {', '.join(missing)}; create them first")
    try:
        claims.write(uid, data.role, data.tenants)
    except InvalidClaims as exc:
        raise BadRequest(str(exc)) from exc
    user = session.get(User, uid)
    if user is None:
        user = User(uid=uid, role=data.role.value, tenants=data.tenants, updated_by=principal.sub)
        session.add(user)
    user.role = data.role.value
    user.tenants = data.tenants
    user.email = str(data.email) if data.email else user.email
    user.updated_by = principal.sub
    audit.record(
        session,
        principal=principal,
        action="user.put",
        tenant_id=None,
        target=uid,
        detail={"role": data.role.value, "tenants": data.tenants},
    )
    session.commit()
    return user
