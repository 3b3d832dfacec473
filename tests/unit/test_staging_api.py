"""Staging through the API with the memory provider: clone, drift, promote (scoped, refused
on drift, forced, undone on failure), rollback, the HTTP login; bad input, other tenants,
roles and the delete of a site with staging copies."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Principal, Role
from controlplane.providers.memory import MemoryProvider
from controlplane.schemas import PromoteRequest
from controlplane.services.staging import start_promote
from controlplane.settings import Settings
from tests.cli_harness import served_cli
from tests.conftest import AuthHeaders, wait_for_operation

EMAIL = "owner@example.com"
SITES = "/v1/tenants/acme/sites"
PROD_URL = "http://crumbs.acme.memory.invalid/"
STAGING_URL = "http://crumbs-dev.acme.memory.invalid/"


def _tenant(client: TestClient, auth: AuthHeaders, tenant: str = "acme") -> None:
    answer = client.post(
        "/v1/tenants", json={"id": tenant, "name": tenant.title()}, headers=auth("admin")
    )
    assert answer.status_code == 201, answer.text


def _site(client: TestClient, headers: dict[str, str], name: str, tenant: str = "acme") -> str:
    answer = client.post(
        f"/v1/tenants/{tenant}/sites", json={"name": name, "admin_email": EMAIL}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    final = wait_for_operation(client, answer.json()["operation"]["id"], headers)
    assert final["status"] == "succeeded", final
    site_id: str = answer.json()["site"]["id"]
    return site_id


def _clone(
    client: TestClient, headers: dict[str, str], body: dict[str, Any] | None = None
) -> dict[str, Any]:
    answer = client.post(
        f"{SITES}/crumbs/clone", json=body or {"name": "crumbs-dev"}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    final = wait_for_operation(client, answer.json()["operation"]["id"], headers)
    assert final["status"] == "succeeded", final
    accepted: dict[str, Any] = answer.json()
    return accepted


@pytest.fixture
def owner(client: TestClient, auth: AuthHeaders) -> dict[str, str]:
    """The tenant acme's user, with a ready site crumbs."""
    _tenant(client, auth)
    headers = auth("tenant", "acme")
    _site(client, headers, "crumbs")
    return headers


