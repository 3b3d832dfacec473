"""The tools' bodies: each calls the control-plane API with the caller's own token."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from controlplane.kernel.client import ApiError, ControlPlaneClient
from controlplane.kernel.vocabulary import (
    FINISHED_STATUSES,
    EventType,
    OperationStatus,
    StepStatus,
)
from tools import args as a
from tools.context import AgentContext, Emit
from tools.results import ToolResult

FINISHED = FINISHED_STATUSES
# The events that end an operation's stream (a resumed one goes on).
ENDING_EVENTS = (
    EventType.OPERATION_SUCCEEDED,
    EventType.OPERATION_FAILED,
    EventType.OPERATION_ROLLED_BACK,
    EventType.OPERATION_CANCELLED,
)
RECENT_OPERATIONS = 5


class ToolFailure(Exception):
    """A tool could not do its work; the message says why and what to fix."""

    def __init__(self, message: str, *, http_status: int | None = None, request: str = "") -> None:
        super().__init__(message)
        self.http_status = http_status
        self.request = request


class Api:
    """The control plane as one caller sees it (their token, a shared connection pool)."""

    def __init__(
        self, ctx: AgentContext, http: httpx.Client | None = None, started: str | None = None
    ) -> None:
        self.ctx = ctx
        # The operation the user's confirmation card started (a secret's value goes from the
        # card to the control plane, never through a tool call), for the tool to follow.
        self.started = started
        self._client = ControlPlaneClient(
            ctx.control_plane_url, ctx.token, request_id=ctx.request_id, http=http
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; failures become ToolFailure with the control plane's message."""
        try:
            return self._client.request(method, path, **kwargs)
        except ApiError as exc:
            raise ToolFailure(
                exc.detail, http_status=exc.status, request=f"{method} {path}"
            ) from exc
        except httpx.HTTPError as exc:
            raise ToolFailure(
                f"the control plane is unreachable ({type(exc).__name__}); try again shortly",
                request=f"{method} {path}",
            ) from exc

    def follow(self, operation_id: str, emit: Emit) -> dict[str, Any]:
        """Relay an operation's events as progress until it ends (or the wait runs out)."""
        deadline = time.monotonic() + self.ctx.operation_wait_seconds
        try:
            for event in self._client.events(operation_id):
                emit({**event, "type": "progress", "event": event.get("type")})
                if event.get("type") in ENDING_EVENTS:
                    break
                if time.monotonic() > deadline:
                    break
        except (ApiError, httpx.HTTPError):
            pass  # progress is best effort; the operation's state below is the truth
        operation: dict[str, Any] = self.call("GET", f"/v1/operations/{operation_id}")
        return operation

    def close(self) -> None:
        """Release the client (the shared pool stays open)."""
        self._client.close()


def tenant_of(args: a.ToolArgs, ctx: AgentContext) -> str:
    """The tenant of a call: the admin's argument, or the token's tenant for everyone else."""
    if ctx.is_admin:
        tenant = getattr(args, "tenant_id", None)
        if not tenant:
            raise ToolFailure("tenant_id is required for admins: ask which tenant is meant")
        return str(tenant)
    if ctx.tenant_id is None:
        raise ToolFailure("your sign-in carries no tenant")
    return ctx.tenant_id


def _site_summary(site: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": site["name"],
        "tenant_id": site["tenant_id"],
        "title": site["title"],
        "status": site["status"],
        "url": site["preview_url"],
        "domains": site["domains"],
        "pending_domains": site.get("pending_domains", []),
        "allowed_actions": site["allowed_actions"],
    }


def _operation_summary(op: dict[str, Any]) -> dict[str, Any]:
    failed = [s for s in op.get("steps", []) if s.get("status") == StepStatus.FAILED]
    return {
        "id": op["id"],
        "kind": op["kind"],
        "status": op["status"],
        "requested_by": op["requested_by"],
        "created_at": op["created_at"],
        "finished_at": op["finished_at"],
        "error": op.get("error") or (failed[0].get("error") if failed else None),
        "backup": op.get("backup"),
    }


def finished_result(
    data: dict[str, Any],
    operation: dict[str, Any],
    doing: str,
    failed: str,
    *,
    ask_about: str = "the site",
) -> ToolResult:
    """The tool's answer once it stopped following `operation`: still `doing` (ask about
    `ask_about` later), `failed` with the operation's error, or done; `data` goes along."""
    summary = _operation_summary(operation)
    data = {**data, "operation": summary}
    if operation["status"] not in FINISHED:
        return ToolResult(status="running", data=data,
                          error=f"still {doing}; ask about {ask_about} in a minute")  # fmt: skip
    if operation["status"] != OperationStatus.SUCCEEDED:
        return ToolResult(status="error", data=data, error=f"{failed}: {summary['error']}")
    return ToolResult.ok(data)


