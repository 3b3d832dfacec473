"""`aipress mcp --as USER`: the same MCP server over stdio, for desktop clients on this machine
(whoever runs it can read the local signing key, so the user is chosen, not signed in)."""

from __future__ import annotations

import anyio
from mcp.server.stdio import stdio_server

from chatbot.mcp.auth import McpAuth, McpCaller
from chatbot.mcp.server import Invocation, build_server
from chatbot.mcp.tools import Confirmations
from chatbot.oauth.onetime import OneTimeRecords
from chatbot.oauth.scopes import ROLE_SCOPES
from chatbot.settings import ChatSettings
from chatbot.upstream import identity_for, sync_client
from controlplane.kernel.identity import Principal
from controlplane.kernel.logs import configure_logging

STDIO_CLIENT_ID = "aipress-stdio"


def stdio_caller(settings: ChatSettings, principal: Principal) -> McpCaller:
    """The local user as an MCP caller holding every scope the role may hold."""
    return McpCaller(principal, ROLE_SCOPES[principal.role], STDIO_CLIENT_ID, McpAuth(settings))


async def serve_stdio(settings: ChatSettings, caller: McpCaller) -> None:
    """Answer MCP on stdin/stdout until the client closes it (logs go to stderr or the file)."""
    with sync_client(settings, identity_for(settings), timeout=30) as http:
        invocation = Invocation(caller, http)
        server = build_server(
            settings, lambda _context: invocation,
            Confirmations(OneTimeRecords(settings.chat_checkpoint_url)),
        )  # fmt: skip
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


def run_stdio(settings: ChatSettings, principal: Principal) -> None:
    """The blocking entry point of `aipress mcp`."""
    configure_logging(settings.log_level, settings.log_file, json=settings.log_json)
    anyio.run(serve_stdio, settings, stdio_caller(settings, principal))
