"""The steps of backing up, restoring and verifying a site's backups: backup_site,
restore_site, verify_backup, the delete's backup and the last step of a create from a backup.

Every Backup row is made when its operation is recorded, so its id is fixed before any step
runs: the provider's `backup(ctx, id)` finds what an earlier (killed) try wrote instead of
taking a second backup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from sqlalchemy import select

from controlplane.backups import retention
from controlplane.backups.policy import effective_policy
from controlplane.engine.context import Work
from controlplane.engine.provider import (
    BackupInvalid,
    BackupRecord,
    RewriteReport,
    SiteContext,
    Staging,
)
from controlplane.kernel.logs import get_logger
from controlplane.kernel.vocabulary import BackupKind, BackupStatus, StepStatus
from controlplane.models import Backup, Site, new_id, utcnow

log = get_logger("aipress.backups")


def new_backup(site: Site, *, kind: BackupKind, requested_by: str) -> Backup:
    """A pending backup row of `site` (added by the caller with the operation that takes it)."""
    return Backup(
        id=new_id(),
        tenant_id=site.tenant_id,
        site_id=site.id,
        site_name=site.name,
        site_title=site.title,
        site_url=site.preview_url,
        kind=kind,
        status=BackupStatus.PENDING,
        requested_by=requested_by,
        checksums={},
        created_at=utcnow(),
    )


def record_of(backup: Backup) -> BackupRecord:
    """The provider's record of a written backup, rebuilt from its row."""
    if backup.status != BackupStatus.SUCCEEDED or not backup.location:
        raise ValueError(f"backup {backup.id} is {backup.status}: only a succeeded one is usable")
    return BackupRecord(
        location=backup.location,
        size_bytes=backup.size_bytes or 0,
        added_bytes=backup.added_bytes or 0,
        checksums=dict(backup.checksums or {}),
    )


def backup_row(work: Work, key: str) -> Backup:
    """The backup whose id the operation keeps under `key`."""
    backup = work.param_row(Backup, key)
    if backup is None:
        raise KeyError(f"operation {work.operation.id} names no backup as {key!r}")
    return backup


def write_backup(
    work: Work, backup: Backup, site: Site | None = None, ctx: SiteContext | None = None
) -> None:
    """Take the backup (or find the one a killed try took) and record it on its row; of the
    operation's site, or of `site` (with its `ctx`: a clone backs its parent up)."""
    if backup.status == BackupStatus.SUCCEEDED:
        return
    site = site if site is not None else work.the_site()
    backup.site_url = site.preview_url or backup.site_url
    backup.site_title = site.title
    record = work.provider.backups.backup(ctx or work.site_context(), backup.id)
    now = utcnow()
    backup.status = BackupStatus.SUCCEEDED
    backup.location = record.location
    backup.size_bytes = record.size_bytes
    backup.added_bytes = record.added_bytes
    backup.checksums = dict(record.checksums)
    backup.finished_at = now
    backup.verified_at = now  # the provider checks each backup after writing it
    backup.error = None
    log.info("backup.taken", site=backup.site_name, backup_id=backup.id, kind=backup.kind,
             size_bytes=record.size_bytes, added_bytes=record.added_bytes)  # fmt: skip


def take(key: str) -> Callable[[Work], None]:
    """A step that takes the backup whose id the operation keeps under `key`."""

    def do(work: Work) -> None:
        write_backup(work, backup_row(work, key))

    return do


def pre_delete(work: Work) -> None:
    """The delete's backup; an operation recorded before backups had rows gets one now
    (committed before the provider is called, so a resumed try reuses its id)."""
    op = work.operation
    if (
        not isinstance(op.params.get("backup"), str)
        or work.session.get(Backup, op.params["backup"]) is None
    ):
        backup = new_backup(work.the_site(), kind=BackupKind.PRE_DELETE,
                            requested_by=op.requested_by)  # fmt: skip
        backup.operation_id = op.id
        work.session.add(backup)
        op.params = {**op.params, "backup": backup.id}
        work.session.commit()
    write_backup(work, backup_row(work, "backup"))


