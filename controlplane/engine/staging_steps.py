"""The steps of clone_site (a staging copy of a site) and promote_site (the copy swapped into
its production parent), and the fingerprint drift is measured against.

A clone runs on the new staging site: the parent's fingerprint is recorded and committed
before the parent's backup is taken (a change in between shows as drift, never hides), then
the site is built and the backup restored into it as a create from a backup is. A promote
runs on the production site: a pre-promote backup of it, a backup of the staging site (the
copy), then the copy is staged with its URLs rewritten and swapped in within its scope.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from controlplane.engine import backup_steps
from controlplane.engine.context import Work
from controlplane.engine.drift import compare
from controlplane.engine.provider import (
    BASIC_AUTH,
    CopyScope,
    Fingerprint,
    SiteContext,
    Staging,
    TablePrint,
)
from controlplane.kernel.logs import get_logger
from controlplane.kernel.vocabulary import BackupKind, BackupStatus
from controlplane.models import Site, SiteFingerprint, utcnow

log = get_logger("aipress.staging")
BASIC_AUTH_USER = "staging"
OPTIONS_SUFFIX = "_options"  # WordPress's wp_options (any prefix): the title lives there


def scope_params(scope: CopyScope) -> dict[str, Any]:
    """A scope as operation params (JSON)."""
    return {"tables": list(scope.tables) if scope.tables is not None else None,
            "files": scope.files}  # fmt: skip


def scope_of(work: Work) -> CopyScope:
    """The scope an operation's params carry (every table and the files when none)."""
    raw = work.operation.params.get("scope") or {}
    tables = raw.get("tables")
    return CopyScope(
        tables=tuple(str(t) for t in tables) if tables is not None else None,
        files=bool(raw.get("files", True)),
    )


def fingerprint_json(fingerprint: Fingerprint) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fingerprint's tables and files as stored on a SiteFingerprint row."""
    tables = {name: {"rows": p.rows, "checksum": p.checksum}
              for name, p in fingerprint.tables.items()}  # fmt: skip
    return tables, dict(fingerprint.files)


def fingerprint_of(row: SiteFingerprint) -> Fingerprint:
    """The fingerprint a row stores."""
    return Fingerprint(
        tables={
            name: TablePrint(rows=int(v["rows"]), checksum=int(v["checksum"]))
            for name, v in (row.tables or {}).items()
        },
        files={str(k): str(v) for k, v in (row.files or {}).items()},
    )


def record_fingerprint(work: Work, staging: Site, parent: Site, ctx: SiteContext) -> None:
    """The parent's content now becomes what the staging site's drift starts from."""
    tables, files = fingerprint_json(work.provider.backups.fingerprint(ctx))
    row = work.session.get(SiteFingerprint, staging.id)
    if row is None:
        row = SiteFingerprint(site_id=staging.id, parent_id=parent.id)
        work.session.add(row)
    row.parent_id, row.tables, row.files, row.taken_at = parent.id, tables, files, utcnow()


def _site(work: Work, key: str) -> Site:
    site = work.param_row(Site, key)
    if site is None:
        raise ValueError(f"the {key} site of operation {work.operation.id} is gone")
    return site


def _context(work: Work, site: Site) -> SiteContext:
    return work.contexts.change(work.session, site, work.operation.request_id)


# ----------------------------------------------------------------------------- clone_site


def back_up_parent(work: Work) -> None:
    """The parent's fingerprint (committed first, kept on a resumed try: it must not be
    newer than the backup), then its backup: the content the clone is made from."""
    parent = _site(work, "parent")
    ctx = _context(work, parent)
    if work.operation.params.get("basic_auth"):  # made before the runtime step reads it
        work.site_context().credentials.get_or_create(BASIC_AUTH, BASIC_AUTH_USER)
    backup = backup_steps.backup_row(work, "from_backup")
    if backup.status == BackupStatus.SUCCEEDED:
        return
    if work.session.get(SiteFingerprint, work.the_site().id) is None:
        record_fingerprint(work, work.the_site(), parent, ctx)
        work.session.commit()
    backup_steps.write_backup(work, backup, site=parent, ctx=ctx)


def forget_parent_backup(work: Work) -> None:
    """An undone clone leaves nothing: the parent's backup it took is forgotten, and the
    fingerprint goes (the site row it belongs to goes next)."""
    backup = backup_steps.backup_row(work, "from_backup")
    if backup.status == BackupStatus.SUCCEEDED:
        ctx = work.site_context()
        work.provider.backups.forget(
            ctx.tenant_id, ctx.backup_password, [backup_steps.record_of(backup)]
        )
        backup.status = BackupStatus.FORGOTTEN
        backup.forgotten_at = utcnow()
    elif backup.status == BackupStatus.PENDING:
        backup.status = BackupStatus.FAILED
        backup.error = "the clone it was taken for was undone"
        backup.finished_at = utcnow()
    row = work.session.get(SiteFingerprint, work.the_site().id)
    if row is not None:
        work.session.delete(row)


