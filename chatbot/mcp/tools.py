"""The agent's registry as MCP tools: input schemas, annotations, scopes, confirmation ids."""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from mcp import types

from chatbot.mcp.auth import McpCaller
from tools.context import AgentContext, scoped_tenant
from tools.registry import ToolSpec, toolset_for
from tools.results import ToolResult

READ, WRITE, BILLING, ADMIN = "sites:read", "sites:write", "billing:read", "admin"
# Tools that only read. Everything else writes; a tool added to the registry later is a write
# (scope sites:write, not read-only, not idempotent) until it is named here.
READ_ONLY = frozenset(
    {"list_sites", "get_site", "query_logs", "get_metrics", "get_billing", "list_env",
     "list_backups", "get_drift", "list_packages", "list_tenants", "billing_summary"}
)  # fmt: skip
BILLING_TOOLS = frozenset({"get_billing"})
# Writes that a second identical call leaves as the first left them.
IDEMPOTENT_WRITES = frozenset({"delete_site", "set_env"})
CONFIRMATION_ARG = "confirmation_id"
CONFIRMATION_TTL_SECONDS = 600.0
OUTPUT_SCHEMA: dict[str, Any] = ToolResult.model_json_schema()


def required_scope(spec: ToolSpec) -> str:
    """The OAuth scope a call of this tool needs."""
    if spec.admin_only:
        return ADMIN
    if spec.name in BILLING_TOOLS:
        return BILLING
    return READ if spec.name in READ_ONLY else WRITE


def tools_of(caller: McpCaller) -> dict[str, ToolSpec]:
    """The caller's tool set: the admin variant (tenant_id required) or the tenant one."""
    return toolset_for(caller.principal.role)


def input_schema(spec: ToolSpec) -> dict[str, Any]:
    """The tool's argument model as JSON Schema; a destructive tool also takes the
    confirmation id its first call handed out."""
    schema = spec.args_model.model_json_schema()
    schema.pop("title", None)
    if spec.destructive:
        schema.setdefault("properties", {})[CONFIRMATION_ARG] = {
            "type": "string",
            "description": "Leave out on the first call: it answers with a preview and a "
            "confirmation_id. Show the preview to the user; only after they agree, call "
            "again with the same arguments and that confirmation_id.",
        }
    return schema


def definition(spec: ToolSpec) -> types.Tool:
    """One registry tool as MCP lists it."""
    read_only = spec.name in READ_ONLY
    return types.Tool(
        name=spec.name,
        description=spec.description,
        inputSchema=input_schema(spec),
        outputSchema=OUTPUT_SCHEMA,
        annotations=types.ToolAnnotations(
            readOnlyHint=read_only,
            destructiveHint=spec.destructive,
            idempotentHint=read_only or spec.name in IDEMPOTENT_WRITES,
            openWorldHint=False,
        ),
    )


def definitions(caller: McpCaller) -> list[types.Tool]:
    """The tools the caller's role has, in the registry's order."""
    return [definition(spec) for spec in tools_of(caller).values()]


def agent_context(
    caller: McpCaller, control_plane_url: str, token: str, *, request_id: str, wait: float
) -> AgentContext:
    """The tools' runtime context for an MCP caller; `token` is the one derived for the
    control plane, never the MCP access token."""
    return AgentContext(
        token=token,
        principal=caller.principal,
        control_plane_url=control_plane_url,
        tenant_id=scoped_tenant(caller.principal),
        request_id=request_id,
        operation_wait_seconds=wait,
    )


def result_content(result: ToolResult) -> types.CallToolResult:
    """A tool's structured result as MCP's: structured content plus the same JSON as text."""
    structured = result.model_dump(mode="json", exclude_none=True)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(structured))],
        structuredContent=structured,
        isError=result.status in ("error", "unavailable"),
    )


@dataclass(frozen=True)
class _Pending:
    owner: tuple[str, str]  # (principal key, client id)
    call: str  # tool name and canonical arguments
    expires: float


def _call_key(name: str, arguments: dict[str, Any]) -> str:
    return json.dumps([name, arguments], sort_keys=True, separators=(",", ":"), default=str)


class Confirmations:
    """Single-use confirmation ids, each for one caller, one client, one tool call."""

    def __init__(self, ttl: float = CONFIRMATION_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def issue(self, caller: McpCaller, name: str, arguments: dict[str, Any]) -> str:
        """A new id that lets exactly this call run once, within the ttl."""
        now = time.monotonic()
        confirmation_id = secrets.token_urlsafe(24)
        pending = _Pending(
            (caller.principal.key, caller.client_id), _call_key(name, arguments), now + self.ttl
        )
        with self._lock:
            self._pending = {k: p for k, p in self._pending.items() if p.expires > now}
            self._pending[confirmation_id] = pending
        return confirmation_id

    def redeem(
        self, confirmation_id: str, caller: McpCaller, name: str, arguments: dict[str, Any]
    ) -> bool:
        """Whether the id was issued for this caller, client and call and is unexpired; it
        is spent either way, so a wrong guess cannot be retried against it."""
        with self._lock:
            pending = self._pending.pop(confirmation_id, None)
        return (
            pending is not None
            and pending.expires > time.monotonic()
            and pending.owner == (caller.principal.key, caller.client_id)
            and pending.call == _call_key(name, arguments)
        )
