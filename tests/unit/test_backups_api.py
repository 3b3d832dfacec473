"""Backups through the API with the memory provider: take, list, read, restore in place,
create from a backup (the undelete), the policy, the owner's download; bad input, other
tenants, busy sites and unusable backups."""

from __future__ import annotations

import io
import tarfile
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controlplane.kernel import clock
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.cli_harness import served_cli
from tests.conftest import AuthHeaders, wait_for_operation

EMAIL = "owner@example.com"
SITES = "/v1/tenants/acme/sites"


def _from_backup(name: str, backup_id: str) -> dict[str, Any]:
    """The body of a create of site `name` from crumbs's backup `backup_id`."""
    return {
        "name": name,
        "admin_email": EMAIL,
        "from_backup": {"site": "crumbs", "backup": backup_id},
    }


def _tenant(client: TestClient, auth: AuthHeaders, tenant: str = "acme") -> None:
    answer = client.post(
        "/v1/tenants", json={"id": tenant, "name": tenant.title()}, headers=auth("admin")
    )
    assert answer.status_code == 201, answer.text


def _site(
    client: TestClient, headers: dict[str, str], name: str = "crumbs", tenant: str = "acme"
) -> dict[str, Any]:
    answer = client.post(
        f"/v1/tenants/{tenant}/sites", json={"name": name, "admin_email": EMAIL}, headers=headers
    )
    assert answer.status_code == 202, answer.text
    final = wait_for_operation(client, answer.json()["operation"]["id"], headers)
    assert final["status"] == "succeeded", final
    site: dict[str, Any] = client.get(f"/v1/tenants/{tenant}/sites/{name}", headers=headers).json()
    return site


def _backup(
    client: TestClient, headers: dict[str, str], site: str = "crumbs", tenant: str = "acme"
) -> dict[str, Any]:
    answer = client.post(f"/v1/tenants/{tenant}/sites/{site}/backups", headers=headers)
    assert answer.status_code == 202, answer.text
    final = wait_for_operation(client, answer.json()["operation"]["id"], headers)
    assert final["status"] == "succeeded", final
    body: dict[str, Any] = client.get(
        f"/v1/tenants/{tenant}/sites/{site}/backups/{answer.json()['backup']['id']}",
        headers=headers,
    ).json()
    return body


@pytest.fixture
def owner(client: TestClient, auth: AuthHeaders) -> dict[str, str]:
    """The tenant acme's user, with a ready site crumbs."""
    _tenant(client, auth)
    headers = auth("tenant", "acme")
    _site(client, headers)
    return headers


