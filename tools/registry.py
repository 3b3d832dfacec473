"""The tool sets: which tools a role gets, their schemas for the model, and how one runs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import httpx
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

from controlplane.kernel.identity import Role
from tools import args as a
from tools import calls
from tools.context import AgentContext, Emit
from tools.results import ToolResult


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its name, what the model is told, its arguments and its body."""

    name: str
    description: str
    args_model: type[a.ToolArgs]
    body: calls.ToolBody
    label: str  # what the widget shows while it runs; {argument} is filled from the call
    destructive: bool = False
    admin_only: bool = False
    # The site's `allowed_actions` entry a destructive call needs (the confirm node checks it).
    site_action: str | None = None

    def schema(self) -> dict[str, Any]:
        """The OpenAI-style function schema every chat model binds."""
        tool = convert_to_openai_tool(self.args_model)
        tool["function"]["name"] = self.name
        tool["function"]["description"] = self.description
        return tool


BASE_TOOLS = (
    ToolSpec("list_sites", "List the sites with their status and URL.", a.ListSitesArgs,
             calls.list_sites, "Listing sites"),
    ToolSpec("get_site", "Show one site: status, URL, domains and its recent operations.",
             a.GetSiteArgs, calls.get_site, "Looking up {site}"),
    ToolSpec("create_site", "Create a WordPress site and wait until it serves pages; returns "
             "its URL. Needs a name and the admin e-mail: ask the user for what is missing.",
             a.CreateSiteArgs, calls.create_site, "Creating site {site}"),
    ToolSpec("delete_site", "Delete a site, its database and files (a backup is taken first). "
             "The user is asked to confirm before anything happens.", a.DeleteSiteArgs,
             calls.delete_site, "Deleting site {site}", destructive=True, site_action="delete"),
    ToolSpec("query_logs", "Search a site's logs: HTTP requests, web-server and PHP errors. "
             "Filter by time window, severity, HTTP status and text.", a.QueryLogsArgs,
             calls.query_logs, "Searching the logs of {site}"),
    ToolSpec("get_metrics", "A site's requests, error rate and latency percentiles over a "
             "window; use it for 'is my site slow?'.", a.GetMetricsArgs, calls.get_metrics,
             "Measuring {site}"),
    ToolSpec("get_billing", "Net costs (cost + credits, per currency) between two dates, "
             "grouped by day, service or site, with when the data was last refreshed.",
             a.GetBillingArgs, calls.get_billing, "Reading costs"),
)  # fmt: skip
ADMIN_ONLY_TOOLS = (
    ToolSpec("list_tenants", "List every tenant of the platform.", a.ListTenantsArgs,
             calls.list_tenants, "Listing tenants", admin_only=True),
    ToolSpec("billing_summary", "Every tenant's net cost between two dates, most expensive "
             "first: use it for 'which tenant cost most'.", a.BillingSummaryArgs,
             calls.billing_summary, "Ranking tenants by cost", admin_only=True),
)  # fmt: skip


@cache
def toolset(admin: bool) -> dict[str, ToolSpec]:
    """The admin variant (every tool takes tenant_id) or the tenant-scoped one (none does)."""
    if not admin:
        return {spec.name: spec for spec in BASE_TOOLS}
    specs = [replace(spec, args_model=a.admin_variant(spec.args_model)) for spec in BASE_TOOLS]
    return {spec.name: spec for spec in (*specs, *ADMIN_ONLY_TOOLS)}


def toolset_for(role: Role) -> dict[str, ToolSpec]:
    """The tools of a role."""
    return toolset(role is Role.ADMIN)


def catalogue() -> list[dict[str, Any]]:
    """Every tool once, as the widget and the prompts show it: name, description, label."""
    return [
        {"name": spec.name, "description": spec.description, "label": spec.label,
         "destructive": spec.destructive, "admin_only": spec.admin_only}
        for spec in toolset(admin=True).values()
    ]  # fmt: skip


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        if error["type"] == "extra_forbidden":
            parts.append(f"{where}: this tool takes no such argument")
        else:
            parts.append(f"{where}: {error['msg']}")
    return "invalid arguments: " + "; ".join(parts)


def run_tool(
    name: str,
    raw_args: dict[str, Any],
    ctx: AgentContext,
    emit: Emit,
    http: httpx.Client | None = None,
) -> ToolResult:
    """Validate and run one tool call for the caller in `ctx`; never raises."""
    spec = toolset_for(ctx.role).get(name)
    if spec is None:
        return ToolResult.failed(f"there is no tool named {name!r} for your role")
    try:
        parsed = spec.args_model.model_validate(raw_args)
    except ValidationError as exc:
        return ToolResult.failed(_validation_message(exc))
    api = calls.Api(ctx, http)
    try:
        return spec.body(api, parsed, emit)
    except calls.ToolFailure as exc:
        return ToolResult.failed(str(exc), http_status=exc.http_status, request=exc.request or None)
    finally:
        api.close()
