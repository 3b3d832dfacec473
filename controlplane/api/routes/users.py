"""/v1/users and /v1/me"""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep
from controlplane.schemas import PrincipalRead, UserRead, UserWrite
from controlplane.services import users as service

router = APIRouter(tags=["users"])


@router.get("/v1/me", response_model=PrincipalRead)
def me(principal: CurrentPrincipal) -> PrincipalRead:
    """The caller as the control plane sees its token."""
    visible = principal.visible_tenants()
    return PrincipalRead(
        sub=principal.sub,
        role=principal.role.value,
        tenants=sorted(visible) if visible is not None else None,
        email=principal.email,
    )


@router.get("/v1/users", response_model=list[UserRead])
def list_users(session: SessionDep, principal: CurrentPrincipal) -> list[UserRead]:
    """Users with an assigned role (admins)."""
    return [UserRead.model_validate(u) for u in service.list_users(session, principal=principal)]


@router.get("/v1/users/{uid}", response_model=UserRead)
def get_user(uid: str, session: SessionDep, principal: CurrentPrincipal) -> UserRead:
    """One user (admins)."""
    return UserRead.model_validate(service.get_user(session, principal=principal, uid=uid))


@router.put("/v1/users/{uid}", response_model=UserRead)
def put_user(
    uid: str,
    data: UserWrite,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> UserRead:
    """Set a user's role and tenants (admins); gcp mode writes Firebase custom claims."""
    user = service.put_user(
        session, principal=principal, claims=platform.claims, uid=uid, data=data
    )
    return UserRead.model_validate(user)
