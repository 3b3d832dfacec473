"""The backup tools: take one, list them, restore one in place, bring a deleted site back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from controlplane.kernel import clock
from controlplane.kernel.vocabulary import BackupKind, BackupStatus
from tools import args as a
from tools.calls import (
    Api,
    ToolFailure,
    _finished,
    _refused,
    _site_summary,
    finished_result,
    require_tenant_action,
    tenant_of,
)
from tools.context import Emit
from tools.results import ToolResult

MAX_BACKUPS = 20  # the newest this many go to the model; the rest are counted
UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size_in_words(size: int | None) -> str | None:
    """A byte count as people read it: '0 B', '12.5 MiB'."""
    if size is None:
        return None
    value = float(size)
    for unit in UNITS:
        if value < 1024 or unit == UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def ago(at: datetime, now: datetime) -> str:
    """How long before `now` `at` was: 'just now', '5 minutes ago', 'yesterday'."""
    seconds = (now - at).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return _plural(int(seconds // 60), "minute") + " ago"
    days = (now.date() - at.date()).days
    if days == 0:
        return _plural(int(seconds // 3600), "hour") + " ago"
    if days == 1:
        return "yesterday"
    return _plural(days, "day") + " ago"


def time_in_words(iso: str, now: datetime | None = None) -> str:
    """An API time as a sentence names it: 'Tuesday 1 December 2026 at 14:05 UTC (yesterday)'."""
    at = datetime.fromisoformat(iso)
    return f"{at:%A} {at.day} {at:%B %Y at %H:%M} UTC ({ago(at, now or clock.now())})"


def backup_summary(backup: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """What the model is told about a backup."""
    summary = {
        "id": backup["id"],
        "site": backup["site_name"],
        "kind": backup["kind"],
        "status": backup["status"],
        "taken": time_in_words(backup["created_at"], now),
        "created_at": backup["created_at"],
        "size": size_in_words(backup["size_bytes"]),
        "verified": backup["verified_at"] is not None,
    }
    if backup.get("error"):
        summary["error"] = backup["error"]
    if backup.get("site_deleted_at"):
        summary["site_deleted"] = time_in_words(backup["site_deleted_at"], now)
        summary["site_deleted_at"] = backup["site_deleted_at"]
    if backup.get("kept_until"):
        summary["kept_until"] = backup["kept_until"]
    return summary


def _site_path(tenant: str, site: str) -> str:
    return f"/v1/tenants/{tenant}/sites/{site}"


def backup_site(api: Api, args: a.BackupSiteArgs, emit: Emit) -> ToolResult:
    """Start a manual backup, follow it, answer with the written backup."""
    tenant = tenant_of(args, api.ctx)
    path = _site_path(tenant, args.site)
    accepted = api.call("POST", f"{path}/backups")
    operation = api.follow(accepted["operation"]["id"], emit)
    backup = api.call("GET", f"{path}/backups/{accepted['backup']['id']}")
    data = {"site": args.site, "tenant_id": tenant, "backup": backup_summary(backup)}
    failed = f"backing up {args.site} failed (nothing on the site changed)"
    return finished_result(data, operation, "backing up", failed, ask_about="its backups")


def list_backups(api: Api, args: a.ListBackupsArgs, emit: Emit) -> ToolResult:
    """A site's backups, every live site's, or the deleted sites' ones; newest first."""
    tenant = tenant_of(args, api.ctx)
    if args.deleted or args.site is None:
        params = {"deleted": "true"} if args.deleted else {}
        rows = api.call("GET", f"/v1/tenants/{tenant}/backups", params=params)
        if args.site is not None:
            rows = [b for b in rows if b["site_name"] == args.site]
    else:
        rows = api.call("GET", f"{_site_path(tenant, args.site)}/backups")
    now = clock.now()
    shown = [backup_summary(b, now) for b in rows[:MAX_BACKUPS]]
    data: dict[str, Any] = {"tenant_id": tenant, "deleted_sites": args.deleted, "backups": shown,
                            "omitted": max(0, len(rows) - MAX_BACKUPS)}  # fmt: skip
    if args.site is not None:
        data["site"] = args.site
    return ToolResult.ok(data)


# -- restore in place ----------------------------------------------------------------------


def _restorable(api: Api, tenant: str, site: str, backup_id: str) -> dict[str, Any]:
    """The backup, if it can be restored (the API's 404 names a wrong id)."""
    backup: dict[str, Any] = api.call("GET", f"{_site_path(tenant, site)}/backups/{backup_id}")
    if backup["status"] != BackupStatus.SUCCEEDED:
        raise ToolFailure(
            f"backup {backup_id} of {site} is {backup['status']}: only a succeeded backup can be "
            "restored; list_backups shows the others",
            http_status=409,
        )
    return backup


def confirm_restore_site(api: Api, args: a.RestoreSiteArgs) -> dict[str, Any]:
    """The question before a restore: the backup's time and what is replaced."""
    tenant = tenant_of(args, api.ctx)
    site = _site_summary(api.call("GET", _site_path(tenant, args.site)))
    if "restore" not in site["allowed_actions"]:
        raise _refused(f"restore site {site['name']} while it is {site['status']}", api)
    backup = _restorable(api, tenant, args.site, args.backup)
    taken = time_in_words(backup["created_at"])
    return {
        "site": site["name"], "tenant_id": tenant, "backup": backup["id"], "backup_time": taken,
        "question": f"Restore site {site['name']} of tenant {tenant} to its {backup['kind']} "
        f"backup of {taken}? The site's database and wp-content are replaced with the "
        "backup's: every change since then is lost. A backup of the site as it is now is "
        "taken first, and visitors see a maintenance page while it runs.",
    }  # fmt: skip


