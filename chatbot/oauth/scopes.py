"""The MCP scopes and which of them each platform role may hold."""

from __future__ import annotations

from controlplane.kernel.identity import Role

SCOPES: tuple[str, ...] = ("sites:read", "sites:write", "billing:read", "admin")
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset(SCOPES),
    Role.OPERATOR: frozenset({"sites:read", "sites:write", "billing:read"}),
    Role.TENANT: frozenset({"sites:read", "sites:write", "billing:read"}),
    Role.VIEWER: frozenset({"sites:read", "billing:read"}),
}


class InvalidScope(ValueError):
    """A requested scope is unknown, or the role grants none of those requested."""


def parse_scope(raw: str | None) -> frozenset[str]:
    """The scopes of a space-separated `scope` value (none given: every scope)."""
    requested = frozenset((raw or "").split())
    unknown = sorted(requested - set(SCOPES))
    if unknown:
        raise InvalidScope(f"unknown scope {', '.join(unknown)}; known: {' '.join(SCOPES)}")
    return requested or frozenset(SCOPES)


def grant(requested: frozenset[str], role: Role) -> frozenset[str]:
    """The requested scopes intersected with what `role` may hold (never empty)."""
    granted = requested & ROLE_SCOPES[role]
    if not granted:
        raise InvalidScope(
            f"the {role.value} role holds none of {' '.join(sorted(requested))}; "
            f"it may ask for {' '.join(sorted(ROLE_SCOPES[role]))}"
        )
    return granted


def scope_string(scopes: frozenset[str]) -> str:
    """Scopes as a `scope` value, in SCOPES order."""
    return " ".join(s for s in SCOPES if s in scopes)
