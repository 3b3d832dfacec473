"""Plain-English answers written from tool results (the offline planner's voice)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tools.staging import table_words

__all__ = ["table_words"]  # the planner reads "only pages" with the tools' own words

SLOW_P95_MS = 1000
MAX_LOG_LINES = 8
MAX_BILLING_LINES = 12


def _time(value: str) -> str:
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return value


def failure(name: str, args: dict[str, Any], result: dict[str, Any]) -> str:
    """A failed call, with the control plane's own message."""
    error = result.get("error") or "unknown error"
    status = result.get("http_status")
    if status == 404:
        return f"I couldn't find that: {error}."
    if status == 403:
        return f"Your role does not allow that: {error}."
    if status == 409:
        return f"That conflicts with the current state: {error}."
    if status in (400, 422):
        return f"The platform refused the request: {error}."
    return f"{name.replace('_', ' ').capitalize()} failed: {error}."


def list_sites(args: dict[str, Any], data: dict[str, Any]) -> str:
    """Sites of a tenant."""
    sites = data["sites"]
    tenant = data["tenant_id"]
    if not sites:
        return f'Tenant {tenant} has no sites yet. Say "create a site called …" to make one.'
    lines = [f"Tenant {tenant} has {len(sites)} site{'s' if len(sites) != 1 else ''}:"]
    for site in sites:
        url = f" — {site['url']}" if site.get("url") else ""
        lines.append(f"- **{site['name']}** ({site['status']}){url}")
    return "\n".join(lines)


def get_site(args: dict[str, Any], data: dict[str, Any]) -> str:
    """One site and its recent operations."""
    lines = [f"**{data['name']}** (tenant {data['tenant_id']}) is {data['status']}."]
    if data.get("url"):
        lines.append(f"Address: {data['url']}")
    if data.get("domains"):
        lines.append("Domains: " + ", ".join(data["domains"]))
    if data.get("pending_domains"):
        lines.append("Waiting for proof (TXT record): " + ", ".join(data["pending_domains"]))
    operations = data.get("operations") or []
    if operations:
        lines.append("Recent operations:")
        for op in operations:
            error = f" — {op['error']}" if op.get("error") else ""
            lines.append(f"- {op['kind']} {op['status']} ({_time(op['created_at'])}){error}")
    return "\n".join(lines)