def list_sites(api: Api, args: a.ToolArgs, emit: Emit) -> ToolResult:
    """Every site of the tenant."""
    tenant = tenant_of(args, api.ctx)
    sites = api.call("GET", f"/v1/tenants/{tenant}/sites")
    return ToolResult.ok({"tenant_id": tenant, "sites": [_site_summary(s) for s in sites]})


def get_site(api: Api, args: a.GetSiteArgs, emit: Emit) -> ToolResult:
    """One site with its recent operations."""
    tenant = tenant_of(args, api.ctx)
    site = api.call("GET", f"/v1/tenants/{tenant}/sites/{args.site}")
    operations = api.call("GET", f"/v1/tenants/{tenant}/sites/{args.site}/operations")
    return ToolResult.ok(
        {
            **_site_summary(site),
            "admin_user": site["admin_user"],
            "admin_email": site["admin_email"],
            "created_at": site["created_at"],
            "operations": [_operation_summary(op) for op in operations[:RECENT_OPERATIONS]],
        }
    )


def create_site(api: Api, args: a.CreateSiteArgs, emit: Emit) -> ToolResult:
    """Submit a create, relay its progress, answer with the site's URL."""
    tenant = tenant_of(args, api.ctx)
    body = {"name": args.site, "admin_email": args.admin_email}
    if args.title:
        body["title"] = args.title
    if args.domain:
        body["domain"] = args.domain
    accepted = api.call("POST", f"/v1/tenants/{tenant}/sites", json=body)
    operation = api.follow(accepted["operation"]["id"], emit)
    return _finished(api, tenant, args.site, operation)


def delete_site(api: Api, args: a.DeleteSiteArgs, emit: Emit) -> ToolResult:
    """Delete after the user confirmed; running it twice follows the first deletion."""
    tenant = tenant_of(args, api.ctx)
    path = f"/v1/tenants/{tenant}/sites/{args.site}"
    try:
        site = api.call("GET", path)
    except ToolFailure as exc:
        if exc.http_status == 404:
            return ToolResult.ok({"name": args.site, "tenant_id": tenant, "deleted": True})
        raise
    if site["status"] == "deleting" and site["current_operation_id"]:
        operation_id = site["current_operation_id"]
    else:
        operation_id = api.call("DELETE", path)["operation"]["id"]
    operation = api.follow(operation_id, emit)
    summary = _operation_summary(operation)
    if operation["status"] != OperationStatus.SUCCEEDED:
        return ToolResult(
            status="running" if operation["status"] not in FINISHED else "error",
            data={"name": args.site, "tenant_id": tenant, "operation": summary},
            error=summary["error"],
        )
    return ToolResult.ok(
        {"name": args.site, "tenant_id": tenant, "deleted": True, "backup": summary["backup"],
         "operation": summary}
    )  # fmt: skip


def _finished(api: Api, tenant: str, name: str, operation: dict[str, Any]) -> ToolResult:
    summary = _operation_summary(operation)
    if operation["status"] not in FINISHED:
        return ToolResult(
            status="running",
            data={"name": name, "tenant_id": tenant, "operation": summary},
            error="still running; ask about the site again in a minute",
        )
    if operation["status"] != OperationStatus.SUCCEEDED:
        return ToolResult(
            status="error",
            data={"name": name, "tenant_id": tenant, "operation": summary},
            error=f"creating {name} failed and was rolled back: {summary['error']}",
        )
    site = api.call("GET", f"/v1/tenants/{tenant}/sites/{name}")
    return ToolResult.ok(
        {
            **_site_summary(site),
            "admin_user": site["admin_user"],
            "admin_email": site["admin_email"],
            "admin_password": "not shown in chat: use the Reveal password action",
            "wp_admin": "one click: the Open wp-admin action next to the site (no link in chat)",
            "operation": summary,
        }
    )


