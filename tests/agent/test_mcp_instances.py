"""Several chat instances behind one URL (Cloud Run scales the chat service out): each on its
own port, sharing one database and the signing key. A flow begun on one finishes on another,
a code or a confirmation id is spent once whichever instance sees it, and a user of several
tenants names the tenant per call, a confirmation id staying with the tenant it was made for."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from mcp import ClientSession, types
from pydantic import SecretStr

from chatbot.oauth.scopes import SCOPES
from chatbot.oauth.tokens import McpTokenIssuer, RefusedToken
from chatbot.service import create_app
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import load_sign_in_key
from controlplane.kernel.identity import Principal, Role
from tests.agent.test_mcp_oauth import PROBE, _probe
from tests.agent_fixtures import make_site, site_names
from tests.live import free_port, serve
from tests.mcp_harness import McpStack
from tests.mcp_oauth import (
    TEST_CLIENT_ID,
    TEST_REDIRECT_URI,
    Authorization,
    query_of,
    sign_in,
    with_test_client,
)

pytestmark = pytest.mark.integration


def _signing_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Instances:
    """Two served chat instances with one public URL, one database and one signing key."""

    urls: tuple[str, str]
    settings: tuple[ChatSettings, ChatSettings]
    sign_in_key: str

    @property
    def resource(self) -> str:
        """The MCP URL every instance serves and every token is for."""
        return self.settings[0].chat_origin + "/mcp"

    def stack(self, which: int) -> McpStack:
        """An SDK-client harness aimed at one instance."""
        return McpStack(self.urls[which], self.settings[which])

    def token(self, sub: str, role: Role, *tenants: str) -> str:
        """An MCP token for a user, as any instance issues it."""
        principal = Principal(sub=sub, role=role, tenants=frozenset(tenants))
        issuer = McpTokenIssuer(self.settings[0])
        return issuer.issue(principal, frozenset(SCOPES), "test-client", self.resource)


@pytest.fixture
def instances(
    chat_settings: ChatSettings, admin_api: httpx.Client, tmp_path: Path
) -> Iterator[Instances]:
    for uid, role, tenants in (
        ("alice", "tenant", ["acme"]),
        ("olga", "operator", ["acme", "globex"]),
    ):
        user = {"role": role, "tenants": tenants}
        assert admin_api.put(f"/v1/users/{uid}", json=user).is_success
    ports = (free_port(), free_port())
    shared = {
        "chat_public_url": f"http://127.0.0.1:{ports[0]}",
        "chat_database_url": f"sqlite:///{tmp_path / 'shared-chat.db'}",
        "mcp_signing_key": SecretStr(_signing_key()),
    }
    with ExitStack() as stack:
        urls, served = [], []
        for port in ports:
            settings = with_test_client(chat_settings, port).model_copy(update=shared)
            app: FastAPI = create_app(settings)
            app.add_api_route(PROBE, _probe)
            urls.append(stack.enter_context(serve(app, port)))
            served.append(settings)
        yield Instances((urls[0], urls[1]), (served[0], served[1]), load_sign_in_key(served[0]))


def _code(instances: Instances, run: Authorization) -> str:
    """A code: authorized on instance 0, consented on instance 1."""
    first, second = instances.urls
    with httpx.Client(base_url=first, timeout=30) as http:
        started = http.get("/oauth/authorize", params=run.params(instances.resource, "sites:read"))
        assert started.status_code == 302, started.text
        request_id = query_of(started.headers["location"])["oauth"]
    with httpx.Client(base_url=second, timeout=30) as http:
        token = sign_in(http, "alice", instances.sign_in_key)
        assert http.get(f"/oauth/requests/{request_id}").status_code == 200
        answered = http.post(f"/oauth/requests/{request_id}", json={"approve": True},
                             headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        again = http.post(f"/oauth/requests/{request_id}", json={"approve": True},
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert again.status_code == 404  # answered once, whichever instance is asked next
    with httpx.Client(base_url=first, timeout=30) as http:
        assert http.get(f"/oauth/requests/{request_id}").status_code == 404
    return query_of(answered.raise_for_status().json()["redirect"])["code"]


def _redeem(url: str, code: str, run: Authorization, resource: str) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "client_id": TEST_CLIENT_ID,
            "redirect_uri": TEST_REDIRECT_URI, "code_verifier": run.verifier, "resource": resource}  # fmt: skip
    return httpx.post(url + "/oauth/token", data=form, timeout=30)


def test_a_code_issued_by_one_instance_is_redeemed_by_another_once(instances: Instances) -> None:
    run = Authorization.fresh()
    code = _code(instances, run)
    redeemed = _redeem(instances.urls[1], code, run, instances.resource)
    assert redeemed.status_code == 200, redeemed.text
    token = redeemed.json()["access_token"]
    for url in instances.urls:  # either instance accepts the token the other issued
        probe = httpx.get(url + PROBE, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert probe.status_code == 200 and probe.json()["sub"] == "alice", probe.text
    again = _redeem(instances.urls[0], code, run, instances.resource)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_raced_double_redeem_gives_exactly_one_token(instances: Instances) -> None:
    run = Authorization.fresh()
    code = _code(instances, run)
    answers: list[int] = []
    gate = threading.Barrier(8)

    def redeem(which: int) -> None:
        gate.wait()
        answers.append(
            _redeem(instances.urls[which % 2], code, run, instances.resource).status_code
        )

    threads = [threading.Thread(target=redeem, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200] + [400] * 7, answers


def _call(stack: McpStack, token: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async def work(session: ClientSession) -> types.CallToolResult:
        return await session.call_tool(name, arguments)

    result = stack.session(token, work)
    assert result.structuredContent is not None
    return result.structuredContent


def test_a_confirmation_id_made_on_one_instance_confirms_on_another_once(
    instances: Instances, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    alice = instances.token("alice", Role.TENANT, "acme")
    preview = _call(instances.stack(0), alice, "delete_site", {"site": "crumbs"})
    assert preview["status"] == "awaiting_confirmation", preview
    confirmed = {"site": "crumbs", "confirmation_id": preview["data"]["confirmation_id"]}
    done = _call(instances.stack(1), alice, "delete_site", confirmed)
    assert done["status"] == "ok", done
    assert site_names(admin_api, "acme") == []
    again = _call(instances.stack(0), alice, "delete_site", confirmed)
    assert again["status"] == "error" and "confirmation_id is unknown, used" in again["error"]


def test_an_operator_of_two_tenants_names_one_per_call(
    instances: Instances, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    make_site(admin_api, "globex", "crumbs")
    olga, stack = instances.token("olga", Role.OPERATOR, "acme", "globex"), instances.stack(0)

    async def listed(session: ClientSession) -> list[types.Tool]:
        return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in stack.session(olga, listed)}
    assert "tenant_id" in tools["list_sites"].inputSchema["required"]
    assert "tenant_id" in tools["delete_site"].inputSchema["required"]
    assert "list_tenants" not in tools  # still no admin tools
    alice_tools = {
        tool.name: tool
        for tool in stack.session(instances.token("alice", Role.TENANT, "acme"), listed)
    }
    assert "tenant_id" not in alice_tools["list_sites"].inputSchema.get("properties", {})

    unnamed = _call(stack, olga, "list_sites", {})
    assert unnamed["status"] == "error" and "name one as tenant_id" in unnamed["error"], unnamed
    stranger = _call(stack, olga, "list_sites", {"tenant_id": "initech"})
    assert stranger["http_status"] == 403 and "not one of your tenants" in stranger["error"]
    listed_globex = _call(stack, olga, "list_sites", {"tenant_id": "globex"})
    assert listed_globex["data"]["tenant_id"] == "globex", listed_globex

    # A confirmation id made for acme's crumbs does not delete globex's crumbs.
    preview = _call(stack, olga, "delete_site", {"site": "crumbs", "tenant_id": "acme"})
    assert preview["status"] == "awaiting_confirmation", preview
    assert "tenant acme" in preview["data"]["question"]
    confirmation_id = preview["data"]["confirmation_id"]
    elsewhere = {"site": "crumbs", "tenant_id": "globex", "confirmation_id": confirmation_id}
    refused = _call(instances.stack(1), olga, "delete_site", elsewhere)
    assert refused["status"] == "error" and "another tenant" in refused["error"], refused
    assert site_names(admin_api, "acme") == ["crumbs"] and site_names(admin_api, "globex") == [
        "crumbs"
    ]
    # The refused try spent it: even the right tenant needs a fresh preview now.
    right = {"site": "crumbs", "tenant_id": "acme", "confirmation_id": confirmation_id}
    assert _call(stack, olga, "delete_site", right)["status"] == "error"
    fresh = _call(stack, olga, "delete_site", {"site": "crumbs", "tenant_id": "acme"})
    right["confirmation_id"] = fresh["data"]["confirmation_id"]
    assert _call(instances.stack(1), olga, "delete_site", right)["status"] == "ok"
    assert site_names(admin_api, "acme") == [] and site_names(admin_api, "globex") == ["crumbs"]


def test_instances_with_one_configured_key_verify_each_others_tokens(tmp_path: Path) -> None:
    key = _signing_key()
    alice = Principal("alice", Role.TENANT, frozenset({"acme"}))
    resource = "https://chat.example/mcp"

    def issuer(home: str, **extra: Any) -> McpTokenIssuer:
        return McpTokenIssuer(ChatSettings(home=tmp_path / home,
                                           chat_public_url="https://chat.example", **extra))  # fmt: skip

    token = issuer("one", mcp_signing_key=key).issue(alice, frozenset(SCOPES), "c", resource)
    assert issuer("two", mcp_signing_key=key).verify(token, resource).principal.sub == "alice"
    # Without the shared key each disk's own key signs, and the other instance refuses.
    local = issuer("one").issue(alice, frozenset(SCOPES), "c", resource)
    with pytest.raises(RefusedToken):
        issuer("two").verify(local, resource)


def test_confirmation_ids_are_capped_per_user_and_bound_to_their_tenant(tmp_path: Path) -> None:
    from chatbot.mcp.auth import McpCaller
    from chatbot.mcp.tools import CONFIRMATIONS_PER_USER, Confirmations
    from chatbot.oauth.onetime import OneTimeRecords

    confirmations = Confirmations(OneTimeRecords(f"sqlite:///{tmp_path / 'chat.db'}"))
    olga = McpCaller(Principal("olga", Role.OPERATOR, frozenset({"acme", "globex"})),
                     frozenset(SCOPES), "test-client")  # fmt: skip
    call = {"site": "crumbs"}
    ids = [confirmations.issue(olga, "delete_site", call, "acme")
           for _ in range(CONFIRMATIONS_PER_USER)]  # fmt: skip
    with pytest.raises(OverflowError, match="too many unused confirmation ids"):
        confirmations.issue(olga, "delete_site", call, "acme")
    assert not confirmations.redeem(ids[0], olga, "delete_site", call, "globex")
    assert not confirmations.redeem(ids[0], olga, "delete_site", call, "acme")  # spent by the try
    assert confirmations.redeem(ids[1], olga, "delete_site", call, "acme")
    # A redeemed id frees its place: one more can be issued.
    assert confirmations.issue(olga, "delete_site", call, "acme")
