"""Who the caller is: roles, the principal a verified token describes, and its claims."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    """Platform roles carried in the `role` claim."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"
    TENANT = "tenant"


class InvalidClaims(Exception):
    """A verified token whose claims do not describe a usable principal."""


@dataclass(frozen=True)
class Principal:
    """The caller, as established by a verified token."""

    sub: str
    role: Role
    tenants: frozenset[str] = field(default_factory=frozenset)
    email: str | None = None
    # Who vouched for `sub` (the token's `iss`): a subject is unique only within its issuer.
    issuer: str = ""
    # The token's `exp` (seconds since the epoch): what a long-lived answer, such as an event
    # stream, must not outlive. Not part of the identity.
    expires_at: float | None = field(default=None, compare=False)
    # The OAuth client the user acts through (an MCP client's id), for the audit log; a token
    # derived for the control plane carries it. Not part of the identity either.
    client_id: str | None = field(default=None, compare=False)

    @property
    def scope(self) -> str:
        """The role and tenants the token grants, e.g. 'tenant:acme' or 'admin'."""
        if self.is_admin:
            return self.role.value
        return f"{self.role.value}:{','.join(sorted(self.tenants))}"

    @property
    def key(self) -> str:
        """One string for (issuer, subject, tenant scope): what owns threads, rate limits and
        audit entries. Hashed so that any issuer or subject fits a column and no separator in
        them can make two identities collide."""
        raw = json.dumps([self.issuer, self.sub, self.scope], separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()

    @property
    def is_admin(self) -> bool:
        """True for platform admins."""
        return self.role is Role.ADMIN

    def sees_tenant(self, tenant_id: str) -> bool:
        """Whether any read of this tenant is allowed."""
        return self.is_admin or tenant_id in self.tenants

    def visible_tenants(self) -> frozenset[str] | None:
        """Tenants the caller can see; None means all of them."""
        return None if self.is_admin else self.tenants


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Build a principal from verified claims (`sub`, `role`, `tenant_id` / `tenants`)."""
    sub = claims.get("sub") or claims.get("uid") or claims.get("user_id")
    if not isinstance(sub, str) or not sub:
        raise InvalidClaims("token has no subject")
    try:
        role = Role(str(claims.get("role")))
    except ValueError as exc:
        raise InvalidClaims(
            "token has no valid role claim; an admin must assign one (admin, operator, "
            "viewer, tenant)"
        ) from exc
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    iss = claims.get("iss")
    issuer = iss if isinstance(iss, str) else ""
    exp = claims.get("exp")
    expires = float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
    client = claims.get("client_id") if isinstance(claims.get("client_id"), str) else None
    if role is Role.TENANT:
        tenant_id = claims.get("tenant_id")
        if not isinstance(tenant_id, str) or not tenant_id:
            raise InvalidClaims("a tenant token must carry a tenant_id claim")
        return Principal(sub, role, frozenset({tenant_id}), email, issuer, expires, client)
    if role in (Role.OPERATOR, Role.VIEWER):
        tenants = claims.get("tenants") or []
        if not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants):
            raise InvalidClaims("the tenants claim must be a list of tenant ids")
        return Principal(sub, role, frozenset(tenants), email, issuer, expires, client)
    return Principal(sub, role, frozenset(), email, issuer, expires, client)


def claims_for(role: Role, tenants: list[str]) -> dict[str, Any]:
    """The custom claims that give a user `role` over `tenants`."""
    if role is Role.TENANT:
        if len(tenants) != 1:
            raise InvalidClaims("a tenant user belongs to exactly one tenant")
        return {"role": role.value, "tenant_id": tenants[0]}
    if role is Role.ADMIN:
        return {"role": role.value}
    return {"role": role.value, "tenants": sorted(tenants)}
