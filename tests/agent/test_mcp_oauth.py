"""The MCP endpoint's OAuth side over real HTTP: resource and authorization-server metadata,
every refusal with its status and challenge, the authorization-code + PKCE flow through the
demo sign-in page, Client ID Metadata Documents, token exchange, and a cold SDK client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from chatbot.mcp.auth import (
    SCOPES,
    McpAuthError,
    authenticate,
    control_plane_token,
    insufficient_scope,
)
from chatbot.oauth.onetime import OneTimeRecords, key_hash
from chatbot.oauth.tokens import McpTokenIssuer
from chatbot.service import create_app
from chatbot.settings import ChatSettings
from controlplane.kernel import clock
from controlplane.kernel.auth import LocalTokenIssuer, load_sign_in_key
from controlplane.kernel.identity import Principal, Role
from tests.conftest import LOG_FILE
from tests.live import free_port, in_own_loop, serve
from tests.mcp_harness import McpStack, sdk_oauth
from tests.mcp_oauth import (
    TEST_CLIENT_ID,
    TEST_REDIRECT_URI,
    Authorization,
    consent,
    obtain_token,
    query_of,
    sign_in,
    with_test_client,
)

PROBE = "/test-probe/mcp-auth"  # what /mcp's handler does first: authenticate the request
USERS = {"alice": ("tenant", ["acme"]), "vera": ("viewer", ["acme"]), "root": ("admin", [])}


async def _probe(request: Request) -> JSONResponse:
    try:
        caller = authenticate(request)
    except McpAuthError as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status,
                            headers={"WWW-Authenticate": exc.www_authenticate})  # fmt: skip
    return JSONResponse({"sub": caller.principal.sub, "scopes": sorted(caller.scopes),
                         "client_id": caller.client_id,
                         "control_plane_token": control_plane_token(caller)})  # fmt: skip


@dataclass
class Chat:
    """The served chat service of a test."""

    url: str
    settings: ChatSettings
    key: str

    @property
    def resource(self) -> str:
        return self.url + "/mcp"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def token(self, user: str, scopes: str = " ".join(SCOPES)) -> str:
        return obtain_token(self.url, user, scopes, self.resource, sign_in_key=self.key)


def _serve_chat(settings: ChatSettings, **overrides: Any) -> Iterator[Chat]:
    port = free_port()
    served = with_test_client(settings, port).model_copy(update=overrides)
    app: FastAPI = create_app(served)
    app.add_api_route(PROBE, _probe, methods=["GET", "POST"])
    with serve(app, port) as url:
        yield Chat(url, served, load_sign_in_key(served))


@pytest.fixture
def chat(chat_settings: ChatSettings, admin_api: httpx.Client) -> Iterator[Chat]:
    for uid, (role, tenants) in USERS.items():
        assert admin_api.put(f"/v1/users/{uid}", json={"role": role, "tenants": tenants}).is_success
    yield from _serve_chat(chat_settings)


def _challenge(response: httpx.Response) -> dict[str, str]:
    scheme, _, rest = response.headers["www-authenticate"].partition(" ")
    assert scheme == "Bearer"
    params: dict[str, str] = {}
    for part in rest.split('", '):
        name, _, value = part.partition('="')
        params[name] = value.rstrip('"')
    return params


def test_metadata_documents_carry_the_required_fields(chat: Chat) -> None:
    from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata

    with chat.http() as http:
        prm = http.get("/.well-known/oauth-protected-resource/mcp").json()
        asm = http.get("/.well-known/oauth-authorization-server").json()
    # RFC 9728 §2: resource is REQUIRED and is the protected resource's URL; MCP needs
    # authorization_servers; the token goes in the header only.
    assert prm["resource"] == chat.resource
    assert prm["authorization_servers"] == [chat.url]
    assert prm["bearer_methods_supported"] == ["header"]
    assert prm["scopes_supported"] == ["sites:read", "sites:write", "billing:read", "admin"]
    # RFC 8414 §2: issuer (its metadata lives at issuer + /.well-known/...), authorization and
    # token endpoints, response_types_supported are REQUIRED; MCP needs S256 advertised.
    assert asm["issuer"] == chat.url
    assert asm["authorization_endpoint"] == chat.url + "/oauth/authorize"
    assert asm["token_endpoint"] == chat.url + "/oauth/token"
    assert asm["response_types_supported"] == ["code"]
    assert asm["code_challenge_methods_supported"] == ["S256"]
    assert "authorization_code" in asm["grant_types_supported"]
    assert "implicit" not in asm["grant_types_supported"]
    assert asm["client_id_metadata_document_supported"] is True
    # And both parse as the SDK's own models of the documents.
    ProtectedResourceMetadata.model_validate(prm)
    OAuthMetadata.model_validate(asm)


def test_refusals_answer_with_status_and_challenge(chat: Chat, issuer: LocalTokenIssuer) -> None:
    metadata = chat.url + "/.well-known/oauth-protected-resource/mcp"
    alice = Principal("alice", Role.TENANT, frozenset({"acme"}))
    expired = McpTokenIssuer(chat.settings.model_copy(update={"mcp_token_ttl_seconds": -60}))
    other_resource = McpTokenIssuer(chat.settings).issue(
        alice, frozenset(SCOPES), TEST_CLIENT_ID, chat.url + "/other"
    )
    good = chat.token("alice")
    cases = {
        "no token": ({}, {}, 401, None),
        "not bearer": ({"Authorization": f"Basic {good}"}, {}, 401, "invalid_request"),
        "token in the query": ({}, {"access_token": good}, 400, "invalid_request"),
        "?t= as some hosts do": ({}, {"t": good}, 400, "invalid_request"),
        "header and query": ({"Authorization": f"Bearer {good}"}, {"token": good}, 400,
                             "invalid_request"),
        "expired": ({"Authorization": "Bearer " + expired.issue(
            alice, frozenset(SCOPES), TEST_CLIENT_ID, chat.resource)}, {}, 401, "invalid_token"),
        "an API token": ({"Authorization": "Bearer " + issuer.issue("alice", Role.TENANT,
                                                                   ["acme"])}, {}, 401,
                         "invalid_token"),
        "another resource": ({"Authorization": f"Bearer {other_resource}"}, {}, 401,
                             "invalid_token"),
        "forged": ({"Authorization": "Bearer x.y.z"}, {}, 401, "invalid_token"),
    }  # fmt: skip
    with chat.http() as http:
        for name, (headers, params, status, error) in cases.items():
            response = http.get(PROBE, headers=headers, params=params)
            assert response.status_code == status, (name, response.text)
            challenge = _challenge(response)
            assert challenge["resource_metadata"] == metadata, name
            assert challenge.get("error") == error, (name, challenge)
            assert good not in response.text and good not in response.headers["www-authenticate"]
        assert "expired" in _challenge(http.get(PROBE, headers=cases["expired"][0]))[
            "error_description"]  # fmt: skip
        assert "another audience" in http.get(PROBE, headers=cases["an API token"][0]).text
        assert http.get(PROBE, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    refused = insufficient_scope("sites:write")
    assert refused.status == 403
    assert refused.www_authenticate.startswith('Bearer error="insufficient_scope"')
    assert 'scope="sites:write"' in refused.www_authenticate


def test_the_flow_grants_role_scopes_and_derives_a_control_plane_token(
    chat: Chat, live_api: str, issuer: LocalTokenIssuer
) -> None:
    with chat.http() as http:
        alice = http.get(PROBE, headers={"Authorization": f"Bearer {chat.token('alice')}"})
        vera_token = chat.token("vera", "sites:read sites:write")
        vera = http.get(PROBE, headers={"Authorization": f"Bearer {vera_token}"}).json()
        root = http.get(PROBE, headers={"Authorization": f"Bearer {chat.token('root')}"}).json()
    # Scopes asked for, intersected with the role: a tenant never holds admin, a viewer
    # never sites:write.
    assert alice.json()["scopes"] == ["billing:read", "sites:read", "sites:write"]
    assert alice.json()["client_id"] == TEST_CLIENT_ID
    assert vera["scopes"] == ["sites:read"]
    assert root["scopes"] == sorted(SCOPES)
    # The control plane refuses the MCP token (another audience) and accepts the derived one,
    # which speaks for alice only.
    with httpx.Client(base_url=live_api, timeout=30) as api:
        mcp_token = {"Authorization": f"Bearer {vera_token}"}
        assert api.get("/v1/tenants/acme/sites", headers=mcp_token).status_code == 401
        assert issuer.verify(alice.json()["control_plane_token"]).client_id == TEST_CLIENT_ID
        derived = {"Authorization": f"Bearer {alice.json()['control_plane_token']}"}
        assert api.get("/v1/tenants/acme/sites", headers=derived).status_code == 200
        assert api.get("/v1/tenants/globex/sites", headers=derived).status_code == 404


def _authorize(http: httpx.Client, params: dict[str, str]) -> httpx.Response:
    return http.get("/oauth/authorize", params=params)


def test_authorize_never_redirects_to_an_unregistered_uri(chat: Chat) -> None:
    run = Authorization.fresh()
    with chat.http() as http:
        for client_id, redirect_uri in (
            ("", TEST_REDIRECT_URI), ("someone-else", TEST_REDIRECT_URI),
            (TEST_CLIENT_ID, "https://evil.example/callback"), (TEST_CLIENT_ID, ""),
            (TEST_CLIENT_ID, TEST_REDIRECT_URI + "/"), (TEST_CLIENT_ID, TEST_REDIRECT_URI + "?x=1"),
            (TEST_CLIENT_ID, TEST_REDIRECT_URI.upper()),
            (TEST_CLIENT_ID, "http://127.0.0.1:9/callback/../evil"),
        ):  # fmt: skip
            params = run.params(chat.resource, "sites:read", client_id, redirect_uri)
            response = _authorize(http, params)
            assert response.status_code == 400, (client_id, redirect_uri, response.text)
            assert "location" not in response.headers
            assert response.json()["detail"]
        # A second redirect_uri after the registered one must not be the one that counts.
        query = httpx.QueryParams(run.params(chat.resource, "sites:read")).add(
            "redirect_uri", "https://evil.example/callback"
        )
        twice = http.get(f"/oauth/authorize?{query}")
        assert twice.status_code == 400 and "location" not in twice.headers
        assert "redirect_uri" in twice.json()["detail"]


def test_authorize_sends_errors_back_with_the_state(chat: Chat) -> None:
    run = Authorization.fresh()
    good = run.params(chat.resource, "sites:read")
    cases = {
        "unsupported_response_type": {"response_type": "token"},
        "invalid_request": {"code_challenge_method": "plain"},
        "invalid_target": {"resource": chat.url + "/api"},
        "invalid_scope": {"scope": "sites:read everything"},
    }
    with chat.http() as http:
        for error, change in cases.items():
            response = _authorize(http, good | change)
            assert response.status_code == 302, (error, response.text)
            assert response.headers["location"].startswith(TEST_REDIRECT_URI + "?")
            back = query_of(response.headers["location"])
            assert back["error"] == error and back["state"] == run.state, back
            assert back["iss"] == chat.url and "code" not in back
        for missing in ("code_challenge", "resource"):
            params = {k: v for k, v in good.items() if k != missing}
            back = query_of(_authorize(http, params).headers["location"])
            assert back["error"] in ("invalid_request", "invalid_target"), back
            assert back["state"] == run.state


def _start(http: httpx.Client, chat: Chat, run: Authorization, scopes: str = "sites:read") -> str:
    started = _authorize(http, run.params(chat.resource, scopes))
    assert started.status_code == 302, started.text
    location: str = started.headers["location"]
    assert location.startswith("/signin?oauth=")
    return location


def _redeem(http: httpx.Client, chat: Chat, code: str, verifier: str,
            **changes: str) -> httpx.Response:  # fmt: skip
    form = {"grant_type": "authorization_code", "code": code, "client_id": TEST_CLIENT_ID,
            "redirect_uri": TEST_REDIRECT_URI, "code_verifier": verifier,
            "resource": chat.resource} | changes  # fmt: skip
    return http.post("/oauth/token", data=form)


def _code(http: httpx.Client, chat: Chat, run: Authorization, user: str = "alice") -> str:
    back = query_of(consent(http, _start(http, chat, run), sign_in(http, user, chat.key)))
    assert back["state"] == run.state and back["iss"] == chat.url
    return back["code"]


def test_codes_are_single_use_and_need_their_verifier(chat: Chat) -> None:
    with chat.http() as http:
        run = Authorization.fresh()
        code = _code(http, chat, run)
        answered = _redeem(http, chat, code, run.verifier)
        assert answered.status_code == 200
        assert answered.headers["cache-control"] == "no-store"
        token = answered.json()
        assert token["token_type"] == "Bearer" and token["expires_in"] == 900
        assert token["scope"] == "sites:read"
        again = _redeem(http, chat, code, run.verifier)
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        for change in ({"code_verifier": Authorization.fresh().verifier},
                       {"code_verifier": "short"}, {"client_id": "someone-else"},
                       {"redirect_uri": TEST_REDIRECT_URI + "/x"},
                       {"resource": chat.url + "/other"}):  # fmt: skip
            run = Authorization.fresh()
            code = _code(http, chat, run)
            refused = _redeem(http, chat, code, run.verifier, **change)
            assert refused.status_code == 400, (change, refused.text)
            assert refused.json()["error"] in ("invalid_grant", "invalid_target")
            assert "access_token" not in refused.json()
            # A failed attempt burns the code: no second guess at the verifier.
            assert _redeem(http, chat, code, run.verifier).json()["error"] == "invalid_grant"
        unknown = http.post("/oauth/token", data={"grant_type": "password"})
        assert unknown.json()["error"] == "unsupported_grant_type"


def test_codes_and_requests_expire(tmp_path: Path) -> None:
    records = OneTimeRecords(f"sqlite:///{tmp_path / 'chat.db'}")
    kept, taken = records.put("code", {"v": "a"}, 60), records.put("code", {"v": "b"}, 60)
    assert records.spend("code", taken) == {"v": "b"} and records.spend("code", taken) is None
    assert records.spend("confirmation", kept) is None  # a key is good for its own kind only
    assert records.peek("code", kept) == {"v": "a"}
    with clock.travel(clock.now() + timedelta(seconds=61)):
        assert records.peek("code", kept) is None and records.spend("code", kept) is None
    # Only hashes of the keys are stored.
    with records.engine.connect() as conn:
        stored = " ".join(str(row) for row in conn.execute(text("SELECT * FROM oauth_one_time")))
    assert kept not in stored and taken not in stored and key_hash(kept) in stored
    records.close()


def test_consent_needs_a_signed_in_user_and_is_answered_once(chat: Chat) -> None:
    with chat.http() as http:
        run = Authorization.fresh()
        location = _start(http, chat, run)
        request_id = query_of(location)["oauth"]
        unsigned = http.post(f"/oauth/requests/{request_id}", json={"approve": True})
        assert unsigned.status_code == 401
        forged = http.post(f"/oauth/requests/{request_id}", json={"approve": True},
                           headers={"Authorization": "Bearer x.y.z"})  # fmt: skip
        assert forged.status_code == 401
        described = http.get(f"/oauth/requests/{request_id}").json()
        assert described == {"client_id": TEST_CLIENT_ID, "client_name": TEST_CLIENT_ID,
                             "redirect_host": "127.0.0.1:9", "scopes": ["sites:read"]}  # fmt: skip
        denied = query_of(consent(http, location, sign_in(http, "alice", chat.key), False))
        assert denied == {"error": "access_denied", "error_description": "the user declined",
                          "state": run.state, "iss": chat.url}  # fmt: skip
        gone = http.post(f"/oauth/requests/{request_id}", json={"approve": True},
                         headers={"Authorization": f"Bearer {sign_in(http, 'alice', chat.key)}"})  # fmt: skip
        assert gone.status_code == 404
        # A viewer asking only for what the role cannot hold gets invalid_scope, no code.
        run = Authorization.fresh()
        location = _start(http, chat, run, "sites:write")
        refused = query_of(consent(http, location, sign_in(http, "vera", chat.key)))
        assert refused["error"] == "invalid_scope" and "code" not in refused


def test_the_consent_page_learns_which_scopes_the_role_grants_and_drops(chat: Chat) -> None:
    with chat.http() as http:
        request_id = query_of(_start(http, chat, Authorization.fresh(), " ".join(SCOPES)))["oauth"]
        path = f"/oauth/requests/{request_id}"

        def described(user: str) -> dict[str, Any]:
            bearer = {"Authorization": f"Bearer {sign_in(http, user, chat.key)}"}
            answer: dict[str, Any] = http.get(path, headers=bearer).raise_for_status().json()
            return answer

        everything = ["sites:read", "sites:write", "billing:read", "admin"]
        vera, alice, root = described("vera"), described("alice"), described("root")
        assert (vera["role"], vera["scopes"]) == ("viewer", everything)
        assert (vera["granted"], vera["dropped"]) == (["sites:read", "billing:read"],
                                                      ["sites:write", "admin"])  # fmt: skip
        assert (alice["granted"], alice["dropped"]) == (everything[:3], ["admin"])
        assert (root["granted"], root["dropped"]) == (everything, [])
        forged = http.get(path, headers={"Authorization": "Bearer x.y.z"})
        assert forged.status_code == 401 and "granted" not in forged.text
        # What the page shows is what consent grants: alice's code holds no admin.
        token = {"Authorization": f"Bearer {sign_in(http, 'alice', chat.key)}"}
        answered = http.post(path, json={"approve": True}, headers=token).raise_for_status()
        assert "code=" in answered.json()["redirect"]


def test_tokens_and_codes_stay_out_of_the_log(chat: Chat) -> None:
    before = LOG_FILE.stat().st_size if LOG_FILE.exists() else 0
    with chat.http() as http:
        run = Authorization.fresh()
        code = _code(http, chat, run)
        token = _redeem(http, chat, code, run.verifier).json()["access_token"]
        assert http.get(PROBE, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        http.get(PROBE, params={"access_token": token})
    with LOG_FILE.open(encoding="utf-8") as log:
        log.seek(before)
        written = log.read()
    for secret in (token, code, run.verifier, chat.key):
        assert secret not in written


def _metadata_document(doc: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/client.json")
    def document() -> dict[str, Any]:
        return doc

    return app


def test_client_id_metadata_documents(chat_settings: ChatSettings, admin_api: httpx.Client) -> None:
    assert admin_api.put("/v1/users/alice", json={"role": "tenant", "tenants": ["acme"]}).is_success
    port = free_port()
    client_id = f"http://127.0.0.1:{port}/client.json"
    redirect = "http://127.0.0.1:9/cimd-callback"
    doc = {"client_id": client_id, "client_name": "Desk Agent", "redirect_uris": [redirect]}
    with serve(_metadata_document(doc), port):
        for chat in _serve_chat(chat_settings):  # loopback documents not allowed here
            with chat.http() as http:
                run = Authorization.fresh()
                refused = _authorize(http, run.params(chat.resource, "sites:read", client_id,
                                                      redirect))  # fmt: skip
                assert refused.status_code == 400 and "https" in refused.json()["detail"]
        for chat in _serve_chat(chat_settings, mcp_allow_loopback_client_metadata=True):
            with chat.http() as http:
                run = Authorization.fresh()
                started = _authorize(http, run.params(chat.resource, "sites:read", client_id,
                                                      redirect))  # fmt: skip
                location = started.headers["location"]
                assert http.get(f"/oauth/requests/{query_of(location)['oauth']}").json()[
                    "client_name"] == "Desk Agent"  # fmt: skip
                back = query_of(consent(http, location, sign_in(http, "alice", chat.key)))
                token = _redeem(http, chat, back["code"], run.verifier, client_id=client_id,
                                redirect_uri=redirect)  # fmt: skip
                assert token.status_code == 200, token.text
                probe = http.get(PROBE, headers={
                    "Authorization": f"Bearer {token.json()['access_token']}"})  # fmt: skip
                assert probe.json()["client_id"] == client_id
                # The document's redirect URIs are the only ones.
                other = _authorize(http, run.params(chat.resource, "sites:read", client_id,
                                                    TEST_REDIRECT_URI))  # fmt: skip
                assert other.status_code == 400
                for bad_url in (client_id.replace("client.json", "missing.json"),
                                f"http://127.0.0.1:{port}/"):  # fmt: skip
                    bad = _authorize(http, run.params(chat.resource, "sites:read", bad_url,
                                                      redirect))  # fmt: skip
                    assert bad.status_code == 400, bad_url
    lying = {**doc, "client_id": "https://other.example/client.json"}
    with serve(_metadata_document(lying), port):
        for chat in _serve_chat(chat_settings, mcp_allow_loopback_client_metadata=True):
            with chat.http() as http:
                run = Authorization.fresh()
                refused = _authorize(http, run.params(chat.resource, "sites:read", client_id,
                                                      redirect))  # fmt: skip
                assert refused.status_code == 400 and "its own URL" in refused.json()["detail"]


def test_token_exchange_binds_a_sign_in_token_to_the_resource(
    chat: Chat, issuer: LocalTokenIssuer
) -> None:
    sign_in_token = issuer.issue("alice", Role.TENANT, ["acme"])
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": sign_in_token, "client_id": TEST_CLIENT_ID,
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "resource": chat.resource, "scope": "sites:read admin"}  # fmt: skip
    with chat.http() as http:
        answered = http.post("/oauth/token", data=form)
        assert answered.status_code == 200, answered.text
        assert answered.json()["scope"] == "sites:read"
        token = answered.json()["access_token"]
        probe = http.get(PROBE, headers={"Authorization": f"Bearer {token}"}).json()
        assert probe["sub"] == "alice" and probe["scopes"] == ["sites:read"]
        for change, error in (({"resource": chat.url + "/x"}, "invalid_target"),
                              ({"subject_token": "x.y.z"}, "invalid_grant"),
                              ({"subject_token": token}, "invalid_grant"),
                              ({"client_id": "nobody"}, "invalid_client"),
                              ({"subject_token_type": "saml"}, "invalid_request")):  # fmt: skip
            refused = http.post("/oauth/token", data=form | change)
            assert refused.json()["error"] == error, (change, refused.text)
            assert "access_token" not in refused.json()


def test_a_cold_sdk_client_discovers_its_way_from_a_401_to_a_token(chat: Chat) -> None:
    # The SDK's OAuthClientProvider knowing only the MCP URL and its pre-registered id: the
    # probe's 401 starts discovery (resource metadata, server metadata), then PKCE, the
    # browser's sign-in and consent, and the token request with `resource`.
    provider = sdk_oauth(McpStack(chat.url, chat.settings), "alice")

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(auth=provider, timeout=30) as client:
            return await client.get(chat.url + PROBE)

    answered = in_own_loop(call())
    assert answered.status_code == 200, answered.text
    # The probe verified the token's audience: the SDK sent resource = the MCP URL.
    assert answered.json()["sub"] == "alice"
    assert answered.json()["client_id"] == TEST_CLIENT_ID
    tokens = provider.context.current_tokens
    assert tokens is not None and tokens.scope == "sites:read sites:write billing:read"
    assert provider.context.oauth_metadata is not None
    assert str(provider.context.oauth_metadata.token_endpoint) == chat.url + "/oauth/token"
