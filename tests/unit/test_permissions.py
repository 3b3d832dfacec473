"""The permission matrix: every role x action x own/other tenant, in the module and the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controlplane.permissions import (
    Action,
    Forbidden,
    InvalidClaims,
    NotVisible,
    Principal,
    Role,
    authorize,
    principal_from_claims,
)
from controlplane.settings import Settings
from tests.conftest import LOG_FILE, AuthHeaders, wait_for_operation
from tests.dns_server import TxtServer

# The design table (DESIGN.md), written out independently of MATRIX: Y allowed, N refused.
# Columns: admin, operator, viewer, tenant. "own" = an assigned/own tenant.
EXPECTED_OWN = {
    Action.MANAGE_TENANTS: "YNNN",
    Action.MANAGE_USERS: "YNNN",
    Action.LIST_TENANTS: "YYYY",
    Action.READ_TENANT: "YYYY",
    Action.CHANGE_SITES: "YYNY",
    Action.READ_SITES: "YYYY",
    Action.READ_COSTS: "YYYY",
    Action.READ_COST_SUMMARY: "YNNN",
    Action.WRITE_ENV: "YYNY",
    Action.READ_ENV: "YYYY",
    Action.REVEAL_PASSWORD: "YYNY",
    Action.ADMIN_LOGIN: "YYNY",
    Action.READ_AUDIT: "YYYY",
}
ROLES = [Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.TENANT]
TENANT_SCOPED = set(Action) - {Action.MANAGE_USERS, Action.LIST_TENANTS, Action.READ_COST_SUMMARY}


@pytest.fixture(scope="module")
def dns_server() -> Iterator[TxtServer]:
    """A nameserver with no records: every domain proof fails at once (NXDOMAIN)."""
    with TxtServer().running() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, dns_server: TxtServer) -> Settings:
    """The shared settings, with domain proofs looked up on the test's nameserver."""
    return Settings(
        provider="memory", home=tmp_path / "home", log_file=LOG_FILE,
        max_parallel_operations=4, dns_nameservers=dns_server.address,
    )  # fmt: skip


def principal(role: Role) -> Principal:
    tenants = frozenset() if role is Role.ADMIN else frozenset({"acme"})
    return Principal(sub=f"{role}-user", role=role, tenants=tenants)


def test_expected_table_covers_every_action() -> None:
    assert set(EXPECTED_OWN) == set(Action)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("relation", ["own", "other"])
def test_matrix(action: Action, role: Role, relation: str) -> None:
    caller = principal(role)
    allowed_own = EXPECTED_OWN[action][ROLES.index(role)] == "Y"
    tenant = "acme" if relation == "own" else "other"
    if action not in TENANT_SCOPED:
        tenant_arg = None
        expected_allowed = allowed_own
    else:
        tenant_arg = tenant
        expected_allowed = allowed_own and (role is Role.ADMIN or relation == "own")
    if expected_allowed:
        authorize(caller, action, tenant_arg)
        return
    if tenant_arg is not None and relation == "other" and role is not Role.ADMIN:
        with pytest.raises(NotVisible):
            authorize(caller, action, tenant_arg)
    else:
        with pytest.raises(Forbidden):
            authorize(caller, action, tenant_arg)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"sub": "x"}, "role"),
        ({"sub": "x", "role": "superuser"}, "role"),
        ({"sub": "x", "role": "tenant"}, "tenant_id"),
        ({"sub": "x", "role": "operator", "tenants": "acme"}, "list"),
        ({"role": "admin"}, "subject"),
    ],
)
def test_unusable_claims_are_refused(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidClaims, match=message):
        principal_from_claims(claims)


def test_tenant_claim_cannot_widen_itself() -> None:
    # A tenant token that also carries a `tenants` list still sees only its tenant_id.
    p = principal_from_claims(
        {"sub": "x", "role": "tenant", "tenant_id": "acme", "tenants": ["other"]}
    )
    assert p.tenants == frozenset({"acme"})


# --- the same matrix through the HTTP API -------------------------------------------------

Call = Callable[[TestClient, dict[str, str], str], Any]


