"""The tool sets: which tools a role gets, their schemas for the model, and how one runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import httpx
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

from controlplane.kernel.identity import Role
from tools import args as a
from tools import backups, calls, staging, updates
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
    admin_only: bool = False
    # A destructive tool's question for the user, asked (by the confirm node) only when the
    # control plane's allowed_actions permit the call.
    confirm: calls.ConfirmBody | None = None
    # For a tool destructive only with some arguments (a bulk update, not a bulk backup):
    # whether a call with these raw arguments is confirmed; None: every call is.
    confirm_when: Callable[[dict[str, Any]], bool] | None = None

    @property
    def destructive(self) -> bool:
        """Whether the user confirms calls first (every call, or some: see asks)."""
        return self.confirm is not None

    def asks(self, raw_args: dict[str, Any]) -> bool:
        """Whether the user confirms this call before it runs."""
        if self.confirm is None:
            return False
        return self.confirm_when is None or self.confirm_when(raw_args)

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
             calls.delete_site, "Deleting site {site}", confirm=calls.confirm_delete_site),
    ToolSpec("query_logs", "Search a site's logs: HTTP requests, web-server and PHP errors. "
             "Filter by time window, severity, HTTP status and text.", a.QueryLogsArgs,
             calls.query_logs, "Searching the logs of {site}"),
    ToolSpec("get_metrics", "A site's requests, error rate and latency percentiles over a "
             "window; use it for 'is my site slow?'.", a.GetMetricsArgs, calls.get_metrics,
             "Measuring {site}"),
    ToolSpec("diagnose_site", "Find out why a site is slow, broken or down: latency by page-"
             "cache status, slowest paths, the PHP slow log's stack traces, busy PHP workers, "
             "PHP errors, slow database queries, the latest changes and the health probe, with "
             "a verdict naming the cause and what to do. Answer from its evidence.",
             a.DiagnoseSiteArgs, calls.diagnose_site, "Diagnosing {site}"),
    ToolSpec("get_billing", "Net costs (cost + credits, per currency) between two dates, "
             "grouped by day, service or site, with when the data was last refreshed.",
             a.GetBillingArgs, calls.get_billing, "Reading costs"),
    ToolSpec("list_env", "List the env vars sites get: names, whether each is a write-only "
             "secret, and the values of plain ones (never a secret's).", a.ListEnvArgs,
             calls.list_env, "Listing env vars"),
    ToolSpec("set_env", "Create or replace an env var of every site (each running site "
             "restarts its PHP workers). For a secret (API keys, tokens, passwords) set "
             "secret=true and give no value: the user types it into the confirmation card, "
             "never into chat. The user confirms first.", a.SetEnvArgs, calls.set_env,
             "Setting {name}", confirm=calls.confirm_set_env),
    ToolSpec("unset_env", "Remove an env var from every site (each running site restarts "
             "its PHP workers). The user confirms first.", a.UnsetEnvArgs, calls.unset_env,
             "Removing {name}", confirm=calls.confirm_unset_env),
    ToolSpec("backup_site", "Back a site up now (its database and wp-content) and wait until "
             "the backup is written and verified.", a.BackupSiteArgs, backups.backup_site,
             "Backing up {site}"),
    ToolSpec("list_backups", "List backups newest first (id, kind, when taken, size, status, "
             "verified): a site's, every site's, or with deleted=true the backups of deleted "
             "sites that can be brought back.", a.ListBackupsArgs, backups.list_backups,
             "Listing backups"),
    ToolSpec("restore_site", "Put one of a site's backups (its id from list_backups) back in "
             "place: the site's database and wp-content are replaced, after a backup of the "
             "site as it is now. The user confirms first.", a.RestoreSiteArgs,
             backups.restore_site, "Restoring {site}", confirm=backups.confirm_restore_site),
    ToolSpec("undelete_site", "Bring a deleted site back by its name, as a new site made "
             "from the backup taken when it was deleted ('bring back the site I deleted "
             "yesterday'). The user confirms first.", a.UndeleteSiteArgs,
             backups.undelete_site, "Bringing back {site}", confirm=backups.confirm_undelete_site),
    ToolSpec("clone_site", "Copy a site into a new staging site (its own database, files "
             "and address, URLs rewritten, hidden from search engines, optionally behind "
             "HTTP basic auth) and wait until it serves.", a.CloneSiteArgs, staging.clone_site,
             "Cloning {site} to {name}"),
    ToolSpec("get_drift", "What changed on a staging site's production site since the clone "
             "(new posts, comments, orders, users; files), in sentences and counts, with the "
             "site's tables: ask it before promoting.", a.GetDriftArgs, staging.get_drift,
             "Comparing production with its staging copy"),
    ToolSpec("promote_site", "Copy a staging site onto its production site: everything, the "
             "database (or only some tables, e.g. wp_posts and wp_postmeta for posts and "
             "pages) or wp-content. Refused when production changed where it would write, "
             "unless force. A backup of production is taken first. The user confirms, "
             "seeing the drift and the scope.", a.PromoteSiteArgs, staging.promote_site,
             "Promoting staging to production", confirm=staging.confirm_promote_site),
    ToolSpec("rollback_site", "Put a production site back as it was before its last "
             "promotion (from the pre-promote backup). The user confirms first.",
             a.RollbackSiteArgs, staging.rollback_site, "Rolling back the promotion",
             confirm=staging.confirm_rollback_site),
    ToolSpec("import_site", "Import a WordPress site from elsewhere into an existing site: "
             "ask the user for its old address; the user picks the export file (a .tar.gz, "
             "or a .sql dump) in the confirmation card, which uploads it; you never see "
             "the file. URLs are rewritten to the site's.", a.ImportSiteArgs,
             staging.import_site, "Importing into {site}", confirm=staging.confirm_import_site),
    ToolSpec("list_packages", "A site's WordPress core, plugins and themes: versions, which "
             "are active, and which have an update in the platform catalogue.",
             a.ListPackagesArgs, updates.list_packages, "Reading the packages of {site}"),
    ToolSpec("update_site", "Update a site's core, plugins or themes from the platform "
             "catalogue (name them, or none for everything that has an update). A backup is "
             "taken first and a failed health check rolls the update back by itself. The user "
             "confirms, seeing exactly what changes.", a.UpdateSiteArgs, updates.update_site,
             "Updating {site}", confirm=updates.confirm_update_site),
    ToolSpec("bulk_sites", "One action on many sites at once: 'update' (everything with an "
             "update), 'backup', 'stop' or 'start', on the named sites or 'all'. Reports how "
             "many did it and why each failure failed. The user confirms an update or a stop.",
             a.BulkSitesArgs, updates.bulk_sites, "Running {action} on several sites",
             confirm=updates.confirm_bulk_sites, confirm_when=updates.confirm_bulk),
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


def _call(
    name: str,
    raw_args: dict[str, Any],
    ctx: AgentContext,
    http: httpx.Client | None,
    work: Callable[[ToolSpec, calls.Api, a.ToolArgs], ToolResult],
    started: str | None = None,
) -> ToolResult:
    """Find the caller's tool, validate the arguments, do `work`; failures become results."""
    spec = toolset_for(ctx.role).get(name)
    if spec is None:
        return ToolResult.failed(f"there is no tool named {name!r} for your role")
    try:
        parsed = spec.args_model.model_validate(raw_args)
    except ValidationError as exc:
        return ToolResult.failed(_validation_message(exc))
    api = calls.Api(ctx, http, started)
    try:
        return work(spec, api, parsed)
    except calls.ToolFailure as exc:
        return ToolResult.failed(str(exc), http_status=exc.http_status, request=exc.request or None)
    finally:
        api.close()


