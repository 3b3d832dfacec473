"""Denied requests in the audit log: filed under the caller, as route templates, bounded;
audit entries name the token's issuer; a deleted tenant's token reads no audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controlplane.api.app import create_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings, get_settings
from tests.conftest import AuthHeaders

NOTICE = "SECURITY%20NOTICE%20your%20account%20is%20suspended%20call%20555"


@pytest.fixture
def api(
    settings: Settings, memory_provider: MemoryProvider, auth: AuthHeaders
) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"audit_denied_per_minute": 3})
    app = create_app(
        configured, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )
    with TestClient(app) as client:
        admin = auth("admin")
        for tenant in ("acme", "globex"):
            assert client.post("/v1/tenants", json={"id": tenant, "name": tenant},
                               headers=admin).status_code == 201  # fmt: skip
        yield client


def _denied(client: TestClient, auth: AuthHeaders) -> list[dict[str, Any]]:
    events = client.get("/v1/audit?limit=1000", headers=auth("admin")).json()
    return [e for e in events if e["outcome"] == "denied"]


def test_a_denied_request_to_another_tenant_is_filed_under_the_caller(
    api: TestClient, auth: AuthHeaders
) -> None:
    mallory = auth("tenant", "acme", sub="mallory")
    response = api.delete(f"/v1/tenants/globex/sites/{NOTICE}", headers=mallory)
    assert response.status_code == 404
    globex_log = api.get("/v1/audit", headers=auth("tenant", "globex")).json()
    assert [e["action"] for e in globex_log] == ["tenant.create"]
    [event] = _denied(api, auth)
    assert event["actor"] == "mallory" and event["actor_issuer"] == "aipress-local"
    assert event["tenant_id"] == "acme"  # the caller's own log, not the target's
    assert event["action"] == "DELETE /v1/tenants/{tenant_id}/sites/{site}"
    assert event["detail"] == {"reason": "not_visible", "target_visible": False}
    assert "SECURITY" not in json.dumps(event) and "globex" not in json.dumps(event)


def test_a_denied_request_in_the_callers_tenant_keeps_no_path_text(
    api: TestClient, auth: AuthHeaders
) -> None:
    viewer = auth("viewer", "acme", sub="vic")
    assert api.delete(f"/v1/tenants/acme/sites/{NOTICE}", headers=viewer).status_code == 403
    owner = auth("tenant", "acme")
    assert api.delete(f"/v1/tenants/acme/sites/{NOTICE}", headers=owner).status_code == 404
    events = [e for e in api.get("/v1/audit", headers=owner).json() if e["outcome"] == "denied"]
    assert [(e["actor"], e["detail"]["reason"]) for e in events] == [
        ("tenant-user", "not_visible"), ("vic", "forbidden"),
    ]  # fmt: skip
    assert {e["action"] for e in events} == {"DELETE /v1/tenants/{tenant_id}/sites/{site}"}
    assert "SECURITY" not in json.dumps(events)


def test_denied_audit_writes_are_rate_limited_per_caller(
    api: TestClient, auth: AuthHeaders
) -> None:
    mallory = auth("tenant", "acme", sub="mallory")
    for _ in range(10):
        assert api.delete("/v1/tenants/globex", headers=mallory).status_code == 404
    assert len(_denied(api, auth)) == 3
    other = auth("tenant", "acme", sub="trudy")
    assert api.delete("/v1/tenants/globex", headers=other).status_code == 404
    assert [e["actor"] for e in _denied(api, auth)].count("trudy") == 1


def test_a_deleted_tenants_token_reads_no_audit(api: TestClient, auth: AuthHeaders) -> None:
    old = auth("tenant", "globex")
    assert api.get("/v1/audit", headers=old).status_code == 200
    assert api.delete("/v1/tenants/globex", headers=auth("admin")).status_code == 204
    for path in ("/v1/audit", "/v1/audit?tenant_id=globex"):
        gone = api.get(path, headers=old)
        assert gone.status_code == 404 and "globex" in gone.json()["detail"]
    operator = auth("operator", "acme", "globex")
    assert api.get("/v1/audit?tenant_id=globex", headers=operator).status_code == 404
    assert all(e["tenant_id"] == "acme" for e in api.get("/v1/audit", headers=operator).json())
    history = api.get("/v1/audit?tenant_id=globex", headers=auth("admin")).json()
    assert "tenant.delete" in [e["action"] for e in history]


def test_the_token_command_needs_a_subject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from controlplane.cli import app

    monkeypatch.setenv("AIPRESS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIPRESS_PROVIDER", "local")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        refused = runner.invoke(app, ["token", "--role", "tenant", "--tenant", "acme"])
        assert refused.exit_code == 2 and "--sub" in refused.output
        minted = runner.invoke(app, ["token", "--sub", "alice", "--role", "tenant",
                                     "--tenant", "acme"])  # fmt: skip
        assert minted.exit_code == 0, minted.output
        caller = LocalTokenIssuer(get_settings()).verify(minted.stdout.strip())
        assert (caller.sub, caller.issuer, caller.tenants) == (
            "alice", "aipress-local", frozenset({"acme"}),
        )  # fmt: skip
    finally:
        get_settings.cache_clear()
