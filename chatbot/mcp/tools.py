"""The agent's registry as MCP tools: input schemas, annotations, scopes, confirmation ids."""

from __future__ import annotations

import json
from typing import Any

from mcp import types

from chatbot.mcp.auth import McpCaller
from chatbot.oauth.onetime import OneTimeRecords
from tools.context import AgentContext, scoped_tenant
from tools.registry import ToolSpec, toolset, toolset_for
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


TENANT_ARG = "tenant_id"


def names_tenant(caller: McpCaller) -> bool:
    """Whether a non-admin caller names the tenant in each call: they hold several, and
    acting for one picked for them would be a guess."""
    principal = caller.principal
    return not principal.is_admin and len(principal.tenants) > 1


def tools_of(caller: McpCaller) -> dict[str, ToolSpec]:
    """The caller's tool set: the admin variant (tenant_id required), the tenant one, or
    for a user of several tenants the tenant tools with tenant_id required."""
    if names_tenant(caller):
        return {n: s for n, s in toolset(admin=True).items() if not s.admin_only}
    return toolset_for(caller.principal.role)


def take_tenant(caller: McpCaller, arguments: dict[str, Any]) -> str | None:
    """The tenant a call of a user of several tenants names, taken out of `arguments`
    (None for everyone else); PermissionError says what to fix."""
    if not names_tenant(caller):
        return None
    held = ", ".join(sorted(caller.principal.tenants))
    tenant = arguments.pop(TENANT_ARG, None)
    if tenant is None:
        raise PermissionError(f"you hold several tenants ({held}): name one as tenant_id")
    if not isinstance(tenant, str) or tenant not in caller.principal.tenants:
        raise PermissionError(f"tenant_id {tenant!r} is not one of your tenants ({held})")
    return tenant


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
    caller: McpCaller,
    control_plane_url: str,
    token: str,
    *,
    request_id: str,
    wait: float,
    tenant: str | None = None,
) -> AgentContext:
    """The tools' runtime context for an MCP caller acting for `tenant` (a user of several
    names one); `token` is the one derived for the control plane, never the MCP token."""
    return AgentContext(
        token=token,
        principal=caller.principal,
        control_plane_url=control_plane_url,
        tenant_id=scoped_tenant(caller.principal, tenant),
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


CONFIRMATION_KIND = "confirmation"
# Unspent confirmation ids one user may hold at once (each is a row every instance shares).
CONFIRMATIONS_PER_USER = 50


def _call_key(name: str, arguments: dict[str, Any]) -> str:
    return json.dumps([name, arguments], sort_keys=True, separators=(",", ":"), default=str)


class Confirmations:
    """Single-use confirmation ids, each for one caller, one client, one tenant and one tool
    call, in the one-time table every chat instance shares."""

    def __init__(self, records: OneTimeRecords, ttl: float = CONFIRMATION_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._records = records

    @staticmethod
    def _payload(
        caller: McpCaller, name: str, arguments: dict[str, Any], tenant: str | None
    ) -> dict[str, Any]:
        return {"owner": [caller.principal.key, caller.client_id], "tenant": tenant,
                "call": _call_key(name, arguments)}  # fmt: skip

    def issue(
        self, caller: McpCaller, name: str, arguments: dict[str, Any], tenant: str | None
    ) -> str:
        """A new id that lets exactly this call, for `tenant`, run once within the ttl."""
        payload = self._payload(caller, name, arguments, tenant)
        return self._records.put(CONFIRMATION_KIND, payload, self.ttl, owner=caller.principal.key,
                                 max_per_owner=CONFIRMATIONS_PER_USER,
                                 what="confirmation ids")  # fmt: skip

    def redeem(
        self,
        confirmation_id: str,
        caller: McpCaller,
        name: str,
        arguments: dict[str, Any],
        tenant: str | None,
    ) -> bool:
        """Whether the id was issued for this caller, client, tenant and call and is
        unexpired; it is spent either way, so a wrong guess cannot be retried against it."""
        spent = self._records.spend(CONFIRMATION_KIND, confirmation_id)
        return spent == self._payload(caller, name, arguments, tenant)
