"""The MCP authorization flow over HTTP, as a browser and an OAuth client run it: authorize,
the sign-in page, consent, the redirect back, and the token endpoint (real tokens for tests)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from chatbot.oauth.grants import s256
from chatbot.service import create_app
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import load_sign_in_key
from controlplane.kernel.settings import SharedSettings
from tests.live import free_port, serve

TEST_CLIENT_ID = "aipress-tests"
# Never contacted: the flow reads the code from the consent answer's redirect URL.
TEST_REDIRECT_URI = "http://127.0.0.1:9/callback"


def with_test_client(settings: ChatSettings, port: int) -> ChatSettings:
    """`settings` for a chat service on `port` that knows the test client."""
    clients = {**settings.mcp_clients, TEST_CLIENT_ID: (TEST_REDIRECT_URI,)}
    return settings.model_copy(update={"chat_port": port, "mcp_clients": clients})


@contextmanager
def served_chat(settings: ChatSettings) -> Iterator[tuple[str, ChatSettings]]:
    """The chat service on a loopback port whose URL is its issuer and resource base."""
    port = free_port()
    served = with_test_client(settings, port)
    with serve(create_app(served), port) as url:
        yield url, served


@dataclass
class Authorization:
    """One run of the flow: the PKCE pair and state the client keeps."""

    verifier: str
    state: str

    @classmethod
    def fresh(cls) -> Authorization:
        """A new verifier and state."""
        return cls(secrets.token_urlsafe(48), secrets.token_urlsafe(16))

    def params(self, resource: str, scopes: str, client_id: str = TEST_CLIENT_ID,
               redirect_uri: str = TEST_REDIRECT_URI) -> dict[str, str]:  # fmt: skip
        """The /oauth/authorize query of this run."""
        return {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                "state": self.state, "code_challenge": s256(self.verifier),
                "code_challenge_method": "S256", "resource": resource, "scope": scopes}  # fmt: skip


def sign_in(http: httpx.Client, user: str, sign_in_key: str) -> str:
    """The demo sign-in page's token for `user` (what the page's button does)."""
    minted = http.post("/auth/local/token", json={"uid": user},
                       headers={"X-AIPress-Sign-In-Key": sign_in_key})  # fmt: skip
    token: str = minted.raise_for_status().json()["token"]
    return token


def consent(http: httpx.Client, location: str, sign_in_token: str, approve: bool = True) -> str:
    """Follow /authorize's redirect to the sign-in page and answer its consent: the URL the
    browser is sent back to."""
    page = http.get(location)
    assert page.status_code == 200 and "Sign in" in page.text, page.text
    request_id = parse_qs(urlsplit(location).query)["oauth"][0]
    assert http.get(f"/oauth/requests/{request_id}").status_code == 200
    answered = http.post(f"/oauth/requests/{request_id}", json={"approve": approve},
                         headers={"Authorization": f"Bearer {sign_in_token}"})  # fmt: skip
    redirect: str = answered.raise_for_status().json()["redirect"]
    return redirect


def query_of(url: str) -> dict[str, str]:
    """A URL's query parameters (each once)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def obtain_token(base_url: str, user: str, scopes: str, resource: str, *,
                 sign_in_key: str | None = None, settings: SharedSettings | None = None) -> str:  # fmt: skip
    """An MCP access token for `user` from the real authorization-code + PKCE flow. The
    demo sign-in needs the machine's key: pass it, or the settings whose home holds it."""
    if sign_in_key is None:
        if settings is None:
            raise TypeError("obtain_token needs sign_in_key= or settings=")
        sign_in_key = load_sign_in_key(settings)
    run = Authorization.fresh()
    with httpx.Client(base_url=base_url, timeout=30) as http:
        started = http.get("/oauth/authorize", params=run.params(resource, scopes))
        assert started.status_code == 302, started.text
        back = query_of(
            consent(http, started.headers["location"], sign_in(http, user, sign_in_key))
        )
        assert back.get("state") == run.state, back
        answered = http.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": back["code"], "client_id": TEST_CLIENT_ID,
            "redirect_uri": TEST_REDIRECT_URI, "code_verifier": run.verifier, "resource": resource,
        })  # fmt: skip
        token: str = answered.raise_for_status().json()["access_token"]
        return token


class SdkStorage:
    """The SDK client's token storage, the test client pre-registered (no dynamic
    registration here): it knows its id and the MCP URL, nothing else of the server."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client = OAuthClientInformationFull(
            client_id=TEST_CLIENT_ID, redirect_uris=[TEST_REDIRECT_URI],  # type: ignore[list-item]
            token_endpoint_auth_method="none",
        )  # fmt: skip

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info
