"""Imports: who may import into a site, the form's values, and the operation that imports."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from controlplane.errors import Invalid
from controlplane.imports import uploads
from controlplane.imports.checks import ImportRefused, check_upload
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import BackupKind, OperationKind
from controlplane.models import Backup, Operation, Site
from controlplane.permissions import Action
from controlplane.services.backups import start_with_backup
from controlplane.services.site_checks import require_ready
from controlplane.services.sites import get_site
from controlplane.settings import Settings

ADMIN_CHOICES = ("keep", "reset")


def check_may_import(session: Session, *, principal: Principal, tenant_id: str, site: str) -> Site:
    """Before the upload is read: the caller may import into this ready, idle site (404,
    403 or 409 otherwise; the same checks run again when the operation is recorded)."""
    target = get_site(
        session, principal=principal, tenant_id=tenant_id, name=site, action=Action.RESTORE_SITES
    )
    require_ready(target, "an import")
    return target


def form_values(form: uploads.ReceivedForm) -> tuple[str, str]:
    """(old_url, admin) of a well-formed import form; Invalid says what to send instead."""
    files = form.files
    if "archive" in files and files & {"dump", "content"}:
        raise Invalid("send either archive, or dump (and content): not both")
    if "content" in files and "dump" not in files:
        raise Invalid("content (wp-content .tar.gz) goes with a dump: send dump too")
    if not files & {"archive", "dump"}:
        raise Invalid("send the site: archive (a .tar.gz), or dump (.sql / .sql.gz)")
    old_url = form.fields.get("old_url", "")
    parts = urlsplit(old_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(
            "old_url must be the site's old address, like https://old.example.com "
            f"(got {old_url[:200]!r})"
        )
    admin = form.fields.get("admin") or "keep"
    if admin not in ADMIN_CHOICES:
        raise Invalid(f"admin must be keep or reset (got {admin[:50]!r})")
    return old_url.rstrip("/"), admin


def check_incoming(directory: Path, settings: Settings) -> None:
    """The upload's checks, in the request (the operation's first step runs them again)."""
    try:
        check_upload(directory, limit=settings.import_max_unpacked_bytes)
    except ImportRefused as exc:
        raise Invalid(str(exc)) from exc


def start_import(
    session: Session,
    *,
    principal: Principal,
    settings: Settings,
    tenant_id: str,
    site: str,
    incoming: Path,
    old_url: str,
    admin: str,
) -> tuple[Site, Backup, Operation]:
    """Record the import of the upload in `incoming` (moved to the operation's directory)
    with its pre-import backup, and claim the site (409 if busy); nothing stays on failure."""
    moved: list[Path] = []

    def params(_claimed: Site, op: Operation, pre: Backup) -> dict[str, Any]:
        target = uploads.upload_dir(settings.home, op.id)
        incoming.rename(target)
        moved.append(target)
        return {"pre_backup": pre.id, "upload_dir": str(target), "old_url": old_url,
                "admin": admin,
                "max_unpacked_bytes": settings.import_max_unpacked_bytes}  # fmt: skip

    try:
        claimed, pre, op = start_with_backup(
            session, principal=principal, tenant_id=tenant_id, site=site,
            kind=OperationKind.IMPORT_SITE, backup_kind=BackupKind.PRE_IMPORT, params=params,
            action=Action.RESTORE_SITES, new_status="restoring",
        )  # fmt: skip
    except BaseException:
        for path in moved:
            uploads.discard(path)
        raise
    return claimed, pre, op
