"""The chat service served with its /mcp endpoint, MCP access tokens signed by its own
issuer, and sessions of the official SDK's client against it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from mcp import ClientSession
from mcp.client.session import ElicitationFnT
from mcp.client.streamable_http import streamable_http_client

from chatbot.mcp.auth import MCP_PATH
from chatbot.oauth.scopes import SCOPES
from chatbot.oauth.tokens import McpTokenIssuer
from chatbot.service import create_app
from chatbot.settings import ChatSettings
from controlplane.kernel.identity import Principal, Role
from controlplane.settings import Settings
from tests.live import free_port, in_own_loop, serve

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
        token: str,
        work: Callable[[ClientSession], Awaitable[T]],
        *,
        elicitation: ElicitationFnT | None = None,
    ) -> T:
        """Open an SDK client session with `token`, initialise it, and run `work` in it."""

        async def run() -> T:
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(60, read=300)) as http,
                streamable_http_client(self.mcp_url, http_client=http) as (read, write, _),
                ClientSession(read, write, elicitation_callback=elicitation) as session,
            ):
                await session.initialize()
                return await work(session)

        return in_own_loop(run())


def tool_call(name: str, arguments: dict[str, Any], request_id: int = 1) -> dict[str, Any]:
    """A tools/call JSON-RPC request body."""
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}  # fmt: skip


@contextmanager
def served_chat(settings: Settings, control_plane_url: str, **overrides: Any) -> Iterator[McpStack]:
    """The chat service (same home as `settings`) on a loopback port, its tools calling
    `control_plane_url`."""
    port = free_port()
    values = {**settings.shared(), "chat_port": port, "chat_control_plane_url": control_plane_url,
              "chat_public_url": f"http://127.0.0.1:{port}", **overrides}  # fmt: skip
    chat_settings = ChatSettings(**values)
    with serve(create_app(chat_settings), port=port) as url:
        yield McpStack(url, chat_settings)