def restore_site(api: Api, args: a.RestoreSiteArgs, emit: Emit) -> ToolResult:
    """After the user confirmed: restore in place and follow it (a running restore is
    followed, not started again)."""
    tenant = tenant_of(args, api.ctx)
    path = _site_path(tenant, args.site)
    site = api.call("GET", path)
    pre_restore = None
    if site["status"] == "restoring" and site["current_operation_id"]:
        operation_id = site["current_operation_id"]
    else:
        accepted = api.call("POST", f"{path}/backups/{args.backup}/restore")
        operation_id = accepted["operation"]["id"]
        pre_restore = accepted["pre_restore_backup"]["id"]
    operation = api.follow(operation_id, emit)
    backup = api.call("GET", f"{path}/backups/{args.backup}")
    data = {"site": args.site, "tenant_id": tenant, "restored": backup_summary(backup),
            "pre_restore_backup": pre_restore}  # fmt: skip
    failed = f"restoring {args.site} failed and the site was put back as it was"
    return finished_result(data, operation, "restoring", failed)


# -- bring a deleted site back ---------------------------------------------------------------


def _deleted_backup(api: Api, tenant: str, args: a.UndeleteSiteArgs) -> dict[str, Any]:
    """The backup to bring the deleted site back from: the named one, else the newest
    succeeded pre-delete backup of that name (else its newest succeeded one)."""
    rows: list[dict[str, Any]] = [b for b in api.call("GET", f"/v1/tenants/{tenant}/backups",
                                params={"deleted": "true"})
            if b["site_name"] == args.site]  # fmt: skip
    if not rows:
        raise ToolFailure(
            f"no backup of a deleted site named {args.site!r} is kept in tenant {tenant}: "
            "list_backups with deleted=true shows the deleted sites that can come back",
            http_status=404,
        )
    if args.backup is not None:
        chosen = [b for b in rows if b["id"] == args.backup]
        if not chosen:
            raise ToolFailure(f"backup {args.backup} is not one of deleted site {args.site}'s",
                              http_status=404)  # fmt: skip
        if chosen[0]["status"] != BackupStatus.SUCCEEDED:
            raise ToolFailure(f"backup {args.backup} is {chosen[0]['status']}: choose a "
                              "succeeded one", http_status=409)  # fmt: skip
        found: dict[str, Any] = chosen[0]
        return found
    usable = [b for b in rows if b["status"] == BackupStatus.SUCCEEDED]
    newest = max(usable, key=lambda b: b["created_at"], default=None)
    pre_delete = [b for b in usable if b["kind"] == BackupKind.PRE_DELETE]
    chosen_one = max(pre_delete, key=lambda b: b["created_at"], default=newest)
    if chosen_one is None:
        raise ToolFailure(f"no backup of deleted site {args.site} succeeded; nothing to bring "
                          "back", http_status=409)  # fmt: skip
    return chosen_one


def confirm_undelete_site(api: Api, args: a.UndeleteSiteArgs) -> dict[str, Any]:
    """The question before bringing a deleted site back: which backup, under which name."""
    tenant = tenant_of(args, api.ctx)
    require_tenant_action(
        api, tenant, "restore_site", f"bring back deleted sites of tenant {tenant}"
    )
    backup = _deleted_backup(api, tenant, args)
    name = args.new_name or args.site
    try:
        api.call("GET", _site_path(tenant, name))
    except ToolFailure as exc:
        if exc.http_status != 404:
            raise
    else:
        raise ToolFailure(f"a site named {name} exists in tenant {tenant}: give the deleted "
                          "site a new_name", http_status=409)  # fmt: skip
    taken = time_in_words(backup["created_at"])
    when = (f"the backup taken when it was deleted, {taken}"
            if backup["kind"] == BackupKind.PRE_DELETE
            else f"its {backup['kind']} backup of {taken}")  # fmt: skip
    return {
        "site": name, "deleted_site": args.site, "tenant_id": tenant, "backup": backup["id"],
        "backup_time": taken,
        "question": f"Bring back deleted site {args.site} of tenant {tenant} as a new site "
        f"named {name}, from {when}? Its database and wp-content come back as they were "
        "then, with its addresses changed to the new site's.",
    }  # fmt: skip


def undelete_site(api: Api, args: a.UndeleteSiteArgs, emit: Emit) -> ToolResult:
    """After the user confirmed: create the site from the deleted one's backup, follow it."""
    tenant = tenant_of(args, api.ctx)
    name = args.new_name or args.site
    try:
        existing = api.call("GET", _site_path(tenant, name))
    except ToolFailure as exc:
        if exc.http_status != 404:
            raise
        existing = None
    if existing is not None and existing["status"] == "provisioning":
        operation_id = existing["current_operation_id"]  # this very undelete, run again
    else:
        backup = _deleted_backup(api, tenant, args)
        body: dict[str, Any] = {"name": name, "from_backup": {"site": args.site,
                                                              "backup": backup["id"]}}  # fmt: skip
        if args.admin_email:
            body["admin_email"] = args.admin_email
        operation_id = api.call("POST", f"/v1/tenants/{tenant}/sites", json=body)["operation"]["id"]
    return _finished(api, tenant, name, api.follow(operation_id, emit))
