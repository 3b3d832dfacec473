"""The MCP server: the registry's tools over streamable HTTP at /mcp (and stdio), each call
run for the verified caller with a token derived for the control plane."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import httpx
from fastapi import FastAPI
from mcp import types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from chatbot.limits import RateLimited, RateLimiter
from chatbot.mcp import tools as mcp_tools
from chatbot.mcp.auth import (
    MCP_PATH,
    McpAuthError,
    McpCaller,
    authenticate,
    control_plane_token,
    insufficient_scope,
)
from chatbot.oauth.onetime import OneTimeRecords
from chatbot.settings import ChatSettings
from controlplane.kernel.logs import get_logger
from controlplane.kernel.problems import problem
from tools.context import Emit
from tools.registry import ToolSpec, confirmation, run_tool
from tools.results import ToolResult

log = get_logger("aipress.mcp")
CALLER_KEY = "aipress.mcp_caller"
NOT_KEPT = ""  # what the SDK's session binding holds of the access token: nothing
ELICIT_FIELD = "confirm"
NEEDS_A_PERSON = (
    "this step needs a person to type or upload something (a secret's value, an export file) "
    "into the confirmation card of the AIPress widget or dashboard; an MCP client cannot pass "
    "it. Ask the user to do it there."
)


@dataclass(frozen=True)
class Invocation:
    """Who a tool call runs for and the HTTP pool its control-plane calls share."""

    caller: McpCaller
    http: httpx.Client | None


Resolve = Callable[[Any], Invocation]  # from the SDK's request context


def build_server(
    settings: ChatSettings, resolve: Resolve, confirmations: mcp_tools.Confirmations
) -> Server[Any, Any]:
    """An MCP server whose tools are the registry's, answering each caller's own variant."""
    server: Server[Any, Any] = Server(
        "aipress",
        instructions="AIPress operations: WordPress sites, their logs, metrics, costs and "
        "backups, for the signed-in user's tenant (admins name the tenant in each call).",
    )

    @server.list_tools()  # type: ignore[no-untyped-call, untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        return mcp_tools.definitions(resolve(server.request_context).caller)

    async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
        context = server.request_context
        invocation = resolve(context)
        request_id = f"mcp-{uuid.uuid4().hex[:16]}"
        name, arguments = request.params.name, dict(request.params.arguments or {})
        call = _Call(settings, confirmations, invocation, context, request_id)
        result = await call.run(name, arguments)
        caller = invocation.caller
        log.info("mcp.tool_call", tool=name, status=result.status, client_id=caller.client_id,
                 sub=caller.principal.sub, role=caller.principal.role.value,
                 request_id=request_id)  # fmt: skip
        return types.ServerResult(mcp_tools.result_content(result))

    # Our own handler, not @server.call_tool(): that one validates against a tool cache the
    # server shares across callers, and a tenant's and an admin's schemas differ.
    server.request_handlers[types.CallToolRequest] = call_tool
    return server


class _Call:
    """One tools/call: scope, tenant, the human confirmation of a destructive call, the run."""

    def __init__(
        self,
        settings: ChatSettings,
        confirmations: mcp_tools.Confirmations,
        invocation: Invocation,
        context: Any,
        request_id: str,
    ) -> None:
        self.settings = settings
        self.confirmations = confirmations
        self.caller = invocation.caller
        self.http = invocation.http
        self.context = context
        self.request_id = request_id
        self.tenant: str | None = None  # the one a user of several tenants named

    async def run(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """The tool's result; every refusal is a result too, with what to fix."""
        spec = mcp_tools.tools_of(self.caller).get(name)
        if spec is None:
            return ToolResult.failed(f"there is no tool named {name!r} for your role")
        scope = mcp_tools.required_scope(spec)
        if scope not in self.caller.scopes:
            return ToolResult.failed(insufficient_scope(scope).detail, http_status=403)
        try:
            tenant = mcp_tools.take_tenant(self.caller, arguments)
        except PermissionError as exc:
            return ToolResult.failed(str(exc), http_status=403)
        try:
            ctx = mcp_tools.agent_context(
                self.caller, self.settings.tools_base_url, control_plane_token(self.caller),
                request_id=self.request_id, wait=self.settings.chat_operation_wait_seconds,
                tenant=tenant,
            )  # fmt: skip
        except PermissionError as exc:
            return ToolResult.failed(str(exc), http_status=403)
        self.tenant = tenant
        confirmation_id = arguments.pop(mcp_tools.CONFIRMATION_ARG, None)
        if spec.destructive and spec.asks(arguments):
            refusal = await self._confirmed(spec, arguments, confirmation_id, ctx)
            if refusal is not None:
                return refusal
        elif confirmation_id is not None:
            arguments[mcp_tools.CONFIRMATION_ARG] = confirmation_id  # refused as unknown below
        emit = self._progress()
        return await anyio.to_thread.run_sync(run_tool, name, arguments, ctx, emit, self.http)

    async def _confirmed(
        self, spec: ToolSpec, arguments: dict[str, Any], confirmation_id: Any, ctx: Any
    ) -> ToolResult | None:
        """None once a person agreed to this call; else what to answer instead."""
        if confirmation_id is not None:
            if isinstance(confirmation_id, str) and await anyio.to_thread.run_sync(
                self.confirmations.redeem,
                confirmation_id,
                self.caller,
                spec.name,
                arguments,
                self.tenant,
            ):
                return None
            return ToolResult.failed(
                "this confirmation_id is unknown, used, expired, or was given for other "
                "arguments or another tenant: call again without it for a new preview; "
                "nothing was done"
            )
        preview = await anyio.to_thread.run_sync(confirmation, spec.name, arguments, ctx, self.http)
        if preview.status != "ok":
            return preview
        data: dict[str, Any] = preview.data
        if "input" in data:
            return ToolResult(status="unavailable", data=data, error=NEEDS_A_PERSON)
        if self._client_elicits():
            if await self._elicit(str(data["question"])):
                return None
            return ToolResult(
                status="cancelled", data=data, error="the user did not confirm; nothing was done"
            )
        try:
            confirmation_id = await anyio.to_thread.run_sync(
                self.confirmations.issue, self.caller, spec.name, arguments, self.tenant
            )
        except OverflowError as exc:
            return ToolResult.failed(f"{exc}; nothing was done", http_status=429)
        pending = {mcp_tools.CONFIRMATION_ARG: confirmation_id,
                   "expires_in_seconds": int(self.confirmations.ttl)}  # fmt: skip
        return ToolResult(
            status="awaiting_confirmation",
            data={**data, **pending},
            error="nothing was done yet: show the question to the user; only if they agree, "
            "call again with the same arguments and this confirmation_id",
        )

    def _client_elicits(self) -> bool:
        params = self.context.session.client_params
        return params is not None and params.capabilities.elicitation is not None

    async def _elicit(self, question: str) -> bool:
        """Ask the person at the client; only an explicit yes counts."""
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {ELICIT_FIELD: {"type": "boolean", "title": "Go ahead",
                                          "description": "Tick to confirm"}},
            "required": [ELICIT_FIELD],
        }  # fmt: skip
        answer = await self.context.session.elicit_form(
            question, schema, related_request_id=self.context.request_id
        )
        return answer.action == "accept" and (answer.content or {}).get(ELICIT_FIELD) is True

    def _progress(self) -> Emit:
        """Relay an operation's events as MCP progress, when the client asked for it."""
        meta = self.context.meta
        token = meta.progressToken if meta is not None else None
        session, related = self.context.session, str(self.context.request_id)
        count = 0

        def emit(event: dict[str, Any]) -> None:
            nonlocal count
            if token is None or event.get("type") != "progress":
                return
            count += 1
            message = " ".join(str(event[k]) for k in ("event", "step") if event.get(k))
            with contextlib.suppress(Exception):  # progress is best effort
                anyio.from_thread.run(
                    session.send_progress_notification, token, count, None, message, related
                )

        return emit


