"""Dependencies of the route handlers: the platform, a database session, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from controlplane.kernel.auth import InvalidToken
from controlplane.kernel.identity import Principal
from controlplane.platform import Platform


# These are `async def` on purpose: they do no blocking I/O, so FastAPI runs them on the event
# loop instead of hopping to a worker thread for each (a measurable cost per request).
async def get_platform(request: Request) -> Platform:
    """The platform built at start-up."""
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


async def get_session(platform: PlatformDep) -> AsyncIterator[Session]:
    """A database session for one request (it connects lazily, in the handler's thread)."""
    session = platform.sessions()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


async def get_principal(request: Request, platform: PlatformDep) -> Principal:
    """The caller, from a verified bearer token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("send 'Authorization: Bearer <token>' (get one with `aipress token`)")
    principal = platform.verifier.verify(token.strip())
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


@dataclass(frozen=True)
class SiteCall:
    """What a route about one site works with: the tenant and site of its path, the request's
    session, the verified caller and the platform."""

    tenant_id: str
    site: str
    session: Session
    principal: Principal
    platform: Platform


async def site_call(
    tenant_id: str,
    site: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> SiteCall:
    """The parts of a per-site request, gathered once."""
    return SiteCall(tenant_id, site, session, principal, platform)


SiteCallDep = Annotated[SiteCall, Depends(site_call)]
