"""Issue 19's acceptance on the embedded default: the SDK's own client, cold, runs the OAuth
flow (discovery from a 401, PKCE, resource indicator) against the local authorization
server, lists the tools, creates a real WordPress site (MariaDB, PHP-FPM, nginx), reads its
logs, and deletes it only through the confirmation path; the site is really gone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from mcp import ClientSession, types

from controlplane.api.app import create_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.models import Site
from controlplane.settings import Settings
from tests.live import local_stack_home, serve
from tests.mcp_harness import McpStack, sdk_oauth, served_chat

pytestmark = pytest.mark.integration
USERS = {"alice": {"role": "tenant", "tenants": ["acme"], "email": "alice@acme.example"},
         "root": {"role": "admin", "tenants": []}}  # fmt: skip


@pytest.fixture(scope="module")
def embedded() -> Iterator[tuple[McpStack, FastAPI, httpx.Client]]:
    """The local stack's control plane with tenant acme and users alice and root, and the
    chat service with /mcp in front of it."""
    with local_stack_home("mcp") as settings:
        app = create_app(settings)
        with serve(app) as url:
            admin = LocalTokenIssuer(settings).issue("root", Role.ADMIN)
            headers = {"Authorization": f"Bearer {admin}"}
            with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
                assert api.post("/v1/tenants", json={"id": "acme", "name": "Acme"}).is_success
                for uid, user in USERS.items():
                    assert api.put(f"/v1/users/{uid}", json=user).is_success
                with served_chat(settings, url) as stack:
                    yield stack, app, api


def _data(result: types.CallToolResult) -> dict[str, Any]:
    assert result.structuredContent is not None
    assert not result.isError, result.structuredContent
    data: dict[str, Any] = result.structuredContent["data"]
    return data


def test_an_sdk_client_authorizes_creates_reads_logs_and_deletes_only_when_confirmed(
    embedded: tuple[McpStack, FastAPI, httpx.Client],
) -> None:
    stack, api_app, api = embedded
    settings: Settings = api_app.state.platform.settings
    port = settings.site_port
    host = {"Host": f"crumbs.acme.localhost:{port}"}
    seen: dict[str, Any] = {}

    async def work(session: ClientSession) -> None:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        seen["tenant_arguments"] = [n for n, t in tools.items()
                                    if "tenant_id" in t.inputSchema.get("properties", {})]  # fmt: skip
        created = _data(await session.call_tool(
            "create_site", {"site": "crumbs", "admin_email": "alice@acme.example"}))  # fmt: skip
        seen["url"] = created["url"]
        with api_app.state.platform.sessions() as db:
            site = db.query(Site).filter_by(tenant_id="acme", name="crumbs").one()
            seen["database"] = site.resources["database"]["name"]
        page = httpx.get(f"http://127.0.0.1:{port}/missing-page", headers=host, timeout=30)
        seen["missing_status"] = page.status_code
        seen["logs"] = _data(await session.call_tool(
            "query_logs", {"site": "crumbs", "since": "10m", "status": "404"}))  # fmt: skip
        asked = await session.call_tool("delete_site", {"site": "crumbs"})
        assert asked.structuredContent is not None
        seen["asked"] = asked.structuredContent
        served = httpx.get(f"http://127.0.0.1:{port}/", headers=host, timeout=30)
        seen["served_while_asked"] = served.status_code
        seen["wordpress"] = "wp-content" in served.text
        confirmation = asked.structuredContent["data"]["confirmation_id"]
        seen["deleted"] = _data(await session.call_tool(
            "delete_site", {"site": "crumbs", "confirmation_id": confirmation}))  # fmt: skip

    provider = sdk_oauth(stack, "alice")
    stack.session(provider, work)

    assert provider.context.current_tokens is not None  # the SDK got its own token
    assert seen["tenant_arguments"] == []
    assert seen["url"] == f"http://crumbs.acme.localhost:{port}/"
    assert seen["missing_status"] == 404
    entries = seen["logs"]["entries"]
    assert entries and all(str(e["status"]) == "404" for e in entries), seen["logs"]
    assert seen["asked"]["status"] == "awaiting_confirmation"
    assert seen["served_while_asked"] == 200 and seen["wordpress"]  # nothing happened yet
    gone = httpx.get(f"http://127.0.0.1:{port}/", headers=host, timeout=30)
    assert gone.status_code != 200 or "wp-content" not in gone.text
    assert seen["deleted"]["deleted"] is True
    assert api.get("/v1/tenants/acme/sites/crumbs").status_code == 404
    with api_app.state.platform.provider.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (seen["database"],))
        assert cur.fetchall() == ()


def test_an_admin_s_sdk_client_gets_the_admin_variant(
    embedded: tuple[McpStack, FastAPI, httpx.Client],
) -> None:
    stack, _app, _api = embedded

    async def work(session: ClientSession) -> dict[str, types.Tool]:
        return {t.name: t for t in (await session.list_tools()).tools}

    tools = stack.session(sdk_oauth(stack, "root"), work)
    assert "list_tenants" in tools
    assert all("tenant_id" in t.inputSchema["required"]
               for n, t in tools.items() if n not in ("list_tenants", "billing_summary"))  # fmt: skip
