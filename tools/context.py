"""What a tool call knows about its caller: LangGraph runtime context, never model arguments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controlplane.kernel.identity import Principal, Role

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class AgentContext:
    """The verified caller of one chat turn; the model never sees it."""

    token: str = field(repr=False)
    principal: Principal
    control_plane_url: str
    tenant_id: str | None = None  # the tenant a non-admin acts for (from the token)
    request_id: str | None = None
    operation_wait_seconds: float = 900

    @property
    def role(self) -> Role:
        """The caller's role."""
        return self.principal.role

    @property
    def is_admin(self) -> bool:
        """Admins name a tenant in each call; everyone else acts for their own."""
        return self.principal.is_admin


def scoped_tenant(principal: Principal, requested: str | None = None) -> str | None:
    """The tenant a non-admin chat acts for: the requested one if the token carries it,
    else the token's only (or first) tenant. Admins get None: they name tenants per call."""
    if principal.is_admin:
        return None
    if requested is not None:
        if requested not in principal.tenants:
            raise PermissionError(f"your token does not carry tenant {requested!r}")
        return requested
    if not principal.tenants:
        raise PermissionError("your token carries no tenant")
    return sorted(principal.tenants)[0]