def apply_retention(work: Work) -> None:
    """Forget the scheduled backups the site's policy no longer keeps (the others are the
    user's, or kept for their own time)."""
    site = work.the_site()
    policy = effective_policy(work.session, site.id)
    rows = work.session.scalars(
        select(Backup).where(
            Backup.site_id == site.id,
            Backup.kind == BackupKind.SCHEDULED,
            Backup.status == BackupStatus.SUCCEEDED,
        )
    ).all()
    decision = retention.apply_retention(
        [retention.BackupStamp(b.id, b.created_at) for b in rows],
        retention.RetentionPolicy(policy.keep_daily, policy.keep_weekly, policy.keep_monthly),
    )
    forget = set(decision.forget)
    gone = [b for b in rows if b.id in forget]
    if not gone:
        return
    ctx = work.site_context()
    work.provider.backups.forget(ctx.tenant_id, ctx.backup_password, [record_of(b) for b in gone])
    now = utcnow()
    for backup in gone:
        backup.status = BackupStatus.FORGOTTEN
        backup.forgotten_at = now
    work.operation.params = {**work.operation.params, "forgotten": sorted(b.id for b in gone)}
    log.info("backup.retention", site=site.name, forgotten=len(gone), kept=len(rows) - len(gone))


def backup_failed(work: Work) -> None:
    """A backup that could not be written: its row says why, the site is free again."""
    backup = backup_row(work, "backup")
    if backup.status == BackupStatus.PENDING:
        # The hook runs before the operation records its error: the failed step has it.
        failed = [s.error for s in work.operation.steps if s.error]
        backup.status = BackupStatus.FAILED
        backup.error = failed[-1] if failed else work.operation.error or "the backup failed"
        backup.finished_at = utcnow()
    work.the_site().current_operation_id = None


def check(work: Work) -> None:
    """Before anything changes: the backup is whole and matches its checksums, and there is
    room to stage it beside the live site."""
    record = record_of(backup_row(work, "backup"))
    ctx = work.site_context()
    work.provider.backups.verify(ctx, record)
    work.provider.backups.check_space(ctx, record)


def maintenance(on: bool) -> Callable[[Work], None]:
    """A step (or undo) that turns the site's maintenance answer on or off."""

    def do(work: Work) -> None:
        work.provider.runtime.maintenance(work.site_context(), on)

    return do


def stage(work: Work) -> None:
    """The backup put beside the live site (side schema, side directory), checked."""
    record = record_of(backup_row(work, "backup"))
    work.provider.backups.stage(work.site_context(), record)


def unstage(work: Work) -> None:
    """Whatever was staged beside the site is dropped."""
    work.provider.backups.unstage(work.site_context())


def swap(work: Work) -> None:
    """The staged copy goes live; the replaced one is kept until the restore ends."""
    work.provider.backups.swap(work.site_context())


def unswap(work: Work) -> None:
    """The replaced copy goes live again."""
    work.provider.backups.unswap(work.site_context())


def probe(work: Work) -> None:
    """The restored copy gets the platform's config again (wp-config, must-use plugins, the
    admin login the vault holds) and must pass the wordpress step's readiness probe: the
    homepage renders the site's title. Maintenance lets the platform's probe through."""
    work.provider.wordpress.ensure(work.site_context())


def finish(work: Work) -> None:
    """Visitors see the restored site; the replaced copy and any staging leftovers go."""
    ctx = work.site_context()
    work.provider.runtime.maintenance(ctx, False)
    work.provider.backups.unstage(ctx)
    work.provider.backups.discard_previous(ctx)


def restoring(work: Work) -> None:
    """A restore has begun: the site shows as restoring."""
    work.the_site().status = "restoring"


def restored(work: Work) -> None:
    """A restore finished: the site is ready (with the backup's content) and free again."""
    site = work.the_site()
    site.status = "ready"
    site.current_operation_id = None