def test_a_backup_is_taken_listed_and_read(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    answer = client.post(f"{SITES}/crumbs/backups", headers=owner)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["backup"]["status"] == "pending" and body["backup"]["kind"] == "manual"
    assert body["operation"]["kind"] == "backup_site"
    assert body["operation"]["backup"] == body["backup"]["id"]
    assert [s["name"] for s in body["operation"]["steps"]] == ["backup", "retention"]
    final = wait_for_operation(client, body["operation"]["id"], owner)
    assert final["status"] == "succeeded", final
    listed = client.get(f"{SITES}/crumbs/backups", headers=owner).json()
    assert [b["id"] for b in listed] == [body["backup"]["id"]]
    one = client.get(f"{SITES}/crumbs/backups/{body['backup']['id']}", headers=owner).json()
    assert one["status"] == "succeeded" and one["verified_at"] and one["error"] is None
    content = memory_provider.content(one["site_id"])
    assert one["size_bytes"] == sum(len(t) for t in content.values()) > 0
    assert one["kept_until"] is None  # a manual backup stays until its user removes it
    assert set(memory_provider.stored_backups("acme")) == {one["id"]}
    # The site is free again and offers backup and restore.
    site = client.get(f"{SITES}/crumbs", headers=owner).json()
    assert {"backup", "restore", "download_backup"} <= set(site["allowed_actions"])


def test_restore_puts_the_backup_back_after_a_pre_restore_backup(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    site = _site_id(client, owner)
    memory_provider.write_content(site, "database", "posts: hello")
    backup = _backup(client, owner)
    memory_provider.write_content(site, "database", "posts: hello, broken")
    answer = client.post(f"{SITES}/crumbs/backups/{backup['id']}/restore", headers=owner)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["site"]["status"] == "restoring"
    assert body["backup"]["id"] == backup["id"]
    assert body["pre_restore_backup"]["kind"] == "pre-restore"
    steps = [s["name"] for s in body["operation"]["steps"]]
    assert steps == ["pre_restore", "check", "maintenance", "stage", "swap", "probe", "fingerprint",
                     "finish"]  # fmt: skip
    final = wait_for_operation(client, body["operation"]["id"], owner)
    assert final["status"] == "succeeded", final
    assert memory_provider.content(site)["database"] == "posts: hello"
    assert not memory_provider.in_maintenance(site)
    assert memory_provider.content(site, "staged") == {}
    assert memory_provider.content(site, "previous") == {}
    pre = client.get(
        f"{SITES}/crumbs/backups/{body['pre_restore_backup']['id']}", headers=owner
    ).json()
    assert pre["status"] == "succeeded"
    stored = memory_provider.stored_backups("acme")
    assert stored[pre["id"]]["content"]["database"] == "posts: hello, broken"
    # Maintenance was on from before the stage until the end.
    calls = [c.split(":")[0] for c in memory_provider.calls if ":backup:" in c or "maint" in c]
    assert calls.index("maintenance") < calls.index("stage") < calls.index("swap")
    assert client.get(f"{SITES}/crumbs", headers=owner).json()["status"] == "ready"


def _site_id(client: TestClient, headers: dict[str, str], name: str = "crumbs") -> str:
    site_id: str = client.get(f"{SITES}/{name}", headers=headers).json()["id"]
    return site_id


def _backed_up_then_changed(
    client: TestClient, owner: dict[str, str], provider: MemoryProvider, database: str
) -> tuple[str, dict[str, Any]]:
    """crumbs backed up, then its database changed to `database`: (its id, the backup)."""
    site = _site_id(client, owner)
    backup = _backup(client, owner)
    provider.write_content(site, "database", database)
    return site, backup


def _restored(client: TestClient, owner: dict[str, str], backup_id: str) -> dict[str, Any]:
    """A restore of crumbs from `backup_id`, asked and waited for: its final operation."""
    answer = client.post(f"{SITES}/crumbs/backups/{backup_id}/restore", headers=owner)
    return wait_for_operation(client, answer.json()["operation"]["id"], owner)


def test_a_restore_whose_site_does_not_come_up_is_undone(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    site, backup = _backed_up_then_changed(client, owner, memory_provider, "the changed site")
    memory_provider.fail_on = {"ensure:wordpress"}  # the probe of the restored copy
    final = _restored(client, owner, backup["id"])
    assert final["status"] == "rolled_back" and "probe failed" in final["error"], final
    states = {s["name"]: s["status"] for s in final["steps"]}
    assert states["swap"] == states["stage"] == states["maintenance"] == "undone", states
    assert memory_provider.content(site)["database"] == "the changed site"
    assert not memory_provider.in_maintenance(site)
    assert memory_provider.content(site, "staged") == {}
    assert client.get(f"{SITES}/crumbs", headers=owner).json()["status"] == "ready"


def test_a_corrupted_backup_fails_verification_and_touches_nothing(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    site, backup = _backed_up_then_changed(client, owner, memory_provider, "the live site")
    memory_provider.corrupt("acme", backup["id"])
    final = _restored(client, owner, backup["id"])
    assert final["status"] == "rolled_back", final
    assert "does not match its checksums" in final["error"]
    # Failed at once (not retried) in `check`, before maintenance or staging.
    assert [c for c in memory_provider.calls if c.startswith("verify:")] == ["verify:backup:crumbs"]
    assert not [c for c in memory_provider.calls if c.startswith(("maintenance", "stage"))]
    assert memory_provider.content(site)["database"] == "the live site"


def test_only_a_succeeded_backup_can_be_restored(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    memory_provider.fail_on = {"backup:backup"}
    answer = client.post(f"{SITES}/crumbs/backups", headers=owner).json()
    final = wait_for_operation(client, answer["operation"]["id"], owner)
    assert final["status"] == "failed" and "backup failed" in final["error"]
    failed = client.get(f"{SITES}/crumbs/backups/{answer['backup']['id']}", headers=owner).json()
    assert failed["status"] == "failed" and "injected failure" in failed["error"]
    memory_provider.fail_on = set()
    restore = client.post(f"{SITES}/crumbs/backups/{failed['id']}/restore", headers=owner)
    assert restore.status_code == 409, restore.text
    assert restore.headers["content-type"] == "application/problem+json"
    assert "only a succeeded backup can be restored" in restore.json()["detail"]
    create = client.post(SITES, json=_from_backup("copy", failed["id"]), headers=owner)
    assert create.status_code == 409, create.text
    assert "only a succeeded backup can be restored" in create.json()["detail"]
    assert client.get(f"{SITES}/copy", headers=owner).status_code == 404


def test_a_restore_while_another_change_holds_the_site_is_409(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    backup = _backup(client, owner)
    gate = memory_provider.gates["backup:backup"] = threading.Event()
    running = client.post(f"{SITES}/crumbs/backups", headers=owner).json()
    try:
        busy = client.post(f"{SITES}/crumbs/backups/{backup['id']}/restore", headers=owner)
        assert busy.status_code == 409, busy.text
        assert f"busy with operation {running['operation']['id']}" in busy.json()["detail"]
        again = client.post(f"{SITES}/crumbs/backups", headers=owner)
        assert again.status_code == 409, again.text
    finally:
        gate.set()
    assert wait_for_operation(client, running["operation"]["id"], owner)["status"] == "succeeded"
    # The refused requests left no backup rows behind.
    listed = client.get(f"{SITES}/crumbs/backups", headers=owner).json()
    assert len(listed) == 2


def test_another_tenants_backups_are_404(
    client: TestClient, auth: AuthHeaders, owner: dict[str, str]
) -> None:
    _tenant(client, auth, "globex")
    theirs = auth("tenant", "globex")
    _site(client, theirs, "crumbs", tenant="globex")
    their_backup = _backup(client, theirs, tenant="globex")
    mine = _backup(client, owner)
    for method, path, body in [
        ("GET", f"{SITES}/crumbs/backups/{their_backup['id']}", None),
        ("POST", f"{SITES}/crumbs/backups/{their_backup['id']}/restore", None),
        ("POST", f"{SITES}/crumbs/backups/{their_backup['id']}/download-link", None),
        ("POST", SITES, _from_backup("stolen", their_backup["id"])),
        ("GET", f"/v1/tenants/globex/sites/crumbs/backups/{their_backup['id']}", None),
        ("GET", "/v1/tenants/globex/sites/crumbs/backups", None),
        ("GET", "/v1/tenants/globex/backups?deleted=true", None),
        ("POST", f"/v1/tenants/globex/sites/crumbs/backups/{mine['id']}/restore", None),
    ]:  # fmt: skip
        answer = client.request(method, path, json=body, headers=owner)
        assert answer.status_code == 404, (method, path, answer.text)
        sent = path + str(body)  # echoing what the caller sent tells nothing
        assert "globex" in sent or "Globex" not in answer.text, answer.text
        assert their_backup["id"] in sent or their_backup["id"] not in answer.text
    assert client.get(f"{SITES}/stolen", headers=auth("admin")).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"hour": 24}, "hour"),
        ({"hour": -1}, "hour"),
        ({"hour": "3"}, "hour"),
        ({"keep_daily": 101}, "keep_daily"),
        ({"keep_weekly": -1}, "keep_weekly"),
        ({"keep_monthly": 1.5}, "keep_monthly"),
        ({"enabled": "yes"}, "enabled"),
        ({"schedule": "daily"}, "schedule"),
    ],
)
def test_a_bad_policy_is_422_naming_the_field_and_changes_nothing(
    client: TestClient, owner: dict[str, str], body: dict[str, Any], field: str
) -> None:
    before = client.get(f"{SITES}/crumbs/backup-policy", headers=owner).json()
    answer = client.put(f"{SITES}/crumbs/backup-policy", json=body, headers=owner)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert field in problem["detail"] or any(field in str(e) for e in problem["errors"] or [])
    assert client.get(f"{SITES}/crumbs/backup-policy", headers=owner).json() == before


def test_the_policy_defaults_and_changes(client: TestClient, owner: dict[str, str]) -> None:
    default = client.get(f"{SITES}/crumbs/backup-policy", headers=owner).json()
    assert default["enabled"] is True and default["customized"] is False
    assert (default["keep_daily"], default["keep_weekly"], default["keep_monthly"]) == (7, 4, 3)
    assert 0 <= default["hour"] <= 23
    changed = client.put(
        f"{SITES}/crumbs/backup-policy", json={"hour": 4, "keep_daily": 2}, headers=owner
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {**default, "hour": 4, "keep_daily": 2, "customized": True}
    off = client.put(f"{SITES}/crumbs/backup-policy", json={"enabled": False}, headers=owner)
    assert off.json() == {**changed.json(), "enabled": False}


def test_undelete_makes_a_site_from_a_deleted_sites_backup(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    old_id = _site_id(client, owner)
    old_url = client.get(f"{SITES}/crumbs", headers=owner).json()["preview_url"]
    memory_provider.write_content(old_id, "database", f"post 'hello' linking {old_url}about/")
    memory_provider.write_content(old_id, "files", "uploads/cake.jpg")
    deleted = client.delete(f"{SITES}/crumbs", headers=owner).json()
    final = wait_for_operation(client, deleted["operation"]["id"], owner)
    assert final["status"] == "succeeded"
    kept = client.get("/v1/tenants/acme/backups?deleted=true", headers=owner).json()
    assert [b["id"] for b in kept] == [final["backup"]]
    assert kept[0]["site_deleted_at"] and kept[0]["kept_until"]
    assert client.get("/v1/tenants/acme/backups", headers=owner).json() == []
    # A deleted site's backups are still readable by its name.
    assert client.get(f"{SITES}/crumbs/backups", headers=owner).json()[0]["id"] == final["backup"]

    answer = client.post(SITES, json=_from_backup("crumbs-again", final["backup"]), headers=owner)
    assert answer.status_code == 202, answer.text
    op = answer.json()["operation"]
    assert [s["name"] for s in op["steps"]][-2:] == ["wordpress", "restore"]
    assert op["backup"] == final["backup"]
    assert wait_for_operation(client, op["id"], owner)["status"] == "succeeded"
    new = client.get(f"{SITES}/crumbs-again", headers=owner).json()
    content = memory_provider.content(new["id"])
    assert content["files"] == "uploads/cake.jpg"
    # The old address is rewritten to the new site's.
    assert content["database"] == f"post 'hello' linking {new['preview_url']}about/"
    assert old_url not in content["database"]
    assert memory_provider.content(new["id"], "staged") == {}
    assert memory_provider.content(new["id"], "previous") == {}


def test_the_owner_downloads_a_backup_by_an_expiring_link(
    client: TestClient, auth: AuthHeaders, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    site = _site_id(client, owner)
    memory_provider.write_content(site, "database", "CREATE TABLE wp_posts;")
    backup = _backup(client, owner)
    path = f"{SITES}/crumbs/backups/{backup['id']}/download-link"
    operator = auth("operator", "acme")
    assert client.post(path, headers=operator).status_code == 403
    link = client.post(path, headers=owner)
    assert link.status_code == 200, link.text
    url, expires = link.json()["url"], link.json()["expires_at"]
    assert url.startswith("/v1/backup-downloads/")
    issued = clock.now()
    got = client.get(url)  # no bearer token: the signed link is the credential
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/gzip"
    assert got.headers["cache-control"] == "no-store"
    with tarfile.open(fileobj=io.BytesIO(got.content), mode="r:gz") as tar:
        names = tar.getnames()
        dump = tar.extractfile("database.sql")
        assert dump is not None and dump.read() == b"CREATE TABLE wp_posts;"
    assert names == ["database.sql", "wp-content/content.txt"]
    left = datetime.fromisoformat(expires) - issued
    assert timedelta(minutes=14) < left <= timedelta(minutes=15)
    payload, signature = url.rsplit("/", 1)[1].split(".")
    forged = f"/v1/backup-downloads/{payload}.{'0' * len(signature)}"
    assert client.get(forged).status_code == 404
    with clock.travel(issued + timedelta(minutes=15, seconds=1)):
        expired = client.get(url)
    assert expired.status_code == 404 and "expired" in expired.json()["detail"]


def test_a_download_link_dies_with_its_users_access(
    client: TestClient, auth: AuthHeaders, owner: dict[str, str]
) -> None:
    _tenant(client, auth, "other")
    backup = _backup(client, owner)
    path = f"{SITES}/crumbs/backups/{backup['id']}/download-link"
    url = client.post(path, headers=owner).json()["url"]
    kept = client.post(path, headers=owner).json()["url"]
    assert client.get(url).status_code == 200
    # An admin moves the user off the tenant: links made before stop at once, not at expiry.
    moved = client.put(
        "/v1/users/tenant-user", json={"role": "tenant", "tenants": ["other"]},
        headers=auth("admin"),
    )  # fmt: skip
    assert moved.status_code == 200, moved.text
    gone = client.get(url)
    assert gone.status_code == 404 and "may no longer download" in gone.json()["detail"]
    # Given the tenant back, the same link works again until it expires.
    client.put("/v1/users/tenant-user", json={"role": "tenant", "tenants": ["acme"]},
               headers=auth("admin"))  # fmt: skip
    assert client.get(kept).status_code == 200


def test_the_cli_backs_up_restores_and_sets_the_policy(
    settings: Settings, memory_provider: MemoryProvider, issuer: LocalTokenIssuer
) -> None:
    with served_cli(settings, memory_provider, issuer) as cli:
        memory_provider.write_content(cli.site_id, "database", "good")
        made = cli("backups", "create", "globex", "shop")
        assert made.exit_code == 0, made.output
        backup_id = made.output.split("Backup ", 1)[1].split(" ", 1)[0]
        assert len(backup_id) == 32 and "verified" in made.output
        listed = cli("backups", "list", "globex", "shop")
        assert backup_id in listed.output and "manual" in listed.output
        memory_provider.write_content(cli.site_id, "database", "broken")
        refused = cli("backups", "restore", "globex", "shop", backup_id, stdin="n\n")
        assert refused.exit_code == 1 and "Replace the database and files of shop" in refused.output
        assert memory_provider.content(cli.site_id)["database"] == "broken"
        restored = cli("backups", "restore", "globex", "shop", backup_id, "--yes")
        assert restored.exit_code == 0, restored.output
        assert "restored from" in restored.output
        assert memory_provider.content(cli.site_id)["database"] == "good"
        shown = cli("backups", "policy", "globex", "shop")
        assert "on, daily at" in shown.output and "(the defaults)" in shown.output
        changed = cli("backups", "policy", "globex", "shop", "--hour", "4", "--disable")
        assert changed.exit_code == 0, changed.output
        assert "off, daily at 04:00 UTC" in changed.output
        bad = cli("backups", "policy", "globex", "shop", "--hour", "24")
        assert bad.exit_code == 1 and "hour" in bad.output
        none = cli("backups", "list", "globex", "--deleted")
        assert none.exit_code == 0 and backup_id not in none.output


def test_a_restore_that_would_not_fit_is_refused_before_anything_changes(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    site, backup = _backed_up_then_changed(client, owner, memory_provider, "the live site")
    memory_provider.free_bytes = backup["size_bytes"] - 1
    final = _restored(client, owner, backup["id"])
    assert final["status"] == "rolled_back" and "free some space first" in final["error"], final
    assert not [c for c in memory_provider.calls if c.startswith(("maintenance", "stage"))]
    assert memory_provider.content(site)["database"] == "the live site"
    memory_provider.free_bytes = backup["size_bytes"]  # exactly enough
    assert _restored(client, owner, backup["id"])["status"] == "succeeded"


def test_a_dry_run_from_a_backup_checks_it_and_lists_the_restore(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider
) -> None:
    backup = _backup(client, owner)
    body = _from_backup("copy", backup["id"])
    plan = client.post(f"{SITES}?dry_run=true", json=body, headers=owner)
    assert plan.status_code == 200, plan.text
    assert [c["step"] for c in plan.json()["calls"]][-1] == "restore"
    missing = {**body, "from_backup": {"site": "crumbs", "backup": "0" * 32}}
    assert client.post(f"{SITES}?dry_run=true", json=missing, headers=owner).status_code == 404
    bad = {**body, "from_backup": {"site": "crumbs", "backup": "not-an-id"}}
    refused = client.post(SITES, json=bad, headers=owner)
    assert refused.status_code == 422 and "backup" in refused.text
    assert client.get(f"{SITES}/copy", headers=owner).status_code == 404
    assert client.get("/openapi.json").status_code == 200
