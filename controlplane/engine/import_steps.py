"""The steps of an import (import_site) that are not a restore's: the upload checked before
anything changes, staged as the provider stages a backup, and its directory removed however
the operation ends.

The operation's params carry the upload's directory (`<home>/imports/<operation id>/`), the
site's old address, the admin choice and the unpack limit; `check` adds the table prefix.
"""

from __future__ import annotations

from pathlib import Path

from controlplane.engine import backup_steps, site_steps
from controlplane.engine.context import Work
from controlplane.engine.provider import CopyScope, ImportSource
from controlplane.imports import uploads
from controlplane.imports.checks import ARCHIVE, CONTENT_TAR, DUMP, check_upload
from controlplane.kernel.logs import get_logger

log = get_logger("aipress.imports")


def _directory(work: Work) -> Path:
    where = work.operation.params.get("upload_dir")
    if not isinstance(where, str) or not where:
        raise KeyError(f"operation {work.operation.id} names no upload directory")
    return Path(where)


def check(work: Work) -> None:
    """The upload passes every check (links, paths, PHP in uploads, bombs, a WordPress dump)
    again, here before anything changes; the dump's table prefix is kept for `stage`."""
    op = work.operation
    limit = int(op.params.get("max_unpacked_bytes", 0)) or 1
    checked = check_upload(_directory(work), limit=limit)
    op.params = {**op.params, "table_prefix": checked.table_prefix,
                 "with_files": checked.content is not None}  # fmt: skip


def source_of(work: Work) -> ImportSource:
    """What the provider stages, from the upload directory and the operation's params."""
    directory, params = _directory(work), work.operation.params
    content = next((p for p in (directory / ARCHIVE, directory / CONTENT_TAR) if p.is_file()), None)
    prefix = params.get("table_prefix")
    if not isinstance(prefix, str) or not prefix:
        raise KeyError(f"operation {work.operation.id} has no table prefix: its check never ran")
    return ImportSource(
        dump=directory / DUMP,
        content=content,
        table_prefix=prefix,
        rewrite_from=str(params["old_url"]),
        reset_admin=params.get("admin") == "reset",
    )


def stage(work: Work) -> None:
    """The uploaded site put beside the live one (side schema, side directory); its title
    kept for the swap."""
    staged = work.provider.backups.stage_import(work.site_context(), source_of(work))
    op = work.operation
    before = op.params.get("title_before", work.the_site().title)
    op.params = {**op.params, "imported_title": staged.title, "title_before": before}
    backup_steps.record_rewrite(work, staged.rewrite)


def _retitle(work: Work, key: str) -> None:
    """The site's title (row and context) set to the operation's `key` title: the probe
    looks for the title of whichever copy is live."""
    title = work.operation.params.get(key)
    if isinstance(title, str) and title:
        work.the_site().title = title
        work.site_context().title = title


def _scope(work: Work) -> CopyScope:
    """Every table, and the files only when the upload brought them (else the live ones
    stay where they are)."""
    return CopyScope(files=work.operation.params.get("with_files", True) is not False)


def swap(work: Work) -> None:
    """The imported copy goes live, and the site takes its title."""
    work.provider.backups.swap(work.site_context(), _scope(work))
    _retitle(work, "imported_title")


def unswap(work: Work) -> None:
    """The replaced copy goes live again, with its title."""
    work.provider.backups.unswap(work.site_context(), _scope(work))
    _retitle(work, "title_before")


def finish(work: Work) -> None:
    """Visitors see the imported site; the replaced copy, staging leftovers and the upload go."""
    backup_steps.finish(work)
    uploads.discard(_directory(work))


def _discard_upload(work: Work) -> None:
    uploads.discard(_directory(work))
    log.info("import.upload_removed", site=work.operation.site_name)


def imported(work: Work) -> None:
    """An import finished: the site is ready with the imported content, free again."""
    _discard_upload(work)
    backup_steps.restored(work)


def not_imported(work: Work) -> None:
    """An import was undone: the site is as it was, and the upload is gone."""
    _discard_upload(work)
    backup_steps.not_restored(work)


def import_failed(work: Work) -> None:
    """An import whose undo failed too: the site needs a look; the upload is gone."""
    _discard_upload(work)
    site_steps.broken(work)
