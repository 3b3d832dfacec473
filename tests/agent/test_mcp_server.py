"""/mcp with the SDK's own client: the registry's tools per role, scopes, the human confirmation
of destructive calls, refusals with their challenges, no cross-tenant reach, no token passed on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import ClientSession, types
from mcp.shared.context import RequestContext
from starlette.types import ASGIApp, Receive, Scope, Send

from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.settings import Settings
from tests.agent.test_agent_security import MALICIOUS_CALLS
from tests.agent_fixtures import make_site, site_names
from tests.mcp_harness import McpStack, served_chat, tool_call

pytestmark = pytest.mark.integration


class _RecordAuthorization:
    """Keeps every Authorization header the control plane receives."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.seen.append(headers.get(b"authorization", b"").decode())
        await self.app(scope, receive, send)


@pytest.fixture
def seen_by_api(live_app: Any) -> list[str]:
    """The Authorization headers of every control-plane request (installed before serving)."""
    seen: list[str] = []
    live_app.add_middleware(_RecordAuthorization, seen=seen)
    return seen


@pytest.fixture
def stack(seen_by_api: list[str], settings: Settings, live_api: str) -> Iterator[McpStack]:
    """The chat service with /mcp, its tools calling the live control plane."""
    with served_chat(settings, live_api) as served:
        yield served


def _call(
    stack: McpStack, token: str, name: str, arguments: dict[str, Any], **kw: Any
) -> types.CallToolResult:
    async def work(session: ClientSession) -> types.CallToolResult:
        return await session.call_tool(name, arguments)

    return stack.session(token, work, **kw)


def _tools(stack: McpStack, token: str) -> dict[str, types.Tool]:
    async def work(session: ClientSession) -> list[types.Tool]:
        return (await session.list_tools()).tools

    return {tool.name: tool for tool in stack.session(token, work)}


def _result(call: types.CallToolResult) -> dict[str, Any]:
    assert call.structuredContent is not None
    assert json.loads(call.content[0].text) == call.structuredContent  # type: ignore[union-attr]
    return call.structuredContent


def test_tools_are_the_registrys_per_role_with_annotations(stack: McpStack) -> None:
    tenant = _tools(stack, stack.token("alice", "tenant", "acme"))
    admin = _tools(stack, stack.token("root", "admin"))
    assert "list_tenants" not in tenant and "list_tenants" in admin
    for tool in tenant.values():
        assert "tenant_id" not in tool.inputSchema.get("properties", {}), tool.name
        assert tool.inputSchema["additionalProperties"] is False
    for name in tenant:
        assert "tenant_id" in admin[name].inputSchema["required"], name
    assert tenant["create_site"].inputSchema["required"] == ["site", "admin_email"]
    hints = {name: tool.annotations for name, tool in tenant.items()}
    assert hints["get_site"] == types.ToolAnnotations(
        readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False
    )
    assert hints["create_site"].readOnlyHint is False  # type: ignore[union-attr]
    assert hints["create_site"].destructiveHint is False  # type: ignore[union-attr]
    assert hints["delete_site"].destructiveHint is True  # type: ignore[union-attr]
    assert hints["delete_site"].idempotentHint is True  # type: ignore[union-attr]
    assert "confirmation_id" in tenant["delete_site"].inputSchema["properties"]
    assert "confirmation_id" not in tenant["create_site"].inputSchema["properties"]
    assert tenant["get_site"].outputSchema is not None


def test_tenant_creates_a_site_and_sees_its_progress(
    stack: McpStack, admin_api: httpx.Client
) -> None:
    progress: list[str] = []

    async def work(session: ClientSession) -> types.CallToolResult:
        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(message or "")

        return await session.call_tool(
            "create_site", {"site": "crumbs", "admin_email": "a@acme.example"},
            progress_callback=on_progress,
        )  # fmt: skip

    result = _result(stack.session(stack.token("alice", "tenant", "acme"), work))
    assert result["status"] == "ok", result
    assert result["data"]["name"] == "crumbs" and result["data"]["tenant_id"] == "acme"
    assert site_names(admin_api, "acme") == ["crumbs"]
    assert "step_finished database" in progress and "operation_succeeded" in progress, progress
    # The control plane's audit log names the MCP client the user acted through.
    created = [e for e in admin_api.get("/v1/audit", params={"tenant_id": "acme"}).json()
               if e["action"] == "site.create"]  # fmt: skip
    assert [e["detail"].get("client_id") for e in created] == ["test-client"], created
    assert created[0]["actor"] == "alice" and created[0]["request_id"].startswith("mcp-")


