"""The update tools: what a site has and what it could update to, a safe update of one site
(confirmed with the dry run's changes), and one action on many sites at once."""

from __future__ import annotations

from typing import Any

from controlplane.kernel.vocabulary import OperationKind, OperationStatus
from tools import args as a
from tools.calls import (
    Api,
    ToolFailure,
    _refused,
    _site_summary,
    finished_result,
    require_tenant_action,
    tenant_of,
)
from tools.context import Emit
from tools.results import ToolResult

# The site action each bulk action needs (a site's allowed_actions names it).
BULK_SITE_ACTIONS = {"update": "update", "backup": "backup", "stop": "stop", "start": "start"}
# Bulk actions the user confirms first: they change or stop sites.
CONFIRMED_BULK_ACTIONS = ("update", "stop")
DONE_WORDS = {"update": "updated", "backup": "backed up", "stop": "stopped", "start": "started"}
FAILED = (OperationStatus.FAILED, OperationStatus.ROLLED_BACK)
ROLLBACK = (
    "A backup is taken first and visitors see a maintenance page while it runs; if a check "
    "after the update fails (the site stops answering, a PHP fatal error), the update is "
    "rolled back from that backup by itself."
)


def _site_path(tenant: str, site: str) -> str:
    return f"/v1/tenants/{tenant}/sites/{site}"


def _package(package: dict[str, Any]) -> dict[str, Any]:
    return {"slug": package["slug"], "name": package["name"], "version": package["version"],
            "active": package["active"], "latest": package["latest"],
            "available": package["available"]}  # fmt: skip


def change_in_words(change: dict[str, Any]) -> str:
    """One change as the user reads it: 'demo 1.0 -> 1.1', 'WordPress 6.7 -> 6.8'."""
    name = "WordPress" if change["kind"] == "core" else change["slug"]
    start = change["from_version"] or "not installed"
    return f"{name} {start} -> {change['to_version']}"


def list_packages(api: Api, args: a.ListPackagesArgs, emit: Emit) -> ToolResult:
    """A site's core, plugins and themes with their versions, and which have updates."""
    tenant = tenant_of(args, api.ctx)
    listing = api.call("GET", f"{_site_path(tenant, args.site)}/packages")
    everything = [listing["core"], *listing["plugins"], *listing["themes"]]
    updates = [
        change_in_words({"kind": p["kind"], "slug": p["slug"], "from_version": p["version"],
                         "to_version": p["latest"]})
        for p in everything if p["latest"] is not None
    ]  # fmt: skip
    return ToolResult.ok({
        "site": args.site, "tenant_id": tenant, "core": _package(listing["core"]),
        "plugins": [_package(p) for p in listing["plugins"]],
        "themes": [_package(p) for p in listing["themes"]],
        "updates_available": listing["updates_available"], "updates": updates,
    })  # fmt: skip


def _update_body(args: a.UpdateSiteArgs) -> dict[str, Any]:
    """The API's UpdateRequest: what was named (nothing named: everything with an update)."""
    body: dict[str, Any] = {}
    if args.core is not None:
        body["core"] = args.core
    if args.plugins is not None:
        body["plugins"] = [t.model_dump() for t in args.plugins]
    if args.themes is not None:
        body["themes"] = [t.model_dump() for t in args.themes]
    return body


def confirm_update_site(api: Api, args: a.UpdateSiteArgs) -> dict[str, Any]:
    """The question before an update: exactly what changes (the API's dry run), and that a
    backup is taken first and a failed check rolls it back."""
    tenant = tenant_of(args, api.ctx)
    path = _site_path(tenant, args.site)
    site = _site_summary(api.call("GET", path))
    if "update" not in site["allowed_actions"]:
        raise _refused(f"update site {site['name']} while it is {site['status']}", api)
    plan = api.call("POST", f"{path}/updates", json={**_update_body(args), "dry_run": True})
    changes = [change_in_words(c) for c in plan["changes"]]
    return {
        "site": site["name"], "tenant_id": tenant, "changes": changes,
        "question": f"Update site {site['name']} of tenant {tenant}: {', '.join(changes)}? "
        + ROLLBACK,
    }  # fmt: skip


def _running_update(api: Api, site: dict[str, Any]) -> str | None:
    """The site's update that is running now (this very call, run again), if any."""
    current = site.get("current_operation_id")
    if not current:
        return None
    operation = api.call("GET", f"/v1/operations/{current}")
    return str(current) if operation["kind"] == OperationKind.UPDATE_SITE else None


