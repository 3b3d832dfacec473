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

from chatbot.service import create_app
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import FirebaseTokenVerifier, InvalidToken
from controlplane.kernel.identity import Role
from tests.agent.test_mcp_oauth import PROBE, _probe
from tests.conftest import LOG_FILE
from tests.integration.firebase_emulator import FIREBASE_BIN, AuthEmulator, start_auth_emulator
from tests.live import free_port, serve
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
