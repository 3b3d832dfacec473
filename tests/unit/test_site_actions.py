"""`allowed_actions`: what a caller may do to a site now, from the one permission module, over
every role x own/other tenant x site status, and as the API serves it."""

from __future__ import annotations

import threading
from itertools import product

import pytest
from fastapi.testclient import TestClient

from controlplane.kernel.identity import Principal, Role
from controlplane.permissions import site_actions, tenant_actions
from controlplane.providers.memory import MemoryProvider
from tests.conftest import AuthHeaders, wait_for_operation

# Written out independently of SITE_ACTION_RULES: what a role that may change the tenant's
# sites (admin anywhere; operator and tenant on their own tenant) may do, per site status,
# when no other operation holds the site.
FULL_RIGHTS = {
    "provisioning": ["delete"],
    "ready": [
        "stop",
        "delete",
        "admin_login",
        "reveal_password",
        "change_env",
        "backup",
        "restore",
        "download_backup",
        "clone",
        "rollback",
        "import",
        "update",
    ],
    "stopped": ["start", "delete", "reveal_password", "change_env", "backup", "download_backup"],
    "deleting": ["delete"],
    "error": ["delete"],
}
# A staging site: no clone of it, no rollback (its parent is rolled back); its drift (a read)
# and its promotion instead.
STAGING_RIGHTS = {
    "provisioning": ["delete"],
    "ready": [
        *(a for a in FULL_RIGHTS["ready"] if a not in ("clone", "rollback", "import", "update")),
        "drift",
        "promote",
        "import",
        "update",
    ],
    "stopped": [*FULL_RIGHTS["stopped"], "drift"],
    "deleting": ["delete"],
    "error": ["delete"],
}
# While another operation holds the site, nothing that claims it is offered (a promotion
# claims the staging site's parent, not the staging site).
CLAIMS_SITE = {"stop", "start", "delete", "backup", "restore", "rollback", "import", "update"}
# A backup holds the site's every secret: its download is the owner's (and admins').
OWNER_ONLY = {"download_backup"}
ROLES = [Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.TENANT]
# Every caller a site's actions are computed for: each role, of its own tenant or another,
# with the site idle or busy with an operation.
CALLERS = list(product(ROLES, ["own", "other"], [False, True]))


def principal(role: Role) -> Principal:
    tenants = frozenset() if role is Role.ADMIN else frozenset({"acme"})
    return Principal(sub=f"{role}-user", role=role, tenants=tenants)


def expected(
    role: Role, relation: str, status: str, busy: bool, promoted: bool = True
) -> list[str]:
    may_change = role is Role.ADMIN or (role is not Role.VIEWER and relation == "own")
    if not may_change:
        return []
    return [
        a
        for a in FULL_RIGHTS[status]
        if not (busy and a in CLAIMS_SITE)
        and not (role is Role.OPERATOR and a in OWNER_ONLY)
        and (promoted or a != "rollback")  # nothing to roll back to before a promotion
    ]


@pytest.mark.parametrize("promoted", [False, True])
@pytest.mark.parametrize("status", list(FULL_RIGHTS))
@pytest.mark.parametrize(("role", "relation", "busy"), CALLERS)
def test_site_actions(role: Role, relation: str, status: str, busy: bool, promoted: bool) -> None:
    tenant = "acme" if relation == "own" else "other"
    actions = site_actions(principal(role), tenant, status, busy=busy, promoted=promoted)
    assert actions == expected(role, relation, status, busy, promoted)


@pytest.mark.parametrize("status", list(STAGING_RIGHTS))
@pytest.mark.parametrize(("role", "relation", "busy"), CALLERS)
def test_staging_site_actions(role: Role, relation: str, status: str, busy: bool) -> None:
    tenant = "acme" if relation == "own" else "other"
    actions = site_actions(principal(role), tenant, status, busy=busy, role="staging")
    may_read = role is Role.ADMIN or relation == "own"
    may_change = role is Role.ADMIN or (role is not Role.VIEWER and relation == "own")
    want = [
        a
        for a in STAGING_RIGHTS[status]
        if (may_change or (may_read and a == "drift"))
        and not (busy and a in CLAIMS_SITE)
        and not (role is Role.OPERATOR and a in OWNER_ONLY)
    ]
    assert actions == want


@pytest.mark.parametrize("relation", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
def test_tenant_actions(role: Role, relation: str) -> None:
    tenant = "acme" if relation == "own" else "other"
    may_change = role is Role.ADMIN or (role is not Role.VIEWER and relation == "own")
    expected = ["create_site", "change_env", "restore_site", "bulk"] if may_change else []
    assert tenant_actions(principal(role), tenant) == expected


def test_the_api_lists_what_the_caller_may_do_and_refuses_the_rest(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = auth("admin")
    assert client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin).is_success
    alice, vera = auth("tenant", "acme"), auth("viewer", "acme")
    tenant = client.get("/v1/tenants/acme", headers=alice).json()
    assert tenant["allowed_actions"] == ["create_site", "change_env", "restore_site", "bulk"]
    assert client.get("/v1/tenants", headers=vera).json()[0]["allowed_actions"] == []
    memory_provider.gates["ensure:wordpress"] = building = threading.Event()
    created = client.post("/v1/tenants/acme/sites", headers=alice,
                          json={"name": "crumbs", "admin_email": "a@acme.example"})  # fmt: skip
    assert created.status_code == 202, created.text
    # The create holds the site: even delete waits (and provisioning allows nothing else).
    assert created.json()["site"]["allowed_actions"] == []
    assert (
        client.get("/v1/tenants/acme/sites/crumbs", headers=alice).json()["allowed_actions"] == []
    )
    assert client.get("/v1/tenants/acme/sites", headers=alice).json()[0]["allowed_actions"] == []
    building.set()
    wait_for_operation(client, created.json()["operation"]["id"], admin)

    site = client.get("/v1/tenants/acme/sites/crumbs", headers=alice).json()
    never_promoted = [a for a in FULL_RIGHTS["ready"] if a != "rollback"]
    assert site["allowed_actions"] == never_promoted
    listed = client.get("/v1/tenants/acme/sites", headers=alice).json()
    assert [s["allowed_actions"] for s in listed] == [never_promoted]
    assert client.get("/v1/tenants/acme/sites/crumbs", headers=vera).json()["allowed_actions"] == []
    assert client.get("/v1/tenants/acme/sites", headers=vera).json()[0]["allowed_actions"] == []
    assert client.post("/v1/tenants/acme/sites/crumbs/stop", headers=vera).status_code == 403

    stopped = client.post("/v1/tenants/acme/sites/crumbs/stop", headers=alice)
    assert stopped.status_code == 202
    wait_for_operation(client, stopped.json()["operation"]["id"], admin)
    site = client.get("/v1/tenants/acme/sites/crumbs", headers=alice).json()
    assert site["status"] == "stopped"
    assert site["allowed_actions"] == FULL_RIGHTS["stopped"]