def query_logs(api: Api, args: a.QueryLogsArgs, emit: Emit) -> ToolResult:
    """Log entries matching the filters."""
    tenant = tenant_of(args, api.ctx)
    params: dict[str, Any] = {"since": args.since, "limit": args.limit}
    for key in ("until", "severity", "status"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    if args.text:
        params["q"] = args.text
    logs = api.call("GET", f"/v1/tenants/{tenant}/sites/{args.site}/logs", params=params)
    return ToolResult.ok({"tenant_id": tenant, "filters": params, **logs})


def _site_window(api: Api, args: a.GetMetricsArgs | a.DiagnoseSiteArgs, what: str) -> ToolResult:
    """The site's `what` report (metrics, diagnosis) over the window since args.since."""
    tenant = tenant_of(args, api.ctx)
    found = api.call(
        "GET", f"/v1/tenants/{tenant}/sites/{args.site}/{what}", params={"since": args.since}
    )
    return ToolResult.ok({"tenant_id": tenant, **found})


def get_metrics(api: Api, args: a.GetMetricsArgs, emit: Emit) -> ToolResult:
    """Request figures over a window."""
    return _site_window(api, args, "metrics")


def diagnose_site(api: Api, args: a.DiagnoseSiteArgs, emit: Emit) -> ToolResult:
    """The site's evidence and the verdict drawn from it."""
    return _site_window(api, args, "diagnosis")


MAX_BILLING_LINES = 31


def _period(args: a.GetBillingArgs | a.BillingSummaryArgs) -> dict[str, str]:
    params = {}
    if args.from_date:
        params["from"] = args.from_date.isoformat()
    if args.to_date:
        params["to"] = args.to_date.isoformat()
    return params


def _no_data_yet(report: dict[str, Any]) -> bool:
    return report.get("refreshed_at") is None


NOT_AGGREGATED = (
    "no cost data has been aggregated yet: the billing job has not run on this platform "
    "(it runs daily; an admin can run `aipress billing aggregate`)"
)


def get_billing(api: Api, args: a.GetBillingArgs, emit: Emit) -> ToolResult:
    """A tenant's net costs over a period, grouped by day, service or site."""
    tenant = tenant_of(args, api.ctx)
    params = {**_period(args), "group_by": args.group_by}
    report = api.call("GET", f"/v1/tenants/{tenant}/billing", params=params)
    if _no_data_yet(report):
        return ToolResult(status="unavailable", data={"tenant_id": tenant}, error=NOT_AGGREGATED)
    lines = report["lines"]
    if args.group_by != "day":
        lines = sorted(lines, key=lambda ln: -float(ln["net"]))
    return ToolResult.ok({**report, "lines": lines[:MAX_BILLING_LINES],
                          "lines_omitted": max(0, len(lines) - MAX_BILLING_LINES)})  # fmt: skip


def billing_summary(api: Api, args: a.BillingSummaryArgs, emit: Emit) -> ToolResult:
    """Every tenant ranked by net cost (admins)."""
    report = api.call("GET", "/v1/billing/summary", params=_period(args))
    if _no_data_yet(report):
        return ToolResult(status="unavailable", data={}, error=NOT_AGGREGATED)
    return ToolResult.ok(report)


def list_tenants(api: Api, args: a.ToolArgs, emit: Emit) -> ToolResult:
    """Every tenant (admins)."""
    tenants = api.call("GET", "/v1/tenants")
    return ToolResult.ok(
        {"tenants": [{"id": t["id"], "name": t["name"], "status": t["status"]} for t in tenants]}
    )


def _env_path(tenant: str, name: str | None = None) -> str:
    return f"/v1/tenants/{tenant}/env" + (f"/{name}" if name else "")


def list_env(api: Api, args: a.ToolArgs, emit: Emit) -> ToolResult:
    """The tenant's env vars: names, secret or not, and the values of plain ones only."""
    tenant = tenant_of(args, api.ctx)
    variables = [
        {"name": v["name"], "secret": v["secret"], "updated_at": v["updated_at"]}
        | ({} if v["secret"] else {"value": v["value"]})
        for v in api.call("GET", _env_path(tenant))
    ]
    return ToolResult.ok({"tenant_id": tenant, "variables": variables})


def _env_changed(
    api: Api, tenant: str, name: str, operation_id: str, emit: Emit, change: str
) -> ToolResult:
    operation = api.follow(operation_id, emit)
    summary = _operation_summary(operation)
    data = {"tenant_id": tenant, "variable": name, "change": change, "operation": summary}
    if operation["status"] not in FINISHED:
        error = "saved; still applying to the sites: ask again in a minute"
        return ToolResult(status="running", data=data, error=error)
    if operation["status"] != OperationStatus.SUCCEEDED:
        error = f"saved, but applying it to the sites failed: {summary['error']}"
        return ToolResult(status="error", data=data, error=error)
    return ToolResult.ok(data)


def set_env(api: Api, args: a.SetEnvArgs, emit: Emit) -> ToolResult:
    """After the user confirmed: save a plain value, or follow the change the card made for
    a secret; then wait while every running site restarts its PHP workers."""
    tenant = tenant_of(args, api.ctx)
    if args.secret:
        if api.started is None:
            raise ToolFailure("nothing changed: a secret's value is typed into the "
                              "confirmation card, and none was sent")  # fmt: skip
        operation_id = api.started
    else:
        body = {"value": args.value, "secret": False}
        operation_id = api.call("PUT", _env_path(tenant, args.name), json=body)["operation"]["id"]
    return _env_changed(api, tenant, args.name, operation_id, emit, "set")


def unset_env(api: Api, args: a.UnsetEnvArgs, emit: Emit) -> ToolResult:
    """After the user confirmed: remove the variable from the tenant and its sites."""
    tenant = tenant_of(args, api.ctx)
    operation_id = api.call("DELETE", _env_path(tenant, args.name))["operation"]["id"]
    return _env_changed(api, tenant, args.name, operation_id, emit, "unset")


def submit_secret(api: Api, tenant: str, name: str, value: str) -> str:
    """Save a secret typed into a confirmation card (never seen by the model); the id of the
    operation that applies it."""
    accepted = api.call("PUT", _env_path(tenant, name), json={"value": value, "secret": True})
    return str(accepted["operation"]["id"])


# -- confirmations: what a destructive call would do, asked before it runs -------------------


def _refused(what: str, api: Api) -> ToolFailure:
    # Asking to confirm what the control plane will refuse helps nobody; the control plane
    # said what this caller may do, and still decides the call.
    return ToolFailure(
        f"the control plane does not allow your role ({api.ctx.role.value}) to {what}",
        http_status=403,
    )


def require_tenant_action(api: Api, tenant: str, action: str, what: str) -> None:
    """Refuse (403, saying `what`) unless the tenant's allowed_actions has `action`."""
    if action not in api.call("GET", f"/v1/tenants/{tenant}")["allowed_actions"]:
        raise _refused(what, api)


def confirm_delete_site(api: Api, args: a.DeleteSiteArgs) -> dict[str, Any]:
    """The question before a delete, if the site's allowed_actions has it."""
    tenant = tenant_of(args, api.ctx)
    site = _site_summary(api.call("GET", f"/v1/tenants/{tenant}/sites/{args.site}"))
    if "delete" not in site["allowed_actions"]:
        raise _refused(f"delete site {site['name']} while it is {site['status']}", api)
    return {"site": site["name"], "tenant_id": tenant, "url": site["url"],
            "question": f"Delete site {site['name']} of tenant {tenant}? Its database, files "
            "and address are removed; a backup is taken first."}  # fmt: skip


def _env_change_target(api: Api, args: a.SetEnvArgs | a.UnsetEnvArgs) -> tuple[str, str]:
    """The tenant, if the caller may change its env, and which of its sites restart."""
    tenant = tenant_of(args, api.ctx)
    require_tenant_action(api, tenant, "change_env", f"change the env vars of tenant {tenant}")
    running = sorted(s["name"] for s in api.call("GET", f"/v1/tenants/{tenant}/sites")
                     if s["status"] == "ready")  # fmt: skip
    if not running:
        return tenant, f"No site of {tenant} is running; sites read it when they start."
    return tenant, (f"Every running site of {tenant} ({', '.join(running)}) restarts its PHP "
                    "workers to read it.")  # fmt: skip


def confirm_set_env(api: Api, args: a.SetEnvArgs) -> dict[str, Any]:
    """The question before setting a variable; a secret's asks for the value on the card."""
    tenant, effect = _env_change_target(api, args)
    what = f"secret {args.name}" if args.secret else f"{args.name} = {args.value}"
    action = {"tenant_id": tenant, "variable": args.name, "secret": args.secret,
              "question": f"Set {what} for tenant {tenant}? {effect}"}  # fmt: skip
    if args.secret:
        action["input"] = "secret"  # the card asks for the value in a password field
    return action


def confirm_unset_env(api: Api, args: a.UnsetEnvArgs) -> dict[str, Any]:
    """The question before removing a variable (which must exist)."""
    tenant, effect = _env_change_target(api, args)
    api.call("GET", _env_path(tenant, args.name))  # 404 names the missing variable
    return {"tenant_id": tenant, "variable": args.name,
            "question": f"Remove {args.name} from tenant {tenant}? {effect}"}  # fmt: skip


# A body takes its own arguments class (ToolSpec.args_model, validated by run_tool before the
# call); Any because a Callable over a subclass is no Callable over ToolArgs. The unit test
# test_every_body_takes_its_args_model holds each spec's body to its args_model.
ToolBody = Callable[[Api, Any, Emit], ToolResult]
ConfirmBody = Callable[[Api, Any], dict[str, Any]]
