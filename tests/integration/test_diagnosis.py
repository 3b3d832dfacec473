"""Diagnosis on the real stack: a planted slow path, a planted PHP fatal and a healthy site,
asked about through the chat (offline planner), with the evidence behind each verdict."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.api.app import create_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.models import Site
from controlplane.settings import Settings
from tests.conftest import wait_for_operation
from tests.live import local_stack_home, serve

pytestmark = pytest.mark.integration

# A site's own code, planted as a must-use plugin: one path sleeps 1.5 s in a named function,
# another calls a function that does not exist, a third runs a slow query on the site's own
# database with a comment that names another schema (it must stay the site's own).
PLANTED = r"""<?php
function aipress_test_slow_report() { usleep(1500000); }
function aipress_test_slow_query() {
    global $wpdb;
    $wpdb->query("SELECT SLEEP(1.2) /* Schema: wp_other_site 'sk_live_secret' */");
}
$aipress_uri = $_SERVER['REQUEST_URI'] ?? '';
if (strpos($aipress_uri, '/slow-report') === 0) { aipress_test_slow_report(); }
if (strpos($aipress_uri, '/broken-page') === 0) { aipress_test_missing_function(); }
if (strpos($aipress_uri, '/slow-query') === 0) {
    add_action('init', 'aipress_test_slow_query');
}
"""


@dataclass
class Stack:
    settings: Settings
    app: FastAPI
    url: str
    admin: dict[str, str]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with local_stack_home("diagnosis") as settings:
        app = create_app(settings)
        with serve(app) as url:
            token = LocalTokenIssuer(settings).issue("root", Role.ADMIN)
            admin = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=url, headers=admin, timeout=60) as api:
                assert api.post("/v1/tenants", json={"id": "acme", "name": "Acme"}).is_success
                for name in ("slowpoke", "crashy", "calm"):
                    made = api.post(
                        "/v1/tenants/acme/sites",
                        json={"name": name, "admin_email": "a@example.com"},
                    ).json()
                    _wait(api, made["operation"]["id"])
            for name in ("slowpoke", "crashy"):
                plugin = _root(app, name) / "htdocs" / "wp-content" / "mu-plugins" / "zz-test.php"
                plugin.write_text(PLANTED)
                plugin.chmod(0o644)
            yield Stack(settings, app, url, admin)


def _wait(api: httpx.Client, operation_id: str) -> None:
    wait_for_operation(api, operation_id, {}, timeout=120)  # type: ignore[arg-type]


def _site(app: FastAPI, name: str) -> Site:
    with app.state.platform.sessions() as session:
        site: Site = session.query(Site).filter_by(tenant_id="acme", name=name).one()
        return site


def _root(app: FastAPI, name: str) -> Any:
    return app.state.platform.provider.stack.sites_dir / "acme" / name


def _get(stack: Stack, site: str, path: str) -> httpx.Response:
    port = stack.settings.site_port
    return httpx.get(
        f"http://127.0.0.1:{port}{path}", headers={"Host": f"{site}.acme.localhost:{port}"},
        timeout=30,
    )  # fmt: skip


def _ask(stack: Stack, message: str) -> str:
    settings = ChatSettings(**stack.settings.shared(), chat_control_plane_url=stack.url)
    token = LocalTokenIssuer(stack.settings).issue(
        "alice", Role.TENANT, ["acme"], email="alice@acme.example"
    )
    with TestClient(create_chat_app(settings)) as chat:
        reply = chat.post(
            "/v1/chat", json={"message": message}, headers={"Authorization": f"Bearer {token}"}
        )
    assert reply.status_code == 200, reply.text
    content: str = reply.json()["messages"][-1]["content"]
    return content


def _diagnosis(stack: Stack, site: str) -> dict[str, Any]:
    with httpx.Client(base_url=stack.url, headers=stack.admin, timeout=60) as api:
        found = api.get(f"/v1/tenants/acme/sites/{site}/diagnosis", params={"since": "1h"})
    assert found.status_code == 200, found.text
    body: dict[str, Any] = found.json()
    return body


def test_why_is_my_site_slow_names_the_path_and_the_sleeping_function(stack: Stack) -> None:
    for _ in range(3):
        assert _get(stack, "slowpoke", "/").status_code == 200
    for attempt in range(2):
        assert _get(stack, "slowpoke", f"/slow-report/?n={attempt}").elapsed.total_seconds() >= 1.4
    answer = _ask(stack, "why is slowpoke slow?")
    print(answer)
    assert "The site is slow" in answer, answer
    assert "/slow-report/" in answer, answer
    assert "aipress_test_slow_report()" in answer, answer  # the slow log's stack
    found = _diagnosis(stack, "slowpoke")
    assert found["verdict"]["status"] == "slow"
    assert found["slowest_paths"][0]["path"] == "/slow-report/"
    assert any("aipress_test_slow_report()" in " ".join(s["trace"]) for s in found["slow_requests"])
    assert {row["cache"] for row in found["cache"]} >= {"BYPASS"}  # the query string skips it
    assert found["saturation"] is not None and found["saturation"]["reached"] >= 0
    assert found["probe"]["ok"] is True


def test_is_my_site_broken_names_the_error_and_the_path(stack: Stack) -> None:
    assert _get(stack, "crashy", "/broken-page/").status_code == 500
    answer = _ask(stack, "is crashy broken?")
    print(answer)
    assert "The site is broken" in answer, answer
    assert "aipress_test_missing_function" in answer, answer
    assert "/broken-page/" in answer, answer
    found = _diagnosis(stack, "crashy")
    assert found["verdict"]["status"] == "broken"
    assert found["error_paths"][0]["path"] == "/broken-page/"
    assert found["php_errors"][0]["severity"] == "CRITICAL"
    assert "zz-test.php" in (found["php_errors"][0]["where"] or "")


def test_a_slow_query_is_the_sites_own_and_its_literals_are_hidden(stack: Stack) -> None:
    assert _get(stack, "crashy", "/slow-query/?x=1").elapsed.total_seconds() >= 1.1
    queries = _diagnosis(stack, "crashy")["slow_queries"]
    assert queries and "SLEEP(?)" in queries[0]["query"], queries
    assert "sk_live_secret" not in str(queries)
    assert _diagnosis(stack, "slowpoke")["slow_queries"] == []
    assert _diagnosis(stack, "calm")["slow_queries"] == []


def test_a_healthy_site_is_called_healthy(stack: Stack) -> None:
    for _ in range(3):
        assert _get(stack, "calm", "/").status_code == 200
    answer = _ask(stack, "why is calm slow?")
    assert "The site is healthy" in answer, answer
    found = _diagnosis(stack, "calm")
    assert found["verdict"]["status"] == "healthy"
    assert found["php_errors"] == [] and found["slow_requests"] == []


def test_site_code_cannot_reach_the_slow_logs(stack: Stack) -> None:
    phpfpm = stack.app.state.platform.provider.stack.phpfpm
    user = _site(stack.app, "slowpoke").resources["storage"]["user"]
    other_pool = _site(stack.app, "calm").resources["storage"]["user"]
    for target in (phpfpm.slowlog(other_pool), phpfpm.slowlog(user), phpfpm.base / "php-fpm.log"):
        tried = subprocess.run(
            ["runuser", "-u", user, "--", "sh", "-c", f"echo forged >> {target}"],
            capture_output=True, check=False,
        )  # fmt: skip
        assert tried.returncode != 0, target
        readable = subprocess.run(["runuser", "-u", user, "--", "cat", str(target)],
                                  capture_output=True, check=False)  # fmt: skip
        assert readable.returncode != 0, target
    assert phpfpm.slowlog_dir.stat().st_mode & 0o777 == 0o700
    assert phpfpm.slowlog_dir.stat().st_uid == 0