def run_tool(
    name: str,
    raw_args: dict[str, Any],
    ctx: AgentContext,
    emit: Emit,
    http: httpx.Client | None = None,
    started: str | None = None,
) -> ToolResult:
    """Validate and run one tool call for the caller in `ctx` (`started`: the operation its
    confirmation card began); never raises."""
    return _call(name, raw_args, ctx, http, lambda s, api, args: s.body(api, args, emit), started)


def confirmation(
    name: str, raw_args: dict[str, Any], ctx: AgentContext, http: httpx.Client | None = None
) -> ToolResult:
    """What to ask before a destructive call (data: the question and what it is about), or
    why it will not be asked (bad arguments, or the control plane does not allow it)."""

    def ask(spec: ToolSpec, api: calls.Api, args: a.ToolArgs) -> ToolResult:
        assert spec.confirm is not None
        return ToolResult.ok({"action": name, **spec.confirm(api, args)})

    return _call(name, raw_args, ctx, http, ask)


def submit_secret(
    action: dict[str, Any], value: str, ctx: AgentContext, http: httpx.Client | None = None
) -> ToolResult:
    """Save the secret a confirmation card asked for (`action`: the card's); data is the
    operation's id. The value goes to the control plane only."""
    api = calls.Api(ctx, http)
    try:
        operation_id = calls.submit_secret(api, action["tenant_id"], action["variable"], value)
    except calls.ToolFailure as exc:
        return ToolResult.failed(str(exc), http_status=exc.http_status)
    finally:
        api.close()
    return ToolResult.ok(operation_id)


def import_started(
    action: dict[str, Any], operation_id: str, ctx: AgentContext, http: httpx.Client | None = None
) -> ToolResult:
    """Whether `operation_id` is the import the card's upload started: that site's
    import_site operation, as the caller's own token reads it."""
    api = calls.Api(ctx, http)
    try:
        return staging.check_import(api, action, operation_id)
    except calls.ToolFailure as exc:
        return ToolResult.failed(str(exc), http_status=exc.http_status)
    finally:
        api.close()
