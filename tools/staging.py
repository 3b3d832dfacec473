"""The staging tools: clone a site to staging, read the drift of production since the clone,
promote staging onto production (confirmed, naming the drift and the scope), roll a
promotion back, and import a site from elsewhere (the widget uploads the file)."""

from __future__ import annotations

from typing import Any

from controlplane.kernel.vocabulary import BackupKind, BackupStatus
from tools import args as a
from tools.backups import backup_summary, time_in_words
from tools.calls import (
    Api,
    ToolFailure,
    _refused,
    _site_summary,
    finished_result,
    tenant_of,
)
from tools.context import Emit
from tools.results import ToolResult

STAGING, PRODUCTION = "staging", "production"
# What a table holds, in the words a person uses; by the name after the table prefix.
TABLE_WORDS = (
    (("posts", "postmeta"), "posts and pages"),
    (("comments", "commentmeta"), "comments"),
    (("users", "usermeta"), "users"),
    (("options",), "settings"),
    (("terms", "termmeta", "term_taxonomy", "term_relationships"), "categories and tags"),
    (("links",), "links"),
    (("wc_orders", "wc_orders_meta", "wc_order_addresses", "wc_order_operational_data",
      "woocommerce_order_items", "woocommerce_order_itemmeta"), "orders"),
)  # fmt: skip


def _site_path(tenant: str, site: str) -> str:
    return f"/v1/tenants/{tenant}/sites/{site}"


def table_words(table: str) -> str:
    """What a table holds: 'wp_posts' -> 'posts and pages'; an unknown table is its name."""
    for suffixes, words in TABLE_WORDS:
        # The longest suffix first would matter only for look-alikes; none of these clash.
        if any(table == s or table.endswith("_" + s) for s in suffixes):
            return words
    return table


def tables_in_words(tables: list[str]) -> str:
    """'posts and pages (wp_posts, wp_postmeta) and comments (wp_comments)'."""
    groups: dict[str, list[str]] = {}
    for table in tables:
        groups.setdefault(table_words(table), []).append(table)
    parts = [words if [words] == names else f"{words} ({', '.join(names)})"
             for words, names in groups.items()]  # fmt: skip
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def scope_in_words(scope: str, tables: list[str] | None) -> str:
    """What a promotion copies, as its confirmation says it."""
    if scope == "files":
        return (
            "copies wp-content (uploads, themes and plugins) from staging to production, "
            "not the database"
        )
    if scope == "database" and tables:
        return f"copies {tables_in_words(tables)} from staging to production"
    if scope == "database":
        return "copies the whole database (not wp-content) from staging to production"
    return "copies the whole database and wp-content from staging to production"