def create_site(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A finished create."""
    url = data.get("url") or "(no address yet)"
    pending = data.get("pending_domains") or []
    domain_hint = (
        f"Domains: {', '.join(data['domains'])}."
        if data.get("domains")
        else "You can add a custom domain later."
    )
    if pending:
        domain_hint = (
            f"{', '.join(pending)} is claimed but not served yet: create the TXT record shown "
            "with the site's domains in the dashboard, then verify it."
        )
    return (
        f"Your site **{data['name']}** is ready: {url}\n"
        f"Admin user: {data['admin_user']} ({data['admin_email']}). The admin password is "
        "never shown in chat: use the Reveal password action, or Open wp-admin to sign in with "
        "one click. " + domain_hint
    )


def delete_site(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A finished delete."""
    backup = data.get("backup")
    kept = f" A backup was taken first: {backup}." if backup else ""
    return f"Deleted **{data['name']}** (tenant {data['tenant_id']}).{kept}"


def _during(label: str) -> str:
    """'in the last hour', but 'yesterday (2026-11-30)': a named day takes no preposition."""
    return f"in {label}" if label.startswith("the ") else label


def query_logs(args: dict[str, Any], data: dict[str, Any], label: str) -> str:
    """Log entries."""
    entries = data.get("entries") or []
    site = data.get("site", args.get("site"))
    what = "errors" if args.get("severity") in ("error", "critical") else "log entries"
    if args.get("status"):
        what = f"{args['status']} responses"
    elif args.get("severity") == "warning":
        what = "warnings or worse"
    if not entries:
        return f"No {what} on {site} {_during(label)}."
    more = " (more matched; narrow the window to see them all)" if data.get("truncated") else ""
    lines = [f"{len(entries)} {what} on {site} {_during(label)}{more}:"]
    for entry in entries[:MAX_LOG_LINES]:
        detail = entry["message"]
        if entry.get("status") is not None and entry.get("path"):
            detail = f"{entry.get('method') or ''} {entry['path']} -> {entry['status']}".strip()
        lines.append(f"- {_time(entry['time'])} {entry['severity']} [{entry['source']}] {detail}")
    if len(entries) > MAX_LOG_LINES:
        lines.append(f"… and {len(entries) - MAX_LOG_LINES} more.")
    return "\n".join(lines)


def get_metrics(args: dict[str, Any], data: dict[str, Any], label: str) -> str:
    """Request figures with a verdict."""
    site = data["site"]
    if not data["requests"]:
        return f"{site} served no requests {_during(label)}, so there is nothing to measure yet."
    latency = data["latency_ms"]
    text = (
        f"{site} served {data['requests']} requests {_during(label)} "
        f"({data['requests_per_minute']} a minute). Latency p50 {latency['p50']} ms, "
        f"p95 {latency['p95']} ms. Server errors: {data['errors']} "
        f"({data['error_rate'] * 100:.1f}%)."
    )
    p95 = latency.get("p95") or 0
    if p95 > SLOW_P95_MS:
        text += f" That is slow: one request in twenty takes over {SLOW_P95_MS / 1000:g} s."
    elif data["errors"]:
        text += " Speed is fine, but look at the errors."
    else:
        text += " Response times look healthy."
    return text


def _money(value: Any) -> str:
    amount = float(value)
    if amount and abs(amount) < 0.005:  # a local site's hour of use costs fractions of a cent
        return f"{amount:.6f}".rstrip("0")
    return f"{amount:,.2f}"


def _refreshed(report: dict[str, Any]) -> str:
    when = report.get("refreshed_at")
    return f"; data refreshed {_time(when)}" if when else ""


def get_billing(args: dict[str, Any], result: dict[str, Any], label: str) -> str:
    """A tenant's costs, or the honest absence of them."""
    data = result.get("data") or {}
    tenant = data.get("tenant_id", "this tenant")
    if result["status"] == "unavailable":
        return f"I have no cost data for tenant {tenant} ({label}): {result['error']}."
    totals = data.get("totals") or []
    if not totals:
        return f"Tenant {tenant} has no costs recorded ({label}{_refreshed(data)})."
    spent = " and ".join(f"{_money(t['net'])} {t['currency']}" for t in totals)
    lines = [f"Tenant {tenant} spent {spent} net ({label}{_refreshed(data)})."]
    for total in totals:
        if float(total["credits"]):
            lines.append(f"That is {_money(total['cost'])} {total['currency']} of usage less "
                         f"{_money(-float(total['credits']))} in credits.")  # fmt: skip
    group = args.get("group_by", "service")
    if data.get("lines"):
        lines.append(f"By {group}:")
        for line in data["lines"][:MAX_BILLING_LINES]:
            shared = (
                " (apportioned share)"
                if line["kind"] == "apportioned" and group != "service"
                else ""
            )
            lines.append(f"- {line['key']}: {_money(line['net'])} {line['currency']}{shared}")
        hidden = len(data["lines"]) - MAX_BILLING_LINES + int(data.get("lines_omitted") or 0)
        if hidden > 0:
            lines.append(f"… and {hidden} more.")
    return "\n".join(lines)


def billing_summary(args: dict[str, Any], data: dict[str, Any], label: str) -> str:
    """Tenants ranked by cost."""
    ranks = data.get("tenants") or []
    if not ranks:
        return f"No tenant has costs recorded ({label}{_refreshed(data)})."
    lines = [f"Costs, most expensive first ({label}{_refreshed(data)}):"]
    for rank in ranks[:MAX_BILLING_LINES]:
        name = "platform (unlabelled)" if rank["tenant_id"] == "platform" else rank["tenant_id"]
        lines.append(f"- **{name}**: {_money(rank['net'])} {rank['currency']} "
                     f"({rank['share'] * 100:.0f}%)")  # fmt: skip
    totals = ", ".join(f"{_money(t['net'])} {t['currency']}" for t in data.get("totals", []))
    lines.append(f"Total: {totals}.")
    return "\n".join(lines)


def compare(first: dict[str, Any], second: dict[str, Any], labels: tuple[str, str]) -> str | None:
    """One sentence comparing two billing results in the same currency."""
    a = {t["currency"]: float(t["net"]) for t in (first.get("data") or {}).get("totals", [])}
    b = {t["currency"]: float(t["net"]) for t in (second.get("data") or {}).get("totals", [])}
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    currency = shared[0]
    difference = a[currency] - b[currency]
    if abs(difference) < 0.005:
        return f"{labels[0]} and {labels[1]} cost the same."
    direction = "more" if difference > 0 else "less"
    percent = f" ({abs(difference) / b[currency] * 100:.0f}%)" if b[currency] else ""
    return (f"{labels[0].capitalize()} is {_money(abs(difference))} {currency}{percent} "
            f"{direction} than {labels[1]}.")  # fmt: skip


def list_tenants(args: dict[str, Any], data: dict[str, Any]) -> str:
    """Every tenant."""
    tenants = data["tenants"]
    if not tenants:
        return "There are no tenants yet."
    return "Tenants:\n" + "\n".join(
        f"- **{t['id']}** — {t['name']} ({t['status']})" for t in tenants
    )


def list_env(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A tenant's env vars (a secret by name only)."""
    variables = data["variables"]
    if not variables:
        return f"Tenant {data['tenant_id']} has no env vars."
    lines = [f"Env vars of tenant {data['tenant_id']}:"]
    for var in variables:
        shown = "secret, write-only" if var["secret"] else f"= {var['value']}"
        lines.append(f"- **{var['name']}** ({shown})")
    return "\n".join(lines)


def set_env(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A variable saved and applied."""
    return f"Set {data['variable']} for tenant {data['tenant_id']}; the running sites have it."


def unset_env(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A variable removed."""
    return f"Removed {data['variable']} from tenant {data['tenant_id']} and its sites."


def _backup_line(backup: dict[str, Any]) -> str:
    verified = ", verified" if backup["verified"] else ""
    deleted = f" (site deleted {backup['site_deleted']})" if backup.get("site_deleted") else ""
    size = f", {backup['size']}" if backup.get("size") else ""
    return (f"- {backup['site']}: {backup['kind']} backup of {backup['taken']}{size}, "
            f"{backup['status']}{verified}{deleted}")  # fmt: skip


def backup_site(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A backup written."""
    backup = data["backup"]
    return (f"Backed up **{data['site']}**: a {backup['kind']} backup of {backup['size']}, "
            f"taken {backup['taken']}, written and verified.")  # fmt: skip


def list_backups(args: dict[str, Any], data: dict[str, Any]) -> str:
    """Backups, newest first."""
    backups = data["backups"]
    whose = (
        "of deleted sites" if data.get("deleted_sites") else f"of {data.get('site', 'your sites')}"
    )
    if not backups:
        return f"There are no backups {whose}."
    more = f"\n({data['omitted']} older ones not shown.)" if data.get("omitted") else ""
    return f"Backups {whose}, newest first:\n" + "\n".join(map(_backup_line, backups)) + more


def restore_site(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A restore finished."""
    restored = data["restored"]
    return (f"Restored **{data['site']}** to its {restored['kind']} backup of "
            f"{restored['taken']}. The site as it was just before is kept as a pre-restore "
            "backup.")  # fmt: skip


def undelete_site(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A deleted site made again from its backup."""
    return (f"Brought back **{data['name']}** from its backup: {data['url']} (status "
            f"{data['status']}).")  # fmt: skip


def clone_site(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A staging site cloned."""
    auth = (" It is behind HTTP basic auth: the dashboard reveals the user and password."
            if data.get("basic_auth") else "")  # fmt: skip
    return (f"Cloned **{data['production']}** to the staging site **{data['name']}**: "
            f"{data.get('url') or '(no address yet)'}. Search engines are told to stay away, "
            "and what changes on production from now on shows in its drift report."
            + auth)  # fmt: skip


def get_drift(args: dict[str, Any], data: dict[str, Any]) -> str:
    """What changed on production since the clone."""
    head = f"Since **{data['site']}** was cloned from **{data['production']}** ({data['cloned']})"
    if not data["changed"]:
        return head + ", production has not changed: promoting overwrites nothing new."
    lines = [head + ", production changed:"]
    lines += [f"- {sentence}" for sentence in data["summary"]]
    tables = sorted({t["table"] for t in data["tables_changed"]})
    if tables:
        lines.append(f"Promoting the whole database would overwrite {', '.join(tables)}; "
                     "a promotion of other tables only (say 'only pages') keeps them.")  # fmt: skip
    return "\n".join(lines)


def promote_site(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A promotion finished."""
    return (f"Promoted **{data['site']}** to **{data['production']}**: it {data['scope']}. "
            "The production site as it was just before is kept as a pre-promote backup; say "
            "'roll back the promotion' to put it back.")  # fmt: skip


def rollback_site(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A promotion rolled back."""
    restored = data.get("restored") or {}
    when = f" of {restored['taken']}" if restored.get("taken") else ""
    return (f"Rolled back **{data['site']}** to its pre-promote backup{when}: it is as it was "
            "before the promotion.")  # fmt: skip


def import_site(args: dict[str, Any], data: dict[str, Any]) -> str:
    """An import finished."""
    return (f"Imported the site from {data['old_url']} into **{data['site']}**; its addresses "
            "now point at the new site. The site as it was before is kept as a pre-import "
            "backup.")  # fmt: skip


def _packages_line(package: dict[str, Any]) -> str:
    state = "" if package["active"] else ", inactive"
    update = f", update to {package['latest']} available" if package["latest"] else ""
    return f"- {package['name']} ({package['slug']}) {package['version']}{state}{update}"


def list_packages(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A site's core, plugins and themes, and its updates."""
    core = data["core"]
    lines = [f"**{data['site']}** runs WordPress {core['version']}"
             + (f" ({core['latest']} available)." if core["latest"] else ".")]  # fmt: skip
    for kind in ("plugins", "themes"):
        rows = data[kind]
        lines.append(f"{kind.capitalize()}:" if rows else f"No {kind}.")
        lines.extend(_packages_line(p) for p in rows)
    updates = data["updates"]
    lines.append(f"Updates available: {', '.join(updates)}." if updates else "Everything is "
                 "up to date with the platform catalogue.")  # fmt: skip
    return "\n".join(lines)


def update_site(args: dict[str, Any], data: dict[str, Any]) -> str:
    """An update that went through (its probe passed)."""
    changed = ", ".join(data["changes"]) or "the update"
    return (f"Updated **{data['site']}**: {changed}. A backup was taken first and the site "
            "passed its checks afterwards.")  # fmt: skip


def bulk_sites(args: dict[str, Any], data: dict[str, Any]) -> str:
    """A bulk's outcome: '9 of 10 updated, 1 failed: site-x (reason)'."""
    return f"{data['summary']}."
