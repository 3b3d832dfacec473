"""`aipress mcp --as alice` over stdio, driven by the SDK's own stdio client: the tenant's
tools, its sites, the confirmation path, and the audit log naming the stdio client."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import get_default_environment, stdio_client

from controlplane.settings import Settings
from tests.agent_fixtures import make_site, site_names
from tests.conftest import LOG_FILE
from tests.live import in_own_loop

pytestmark = pytest.mark.integration
AIPRESS = str(Path(sys.executable).with_name("aipress"))


def test_stdio_serves_alice_her_tenants_tools(
    settings: Settings, live_api: str, admin_api: httpx.Client
) -> None:
    alice = {"role": "tenant", "tenants": ["acme"], "email": "alice@acme.example"}
    assert admin_api.put("/v1/users/alice", json=alice).is_success
    make_site(admin_api, "acme", "crumbs")
    make_site(admin_api, "globex", "shop")
    env = {**get_default_environment(), "AIPRESS_PROVIDER": "memory",
           "AIPRESS_HOME": str(settings.home), "AIPRESS_LOG_FILE": str(LOG_FILE),
           "AIPRESS_CHAT_CONTROL_PLANE_URL": live_api}  # fmt: skip
    server = StdioServerParameters(command=AIPRESS, args=["mcp", "--as", "alice"], env=env)

    async def run() -> tuple[list[str], dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with (
            stdio_client(server) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            tools = (await session.list_tools()).tools
            names = [t.name for t in tools if "tenant_id" in t.inputSchema.get("properties", {})]
            listed = await session.call_tool("list_sites", {})
            asked = await session.call_tool("delete_site", {"site": "crumbs"})
            assert asked.structuredContent and site_names(admin_api, "acme") == ["crumbs"]
            confirmation = asked.structuredContent["data"]["confirmation_id"]
            deleted = await session.call_tool(
                "delete_site", {"site": "crumbs", "confirmation_id": confirmation}
            )
            assert listed.structuredContent and deleted.structuredContent
            return (
                names,
                listed.structuredContent,
                asked.structuredContent,
                deleted.structuredContent,
            )

    with_tenant_argument, listed, asked, deleted = in_own_loop(run())
    assert with_tenant_argument == []
    assert [s["name"] for s in listed["data"]["sites"]] == ["crumbs"]
    assert asked["status"] == "awaiting_confirmation" and deleted["status"] == "ok", deleted
    assert site_names(admin_api, "acme") == [] and site_names(admin_api, "globex") == ["shop"]
    audit = admin_api.get("/v1/audit", params={"tenant_id": "acme"}).json()
    deletes = [e for e in audit if e["action"] == "site.delete"]
    assert [(e["actor"], e["detail"].get("client_id")) for e in deletes] == [
        ("alice", "aipress-stdio")
    ], deletes
