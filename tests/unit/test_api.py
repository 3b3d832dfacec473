"""API v1 behaviour with the memory provider: sites, operations, env, users, tenants, auth."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from controlplane import db
from controlplane.admin_login import KEY_KIND
from controlplane.api.app import create_app
from controlplane.credentials import DatabaseVault
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.models import Credential, EnvVar, Operation, Site
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.conftest import AuthHeaders, wait_for_operation

EMAIL = "owner@example.com"


def _tenant(client: TestClient, auth: AuthHeaders, tenant: str = "acme") -> None:
    response = client.post(
        "/v1/tenants", json={"id": tenant, "name": tenant.title()}, headers=auth("admin")
    )
    assert response.status_code == 201, response.text


def _create(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/tenants/acme/sites", json={"admin_email": EMAIL, **body}, headers=headers
    )
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


def _ready_crumbs(
    client: TestClient, auth: AuthHeaders, creator: dict[str, str] | None = None
) -> dict[str, str]:
    """Tenant acme with its site crumbs built by `creator` (default an admin), whose headers
    are returned."""
    _tenant(client, auth)
    who = creator or auth("admin")
    wait_for_operation(client, _create(client, who, name="crumbs")["operation"]["id"], who)
    return who


def _count(client: TestClient, model: Any) -> int:
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_create_site_streams_progress_and_ends_ready(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    _tenant(client, auth)
    owner = auth("tenant", "acme")
    accepted = _create(client, owner, name="crumbs", title="Crumbs Bakery")
    assert accepted["site"]["status"] == "provisioning"
    op_id = accepted["operation"]["id"]
    events = []
    with client.stream("GET", f"/v1/operations/{op_id}/events", headers=owner) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    types = [(e["type"], e["step"]) for e in events]
    assert types[0] == ("operation_started", None)
    assert types[-1] == ("operation_succeeded", None)
    steps = [s for t, s in types if t == "step_finished"]
    assert steps == ["database", "secrets", "storage", "runtime", "dns", "wordpress"]
    site = client.get("/v1/tenants/acme/sites/crumbs", headers=owner).json()
    assert site["status"] == "ready" and site["title"] == "Crumbs Bakery"
    assert site["preview_url"] and site["current_operation_id"] is None
    site_id = site["id"]
    assert set(memory_provider.site_resources(site_id)) == {
        "database",
        "secrets",
        "storage",
        "runtime",
        "dns",
        "wordpress",
    }


def test_events_resume_after_last_event_id(client: TestClient, auth: AuthHeaders) -> None:
    _tenant(client, auth)
    admin = auth("admin")
    op_id = _create(client, admin, name="crumbs")["operation"]["id"]
    wait_for_operation(client, op_id, admin)
    with client.stream("GET", f"/v1/operations/{op_id}/events", headers=admin) as stream:
        ids = [int(line[3:]) for line in stream.iter_lines() if line.startswith("id:")]
    headers = {**admin, "Last-Event-ID": str(ids[5])}
    with client.stream("GET", f"/v1/operations/{op_id}/events", headers=headers) as stream:
        later = [int(line[3:]) for line in stream.iter_lines() if line.startswith("id:")]
    assert later == ids[6:]


def test_failed_step_rolls_back_everything(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    _tenant(client, auth)
    admin = auth("admin")
    memory_provider.fail_on = {"ensure:dns"}
    accepted = _create(client, admin, name="crumbs", domain="crumbs.example.com")
    final = wait_for_operation(client, accepted["operation"]["id"], admin)
    assert final["status"] == "rolled_back"
    assert "injected failure at ensure:dns" in final["error"]
    statuses = {s["name"]: s["status"] for s in final["steps"]}
    assert statuses == {
        "database": "undone",
        "secrets": "undone",
        "storage": "undone",
        "runtime": "undone",
        "dns": "undone",
        "wordpress": "pending",
    }
    undo_order = [c.split(":")[1] for c in memory_provider.calls if c.startswith("remove:")]
    assert undo_order == ["dns", "runtime", "storage", "secrets", "database"]
    assert memory_provider.resources == {}
    assert client.get("/v1/tenants/acme/sites/crumbs", headers=admin).status_code == 404
    assert _count(client, Site) == 0 and _count(client, Credential) == 0
    # The name and the domain are free again.
    memory_provider.fail_on = set()
    again = _create(client, admin, name="crumbs", domain="crumbs.example.com")
    assert wait_for_operation(client, again["operation"]["id"], admin)["status"] == "succeeded"


def test_delete_takes_a_backup_first_and_keeps_history(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    _tenant(client, auth)
    owner = auth("tenant", "acme")
    created = _create(client, owner, name="crumbs")
    wait_for_operation(client, created["operation"]["id"], owner)
    response = client.delete("/v1/tenants/acme/sites/crumbs", headers=owner)
    assert response.status_code == 202
    assert response.json()["site"]["status"] == "deleting"
    final = wait_for_operation(client, response.json()["operation"]["id"], owner)
    assert final["status"] == "succeeded"
    # The pre-delete backup, kept for the undelete (listed among the deleted sites' backups).
    kept = client.get("/v1/tenants/acme/backups?deleted=true", headers=owner).json()
    assert [(b["id"], b["kind"], b["status"]) for b in kept] == [
        (final["backup"], "pre-delete", "succeeded")
    ]
    assert set(memory_provider.stored_backups("acme")) == {final["backup"]}
    first_calls = [c for c in memory_provider.calls if not c.startswith("ensure")]
    assert first_calls[0] == "backup:backup:crumbs"
    assert memory_provider.resources == {}
    assert client.get("/v1/tenants/acme/sites/crumbs", headers=owner).status_code == 404
    history = client.get("/v1/tenants/acme/sites/crumbs/operations", headers=owner).json()
    assert [h["kind"] for h in history] == ["delete_site", "create_site"]
    assert _count(client, Credential) == 0


def test_failed_backup_deletes_nothing(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = _ready_crumbs(client, auth)
    memory_provider.fail_on = {"backup:backup"}
    op = client.delete("/v1/tenants/acme/sites/crumbs", headers=admin).json()["operation"]
    final = wait_for_operation(client, op["id"], admin)
    assert final["status"] == "failed" and "backup failed" in final["error"]
    site = client.get("/v1/tenants/acme/sites/crumbs", headers=admin).json()
    assert len(memory_provider.site_resources(site["id"])) == 6


def test_one_change_per_site_at_a_time(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = _ready_crumbs(client, auth)
    gate = memory_provider.gates["remove:runtime"] = threading.Event()
    first = client.delete("/v1/tenants/acme/sites/crumbs", headers=admin)
    assert first.status_code == 202
    for call in (
        lambda: client.delete("/v1/tenants/acme/sites/crumbs", headers=admin),
        lambda: client.post("/v1/tenants/acme/sites/crumbs/stop", headers=admin),
    ):
        busy = call()
        assert busy.status_code == 409, busy.text
        assert busy.json()["detail"] in (
            f"site 'crumbs' is busy with operation {first.json()['operation']['id']}; "
            "wait for it to finish",
            "site 'crumbs' is deleting; stop site needs it to be ready or stopped",
        )
    gate.set()
    assert (
        wait_for_operation(client, first.json()["operation"]["id"], admin)["status"] == "succeeded"
    )
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        kinds = [o.kind for o in session.scalars(select(Operation))]
    assert kinds == ["create_site", "delete_site"] or sorted(kinds) == [
        "create_site",
        "delete_site",
    ]


def test_bad_input_changes_nothing(client: TestClient, auth: AuthHeaders) -> None:
    _tenant(client, auth)
    admin = auth("admin")
    ok = _create(client, admin, name="crumbs", domain="shop.example.com")
    wait_for_operation(client, ok["operation"]["id"], admin)
    before = (_count(client, Site), _count(client, Operation))
    cases = [
        ({"name": "x'; DROP TABLE sites;--", "admin_email": EMAIL}, 422, "site name"),
        ({"name": "../../etc", "admin_email": EMAIL}, 422, "site name"),
        ({"name": "$(reboot)", "admin_email": EMAIL}, 422, "site name"),
        ({"name": "ok-name", "admin_email": "not-an-email"}, 422, "admin_email"),
        ({"name": "crumbs", "admin_email": EMAIL}, 409, "already exists"),
        ({"name": "other", "admin_email": EMAIL, "domain": "http://x"}, 422, "domain"),
        ({"name": "other", "admin_email": EMAIL, "extra": 1}, 422, "extra"),
        ({"name": "other"}, 400, "admin_email is required"),
    ]
    for body, status, words in cases:
        response = client.post("/v1/tenants/acme/sites", json=body, headers=admin)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["detail"], response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (_count(client, Site), _count(client, Operation)) == before


def test_admin_email_defaults_to_the_callers(client: TestClient, auth: AuthHeaders) -> None:
    _tenant(client, auth)
    headers = auth("tenant", "acme", email="Baker@Example.com")
    response = client.post("/v1/tenants/acme/sites", json={"name": "crumbs"}, headers=headers)
    assert response.status_code == 202
    assert response.json()["site"]["admin_email"] == "baker@example.com"


def test_reveal_admin_password_is_audited_and_decrypts(
    client: TestClient, auth: AuthHeaders
) -> None:
    owner = _ready_crumbs(client, auth, auth("tenant", "acme", sub="olga"))
    creds = client.post(
        "/v1/tenants/acme/sites/crumbs/admin-credentials/reveal", headers=owner
    ).json()
    assert creds["username"] == "admin" and len(creds["password"]) == 32
    assert creds["login_url"].endswith("/wp-login.php")
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        stored = session.scalars(select(Credential)).all()
        assert stored and all(creds["password"] not in c.ciphertext for c in stored)
    events = client.get("/v1/audit", headers=owner).json()
    assert any(e["action"] == "site.reveal_admin_password" and e["actor"] == "olga" for e in events)


def test_env_secrets_are_write_only(client: TestClient, auth: AuthHeaders) -> None:
    _tenant(client, auth)
    owner = auth("tenant", "acme")
    put = client.put(
        "/v1/tenants/acme/env",
        json={
            "vars": {
                "STRIPE_KEY": {"value": "sk_live_abc", "secret": True},
                "REGION": {"value": "eu"},
            }
        },
        headers=owner,
    )
    assert put.status_code == 202, put.text
    assert wait_for_operation(client, put.json()["operation"]["id"], owner)["status"] == "succeeded"
    listed = {v["name"]: v for v in client.get("/v1/tenants/acme/env", headers=owner).json()}
    assert listed["REGION"]["value"] == "eu"
    assert listed["STRIPE_KEY"]["value"] != "sk_live_abc" and listed["STRIPE_KEY"]["secret"]
    one = client.get("/v1/tenants/acme/env/STRIPE_KEY", headers=owner).json()
    assert "sk_live_abc" not in json.dumps(one)
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        row = session.get(EnvVar, ("acme", "STRIPE_KEY"))
        assert row is not None and row.value is None and "sk_live_abc" not in (row.ciphertext or "")
    bad = client.put("/v1/tenants/acme/env/DB_PASSWORD", json={"value": "x"}, headers=owner)
    assert bad.status_code == 422 and "reserved" in bad.json()["detail"]
    for name in ("LD_AUDIT", "GCONV_PATH", "LOCPATH"):
        refused = client.put(f"/v1/tenants/acme/env/{name}", json={"value": "/tmp"}, headers=owner)
        assert refused.status_code == 422, name
    dollar = client.put("/v1/tenants/acme/env/X", json={"value": "$AIPRESS_KEYS"}, headers=owner)
    assert dollar.status_code == 422 and "'$'" in dollar.json()["detail"]
    assert client.delete("/v1/tenants/acme/env/REGION", headers=owner).status_code == 202
    assert client.delete("/v1/tenants/acme/env/REGION", headers=owner).status_code == 404


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("APACHE_RUN_USER", "Apache"),
        ("APACHE_MAX_WORKERS", "Apache"),  # the platform sets it: the site's concurrency
        ("K_REVISION", "Cloud Run"),
        ("CLOUD_RUN_TASK_INDEX", "Cloud Run"),
        ("PORT", "Cloud Run"),
        ("PHP_INI_SCAN_DIR", "PHP"),
        ("HTTP_HOST", "$_SERVER"),
        ("REMOTE_ADDR", "$_SERVER"),
        ("GCE_METADATA_HOST", "Google"),
    ],
)
def test_env_names_cloud_run_apache_and_php_act_on_are_refused_with_why(
    client: TestClient, auth: AuthHeaders, name: str, why: str
) -> None:
    _tenant(client, auth)
    owner = auth("tenant", "acme")
    one = client.put(f"/v1/tenants/acme/env/{name}", json={"value": "x"}, headers=owner)
    assert one.status_code == 422, one.text
    assert f"{name!r} is reserved" in one.json()["detail"] and why in one.json()["detail"]
    bulk = client.put("/v1/tenants/acme/env", headers=owner,
                      json={"vars": {"FINE": {"value": "1"}, name: {"value": "x"}}})  # fmt: skip
    assert bulk.status_code == 422 and why in bulk.text
    assert client.get("/v1/tenants/acme/env", headers=owner).json() == []  # nothing saved
    assert client.put("/v1/tenants/acme/env/MY_" + name, json={"value": "x"},
                      headers=owner).status_code == 202  # fmt: skip


def test_users_and_roles(client: TestClient, auth: AuthHeaders) -> None:
    _tenant(client, auth)
    admin = auth("admin")
    put = client.put(
        "/v1/users/alice", json={"role": "operator", "tenants": ["acme"]}, headers=admin
    )
    assert put.status_code == 200 and put.json()["tenants"] == ["acme"]
    assert client.get("/v1/users/alice", headers=admin).json()["role"] == "operator"
    unknown = client.put(
        "/v1/users/bob", json={"role": "viewer", "tenants": ["nope"]}, headers=admin
    )
    assert unknown.status_code == 400 and "unknown tenant" in unknown.json()["detail"]
    two = client.put(
        "/v1/users/bob", json={"role": "tenant", "tenants": ["acme", "acme2"]}, headers=admin
    )
    assert two.status_code == 400
    assert client.get("/v1/users/bob", headers=admin).status_code == 404


def test_tenant_lifecycle(client: TestClient, auth: AuthHeaders) -> None:
    admin = auth("admin")
    _tenant(client, auth)
    dup = client.post("/v1/tenants", json={"id": "acme", "name": "Again"}, headers=admin)
    assert dup.status_code == 409
    assert client.get("/v1/tenants/acme", headers=admin).json()["cell"] == "cell-1"
    op = _create(client, admin, name="crumbs")["operation"]
    wait_for_operation(client, op["id"], admin)
    busy = client.delete("/v1/tenants/acme", headers=admin)
    assert busy.status_code == 409 and "delete them first" in busy.json()["detail"]
    gone = client.delete("/v1/tenants/acme/sites/crumbs", headers=admin).json()["operation"]
    wait_for_operation(client, gone["id"], admin)
    put = client.put("/v1/tenants/acme/env/REGION", json={"value": "eu"}, headers=admin)
    assert put.status_code == 202
    wait_for_operation(client, put.json()["operation"]["id"], admin)
    assert client.delete("/v1/tenants/acme", headers=admin).status_code == 204
    assert client.get("/v1/tenants/acme", headers=admin).status_code == 404
    assert client.get("/v1/tenants/acme/env", headers=admin).status_code == 404
    assert client.get("/v1/tenants", headers=admin).json() == []
    reused = client.post("/v1/tenants", json={"id": "acme", "name": "New Acme"}, headers=admin)
    assert reused.status_code == 409 and "not reused" in reused.json()["detail"]
    stale = client.put("/v1/users/ann", json={"role": "tenant", "tenants": ["acme"]}, headers=admin)
    assert stale.status_code == 400


def test_tokens_are_checked(client: TestClient, issuer: LocalTokenIssuer, tmp_path: Any) -> None:
    missing = client.get("/v1/tenants")
    assert missing.status_code == 401 and "Bearer" in missing.headers["www-authenticate"]
    expired = issuer.issue("x", Role.ADMIN, ttl_seconds=-100)
    assert (
        client.get("/v1/tenants", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    )
    from controlplane.settings import Settings

    stranger = LocalTokenIssuer(Settings(provider="memory", home=tmp_path / "elsewhere"))
    forged = stranger.issue("x", Role.ADMIN)
    response = client.get("/v1/tenants", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and forged not in response.text


def test_request_id_follows_the_operation(client: TestClient, auth: AuthHeaders) -> None:
    _tenant(client, auth)
    admin = {**auth("admin"), "X-Request-ID": "req-12345"}
    response = client.post(
        "/v1/tenants/acme/sites", json={"name": "crumbs", "admin_email": EMAIL}, headers=admin
    )
    assert response.headers["x-request-id"] == "req-12345"
    final = wait_for_operation(client, response.json()["operation"]["id"], admin)
    assert final["request_id"] == "req-12345"
    audit = client.get("/v1/audit", headers=admin).json()
    assert any(e["request_id"] == "req-12345" and e["action"] == "site.create" for e in audit)


def test_healthz_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "provider": "memory"}
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/tenants",
        "/v1/tenants/{tenant_id}/sites/{site}",
        "/v1/operations/{operation_id}/events",
        "/v1/tenants/{tenant_id}/env/{name}",
        "/v1/audit",
        "/v1/users/{uid}",
    ):
        assert path in paths


def test_a_locked_database_answers_503(
    settings: Settings, memory_provider: MemoryProvider, monkeypatch: Any
) -> None:
    """Another connection really holds the write lock: a change waits out the busy timeout
    (shortened here from 10 s), answers 503 with Retry-After, and leaves nothing behind."""
    real_pragmas = db._sqlite_pragmas

    def short_wait(connection: sqlite3.Connection, record: Any) -> None:
        real_pragmas(connection, record)
        connection.execute("PRAGMA busy_timeout=300")

    monkeypatch.setattr(db, "_sqlite_pragmas", short_wait)
    app = create_app(
        settings, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )
    admin = {"Authorization": f"Bearer {LocalTokenIssuer(settings).issue('root', Role.ADMIN)}"}
    with TestClient(app) as client:
        holder = sqlite3.connect(settings.home / "controlplane.db", isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            response = client.post("/v1/tenants", json={"id": "acme", "name": "A"}, headers=admin)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert "busy" in response.json()["detail"]
        finally:
            holder.rollback()
            holder.close()
        assert client.get("/v1/tenants", headers=admin).json() == []
        created = client.post("/v1/tenants", json={"id": "acme", "name": "A"}, headers=admin)
        assert created.status_code == 201, created.text


def _claims(url: str) -> dict[str, Any]:
    token = url.split("#", 1)[1]
    payload = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def test_admin_login_signs_a_short_single_site_link_and_is_audited(
    client: TestClient, auth: AuthHeaders
) -> None:
    owner = _ready_crumbs(client, auth, auth("tenant", "acme", sub="olga"))
    site = client.get("/v1/tenants/acme/sites/crumbs", headers=owner).json()
    before = int(time.time())
    first = client.post("/v1/tenants/acme/sites/crumbs/admin-login", headers=owner)
    assert first.status_code == 200, first.text
    second = client.post("/v1/tenants/acme/sites/crumbs/admin-login", headers=owner).json()
    url = first.json()["url"]
    assert url.startswith(site["preview_url"].rstrip("/") + "/wp-login.php?aipress_login=1#")
    claims = _claims(url)
    assert claims["site"] == site["id"] and claims["user"] == "admin"
    assert before + 59 <= claims["exp"] <= int(time.time()) + 60  # valid for 60 s
    assert claims["nonce"] != _claims(second["url"])["nonce"]  # each link is its own
    platform = client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        _kind, key = DatabaseVault(session, platform.keyring, site["id"]).get(KEY_KIND) or ("", "")
    token = url.split("#", 1)[1]
    payload, signature = token.split(".")
    assert hmac.compare_digest(
        signature, hmac.new(key.encode(), payload.encode(), hashlib.sha256).hexdigest()
    )
    events = client.get("/v1/audit", headers=owner).json()
    logins = [e for e in events if e["action"] == "site.admin_login" and e["actor"] == "olga"]
    assert len(logins) == 2 and all(token not in json.dumps(e) for e in logins)
    # The other tenant's caller learns nothing (404); a viewer of acme may not (403).
    client.post("/v1/tenants", json={"id": "globex", "name": "G"}, headers=auth("admin"))
    stranger = client.post(
        "/v1/tenants/acme/sites/crumbs/admin-login", headers=auth("tenant", "globex")
    )
    assert stranger.status_code == 404
    viewer = client.post(
        "/v1/tenants/acme/sites/crumbs/admin-login", headers=auth("viewer", "acme")
    )
    assert viewer.status_code == 403


def test_admin_login_needs_a_serving_site(client: TestClient, auth: AuthHeaders) -> None:
    owner = _ready_crumbs(client, auth, auth("tenant", "acme"))
    stop = client.post("/v1/tenants/acme/sites/crumbs/stop", headers=owner).json()
    wait_for_operation(client, stop["operation"]["id"], owner)
    refused = client.post("/v1/tenants/acme/sites/crumbs/admin-login", headers=owner)
    assert refused.status_code == 409
    assert "start it first" in refused.json()["detail"]