def test_delete_needs_a_preview_then_its_single_use_confirmation_id(
    stack: McpStack, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    alice = stack.token("alice", "tenant", "acme")
    preview = _result(_call(stack, alice, "delete_site", {"site": "crumbs"}))
    assert preview["status"] == "awaiting_confirmation", preview
    assert "Delete site crumbs of tenant acme?" in preview["data"]["question"]
    confirmation_id = preview["data"]["confirmation_id"]
    assert site_names(admin_api, "acme") == ["crumbs"]  # the first call deleted nothing

    wrong = _call(stack, alice, "delete_site", {"site": "crumbs", "confirmation_id": "guess"})
    assert wrong.isError and "call again without it" in _result(wrong)["error"]
    assert site_names(admin_api, "acme") == ["crumbs"]

    done = _result(_call(stack, alice, "delete_site",
                         {"site": "crumbs", "confirmation_id": confirmation_id}))  # fmt: skip
    assert done["status"] == "ok", done
    assert site_names(admin_api, "acme") == []
    again = _call(
        stack, alice, "delete_site", {"site": "crumbs", "confirmation_id": confirmation_id}
    )
    assert again.isError  # spent


def test_a_confirmation_id_is_for_one_user_one_client_one_call(
    stack: McpStack, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    make_site(admin_api, "acme", "jam")
    alice = stack.token("alice", "tenant", "acme")

    def fresh_id() -> str:
        preview = _result(_call(stack, alice, "delete_site", {"site": "crumbs"}))
        return str(preview["data"]["confirmation_id"])

    attempts = [
        (stack.token("bob", "tenant", "acme"), {"site": "crumbs"}),  # another user
        (stack.token("alice", "tenant", "acme", client_id="other-client"), {"site": "crumbs"}),
        (alice, {"site": "jam"}),  # another site
    ]
    for token, arguments in attempts:
        refused = _call(stack, token, "delete_site", {**arguments, "confirmation_id": fresh_id()})
        assert refused.isError, arguments
    assert site_names(admin_api, "acme") == ["crumbs", "jam"]


def test_with_elicitation_the_user_is_asked_and_only_a_yes_deletes(
    stack: McpStack, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    alice = stack.token("alice", "tenant", "acme")
    asked: list[str] = []

    def answering(content: dict[str, Any] | None, action: str = "accept") -> Any:
        async def elicit(
            context: RequestContext[ClientSession, Any], params: types.ElicitRequestParams
        ) -> types.ElicitResult:
            asked.append(params.message)
            return types.ElicitResult(action=action, content=content)  # type: ignore[arg-type]

        return elicit

    for answer in (answering(None, "decline"), answering({"confirm": False})):
        kept = _result(_call(stack, alice, "delete_site", {"site": "crumbs"}, elicitation=answer))
        assert kept["status"] == "cancelled", kept
    assert site_names(admin_api, "acme") == ["crumbs"]
    done = _call(stack, alice, "delete_site", {"site": "crumbs"},
                 elicitation=answering({"confirm": True}))  # fmt: skip
    assert _result(done)["status"] == "ok"
    assert site_names(admin_api, "acme") == []
    assert len(asked) == 3 and all("Delete site crumbs of tenant acme?" in q for q in asked)


def test_refusals_answer_with_status_and_challenge(
    stack: McpStack, settings: Settings, admin_api: httpx.Client
) -> None:
    create = tool_call("create_site", {"site": "evil", "admin_email": "e@acme.example"})
    api_token = LocalTokenIssuer(settings).issue("alice", Role.TENANT, ["acme"])
    cases = [
        (None, {}, 401, None),
        (None, {"access_token": stack.token("alice", "tenant", "acme")}, 400, "invalid_request"),
        (stack.token("alice", "tenant", "acme", ttl=-120), {}, 401, "invalid_token"),
        (api_token, {}, 401, "invalid_token"),  # audience: the control plane, not /mcp
        (stack.token("alice", "tenant", "acme", scopes=("sites:read",)), {}, 403,
         "insufficient_scope"),
    ]  # fmt: skip
    for token, query, status, error in cases:
        response = stack.post(token, create, **query)
        assert response.status_code == status, (query, response.text)
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        if error is not None:
            assert f'error="{error}"' in challenge
        if status == 403:
            assert 'scope="sites:write"' in challenge
        else:
            assert f'resource_metadata="{stack.url}/.well-known/oauth-protected-resource/mcp"' in (
                challenge
            )
    assert site_names(admin_api, "acme") == []


def test_held_out_probes_over_mcp_reach_no_other_tenant(
    stack: McpStack, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "globex", "shop")
    alice = stack.token("alice", "tenant", "acme")

    async def work(session: ClientSession) -> list[types.CallToolResult]:
        return [await session.call_tool(name, args) for name, args in MALICIOUS_CALLS]

    results = stack.session(alice, work)
    assert all(r.isError for r in results), [r.structuredContent for r in results]
    errors = [str(_result(r)["error"]) for r in results]
    assert "takes no such argument" in errors[0]
    assert "no tool named 'list_tenants'" in errors[6]
    assert "not found in tenant 'acme'" in errors[9]
    seen = json.dumps([r.structuredContent for r in results])
    assert '"url"' not in seen and "shop.globex" not in seen
    assert site_names(admin_api, "globex") == ["shop"] and site_names(admin_api, "acme") == []
    # The same probes through the destructive path: no preview, no id, nothing deleted.
    for arguments in ({"site": "shop"}, {"site": "shop", "tenant_id": "globex"}):
        assert _call(stack, alice, "delete_site", arguments).isError
    assert site_names(admin_api, "globex") == ["shop"]


def test_the_mcp_token_never_reaches_the_control_plane(
    stack: McpStack, seen_by_api: list[str]
) -> None:
    token = stack.token("alice", "tenant", "acme")
    before = len(seen_by_api)
    assert _result(_call(stack, token, "list_sites", {}))["status"] == "ok"
    used = seen_by_api[before:]
    assert used and all(h.startswith("Bearer ") for h in used)
    assert all(token not in h for h in used)


def test_pages_of_other_origins_are_refused(stack: McpStack) -> None:
    alice = stack.token("alice", "tenant", "acme")
    call = tool_call("list_sites", {})
    headers = {"Authorization": f"Bearer {alice}", "Accept": "application/json, text/event-stream"}
    foreign = httpx.post(stack.mcp_url, json=call, timeout=30,
                         headers={**headers, "Origin": "http://evil.example"})  # fmt: skip
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["detail"]
    own = httpx.post(stack.mcp_url, json=call, timeout=30,
                     headers={**headers, "Origin": stack.url})  # fmt: skip
    assert own.status_code != 403


def test_a_session_is_its_opener_s_alone(stack: McpStack) -> None:
    alice, bob = stack.token("alice", "tenant", "acme"), stack.token("bob", "tenant", "globex")
    headers = {"Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "probe", "version": "1"}}}  # fmt: skip
    opened = httpx.post(stack.mcp_url, json=init, timeout=30,
                        headers={**headers, "Authorization": f"Bearer {alice}"})  # fmt: skip
    session_id = opened.headers["mcp-session-id"]
    stolen = httpx.post(
        stack.mcp_url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, timeout=30,
        headers={**headers, "Authorization": f"Bearer {bob}", "mcp-session-id": session_id},
    )  # fmt: skip
    assert stolen.status_code == 404


def test_a_secret_value_is_never_asked_of_an_mcp_client(
    stack: McpStack, admin_api: httpx.Client
) -> None:
    alice = stack.token("alice", "tenant", "acme")
    refused = _result(_call(stack, alice, "set_env", {"name": "STRIPE_KEY", "secret": True}))
    assert refused["status"] == "unavailable" and "widget" in refused["error"]
    assert "confirmation_id" not in refused["data"]
    assert admin_api.get("/v1/tenants/acme/env").json() == []


def test_tool_calls_are_rate_limited_per_user(settings: Settings, live_api: str) -> None:
    with served_chat(settings, live_api, chat_rate_per_minute=2) as stack:
        alice, bob = stack.token("alice", "tenant", "acme"), stack.token("bob", "tenant", "acme")
        calls = [stack.post(alice, tool_call("list_sites", {})) for _ in range(3)]
        assert [c.status_code for c in calls[:2]] != [429, 429]
        assert calls[2].status_code == 429 and int(calls[2].headers["retry-after"]) >= 1
        assert "at most 2 a minute" in calls[2].json()["detail"]
        assert stack.post(bob, tool_call("list_sites", {})).status_code != 429