def _seed(client: TestClient, auth: AuthHeaders) -> None:
    admin = auth("admin")
    for tenant in ("acme", "other"):
        assert (
            client.post(
                "/v1/tenants", json={"id": tenant, "name": tenant}, headers=admin
            ).status_code
            == 201
        )
        created = client.post(
            f"/v1/tenants/{tenant}/sites",
            json={"name": "crumbs", "admin_email": "owner@example.com"},
            headers=admin,
        )
        assert created.status_code == 202
        assert (
            wait_for_operation(client, created.json()["operation"]["id"], admin)["status"]
            == "succeeded"
        )


def _claim_then(client: TestClient, headers: dict[str, str], tenant: str, then: str) -> Any:
    """Claim a domain, then verify or remove it (both as the same caller)."""
    path = f"/v1/tenants/{tenant}/sites/crumbs/domains"
    client.post(path, json={"domain": f"{then}.example.com"}, headers=headers)
    if then == "verify":
        return client.post(f"{path}/{then}.example.com/verify", headers=headers)
    return client.delete(f"{path}/{then}.example.com", headers=headers)


API_CALLS: dict[str, tuple[Action, Call]] = {
    "delete_tenant": (
        Action.MANAGE_TENANTS,
        lambda c, h, t: c.delete(f"/v1/tenants/{t}", headers=h),
    ),
    "read_tenant": (Action.READ_TENANT, lambda c, h, t: c.get(f"/v1/tenants/{t}", headers=h)),
    "create_site": (
        Action.CHANGE_SITES,
        lambda c, h, t: c.post(
            f"/v1/tenants/{t}/sites",
            json={"name": "new-site", "admin_email": "a@example.com"},
            headers=h,
        ),
    ),
    "delete_site": (
        Action.CHANGE_SITES,
        lambda c, h, t: c.delete(f"/v1/tenants/{t}/sites/crumbs", headers=h),
    ),
    "list_sites": (Action.READ_SITES, lambda c, h, t: c.get(f"/v1/tenants/{t}/sites", headers=h)),
    "site_history": (
        Action.READ_SITES,
        lambda c, h, t: c.get(f"/v1/tenants/{t}/sites/crumbs/operations", headers=h),
    ),
    "put_env": (
        Action.WRITE_ENV,
        lambda c, h, t: c.put(
            f"/v1/tenants/{t}/env/STRIPE_KEY", json={"value": "v", "secret": True}, headers=h
        ),
    ),
    "list_env": (Action.READ_ENV, lambda c, h, t: c.get(f"/v1/tenants/{t}/env", headers=h)),
    "reveal": (
        Action.REVEAL_PASSWORD,
        lambda c, h, t: c.post(f"/v1/tenants/{t}/sites/crumbs/admin-credentials/reveal", headers=h),
    ),
    "list_domains": (
        Action.READ_SITES,
        lambda c, h, t: c.get(f"/v1/tenants/{t}/sites/crumbs/domains", headers=h),
    ),
    "claim_domain": (
        Action.CHANGE_SITES,
        lambda c, h, t: c.post(
            f"/v1/tenants/{t}/sites/crumbs/domains", json={"domain": "shop.example.com"}, headers=h
        ),
    ),
    # allowed: the claim is checked, and fails for a reason other than RBAC (no TXT record)
    "verify_domain": (Action.CHANGE_SITES, lambda c, h, t: _claim_then(c, h, t, "verify")),
    "remove_domain": (Action.CHANGE_SITES, lambda c, h, t: _claim_then(c, h, t, "remove")),
    "admin_login": (
        Action.ADMIN_LOGIN,
        lambda c, h, t: c.post(f"/v1/tenants/{t}/sites/crumbs/admin-login", headers=h),
    ),
    "audit": (Action.READ_AUDIT, lambda c, h, t: c.get(f"/v1/audit?tenant_id={t}", headers=h)),
    "billing": (
        Action.READ_COSTS,
        lambda c, h, t: c.get(f"/v1/tenants/{t}/billing?group_by=day", headers=h),
    ),
}


def _headers(auth: AuthHeaders, role: Role) -> dict[str, str]:
    return auth(role.value) if role is Role.ADMIN else auth(role.value, "acme")


