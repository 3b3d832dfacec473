"""The chat service served with its /mcp endpoint, MCP access tokens signed by its own
issuer, and sessions of the official SDK's client against it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import httpx
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ElicitationFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from chatbot.mcp.auth import MCP_PATH
from chatbot.oauth.scopes import SCOPES
from chatbot.oauth.tokens import McpTokenIssuer
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import load_sign_in_key
from controlplane.kernel.identity import Principal, Role
from controlplane.settings import Settings
from tests import mcp_oauth
from tests.live import in_own_loop

T = TypeVar("T")


@dataclass(frozen=True)
class McpStack:
    """A served chat service: its URL, its settings, tokens for its /mcp."""

    url: str
    settings: ChatSettings

    @property
    def mcp_url(self) -> str:
        """The MCP endpoint (also the tokens' audience)."""
        return self.url + MCP_PATH

    def token(
        self,
        sub: str,
        role: str,
        *tenants: str,
        scopes: tuple[str, ...] = SCOPES,
        client_id: str = "test-client",
        ttl: int | None = None,
    ) -> str:
        """An MCP access token from the service's own issuer."""
        issuer = McpTokenIssuer(self.settings)
        if ttl is not None:
            issuer.ttl = ttl
        principal = Principal(sub=sub, role=Role(role), tenants=frozenset(tenants))
        return issuer.issue(principal, frozenset(scopes), client_id, self.mcp_url)

    def post(self, token: str | None, body: dict[str, Any], **params: str) -> httpx.Response:
        """One raw JSON-RPC POST to /mcp (no session), with `token` as bearer if given."""
        headers = {"Accept": "application/json, text/event-stream"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.post(self.mcp_url, json=body, headers=headers, params=params, timeout=30)

    def session(
        self,
        token: str | httpx.Auth,
        work: Callable[[ClientSession], Awaitable[T]],
        *,
        elicitation: ElicitationFnT | None = None,
    ) -> T:
        """Open an SDK client session with `token` (or an httpx auth such as the SDK's OAuth
        client), initialise it, and run `work` in it."""

        async def run() -> T:
            auth = _Bearer(token) if isinstance(token, str) else token
            async with (
                httpx.AsyncClient(auth=auth, timeout=httpx.Timeout(60, read=300)) as http,
                streamable_http_client(self.mcp_url, http_client=http) as (read, write, _),
                ClientSession(read, write, elicitation_callback=elicitation) as session,
            ):
                await session.initialize()
                return await work(session)

        return in_own_loop(run())


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def tool_call(name: str, arguments: dict[str, Any], request_id: int = 1) -> dict[str, Any]:
    """A tools/call JSON-RPC request body."""
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}  # fmt: skip


@contextmanager
def served_chat(settings: Settings, control_plane_url: str, **overrides: Any) -> Iterator[McpStack]:
    """The chat service (same home as `settings`, knowing the test OAuth client) on a
    loopback port, its tools calling `control_plane_url`."""
    values = {**settings.shared(), "chat_control_plane_url": control_plane_url, **overrides}
    with mcp_oauth.served_chat(ChatSettings(**values)) as (url, served):
        yield McpStack(url, served)


def sdk_oauth(stack: McpStack, user: str, scopes: str | None = None) -> OAuthClientProvider:
    """The SDK's OAuth client for /mcp; its browser signs `user` in on the demo page and
    consents. Every step of discovery, PKCE and the token request is the SDK's own."""
    key = load_sign_in_key(stack.settings)
    returned: dict[str, str] = {}

    def browse(url: str) -> None:
        with httpx.Client(base_url=stack.url, timeout=30) as browser:
            started = browser.get(url)
            assert started.status_code == 302, started.text
            signed_in = mcp_oauth.sign_in(browser, user, key)
            back = mcp_oauth.consent(browser, started.headers["location"], signed_in)
            returned.update(mcp_oauth.query_of(back))

    async def redirect_handler(url: str) -> None:
        await anyio.to_thread.run_sync(browse, url)

    async def callback_handler() -> tuple[str, str | None]:
        return returned["code"], returned.get("state")

    metadata = OAuthClientMetadata(
        redirect_uris=[mcp_oauth.TEST_REDIRECT_URI],  # type: ignore[list-item]
        token_endpoint_auth_method="none", scope=scopes,
    )  # fmt: skip
    return OAuthClientProvider(
        server_url=stack.mcp_url, client_metadata=metadata, storage=mcp_oauth.SdkStorage(),
        redirect_handler=redirect_handler, callback_handler=callback_handler,
    )  # fmt: skip