# -- streamable HTTP --------------------------------------------------------------------


def _http_invocation(context: Any) -> Invocation:
    request: Request = context.request
    caller: McpCaller = request.scope[CALLER_KEY]
    return Invocation(caller, request.app.state.engine.http)


def _called_tools(body: bytes) -> list[str]:
    """The tool names a JSON-RPC POST body calls (a batch may call several)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return []  # the transport answers the parse error
    messages = parsed if isinstance(parsed, list) else [parsed]
    return [
        str(m["params"].get("name"))
        for m in messages
        if isinstance(m, dict) and m.get("method") == "tools/call"
        and isinstance(m.get("params"), dict)
    ]  # fmt: skip


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None past `limit` bytes."""
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the buffered body over once, then the client's own messages."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class McpGate:
    """Before the transport sees a request: the bearer token, the scope each called tool
    needs (403 insufficient_scope) and the caller's rate (429), as HTTP answers."""

    def __init__(
        self,
        manager: StreamableHTTPSessionManager,
        body_limit: int,
        origins: frozenset[str],
        sessions_per_user: int = 20,
    ) -> None:
        self.manager = manager
        self.body_limit = body_limit
        self.origins = origins
        self.sessions_per_user = sessions_per_user

    def _sessions_of(self, caller: McpCaller) -> int:
        """How many open sessions the caller's user opened (any client). The SDK caps
        sessions for everyone at once only, so without this one user could hold them all."""
        owners = getattr(self.manager, "_session_owners", {})
        return sum(1 for owner in owners.values() if owner.get("subject") == caller.principal.key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point of /mcp."""
        request = Request(scope, receive)
        origin = request.headers.get("origin")
        if origin is not None and origin.rstrip("/") not in self.origins:
            # A page on another origin (DNS rebinding included) never drives the endpoint.
            detail = f"requests from origin {origin} are refused; add it to chat_allowed_origins"
            await problem(403, detail)(scope, receive, send)
            return
        try:
            caller = authenticate(request)
            if request.method == "POST":
                body = await _read_body(receive, self.body_limit)
                if body is None:
                    await problem(413, f"the body is over {self.body_limit} bytes")(
                        scope, receive, send
                    )
                    return
                self._admit(request, caller, _called_tools(body))
                opening = request.headers.get("mcp-session-id") is None
                if opening and self._sessions_of(caller) >= self.sessions_per_user:
                    detail = (
                        f"at most {self.sessions_per_user} open MCP sessions per user: "
                        "end one (DELETE /mcp with its Mcp-Session-Id) or let it idle out"
                    )
                    await problem(429, detail)(scope, receive, send)
                    return
                receive = _replay(body, receive)
        except McpAuthError as exc:
            response = problem(exc.status, exc.detail)
            response.headers["WWW-Authenticate"] = exc.www_authenticate
            await response(scope, receive, send)
            return
        except RateLimited as exc:
            response = problem(429, str(exc))
            response.headers["Retry-After"] = str(exc.retry_after)
            await response(scope, receive, send)
            return
        scope[CALLER_KEY] = caller
        # The SDK binds a session to the identity that opened it: another user (or another
        # client of the same user) presenting its id gets 404.
        scope["user"] = AuthenticatedUser(
            AccessToken(
                token=NOT_KEPT, client_id=caller.client_id, scopes=sorted(caller.scopes),
                subject=caller.principal.key, claims={"iss": caller.principal.issuer},
            )
        )  # fmt: skip
        await self.manager.handle_request(scope, receive, send)

    def _admit(self, request: Request, caller: McpCaller, names: list[str]) -> None:
        tools = mcp_tools.tools_of(caller)
        for name in names:
            spec = tools.get(name)  # an unknown name is the tool call's own error
            if spec is not None and mcp_tools.required_scope(spec) not in caller.scopes:
                raise insufficient_scope(mcp_tools.required_scope(spec))
        limiter: RateLimiter = request.app.state.limiter
        for _ in names:
            limiter.hit(caller.principal.key)


class McpService:
    """The /mcp endpoint of the chat service and its session manager."""

    def __init__(self, settings: ChatSettings, records: OneTimeRecords) -> None:
        self.confirmations = mcp_tools.Confirmations(records)
        self.server = build_server(settings, _http_invocation, self.confirmations)
        self.manager = StreamableHTTPSessionManager(self.server)
        origins = frozenset({settings.chat_origin, *settings.chat_allowed_origins})
        self.gate = McpGate(self.manager, DEFAULT_MAX_REQUEST_BODY_SIZE, origins,
                            settings.mcp_sessions_per_user)  # fmt: skip

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Run the session manager for the app's lifetime."""
        return self.manager.run()


def install_mcp(app: FastAPI, settings: ChatSettings, records: OneTimeRecords) -> McpService:
    """Serve MCP at /mcp on the app; its lifespan must enter `app.state.mcp.running()`."""
    service = McpService(settings, records)
    app.router.routes.append(Route(MCP_PATH, service.gate, methods=["GET", "POST", "DELETE"]))
    app.state.mcp = service
    return service