def not_restored(work: Work) -> None:
    """A restore was undone: the site is as it was, ready and free again."""
    pre = backup_row(work, "pre_backup")
    if pre.status == BackupStatus.PENDING:
        pre.status = BackupStatus.FAILED
        pre.error = "the restore ended before its pre-restore backup was written"
        pre.finished_at = utcnow()
    restored(work)


def record_rewrite(work: Work, report: RewriteReport | None) -> None:
    """What a search-replace changed, on the operation (`params["rewrite"]`: per table and
    column how many values, never a value) and in the step's "done" event."""
    if report is None:
        return
    work.operation.params = {**work.operation.params, "rewrite": asdict(report)}
    work.detail = report.summary()


def restore_into_new_site(work: Work) -> None:
    """A new site's last create step: the backup staged with the source site's address
    rewritten to this one, swapped in, then the platform's config and probe (wordpress)."""
    op, ctx = work.operation, work.site_context()
    backup = backup_row(work, "from_backup")
    record = record_of(backup)
    if not op.params.get("swapped"):
        work.provider.backups.verify(ctx, record)
        work.provider.backups.check_space(ctx, record)
        url = work.provider.dns.preview_url(ctx)
        rewrite_from = backup.site_url if backup.site_url and backup.site_url != url else None
        record_rewrite(work, work.provider.backups.stage(ctx, record, Staging(rewrite_from)))
        work.provider.backups.swap(ctx)
        # Committed now: a resumed try must not stage again over the swapped-in copy.
        op.params = {**op.params, "swapped": True}
        work.session.commit()
    elif op.params.get("rewrite"):  # a resumed try: the rewrite happened in an earlier one
        record_rewrite(work, RewriteReport(**op.params["rewrite"]))
    work.provider.wordpress.ensure(ctx)
    work.provider.backups.discard_previous(ctx)
    work.provider.backups.unstage(ctx)


# ----------------------------------------------------------------- verify_backup (a sample)


def trial_stage(work: Work) -> None:
    """The backup restored beside its site (side schema, side directory; nothing visitors
    see changes), checked against its checksums. A backup that does not match is marked as
    failing verification here (committed: the runner rolls the step's session back)."""
    backup = backup_row(work, "backup")
    record = record_of(backup)
    ctx = work.site_context()
    work.provider.backups.check_space(ctx, record)
    try:
        work.provider.backups.stage(ctx, record)
    except BackupInvalid as exc:
        backup.verification_error = str(exc)[:2000]
        backup.sample_checked_at = utcnow()
        work.session.commit()
        raise


def compare(work: Work) -> None:
    """The staged copy matched the backup's record: mark the backup verified.

    The providers record checksums only (of the dump and of the files), not table lists or
    row counts, so the comparison is the checksum check `stage` made of what it staged."""
    backup = backup_row(work, "backup")
    now = utcnow()
    backup.verified_at = now
    backup.sample_checked_at = now
    backup.verification_error = None
    log.info("backup.verified", site=backup.site_name, backup_id=backup.id)


def _verify_ended(work: Work) -> None:
    """A verification that did not pass: the site is free again (it was never touched), and
    a warning says whether the backup failed or the check could not run."""
    backup = backup_row(work, "backup")
    work.the_site().current_operation_id = None
    compared = any(
        s.name == "compare" and s.status == StepStatus.DONE for s in work.operation.steps
    )
    if backup.verification_error:
        log.warning("backup.verification_failed", site=backup.site_name, backup_id=backup.id,
                    error=backup.verification_error[:300])  # fmt: skip
    elif compared:  # it passed; only dropping the staged copy failed
        log.warning("backup.verification_cleanup_failed", site=backup.site_name,
                    backup_id=backup.id, error=(work.operation.error or "")[:300])  # fmt: skip
    else:
        log.warning("backup.verification_not_run", site=backup.site_name, backup_id=backup.id,
                    error=(work.operation.error or "")[:300])  # fmt: skip


verify_rolled_back = _verify_ended
verify_failed = _verify_ended
