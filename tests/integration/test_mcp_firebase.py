"""gcp mode's MCP authorization against the real Firebase Auth emulator: a Firebase sign-in
becomes an access token bound to /mcp (token exchange, and the authorization-code flow with
the Firebase ID token at consent), and the tools' control-plane token is a Firebase ID token
minted for that user through a custom token, never the MCP token."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import firebase_admin
import httpx
import pytest
from fastapi import FastAPI
from firebase_admin import auth as fb_auth
from mcp import ClientSession, types

from chatbot.service import create_app
from chatbot.settings import ChatSettings
from chatbot.upstream import ServiceIdentity
from controlplane.api.app import create_app as create_control_plane
from controlplane.kernel.auth import FirebaseTokenVerifier, InvalidToken
from controlplane.kernel.identity import Role
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from tests.agent.test_mcp_oauth import PROBE, _probe
from tests.agent_fixtures import make_site, site_names
from tests.conftest import LOG_FILE
from tests.integration.firebase_emulator import FIREBASE_BIN, AuthEmulator, start_auth_emulator
from tests.integration.test_firebase_auth import gcp_settings
from tests.live import free_port, serve
from tests.mcp_harness import McpStack
from tests.mcp_oauth import Authorization, consent, query_of, with_test_client

pytestmark = pytest.mark.integration

PROJECT = "demo-aipress-mcp"
PASSWORD = "correct-horse-battery"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthEmulator]:
    """The real Firebase Auth emulator, once for this module."""
    if not FIREBASE_BIN.exists():
        pytest.skip("firebase-tools is missing: run `npm install` (`make test` does)")
    running = start_auth_emulator(tmp_path_factory.mktemp("firebase-mcp"), PROJECT)
    yield running
    running.stop()


@pytest.fixture
def gcp_chat(
    emulator: AuthEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[str, ChatSettings, Any]]:
    """The chat service in gcp mode (offline model) and a console app holding a tenant."""
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", emulator.host)
    emulator.clear_accounts()
    port = free_port()
    settings = with_test_client(ChatSettings(
        provider="gcp", home=tmp_path / "home", firebase_project_id=PROJECT,
        allow_auth_emulator=True, chat_model="offline", log_file=LOG_FILE,
        chat_database_url=f"sqlite:///{tmp_path / 'chat.db'}",
        chat_control_plane_url="http://127.0.0.1:9", firebase_web_api_key="fake-api-key",
        firebase_auth_domain=f"{PROJECT}.firebaseapp.com",
        mcp_signing_key=base64.b64encode(os.urandom(32)).decode(),
    ), port)  # fmt: skip
    console = firebase_admin.initialize_app(
        options={"projectId": PROJECT}, name=f"console-{uuid.uuid4().hex[:8]}"
    )
    user = fb_auth.create_user(email="owner@acme.example", password=PASSWORD, app=console)
    fb_auth.set_custom_user_claims(user.uid, {"role": "tenant", "tenant_id": "acme"}, app=console)
    app: FastAPI = create_app(settings)
    app.add_api_route(PROBE, _probe)
    with serve(app, port) as url:
        yield url, settings, user
    firebase_admin.delete_app(console)
    with suppress(ValueError):
        firebase_admin.delete_app(firebase_admin.get_app(f"aipress-{PROJECT}"))


def test_a_firebase_sign_in_becomes_an_audience_bound_token(
    gcp_chat: tuple[str, ChatSettings, Any], emulator: AuthEmulator
) -> None:
    url, settings, user = gcp_chat
    resource = url + "/mcp"
    id_token = emulator.sign_in("owner@acme.example", PASSWORD)
    with httpx.Client(base_url=url, timeout=30) as http:
        exchanged = http.post("/oauth/token", data={
            "grant_type": EXCHANGE, "subject_token": id_token, "client_id": "aipress-tests",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "resource": resource,
        })  # fmt: skip
        assert exchanged.status_code == 200, exchanged.text
        mcp_token = exchanged.json()["access_token"]
        assert exchanged.json()["scope"] == "sites:read sites:write billing:read"
        # The Firebase ID token itself is for the project, not /mcp: refused there.
        direct = http.get(PROBE, headers={"Authorization": f"Bearer {id_token}"})
        assert (
            direct.status_code == 401 and "resource_metadata" in direct.headers["www-authenticate"]
        )
        probe = http.get(PROBE, headers={"Authorization": f"Bearer {mcp_token}"})
        assert probe.status_code == 200, probe.text
        assert probe.json()["sub"] == user.uid

        # The authorization-code flow: the sign-in page's Firebase ID token answers consent.
        run = Authorization.fresh()
        started = http.get("/oauth/authorize", params=run.params(resource, "sites:read"))
        back = query_of(consent(http, started.headers["location"], id_token))
        assert back["state"] == run.state
        redeemed = http.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": back["code"], "client_id": "aipress-tests",
            "redirect_uri": run.params(resource, "")["redirect_uri"],
            "code_verifier": run.verifier, "resource": resource,
        })  # fmt: skip
        assert redeemed.json()["scope"] == "sites:read", redeemed.text

    # What the tools send the control plane: a Firebase ID token for the same user, which the
    # control plane's own verifier accepts; the MCP token it refuses.
    control_plane = FirebaseTokenVerifier(settings)
    derived = control_plane.verify(probe.json()["control_plane_token"])
    assert (derived.sub, derived.role, derived.tenants) == (user.uid, Role.TENANT,
                                                            frozenset({"acme"}))  # fmt: skip
    assert derived.client_id == "aipress-tests"  # the audit log's client id
    assert probe.json()["control_plane_token"] != mcp_token
    with pytest.raises(InvalidToken):
        control_plane.verify(mcp_token)


def test_a_delete_through_mcp_in_gcp_mode_is_audited_with_the_mcp_client(
    emulator: AuthEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The whole gcp path: the control plane verifies Firebase ID tokens only; the chat
    # service derives one for the MCP user through a custom token whose developer claim
    # names the client, and the control plane's audit row says it.
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", emulator.host)
    emulator.clear_accounts()
    console = firebase_admin.initialize_app(
        options={"projectId": PROJECT}, name=f"console-{uuid.uuid4().hex[:8]}"
    )
    owner = fb_auth.create_user(email="owner@acme.example", password=PASSWORD, app=console)
    fb_auth.set_custom_user_claims(owner.uid, {"role": "tenant", "tenant_id": "acme"}, app=console)
    root = fb_auth.create_user(email="root@platform.example", password=PASSWORD, app=console)
    fb_auth.set_custom_user_claims(root.uid, {"role": "admin"}, app=console)
    api_port, chat_port = free_port(), free_port()
    api_app = create_control_plane(
        gcp_settings(tmp_path, PROJECT, allow_emulator=True),
        platform_factory=lambda s: build_platform(s, provider=MemoryProvider()),
    )
    chat = with_test_client(ChatSettings(
        provider="gcp", home=tmp_path / "chat-home", firebase_project_id=PROJECT,
        allow_auth_emulator=True, chat_model="offline", log_file=LOG_FILE,
        chat_database_url=f"sqlite:///{tmp_path / 'chat.db'}",
        chat_control_plane_url=f"http://127.0.0.1:{api_port}", firebase_web_api_key="fake-api-key",
        firebase_auth_domain=f"{PROJECT}.firebaseapp.com",
        mcp_signing_key=base64.b64encode(os.urandom(32)).decode(),
    ), chat_port)  # fmt: skip
    invoker = ServiceIdentity(chat.tools_base_url, lambda _audience: "cloud-run-invoker-token")
    try:
        with (
            serve(api_app, api_port) as api_url,
            serve(create_app(chat, identity=invoker), chat_port) as url,
        ):
            admin = {
                "Authorization": f"Bearer {emulator.sign_in('root@platform.example', PASSWORD)}"
            }
            with httpx.Client(base_url=api_url, headers=admin, timeout=30) as api:
                assert api.post("/v1/tenants", json={"id": "acme", "name": "Acme"}).is_success
                make_site(api, "acme", "crumbs")
                exchanged = httpx.post(url + "/oauth/token", data={
                    "grant_type": EXCHANGE, "client_id": "aipress-tests",
                    "subject_token": emulator.sign_in("owner@acme.example", PASSWORD),
                    "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                    "resource": url + "/mcp",
                }, timeout=30)  # fmt: skip
                mcp_token = exchanged.raise_for_status().json()["access_token"]
                stack = McpStack(url, chat)

                def delete(arguments: dict[str, Any]) -> dict[str, Any]:
                    async def work(session: ClientSession) -> types.CallToolResult:
                        return await session.call_tool("delete_site", arguments)

                    result = stack.session(mcp_token, work).structuredContent
                    assert result is not None
                    return result

                preview = delete({"site": "crumbs"})
                assert preview["status"] == "awaiting_confirmation", preview
                done = delete({"site": "crumbs",
                               "confirmation_id": preview["data"]["confirmation_id"]})  # fmt: skip
                assert done["status"] == "ok", done
                assert site_names(api, "acme") == []
                events = api.get("/v1/audit", params={"tenant_id": "acme"}).json()
        deleted = [e for e in events if e["action"] == "site.delete"]
        assert [e["detail"].get("client_id") for e in deleted] == ["aipress-tests"], events
        assert deleted[0]["actor"] == owner.uid and deleted[0]["request_id"].startswith("mcp-")
    finally:
        firebase_admin.delete_app(console)
        with suppress(ValueError):
            firebase_admin.delete_app(firebase_admin.get_app(f"aipress-{PROJECT}"))