@pytest.mark.parametrize("call_name", list(API_CALLS))
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("relation", ["own", "other"])
def test_api_matrix(
    client: TestClient, auth: AuthHeaders, call_name: str, role: Role, relation: str
) -> None:
    _seed(client, auth)
    action, call = API_CALLS[call_name]
    tenant = "acme" if relation == "own" else "other"
    allowed = EXPECTED_OWN[action][ROLES.index(role)] == "Y" and (
        role is Role.ADMIN or relation == "own"
    )
    response = call(client, _headers(auth, role), tenant)
    if allowed:
        # Deleting a tenant that still has sites is refused for a reason other than RBAC.
        expected = {
            "delete_tenant": {409},
            "verify_domain": {400},  # proof is missing, for a reason other than RBAC
        }.get(call_name, {200, 201, 202, 204})
        assert response.status_code in expected, response.text
    elif role is not Role.ADMIN and relation == "other":
        assert response.status_code == 404, response.text
    else:
        assert response.status_code == 403, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("role", ROLES)
def test_lists_are_filtered(client: TestClient, auth: AuthHeaders, role: Role) -> None:
    _seed(client, auth)
    headers = _headers(auth, role)
    tenants = {t["id"] for t in client.get("/v1/tenants", headers=headers).json()}
    audit_tenants = {e["tenant_id"] for e in client.get("/v1/audit", headers=headers).json()}
    if role is Role.ADMIN:
        assert tenants == {"acme", "other"}
        assert audit_tenants == {"acme", "other"}
    else:
        assert tenants == {"acme"}
        assert audit_tenants <= {"acme"}
    users = client.get("/v1/users", headers=headers)
    assert users.status_code == (200 if role is Role.ADMIN else 403)
    created = client.post("/v1/tenants", json={"id": "newco", "name": "N"}, headers=headers)
    assert created.status_code == (201 if role is Role.ADMIN else 403)


def test_denied_changes_are_audited(client: TestClient, auth: AuthHeaders) -> None:
    _seed(client, auth)
    viewer = auth("viewer", "acme", sub="vera")
    assert client.delete("/v1/tenants/acme/sites/crumbs", headers=viewer).status_code == 403
    events = client.get("/v1/audit?tenant_id=acme", headers=auth("admin")).json()
    denied = [e for e in events if e["outcome"] == "denied"]
    assert denied and denied[0]["actor"] == "vera"
    assert denied[0]["detail"]["reason"] == "forbidden"


@pytest.mark.parametrize("role", ROLES)
def test_cost_summary_is_for_admins(client: TestClient, auth: AuthHeaders, role: Role) -> None:
    response = client.get("/v1/billing/summary", headers=_headers(auth, role))
    assert response.status_code == (200 if role is Role.ADMIN else 403), response.text


def test_identity_is_issuer_subject_and_tenant_scope() -> None:
    firebase = "https://securetoken.google.com/aipress-prod"
    alice = principal_from_claims(
        {"sub": "u1", "iss": firebase, "role": "tenant", "tenant_id": "acme"}
    )
    assert alice.issuer == firebase and alice.scope == "tenant:acme"
    same = principal_from_claims(
        {"sub": "u1", "iss": firebase, "role": "tenant", "tenant_id": "acme", "email": "a@x.io"}
    )
    others = [
        {"sub": "u1", "iss": "aipress-local", "role": "tenant", "tenant_id": "acme"},
        {"sub": "u1", "iss": firebase, "role": "tenant", "tenant_id": "globex"},
        {"sub": "u1", "iss": firebase, "role": "operator", "tenants": ["acme"]},
        {"sub": "u1", "iss": firebase, "role": "admin"},
        {"sub": "u2", "iss": firebase, "role": "tenant", "tenant_id": "acme"},
        # no separator in a subject or issuer can make two identities meet
        {"sub": "u1|tenant:acme", "iss": firebase, "role": "admin"},
    ]
    assert same.key == alice.key
    keys = {principal_from_claims(c).key for c in others}
    assert len(keys) == len(others) and alice.key not in keys