@pytest.fixture
def staged(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> tuple[str, str]:
    """crumbs with posts and comments, cloned to crumbs-dev: (production id, staging id)."""
    prod = client.get(f"{SITES}/crumbs", headers=owner).json()["id"]
    memory_provider.write_content(prod, "table:wp_posts", f"hello {PROD_URL}\n")
    memory_provider.write_content(prod, "table:wp_comments", "first\n")
    accepted = _clone(client, owner)
    return prod, accepted["site"]["id"]


def test_a_clone_is_a_new_staging_site_with_the_parents_content_at_its_address(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    prod = client.get(f"{SITES}/crumbs", headers=owner).json()["id"]
    memory_provider.write_content(prod, "table:wp_posts", f"hello {PROD_URL}\n")
    accepted = _clone(client, owner)
    assert accepted["site"]["role"] == "staging" and accepted["site"]["parent"] == "crumbs"
    assert accepted["operation"]["kind"] == "clone_site"
    steps = [s["name"] for s in accepted["operation"]["steps"]]
    assert steps[0] == "parent_backup" and steps[-1] == "restore"
    staging = client.get(f"{SITES}/crumbs-dev", headers=owner).json()
    assert staging["status"] == "ready" and staging["role"] == "staging"
    assert {"drift", "promote"} <= set(staging["allowed_actions"])
    assert not {"clone", "rollback"} & set(staging["allowed_actions"])
    content = memory_provider.content(staging["id"])
    assert content["table:wp_posts"] == f"hello {STAGING_URL}\n"
    made = client.get(f"/v1/operations/{accepted['operation']['id']}", headers=owner).json()
    assert made["rewrite"]["tables"]["wp_posts"] == {"text": 1}, made["rewrite"]
    assert PROD_URL not in "".join(content.values())
    listed = {s["name"]: s for s in client.get(SITES, headers=owner).json()}
    assert listed["crumbs-dev"]["parent"] == "crumbs" and listed["crumbs"]["parent"] is None
    assert listed["crumbs"]["role"] == "production"
    assert "clone" in listed["crumbs"]["allowed_actions"]
    backups = client.get(f"{SITES}/crumbs/backups", headers=owner).json()
    assert [b["kind"] for b in backups] == ["pre-clone"]
    # Nothing changed on production since: no drift.
    drift = client.get(f"{SITES}/crumbs-dev/drift", headers=owner).json()
    assert drift["changed"] is False and drift["summary"] == [], drift
    assert drift["site"] == "crumbs-dev" and drift["parent"] == "crumbs"


def test_a_failed_clone_leaves_nothing(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    prod = client.get(f"{SITES}/crumbs", headers=owner).json()["id"]
    before = memory_provider.content(prod)
    memory_provider.fail_on = {"stage:backup"}
    answer = client.post(f"{SITES}/crumbs/clone", json={"name": "crumbs-dev"}, headers=owner)
    final = wait_for_operation(client, answer.json()["operation"]["id"], owner)
    assert final["status"] == "rolled_back", final
    assert client.get(f"{SITES}/crumbs-dev", headers=owner).status_code == 404
    assert memory_provider.site_resources(answer.json()["site"]["id"]) == {}
    assert memory_provider.stored_backups("acme") == {}  # the parent's backup is forgotten
    assert memory_provider.content(prod) == before
    parent = client.get(f"{SITES}/crumbs", headers=owner).json()
    assert parent["status"] == "ready" and parent["current_operation_id"] is None


def test_drift_names_what_changed_on_production_in_words(
    client: TestClient,
    owner: dict[str, str],
    memory_provider: MemoryProvider,
    staged: tuple[str, str],
) -> None:
    prod, _staging = staged
    memory_provider.write_content(prod, "table:wp_comments", "first\nsecond\nthird\nfourth\n")
    memory_provider.write_content(prod, "files", "a new upload")
    drift = client.get(f"{SITES}/crumbs-dev/drift", headers=owner).json()
    assert drift["changed"] is True
    assert drift["summary"] == ["3 new comments", "1 file changed in wp-content"], drift
    comments = [t for t in drift["tables"] if t["table"] == "wp_comments"]
    assert comments == [{"table": "wp_comments", "rows_then": 1, "rows_now": 4,
                         "changed": True, "summary": "3 new comments"}]  # fmt: skip
    assert drift["files"] == {"added": [], "changed": ["content.txt"], "removed": []}
    # Drift is a staging site's: production has none.
    assert client.get(f"{SITES}/crumbs/drift", headers=owner).status_code == 409


def test_promote_refuses_on_drift_unless_scoped_around_it_or_forced(
    client: TestClient,
    owner: dict[str, str],
    memory_provider: MemoryProvider,
    staged: tuple[str, str],
) -> None:
    prod, staging = staged
    memory_provider.write_content(staging, "table:wp_posts", f"edited on staging {STAGING_URL}\n")
    memory_provider.write_content(prod, "table:wp_comments", "first\nfrom a visitor\n")
    before = memory_provider.content(prod)
    refused = client.post(f"{SITES}/crumbs-dev/promote", json={"scope": "all"}, headers=owner)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert "wp_comments" in problem["detail"] and "1 new comment" in problem["drift"]["summary"]
    assert memory_provider.content(prod) == before  # nothing changed, no backup taken
    assert client.get(f"{SITES}/crumbs/backups", headers=owner).json()[0]["kind"] == "pre-clone"

    answer = client.post(
        f"{SITES}/crumbs-dev/promote",
        json={"scope": "database", "tables": ["wp_posts"]},
        headers=owner,
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (
        body["operation"]["kind"] == "promote_site" and body["operation"]["site_name"] == "crumbs"
    )
    assert body["pre_promote_backup"]["kind"] == "pre-promote"
    final = wait_for_operation(client, body["operation"]["id"], owner)
    assert final["status"] == "succeeded", final
    live = memory_provider.content(prod)
    assert live["table:wp_posts"] == f"edited on staging {PROD_URL}\n"  # URL rewritten
    assert final["rewrite"]["tables"] == {"wp_posts": {"text": 1}}  # the scope's table only
    assert live["table:wp_comments"] == "first\nfrom a visitor\n"  # kept
    assert live["database"] == before["database"] and live["files"] == before["files"]
    assert memory_provider.content(prod, "previous") == {}
    assert not memory_provider.in_maintenance(prod)
    # Production was fingerprinted again: drift starts from zero.
    drift = client.get(f"{SITES}/crumbs-dev/drift", headers=owner).json()
    assert drift["changed"] is False, drift

    memory_provider.write_content(prod, "table:wp_comments", "first\nfrom a visitor\nmore\n")
    forced = client.post(f"{SITES}/crumbs-dev/promote", json={"force": True}, headers=owner)
    assert forced.status_code == 202, forced.text
    final = wait_for_operation(client, forced.json()["operation"]["id"], owner)
    assert final["status"] == "succeeded", final
    assert memory_provider.content(prod)["table:wp_comments"] == "first\n"  # overwritten


def test_a_promotion_whose_site_does_not_come_up_puts_production_back(
    client: TestClient,
    owner: dict[str, str],
    memory_provider: MemoryProvider,
    staged: tuple[str, str],
) -> None:
    prod, staging = staged
    memory_provider.write_content(staging, "table:wp_posts", "edited on staging\n")
    before = memory_provider.content(prod)
    memory_provider.fail_on = {"ensure:wordpress"}  # the probe
    answer = client.post(f"{SITES}/crumbs-dev/promote", json={}, headers=owner)
    final = wait_for_operation(client, answer.json()["operation"]["id"], owner)
    assert final["status"] == "rolled_back" and "probe failed" in final["error"], final
    assert memory_provider.content(prod) == before
    assert memory_provider.content(prod, "staged") == {}
    assert not memory_provider.in_maintenance(prod)
    assert client.get(f"{SITES}/crumbs", headers=owner).json()["status"] == "ready"


def test_rollback_restores_the_newest_pre_promote_backup(
    client: TestClient,
    owner: dict[str, str],
    memory_provider: MemoryProvider,
    staged: tuple[str, str],
) -> None:
    prod, staging = staged

    def offers_rollback() -> tuple[bool, bool]:
        """Whether crumbs offers a rollback, read alone and in the list."""
        read = client.get(f"{SITES}/crumbs", headers=owner).json()["allowed_actions"]
        listed = {s["name"]: s["allowed_actions"]
                  for s in client.get(SITES, headers=owner).json()}  # fmt: skip
        return "rollback" in read, "rollback" in listed["crumbs"]

    assert offers_rollback() == (False, False)  # never promoted: nothing to go back to
    nothing = client.post(f"{SITES}/crumbs/rollback", headers=owner)
    assert nothing.status_code == 409 and "nothing to roll back" in nothing.json()["detail"]
    before = memory_provider.content(prod)
    memory_provider.write_content(staging, "table:wp_posts", "edited on staging\n")
    promoted = client.post(f"{SITES}/crumbs-dev/promote", json={}, headers=owner).json()
    assert wait_for_operation(client, promoted["operation"]["id"], owner)["status"] == "succeeded"
    assert memory_provider.content(prod)["table:wp_posts"] == "edited on staging\n"
    assert offers_rollback() == (True, True)
    answer = client.post(f"{SITES}/crumbs/rollback", headers=owner)
    assert answer.status_code == 202, answer.text
    assert answer.json()["backup"]["id"] == promoted["pre_promote_backup"]["id"]
    assert answer.json()["operation"]["kind"] == "restore_site"
    final = wait_for_operation(client, answer.json()["operation"]["id"], owner)
    assert final["status"] == "succeeded", final
    assert memory_provider.content(prod) == before
    # The staging copy's drift starts from the restored production: nothing changed yet,
    # then a new comment on production is drift again.
    drift = f"{SITES}/crumbs-dev/drift"
    assert client.get(drift, headers=owner).json()["changed"] is False
    memory_provider.write_content(prod, "table:wp_comments", "first\nsecond\n")
    again = client.get(drift, headers=owner).json()
    assert [t["table"] for t in again["tables"] if t["changed"]] == ["wp_comments"]
    # A staging site is not rolled back; its parent is.
    assert client.post(f"{SITES}/crumbs-dev/rollback", headers=owner).status_code == 409


def test_basic_auth_credentials_are_in_the_vault_and_revealed_to_the_owner(
    client: TestClient, owner: dict[str, str], auth: AuthHeaders
) -> None:
    _clone(client, owner, {"name": "crumbs-dev", "basic_auth": True})
    login = client.post(f"{SITES}/crumbs-dev/basic-auth/reveal", headers=owner)
    assert login.status_code == 200, login.text
    assert login.json()["username"] == "staging" and len(login.json()["password"]) >= 16
    assert client.post(f"{SITES}/crumbs/basic-auth/reveal", headers=owner).status_code == 409
    other = auth("tenant", "globex")
    assert client.post(f"{SITES}/crumbs-dev/basic-auth/reveal", headers=other).status_code == 404
    events = client.get("/v1/audit", headers=auth("admin")).json()
    assert any(e["action"] == "site.reveal_basic_auth" for e in events)
    assert login.json()["password"] not in str(events)


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("crumbs/clone", {"name": "Bad Name"}, 422, "name"),
        ("crumbs/clone", {"name": "crumbs"}, 409, "already exists"),
        ("crumbs/clone", {"name": "ok", "extra": 1}, 422, "extra"),
        ("crumbs-dev/clone", {"name": "again"}, 409, "staging site"),
        ("crumbs-dev/promote", {"scope": "everything"}, 422, "scope"),
        ("crumbs-dev/promote", {"tables": []}, 422, "at least one table"),
        ("crumbs-dev/promote", {"tables": ["wp_posts; DROP"]}, 422, "not a table name"),
        ("crumbs-dev/promote", {"tables": ["wp_nothing"]}, 400, "no table wp_nothing"),
        ("crumbs-dev/promote", {"scope": "files", "tables": ["wp_posts"]}, 400, "tables go"),
        ("crumbs/promote", {}, 409, "not a staging site"),
    ],
)
def test_bad_staging_input_is_refused_saying_what_to_fix_and_changes_nothing(
    client: TestClient,
    owner: dict[str, str],
    memory_provider: MemoryProvider,
    staged: tuple[str, str],
    path: str,
    body: dict[str, Any],
    status: int,
    says: str,
) -> None:
    sites = {s["name"] for s in client.get(SITES, headers=owner).json()}
    backups = memory_provider.stored_backups("acme")
    answer = client.post(f"{SITES}/{path}", json=body, headers=owner)
    assert answer.status_code == status, answer.text
    assert says in answer.text
    assert {s["name"] for s in client.get(SITES, headers=owner).json()} == sites
    assert memory_provider.stored_backups("acme") == backups


def test_a_site_with_staging_copies_is_not_deleted(
    client: TestClient, owner: dict[str, str], staged: tuple[str, str]
) -> None:
    refused = client.delete(f"{SITES}/crumbs", headers=owner)
    assert refused.status_code == 409 and "crumbs-dev" in refused.json()["detail"]
    assert client.get(f"{SITES}/crumbs", headers=owner).json()["status"] == "ready"
    gone = client.delete(f"{SITES}/crumbs-dev", headers=owner)
    assert gone.status_code == 202, gone.text
    assert (
        wait_for_operation(client, gone.json()["operation"]["id"], owner)["status"] == "succeeded"
    )
    now = client.delete(f"{SITES}/crumbs", headers=owner)
    assert now.status_code == 202, now.text


ROLES = ["admin", "operator", "tenant", "viewer"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("own", [True, False], ids=["own-tenant", "other-tenant"])
def test_every_role_on_clone_drift_promote_rollback(
    client: TestClient,
    owner: dict[str, str],
    auth: AuthHeaders,
    staged: tuple[str, str],
    role: str,
    own: bool,
) -> None:
    tenant = "acme" if own else "globex"
    headers = auth(role, tenant) if role != "admin" or own else auth("admin")
    if role == "admin" and not own:  # an admin sees every tenant: nothing is "other"
        pytest.skip("admin has no other tenant")
    may_change = role in ("admin", "operator", "tenant") and own
    may_read = role in ("admin", "operator", "tenant", "viewer") and own
    clone = client.post(f"{SITES}/crumbs/clone", json={"name": "by-" + role}, headers=headers)
    drift = client.get(f"{SITES}/crumbs-dev/drift", headers=headers)
    promote = client.post(f"{SITES}/crumbs-dev/promote", json={}, headers=headers)
    if promote.status_code == 202:
        wait_for_operation(client, promote.json()["operation"]["id"], owner)
    rollback = client.post(f"{SITES}/crumbs/rollback", headers=headers)
    if not own:
        assert {clone.status_code, drift.status_code, promote.status_code,
                rollback.status_code} == {404}  # fmt: skip
        return
    assert drift.status_code == (200 if may_read else 403), drift.text
    assert clone.status_code == (202 if may_change else 403), clone.text
    assert promote.status_code == (202 if may_change else 403), promote.text
    # After a promotion there is a pre-promote backup to roll back to.
    assert rollback.status_code == (202 if may_change else 403), rollback.text


def test_the_cli_clones_shows_drift_promotes_and_rolls_back(
    settings: Settings, memory_provider: MemoryProvider, issuer: LocalTokenIssuer
) -> None:
    with served_cli(settings, memory_provider, issuer) as cli:
        prod = cli.site_id
        memory_provider.write_content(prod, "table:wp_comments", "one\n")
        made = cli("sites", "clone", "globex", "shop", "shop-dev", "--basic-auth")
        assert made.exit_code == 0, made.output
        assert "Staging site shop-dev of shop is ready" in made.output
        listed = cli("sites", "list", "globex")
        assert "staging" in listed.output  # (the table wraps "staging of shop")
        login = cli("sites", "basic-auth", "globex", "shop-dev")
        assert login.exit_code == 0 and "username: staging" in login.output
        none = cli("sites", "drift", "globex", "shop-dev")
        assert none.exit_code == 0 and "shop has not changed since" in none.output
        memory_provider.write_content(prod, "table:wp_comments", "one\ntwo\nthree\n")
        drift = cli("sites", "drift", "globex", "shop-dev")
        assert "- 2 new comments" in drift.output, drift.output
        refused = cli("sites", "promote", "globex", "shop-dev", "--yes")
        assert refused.exit_code == 1 and "Error 409" in refused.output
        assert "wp_comments" in refused.output
        declined = cli("sites", "promote", "globex", "shop-dev", "--force", stdin="n\n")
        assert declined.exit_code == 1 and "Replace all of shop with shop-dev's?" in declined.output
        assert memory_provider.content(prod)["table:wp_comments"] == "one\ntwo\nthree\n"
        forced = cli("sites", "promote", "globex", "shop-dev", "--force", "--yes")
        assert forced.exit_code == 0, forced.output
        assert "shop-dev promoted into shop" in forced.output
        assert memory_provider.content(prod)["table:wp_comments"] == "one\n"
        back = cli("sites", "rollback", "globex", "shop", "--yes")
        assert back.exit_code == 0 and "rolled back" in back.output, back.output
        assert memory_provider.content(prod)["table:wp_comments"] == "one\ntwo\nthree\n"


def test_a_change_on_production_after_the_promotion_was_asked_stops_it(
    client: TestClient,
    owner: dict[str, str],
    memory_provider: MemoryProvider,
    staged: tuple[str, str],
) -> None:
    prod, staging = staged
    memory_provider.write_content(staging, "table:wp_comments", "first\nfrom staging\n")
    platform = client.app.state.platform  # type: ignore[attr-defined]
    admin = Principal("root", Role.ADMIN)
    with platform.sessions() as session:  # asked (no drift yet), not yet run
        _site, _pre, op = start_promote(
            session, principal=admin, tenant_id="acme", site="crumbs-dev",
            data=PromoteRequest(), now=lambda s, site: memory_provider.backups.fingerprint(
                platform.engine.read_context(s, site)),
        )  # fmt: skip
        op_id = op.id
    # A visitor comments before the maintenance page is up.
    memory_provider.write_content(prod, "table:wp_comments", "first\nlate visitor\n")
    before = memory_provider.content(prod)
    platform.engine.run(op_id)
    final = client.get(f"/v1/operations/{op_id}", headers=owner).json()
    assert final["status"] == "rolled_back", final
    assert "changed where the promotion writes (wp_comments" in final["error"], final
    assert memory_provider.content(prod) == before
    assert not memory_provider.in_maintenance(prod)


def test_a_rollback_that_fails_at_its_last_step_leaves_production_as_it_says(
    client: TestClient,
    owner: dict[str, str],
    memory_provider: MemoryProvider,
    staged: tuple[str, str],
) -> None:
    """Refingerprinting the staging copies fails: the restore is rolled back, and rolled back
    means production's content is the promoted one again (not the backup's, kept)."""
    prod, staging = staged
    memory_provider.write_content(staging, "table:wp_posts", "edited on staging\n")
    promoted = client.post(f"{SITES}/crumbs-dev/promote", json={}, headers=owner).json()
    assert wait_for_operation(client, promoted["operation"]["id"], owner)["status"] == "succeeded"
    after_promotion = memory_provider.content(prod)
    memory_provider.fail_on = {"fingerprint:backup:crumbs"}
    answer = client.post(f"{SITES}/crumbs/rollback", headers=owner)
    assert answer.status_code == 202, answer.text
    final = wait_for_operation(client, answer.json()["operation"]["id"], owner)
    assert final["status"] == "rolled_back", final
    assert memory_provider.content(prod) == after_promotion
    assert not memory_provider.in_maintenance(prod)
    assert client.get(f"{SITES}/crumbs", headers=owner).json()["status"] == "ready"


def test_a_promotion_that_fails_at_its_last_step_leaves_production_as_it_says(
    client: TestClient,
    owner: dict[str, str],
    memory_provider: MemoryProvider,
    staged: tuple[str, str],
) -> None:
    """Refingerprinting production for its staging copy fails: rolled back means production
    holds its own content again, not the staging copy's."""
    prod, staging = staged
    memory_provider.write_content(staging, "table:wp_posts", "edited on staging\n")
    before = memory_provider.content(prod)
    # Held at its swap, once staged: the drift checks before fingerprint production too.
    gate = memory_provider.gates["swap:backup"] = threading.Event()
    earlier = len(memory_provider.calls)
    answer = client.post(f"{SITES}/crumbs-dev/promote", json={}, headers=owner)
    assert answer.status_code == 202, answer.text
    pause = threading.Event()  # never set: a wait between looks at the calls
    for _ in range(3000):  # a liveness bound (30 s), not a timing assertion
        if "stage:backup:crumbs" in memory_provider.calls[earlier:]:
            break
        pause.wait(0.01)
    assert "stage:backup:crumbs" in memory_provider.calls[earlier:]
    memory_provider.fail_on = {"fingerprint:backup:crumbs"}
    gate.set()
    final = wait_for_operation(client, answer.json()["operation"]["id"], owner)
    assert final["status"] == "rolled_back", final
    assert memory_provider.content(prod) == before
    assert not memory_provider.in_maintenance(prod)