def _sites(api: Api, tenant: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = api.call("GET", f"/v1/tenants/{tenant}/sites")
    return rows


def _staging_of(api: Api, tenant: str, name: str | None) -> dict[str, Any]:
    """The staging site meant: the one named, the one staging copy of the production site
    named, or the tenant's only staging site."""
    sites = _sites(api, tenant)
    staging = [s for s in sites if s.get("role") == STAGING]
    if name is not None:
        named = next((s for s in sites if s["name"] == name), None)
        if named is None:
            raise ToolFailure(f"site {name!r} not found in tenant {tenant!r}", http_status=404)
        if named.get("role") == STAGING:
            return named
        staging = [s for s in staging if s.get("parent") == name]
        if len(staging) == 1:
            return staging[0]
        if not staging:
            raise ToolFailure(f"{name} has no staging copy: clone_site makes one",
                              http_status=409)  # fmt: skip
        raise ToolFailure(f"{name} has several staging copies ({_names(staging)}): name one",
                          http_status=409)  # fmt: skip
    if len(staging) == 1:
        return staging[0]
    if not staging:
        raise ToolFailure(f"tenant {tenant} has no staging site: clone_site makes one",
                          http_status=409)  # fmt: skip
    raise ToolFailure(f"tenant {tenant} has several staging sites ({_names(staging)}): name "
                      "the one meant", http_status=409)  # fmt: skip


def _names(sites: list[dict[str, Any]]) -> str:
    return ", ".join(sorted(s["name"] for s in sites))


def _production_of(api: Api, tenant: str, name: str | None) -> dict[str, Any]:
    """The production site meant: the one named, a named staging site's parent, or the
    parent of the tenant's only staging site."""
    if name is None:
        name = _staging_of(api, tenant, None)["parent"]
    site: dict[str, Any] = api.call("GET", _site_path(tenant, str(name)))
    if site.get("role") == STAGING:
        site = api.call("GET", _site_path(tenant, site["parent"]))
    return site


def _drift(api: Api, tenant: str, staging: str) -> dict[str, Any]:
    drift: dict[str, Any] = api.call("GET", f"{_site_path(tenant, staging)}/drift")
    return drift


def drift_summary(drift: dict[str, Any]) -> dict[str, Any]:
    """What the model is told about drift: the sentences and counts, never file contents
    or names."""
    files = drift.get("files") or {}
    return {
        "site": drift["site"],
        "production": drift["parent"],
        "cloned": time_in_words(drift["since"]),
        "changed": drift["changed"],
        "summary": list(drift.get("summary") or []),
        "tables_changed": [
            {"table": t["table"], "holds": table_words(t["table"]), "rows_then": t["rows_then"],
             "rows_now": t["rows_now"], "summary": t.get("summary")}
            for t in drift.get("tables") or [] if t["changed"]
        ],
        "files_changed": {k: len(files.get(k) or []) for k in ("added", "changed", "removed")},
        "tables": [t["table"] for t in drift.get("tables") or []],
    }  # fmt: skip


def _running(api: Api, site: dict[str, Any], kind: str) -> str | None:
    """The site's operation of `kind` still running (to follow it, not start another)."""
    operation_id = site.get("current_operation_id")
    if not operation_id:
        return None
    operation = api.call("GET", f"/v1/operations/{operation_id}")
    return str(operation_id) if operation["kind"] == kind else None


# -- clone and drift -------------------------------------------------------------------------


def clone_site(api: Api, args: a.CloneSiteArgs, emit: Emit) -> ToolResult:
    """Start a clone into a new staging site, follow it, answer with the staging site."""
    tenant = tenant_of(args, api.ctx)
    try:
        existing = api.call("GET", _site_path(tenant, args.name))
    except ToolFailure as exc:
        if exc.http_status != 404:
            raise
        existing = None
    operation_id = _running(api, existing, "clone_site") if existing else None
    if operation_id is None:
        body = {"name": args.name, "basic_auth": args.basic_auth}
        accepted = api.call("POST", f"{_site_path(tenant, args.site)}/clone", json=body)
        operation_id = accepted["operation"]["id"]
    operation = api.follow(operation_id, emit)
    data: dict[str, Any] = {"site": args.name, "production": args.site, "tenant_id": tenant}
    failed = f"cloning {args.site} to {args.name} failed and was undone"
    result = finished_result(data, operation, "cloning", failed)
    if result.status != "ok":
        return result
    staging = api.call("GET", _site_path(tenant, args.name))
    result.data.update(_site_summary(staging), role=staging.get("role"),
                       parent=staging.get("parent"), basic_auth=args.basic_auth)  # fmt: skip
    if args.basic_auth:
        result.data["basic_auth_credentials"] = (
            "not shown in chat: kept in the vault, revealed by the dashboard"
        )
    return result


def get_drift(api: Api, args: a.GetDriftArgs, emit: Emit) -> ToolResult:
    """What changed on production since the staging site was cloned, in words."""
    tenant = tenant_of(args, api.ctx)
    staging = _staging_of(api, tenant, args.site)
    return ToolResult.ok(
        {"tenant_id": tenant, **drift_summary(_drift(api, tenant, staging["name"]))}
    )


# -- promote ---------------------------------------------------------------------------------


def _writes(scope: str, tables: list[str] | None, table: str) -> bool:
    """Whether a promotion of `scope` writes `table` on production."""
    if scope == "files":
        return False
    return tables is None or table in tables


def _drift_words(
    drift: dict[str, Any], scope: str, tables: list[str] | None
) -> tuple[str, list[str]]:
    """How production changed, each change marked copied over or not; and the changes the
    promotion would overwrite."""
    changed = [t for t in drift.get("tables") or [] if t["changed"]]
    # A sentence per change; a meta table the API left unsaid goes with its main table's
    # sentence ("3 new comments" covers wp_commentmeta), else it is named.
    sentences: dict[str, list[str]] = {}
    by_words: dict[str, str] = {}
    for table in sorted(changed, key=lambda t: t.get("summary") is None):
        sentence = table.get("summary") or by_words.get(table_words(table["table"]))
        sentence = sentence or f"{table['table']} changed"
        sentences.setdefault(sentence, []).append(table["table"])
        by_words.setdefault(table_words(table["table"]), sentence)
    parts: list[str] = []
    overwritten: list[str] = []
    for sentence, names in sentences.items():
        written = [n for n in names if _writes(scope, tables, n)]
        parts.append(f"{sentence} ({'overwritten' if written else 'not copied'})")
        if written:
            overwritten.append(f"{sentence} ({', '.join(written)})")
    files = drift.get("files") or {}
    if any(files.get(k) for k in ("added", "changed", "removed")):
        writes = scope != "database"
        file_sentences = [s for s in drift.get("summary") or [] if s not in sentences]
        for sentence in file_sentences or ["files changed in wp-content"]:
            parts.append(f"{sentence} ({'overwritten' if writes else 'not copied'})")
            if writes:
                overwritten.append(sentence)
    if not parts:
        return "production has not changed since the clone", []
    return "production changed since the clone: " + "; ".join(parts), overwritten


def confirm_promote_site(api: Api, args: a.PromoteSiteArgs) -> dict[str, Any]:
    """The question before a promotion: the scope in words and how production changed since
    the clone; refused before asking when it would overwrite those changes without force."""
    tenant = tenant_of(args, api.ctx)
    staging = _staging_of(api, tenant, args.site)
    if "promote" not in staging["allowed_actions"]:
        raise _refused(
            f"promote staging site {staging['name']} while it is {staging['status']}", api
        )
    drift = _drift(api, tenant, staging["name"])
    parent = drift["parent"]
    drift_words, overwritten = _drift_words(drift, args.scope, args.tables)
    if overwritten and not args.force:
        raise ToolFailure(
            f"production site {parent} changed since the clone where this promotion would "
            f"write: {'; '.join(overwritten)}. Promote a scope that leaves those out (scope "
            "'database' with tables=[...], or scope 'files'), or, if the user agrees to lose "
            "them, call again with force=true",
            http_status=409,
        )
    scope = scope_in_words(args.scope, args.tables)
    return {
        "site": staging["name"], "production": parent, "tenant_id": tenant,
        "scope": args.scope, "tables": args.tables, "force": args.force,
        "drift": list(drift.get("summary") or []),
        "question": f"Promote staging site {staging['name']} to production site {parent} of "
        f"tenant {tenant}? It {scope}; {drift_words}. A backup of {parent} is taken first "
        "(rollback_site puts it back), and production switches over at once.",
    }  # fmt: skip


def promote_site(api: Api, args: a.PromoteSiteArgs, emit: Emit) -> ToolResult:
    """After the user confirmed: promote and follow it (a running promotion is followed)."""
    tenant = tenant_of(args, api.ctx)
    staging = _staging_of(api, tenant, args.site)
    production = api.call("GET", _site_path(tenant, staging["parent"]))
    operation_id = _running(api, production, "promote_site")
    pre_promote = None
    if operation_id is None:
        body = {"scope": args.scope, "tables": args.tables, "force": args.force}
        accepted = api.call("POST", f"{_site_path(tenant, staging['name'])}/promote", json=body)
        operation_id = accepted["operation"]["id"]
        pre_promote = accepted["pre_promote_backup"]["id"]
    operation = api.follow(operation_id, emit)
    data = {"site": staging["name"], "production": production["name"], "tenant_id": tenant,
            "scope": scope_in_words(args.scope, args.tables),
            "pre_promote_backup": pre_promote}  # fmt: skip
    return finished_result(data, operation, "promoting",
                            f"promoting {staging['name']} failed and {production['name']} was "
                            "put back as it was")  # fmt: skip


# -- rollback --------------------------------------------------------------------------------


def _pre_promote(api: Api, tenant: str, site: str) -> dict[str, Any]:
    """The newest succeeded pre-promote backup of the production site."""
    backups = api.call("GET", f"{_site_path(tenant, site)}/backups")
    wanted = (BackupKind.PRE_PROMOTE, BackupStatus.SUCCEEDED)
    usable = [b for b in backups if (b["kind"], b["status"]) == wanted]
    if not usable:
        raise ToolFailure(f"nothing to roll back: {site} has no pre-promote backup",
                          http_status=409)  # fmt: skip
    newest: dict[str, Any] = max(usable, key=lambda b: b["created_at"])
    return newest


def confirm_rollback_site(api: Api, args: a.RollbackSiteArgs) -> dict[str, Any]:
    """The question before a rollback: which promotion's state comes back."""
    tenant = tenant_of(args, api.ctx)
    site = _site_summary(_production_of(api, tenant, args.site))
    if "rollback" not in site["allowed_actions"]:
        raise _refused(f"roll back site {site['name']} while it is {site['status']}", api)
    backup = _pre_promote(api, tenant, site["name"])
    taken = time_in_words(backup["created_at"])
    return {
        "site": site["name"], "tenant_id": tenant, "backup": backup["id"], "backup_time": taken,
        "question": f"Roll back production site {site['name']} of tenant {tenant} to how it "
        f"was before the promotion of {taken}? Its database and wp-content are replaced "
        "with the pre-promote backup's: every change since then is lost. A backup of the "
        "site as it is now is taken first.",
    }  # fmt: skip


def rollback_site(api: Api, args: a.RollbackSiteArgs, emit: Emit) -> ToolResult:
    """After the user confirmed: restore the pre-promote backup and follow it."""
    tenant = tenant_of(args, api.ctx)
    site = _production_of(api, tenant, args.site)
    operation_id = _running(api, site, "restore_site")
    restored = None
    if operation_id is None:
        accepted = api.call("POST", f"{_site_path(tenant, site['name'])}/rollback")
        operation_id = accepted["operation"]["id"]
        restored = backup_summary(accepted["backup"])
    operation = api.follow(operation_id, emit)
    data = {"site": site["name"], "tenant_id": tenant, "restored": restored}
    failed = f"rolling back {site['name']} failed and it was put back as it was"
    return finished_result(data, operation, "rolling back", failed)


# -- import ----------------------------------------------------------------------------------


def confirm_import_site(api: Api, args: a.ImportSiteArgs) -> dict[str, Any]:
    """The card before an import: what is replaced, and a file input (the widget uploads
    the export straight to the import endpoint; the model never sees it)."""
    tenant = tenant_of(args, api.ctx)
    raw = api.call("GET", _site_path(tenant, args.site))
    site = _site_summary(raw)
    # Asked again when the graph resumes, after the card's upload started the import (which
    # holds the site): that import is this card's own.
    if "import" not in site["allowed_actions"] and _running(api, raw, "import_site") is None:
        raise _refused(f"import into site {site['name']} while it is {site['status']}", api)
    admin = ("the imported admin user is kept" if args.admin == "keep"
             else f"the admin user is reset to {site['name']}'s")  # fmt: skip
    return {
        "site": site["name"], "tenant_id": tenant, "old_url": args.old_url, "admin": args.admin,
        "input": "file",
        "upload": {"path": f"{_site_path(tenant, site['name'])}/import",
                   "fields": {"old_url": args.old_url, "admin": args.admin}},
        "question": f"Import a WordPress site into {site['name']} of tenant {tenant}? Choose "
        "its export below: one .tar.gz holding database.sql (or database.sql.gz) and "
        "wp-content/, or a database dump (.sql or .sql.gz) with an optional wp-content "
        f".tar.gz. The database and wp-content of {site['name']} are replaced (a backup of it "
        f"as it is now is taken first), its addresses are rewritten from {args.old_url} to "
        f"{site['url'] or 'its own'}, and {admin}.",
    }  # fmt: skip


def import_site(api: Api, args: a.ImportSiteArgs, emit: Emit) -> ToolResult:
    """After the card uploaded the export: follow the import it started."""
    tenant = tenant_of(args, api.ctx)
    if api.started is None:
        raise ToolFailure("nothing changed: the export is chosen in the confirmation card and "
                          "uploaded from there, and none was uploaded")  # fmt: skip
    operation = api.follow(api.started, emit)
    data = {"site": args.site, "tenant_id": tenant, "old_url": args.old_url}
    failed = f"importing into {args.site} failed and the site was left as it was"
    return finished_result(data, operation, "importing", failed)


def check_import(api: Api, action: dict[str, Any], operation_id: str) -> ToolResult:
    """Whether `operation_id` is an import of the card's site (the one the upload started)."""
    if not a.OPERATION_ID.fullmatch(operation_id):
        raise ToolFailure(f"{operation_id!r} is not an operation id", http_status=422)
    operation = api.call("GET", f"/v1/operations/{operation_id}")
    if (operation["kind"], operation["tenant_id"], operation["site_name"]) != (
        "import_site",
        action["tenant_id"],
        action["site"],
    ):
        raise ToolFailure(f"operation {operation_id} is not an import into {action['site']}",
                          http_status=409)  # fmt: skip
    return ToolResult.ok(operation_id)
