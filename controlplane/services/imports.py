"""Imports: who may import into a site, the form's values, and the operation that imports."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from controlplane.engine.backup_steps import new_backup
from controlplane.errors import Conflict, Invalid
from controlplane.imports import uploads
from controlplane.imports.checks import ImportRefused, check_upload
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import BackupKind, OperationKind
from controlplane.models import Backup, Operation, Site
from controlplane.permissions import Action
from controlplane.services.sites import get_site, start_change
from controlplane.settings import Settings

ADMIN_CHOICES = ("keep", "reset")


def check_may_import(session: Session, *, principal: Principal, tenant_id: str, site: str) -> Site:
    """Before the upload is read: the caller may import into this ready, idle site (404,
    403 or 409 otherwise; the same checks run again when the operation is recorded)."""
    target = get_site(
        session, principal=principal, tenant_id=tenant_id, name=site, action=Action.RESTORE_SITES
    )
    if target.status != "ready":
        raise Conflict(f"site {site!r} is {target.status}; an import needs it to be ready")
    if target.current_operation_id is not None:
        raise Conflict(
            f"site {site!r} is busy with operation {target.current_operation_id}; "
            "wait for it to finish"
        )
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
    made: list[Backup] = []
    moved: list[Path] = []

    def record(claimed: Site, op: Operation) -> None:
        pre = new_backup(claimed, kind=BackupKind.PRE_IMPORT, requested_by=principal.sub)
        pre.operation_id = op.id
        session.add(pre)
        target = uploads.upload_dir(settings.home, op.id)
        incoming.rename(target)
        moved.append(target)
        op.params = {
            **op.params,
            "pre_backup": pre.id,
            "upload_dir": str(target),
            "old_url": old_url,
            "admin": admin,
            "max_unpacked_bytes": settings.import_max_unpacked_bytes,
        }
        made.append(pre)

    try:
        claimed, op = start_change(
            session,
            principal=principal,
            tenant_id=tenant_id,
            name=site,
            kind=OperationKind.IMPORT_SITE,
            allowed_from=("ready",),
            new_status="restoring",
            action=Action.RESTORE_SITES,
            prepare=record,
        )
    except BaseException:
        for path in moved:
            uploads.discard(path)
        raise
    pre = session.get(Backup, made[0].id)
    assert pre is not None  # committed with the operation
    return claimed, pre, op