# ---------------------------------------------------------------------------- promote_site


def back_up_staging(work: Work) -> None:
    """The staging site's backup: the copy the promotion puts into production."""
    staging = _site(work, "staging")
    backup = backup_steps.backup_row(work, "backup")
    backup_steps.write_backup(work, backup, site=staging, ctx=_context(work, staging))


def _covers_options(scope: CopyScope) -> bool:
    """Whether the scope copies WordPress's options table (`<prefix>options`)."""
    return scope.tables is None or any(t.endswith(OPTIONS_SUFFIX) for t in scope.tables)


def _check_drift(work: Work) -> None:
    """Production has not changed where the promotion writes since it was asked (visitors
    get the maintenance page by now, so nothing changes after this)."""
    if work.operation.params.get("force"):
        return
    staging = work.session.get(Site, work.operation.params.get("staging"))
    row = work.session.get(SiteFingerprint, staging.id) if staging is not None else None
    if row is None:
        raise ValueError("the staging site or its fingerprint is gone: promote it again")
    now = work.provider.backups.fingerprint(work.site_context())
    conflicts = compare(fingerprint_of(row), now).conflicts(scope_of(work))
    if conflicts:
        raise ValueError(
            f"the site changed where the promotion writes ({', '.join(conflicts)}) after "
            "it was asked: ask for its drift and promote again"
        )


def stage_copy(work: Work) -> None:
    """Production checked for drift once more, then the copy staged beside it within the
    scope, the staging site's address rewritten to production's."""
    _check_drift(work)
    copy = backup_steps.backup_row(work, "backup")
    ctx = work.site_context()
    url = work.provider.dns.preview_url(ctx)
    rewrite_from = copy.site_url if copy.site_url and copy.site_url != url else None
    backup_steps.record_rewrite(work, work.provider.backups.stage(
        ctx, backup_steps.record_of(copy), Staging(rewrite_from, scope_of(work))))  # fmt: skip


def swap_copy(work: Work) -> None:
    """The staged copy goes live within the scope (one atomic rename of those tables)."""
    work.provider.backups.swap(work.site_context(), scope_of(work))


def unswap_copy(work: Work) -> None:
    """Production's own tables (and files) go live again."""
    work.provider.backups.unswap(work.site_context(), scope_of(work))


def probe_promoted(work: Work) -> None:
    """The platform's config again and the readiness probe; the homepage renders the
    staging site's title when its options came along, production's otherwise."""
    ctx = work.site_context()
    if _covers_options(scope_of(work)):
        ctx.title = backup_steps.backup_row(work, "backup").site_title or ctx.title
    work.provider.wordpress.ensure(ctx)


def refingerprint(work: Work) -> None:
    """Production after the promotion is what the staging site's drift starts from again."""
    staging = work.session.get(Site, work.operation.params.get("staging"))
    if staging is None:
        return  # the staging site was deleted meanwhile: no drift to measure
    record_fingerprint(work, staging, work.the_site(), work.site_context())


def refingerprint_copies(work: Work) -> None:
    """After a rollback (a restore of a pre-promote backup), production's restored content
    is what each of its staging copies' drift starts from again; other restores leave the
    fingerprints alone."""
    if backup_steps.backup_row(work, "backup").kind != BackupKind.PRE_PROMOTE:
        return
    site = work.the_site()
    for staging in work.session.scalars(select(Site).where(Site.parent_id == site.id)):
        record_fingerprint(work, staging, site, work.site_context())


def promoting(work: Work) -> None:
    """A promotion has begun: production shows as promoting."""
    work.the_site().status = "promoting"


def promoted(work: Work) -> None:
    """A promotion finished: production is ready (with the staging title when its options
    came along) and free again."""
    site = work.the_site()
    if _covers_options(scope_of(work)):
        site.title = backup_steps.backup_row(work, "backup").site_title or site.title
    backup_steps.restored(work)
    log.info("staging.promoted", site=site.name, scope=work.operation.params.get("scope"))


def not_promoted(work: Work) -> None:
    """A promotion was undone: production is as it was, ready and free again; the backups
    it had not finished are marked failed."""
    for key in ("pre_backup", "backup"):
        row = backup_steps.backup_row(work, key)
        if row.status == BackupStatus.PENDING:
            row.status = BackupStatus.FAILED
            row.error = "the promotion ended before this backup was written"
            row.finished_at = utcnow()
    backup_steps.restored(work)