def update_site(api: Api, args: a.UpdateSiteArgs, emit: Emit) -> ToolResult:
    """After the user confirmed: update, follow it, and say what changed or which check
    failed and that it was rolled back."""
    tenant = tenant_of(args, api.ctx)
    path = _site_path(tenant, args.site)
    changes: list[str] = []
    operation_id = _running_update(api, api.call("GET", path))
    if operation_id is None:
        accepted = api.call("POST", f"{path}/updates", json=_update_body(args))
        operation_id = accepted["operation"]["id"]
        changes = [change_in_words(c) for c in accepted["changes"]]
    operation = api.follow(operation_id, emit)
    rolled_back = operation["status"] == OperationStatus.ROLLED_BACK
    data = {"site": args.site, "tenant_id": tenant, "changes": changes,
            "rolled_back": rolled_back}  # fmt: skip
    failed = (
        f"the update of {args.site} was rolled back from its pre-update backup: the site is "
        "as it was before"
        if rolled_back
        else f"updating {args.site} failed"
    )
    return finished_result(data, operation, "updating", failed)


# -- many sites at once -----------------------------------------------------------------------


def confirm_bulk(raw_args: dict[str, Any]) -> bool:
    """Whether a bulk call is confirmed first: every action but a backup or a start."""
    return raw_args.get("action") not in ("backup", "start")


def _bulk_sites(api: Api, tenant: str, args: a.BulkSitesArgs) -> list[str]:
    """The sites the bulk works on: the named ones (each must exist), or every site the
    action applies to now."""
    sites = {s["name"]: s for s in api.call("GET", f"/v1/tenants/{tenant}/sites")}
    if args.sites == "all":
        wanted = BULK_SITE_ACTIONS[args.action]
        return sorted(n for n, s in sites.items() if wanted in s["allowed_actions"])
    unknown = [n for n in args.sites if n not in sites]
    if unknown:
        raise ToolFailure(f"tenant {tenant} has no site {', '.join(unknown)}: list_sites shows "
                          "its sites", http_status=400)  # fmt: skip
    return list(args.sites)


def confirm_bulk_sites(api: Api, args: a.BulkSitesArgs) -> dict[str, Any]:
    """The question before a bulk update or stop: the action and every site it touches."""
    tenant = tenant_of(args, api.ctx)
    require_tenant_action(
        api, tenant, "bulk", f"{args.action} many sites of tenant {tenant} at once"
    )
    sites = _bulk_sites(api, tenant, args)
    if not sites:
        raise ToolFailure(f"no site of tenant {tenant} can {args.action} now", http_status=409)
    named = ", ".join(sites)
    if args.action == "update":
        question = (
            f"Update {len(sites)} sites of tenant {tenant} ({named}) to the newest versions "
            f"in the catalogue, two at a time? For each site: {ROLLBACK}"
        )
    else:
        question = (
            f"Stop {len(sites)} sites of tenant {tenant} ({named})? Visitors get no pages "
            "until each is started again; their data is kept."
        )
    return {"tenant_id": tenant, "bulk_action": args.action, "sites": sites, "question": question}


def _outcome(api: Api, operation: dict[str, Any], action: str) -> tuple[str, list[str]]:
    """'9 of 10 updated, 1 failed: site-x (reason)', and the failed sites."""
    progress = operation.get("progress") or {}
    total = progress.get("total", 0)
    failed: list[str] = []
    reasons: list[str] = []
    for name, child_id in sorted((operation.get("children") or {}).items()):
        child = api.call("GET", f"/v1/operations/{child_id}")
        if child["status"] in FAILED:
            failed.append(name)
            reasons.append(f"{name} ({child['error'] or child['status']})")
    done = progress.get("done", 0) - progress.get("failed", 0) - progress.get("cancelled", 0)
    text = f"{done} of {total} {DONE_WORDS[action]}"
    if reasons:
        text += f", {len(reasons)} failed: " + "; ".join(reasons)
    if progress.get("cancelled"):
        text += f", {progress['cancelled']} cancelled"
    return text, failed


def bulk_sites(api: Api, args: a.BulkSitesArgs, emit: Emit) -> ToolResult:
    """Start one action on many sites, follow the parent, and say how many did it and why
    each failure failed."""
    tenant = tenant_of(args, api.ctx)
    accepted = api.call("POST", f"/v1/tenants/{tenant}/bulk",
                        json={"action": args.action, "sites": args.sites})  # fmt: skip
    operation = api.follow(accepted["operation"]["id"], emit)
    data: dict[str, Any] = {"tenant_id": tenant, "action": args.action,
                            "sites": accepted["sites"]}  # fmt: skip
    if operation["status"] in (OperationStatus.SUCCEEDED, OperationStatus.CANCELLED):
        summary, failed = _outcome(api, operation, args.action)
        data |= {"summary": summary, "failed_sites": failed, "progress": operation["progress"]}
        if failed:
            return ToolResult(status="error", data=data, error=summary)
    return finished_result(data, operation, f"working on {len(accepted['sites'])} sites",
                           f"the bulk {args.action} failed", ask_about="the sites")  # fmt: skip
