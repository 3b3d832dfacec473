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
from controlplane.engine.provider import ImportSource
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
    op.params = {**op.params, "table_prefix": checked.table_prefix}


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
    """The uploaded site put beside the live one (side schema, side directory)."""
    work.provider.backups.stage_import(work.site_context(), source_of(work))


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
