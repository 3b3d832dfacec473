"""The steps of update_site: catalogue versions of core, plugins or themes put in place
behind the platform's maintenance page, then a health probe that retries before it decides;
a failed probe rolls the update back by itself (files, and the database when core changed).

The operation's params, fixed when it is recorded: `pre_backup` (the pre-update backup's
id), `changes` (each {kind, slug, from_version, to_version, sha256, size_bytes, location});
`log_mark` is added by the maintenance step (the PHP error log before anything changed).
"""

from __future__ import annotations

import time
from typing import Any

from controlplane.engine.backup_steps import backup_row, record_of
from controlplane.engine.context import Work
from controlplane.engine.packages import PackageArchive
from controlplane.engine.provider import CopyScope, Staging
from controlplane.errors import ApplyFailed
from controlplane.kernel.logs import get_logger
from controlplane.kernel.vocabulary import BackupStatus, PackageKind
from controlplane.models import utcnow
from controlplane.packages.catalogue import versions
from controlplane.packages.listing import cached, site_packages
from controlplane.settings import get_settings

log = get_logger("aipress.updates")
PROBE_INTERVAL_SECONDS = 1.0
DATABASE_ONLY = CopyScope(tables=None, files=False)


class ProbeFailed(ApplyFailed):
    """The updated site failed its health probe for the whole probe window."""


def archives(work: Work) -> list[PackageArchive]:
    """What the operation installs, as recorded."""
    return [
        PackageArchive(
            kind=PackageKind(c["kind"]),
            slug=c["slug"],
            version=c["to_version"],
            sha256=c["sha256"],
            size_bytes=int(c["size_bytes"]),
            location=c["location"],
        )
        for c in work.operation.params.get("changes", [])
    ]


def changes_core(params: dict[str, Any]) -> bool:
    """Whether the update puts another WordPress core in place."""
    return any(c["kind"] == PackageKind.CORE for c in params.get("changes", []))


def maintenance_on(work: Work) -> None:
    """Visitors get the platform's maintenance page (never WordPress's `.maintenance`);
    the PHP error log's mark is taken first, once, so the probe sees only new fatals."""
    ctx, op = work.site_context(), work.operation
    if "log_mark" not in op.params:
        op.params = {**op.params, "log_mark": work.provider.packages.log_mark(ctx)}
    work.provider.runtime.maintenance(ctx, True)


def maintenance_off(work: Work) -> None:
    """Visitors see the site again."""
    work.provider.runtime.maintenance(work.site_context(), False)


def install(work: Work) -> None:
    """The new versions in place; whatever they replace is kept aside under the op's id."""
    ctx = work.site_context()
    work.provider.packages.install(ctx, archives(work), key=work.operation.id, activate=False)
    work.detail = ", ".join(f"{a.slug} {a.version}" for a in archives(work))


def uninstall(work: Work) -> None:
    """What the install replaced is put back, what it added removed."""
    work.provider.packages.restore_previous(work.site_context(), key=work.operation.id)


def upgrade_database(work: Work) -> None:
    """WordPress's database upgrade after a core update (nothing else needs one)."""
    if changes_core(work.operation.params):
        work.provider.packages.upgrade_database(work.site_context())


def restore_database(work: Work) -> None:
    """After a core update is undone: the database as the pre-update backup has it (an
    upgraded schema may not work with the older core)."""
    if not changes_core(work.operation.params):
        return
    ctx = work.site_context()
    record = record_of(backup_row(work, "pre_backup"))
    work.provider.backups.stage(ctx, record, Staging(scope=DATABASE_ONLY))
    work.provider.backups.swap(ctx, DATABASE_ONLY)
    work.provider.backups.discard_previous(ctx)
    work.provider.backups.unstage(ctx)


def probe(work: Work) -> None:
    """The health probe (homepage title, wp-login.php, /wp-json/, no new PHP fatal), tried
    for up to AIPRESS_UPDATE_PROBE_SECONDS: a site warming up is not a failed update."""
    ctx, op = work.site_context(), work.operation
    mark = str(op.params.get("log_mark", ""))
    deadline = time.monotonic() + get_settings().update_probe_seconds
    tries = 0
    while True:
        tries += 1
        result = work.provider.packages.health(ctx, mark)
        if result.ok:
            work.detail = f"healthy after {tries} tr{'y' if tries == 1 else 'ies'}"
            return
        if time.monotonic() + PROBE_INTERVAL_SECONDS > deadline:
            break
        time.sleep(PROBE_INTERVAL_SECONDS)
    log.warning("update.probe_failed", site=ctx.site_name, check=result.failed_check,
                tries=tries, detail=result.detail[:300])  # fmt: skip
    raise ProbeFailed(f"{result.failed_check}: {result.detail}")


def finish(work: Work) -> None:
    """The update stays: what it replaced goes, and the site's package record is new."""
    ctx = work.site_context()
    work.provider.packages.discard_previous(ctx, key=work.operation.id)
    record_listing(work)


def record_listing(work: Work) -> None:
    """Keep the site's package listing (and its count of updates) on the site row."""
    ctx = work.site_context()
    listing = site_packages(work.provider.packages.installed(ctx), versions(work.session))
    ctx.resources["packages"] = cached(listing)


def _release(work: Work) -> None:
    work.the_site().current_operation_id = None


def updated(work: Work) -> None:
    """The update finished: the site is free again."""
    _release(work)


def _pending_backup_failed(work: Work, why: str) -> None:
    pre = backup_row(work, "pre_backup")
    if pre.status == BackupStatus.PENDING:
        pre.status = BackupStatus.FAILED
        pre.error = why
        pre.finished_at = utcnow()


def not_updated(work: Work) -> None:
    """The update was undone: the error names the failed check, the site is free again."""
    op = work.operation
    reason = (op.error or "").removeprefix("probe failed: ")
    op.error = f"update rolled back: {reason}"
    _pending_backup_failed(work, "the update ended before its pre-update backup was written")
    _release(work)


def update_failed(work: Work) -> None:
    """An undo failed: the site is in error, but out of maintenance (visitors see what is
    there rather than a 503 nobody lifts), and free again."""
    try:
        work.provider.runtime.maintenance(work.site_context(), False)
    except Exception as exc:  # the operation's own error is the one to report
        log.warning("update.maintenance_off_failed", error=str(exc)[:300])
    _pending_backup_failed(work, "the update failed before its pre-update backup was written")
    site = work.the_site()
    site.status = "error"
    site.current_operation_id = None
