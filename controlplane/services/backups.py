"""Backups: take one, list and read them, restore one in place, the policy, the download."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane import audit
from controlplane.backups import download
from controlplane.backups.policy import effective_policy
from controlplane.crypto import Keyring
from controlplane.engine.backup_steps import new_backup
from controlplane.errors import Conflict
from controlplane.kernel import clock
from controlplane.kernel.identity import Principal, Role
from controlplane.kernel.vocabulary import BackupKind, BackupStatus, OperationKind
from controlplane.models import Backup, BackupPolicy, Operation, Site, Tenant, User
from controlplane.permissions import Action, NotVisible, is_allowed
from controlplane.schemas import (
    BackupDownloadLink,
    BackupPolicyRead,
    BackupPolicyWrite,
    BackupRead,
)
from controlplane.services.sites import get_site, start_change
from controlplane.services.tenants import DELETED, get_visible_tenant
from controlplane.settings import Settings

PRE_CHANGE = (
    BackupKind.PRE_DELETE,
    BackupKind.PRE_RESTORE,
    BackupKind.PRE_UPDATE,
    BackupKind.PRE_PROMOTE,
    BackupKind.PRE_IMPORT,
    BackupKind.PRE_CLONE,
)


def kept_until(backup: Backup, settings: Settings) -> datetime | None:
    """When pruning removes a backup: a deleted site's after the deleted-site retention, a
    pre-change one after its own; None for the ones the policy or the user removes."""
    if backup.site_deleted_at is not None:
        return backup.site_deleted_at + timedelta(days=settings.deleted_site_retention_days)
    if backup.kind in PRE_CHANGE:
        return backup.created_at + timedelta(days=settings.pre_change_backup_retention_days)
    return None


def to_read(backup: Backup, settings: Settings) -> BackupRead:
    """The API view of a backup."""
    return BackupRead(
        id=backup.id,
        tenant_id=backup.tenant_id,
        site_id=backup.site_id,
        site_name=backup.site_name,
        kind=BackupKind(backup.kind),
        status=BackupStatus(backup.status),
        created_at=backup.created_at,
        finished_at=backup.finished_at,
        verified_at=backup.verified_at,
        sample_checked_at=backup.sample_checked_at,
        verification_error=backup.verification_error,
        size_bytes=backup.size_bytes,
        added_bytes=backup.added_bytes,
        error=backup.error,
        operation_id=backup.operation_id,
        site_deleted_at=backup.site_deleted_at,
        kept_until=kept_until(backup, settings),
    )


def list_site_backups(
    session: Session, *, principal: Principal, tenant_id: str, site: str
) -> list[Backup]:
    """A site's backups, newest first (a deleted site of that name: its kept backups)."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.READ_SITES)
    live = session.scalar(select(Site).where(Site.tenant_id == tenant_id, Site.name == site))
    query = select(Backup).where(
        Backup.tenant_id == tenant_id,
        Backup.site_name == site,
        Backup.status != BackupStatus.FORGOTTEN,
    )
    rows = list(session.scalars(query.order_by(Backup.created_at.desc(), Backup.id)))
    if live is None and not rows:
        raise NotVisible(f"site {site!r} not found in tenant {tenant_id!r}")
    return rows


def list_tenant_backups(
    session: Session, *, principal: Principal, tenant_id: str, deleted: bool
) -> list[Backup]:
    """The tenant's backups, newest first: of its deleted sites (`deleted`), or of its sites."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.READ_SITES)
    query = select(Backup).where(
        Backup.tenant_id == tenant_id, Backup.status != BackupStatus.FORGOTTEN
    )
    if deleted:
        query = query.where(Backup.site_deleted_at.is_not(None))
    else:
        query = query.where(Backup.site_deleted_at.is_(None))
    return list(session.scalars(query.order_by(Backup.created_at.desc(), Backup.id)))


def get_backup(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    site: str,
    backup_id: str,
    action: Action = Action.READ_SITES,
) -> Backup:
    """One backup of a tenant's site (live or deleted); 404 for anyone else's."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=action)
    backup = session.scalar(
        select(Backup).where(
            Backup.id == backup_id, Backup.tenant_id == tenant_id, Backup.site_name == site
        )
    )
    if backup is None or backup.status == BackupStatus.FORGOTTEN:
        raise NotVisible(f"backup {backup_id!r} of site {site!r} not found in tenant {tenant_id!r}")
    return backup


def live_backup(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    site: str,
    backup_id: str,
    action: Action,
    what: str,
) -> Backup:
    """A succeeded backup of the live site `site`, to be `what` (restored); 404 if not
    visible, 409 for a deleted namesake's backup or one that did not succeed."""
    backup = get_backup(session, principal=principal, tenant_id=tenant_id, site=site,
                        backup_id=backup_id, action=action)  # fmt: skip
    target = get_site(session, principal=principal, tenant_id=tenant_id, name=site, action=action)
    if backup.site_id != target.id:
        raise Conflict(
            f"backup {backup_id!r} is of an earlier site named {site!r} (deleted); only a "
            f"backup of the live site can be {what} (create a new site from it instead)"
        )
    if backup.status != BackupStatus.SUCCEEDED:
        raise Conflict(
            f"backup {backup_id!r} is {backup.status}; only a succeeded backup can be {what}"
        )
    return backup


# (the claimed site, its operation, the backup the operation takes) -> params to add; may
# record more rows in the same transaction.
BackupParams = Callable[[Site, Operation, Backup], dict[str, Any]]


def start_with_backup(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    site: str,
    kind: OperationKind,
    backup_kind: BackupKind,
    params: BackupParams,
    action: Action,
    allowed_from: tuple[str, ...] = ("ready",),
    new_status: str | None = None,
    parent_id: str | None = None,
) -> tuple[Site, Backup, Operation]:
    """Record an operation on a site with the backup row it takes, and claim the site for
    it (409 if busy); both are committed together or not at all."""
    made: list[Backup] = []

    def record(claimed: Site, op: Operation) -> None:
        backup = new_backup(claimed, kind=backup_kind, requested_by=principal.sub)
        backup.operation_id = op.id
        session.add(backup)
        op.params = {**op.params, **params(claimed, op, backup)}
        made.append(backup)

    claimed, op = start_change(
        session, principal=principal, tenant_id=tenant_id, name=site, kind=kind,
        allowed_from=allowed_from, new_status=new_status, action=action, prepare=record,
        parent_id=parent_id,
    )  # fmt: skip
    backup = session.get(Backup, made[0].id)
    assert backup is not None  # committed with the operation
    return claimed, backup, op


def start_backup(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    site: str,
    kind: BackupKind = BackupKind.MANUAL,
    parent_id: str | None = None,
) -> tuple[Backup, Operation]:
    """Record a backup and the operation that takes it (a child of the bulk `parent_id`);
    409 while another change runs."""
    _site, backup, op = start_with_backup(
        session, principal=principal, tenant_id=tenant_id, site=site,
        kind=OperationKind.BACKUP_SITE, backup_kind=kind, action=Action.BACKUP_SITES,
        params=lambda _site, _op, backup: {"backup": backup.id, "kind": kind.value},
        allowed_from=("ready", "stopped"), parent_id=parent_id,
    )  # fmt: skip
    return backup, op


def start_restore(
    session: Session, *, principal: Principal, tenant_id: str, site: str, backup_id: str
) -> tuple[Site, Backup, Backup, Operation]:
    """Start putting a backup of the site back in place (a pre-restore backup first)."""
    live_backup(session, principal=principal, tenant_id=tenant_id, site=site,
                backup_id=backup_id, action=Action.RESTORE_SITES, what="restored")  # fmt: skip
    claimed, pre, op = start_with_backup(
        session, principal=principal, tenant_id=tenant_id, site=site,
        kind=OperationKind.RESTORE_SITE, backup_kind=BackupKind.PRE_RESTORE,
        params=lambda _site, _op, pre: {"backup": backup_id, "pre_backup": pre.id},
        action=Action.RESTORE_SITES, new_status="restoring",
    )  # fmt: skip
    restored = session.get(Backup, backup_id)
    assert restored is not None  # committed with the operation
    return claimed, restored, pre, op


def start_verify(
    session: Session, *, principal: Principal, tenant_id: str, site: str, backup_id: str
) -> tuple[Backup, Operation]:
    """Start restoring a backup beside its (ready) site and comparing it; the live site is
    never touched, and the site is claimed so no restore stages at the same time."""
    live_backup(session, principal=principal, tenant_id=tenant_id, site=site,
                backup_id=backup_id, action=Action.BACKUP_SITES, what="verified")  # fmt: skip

    def record(_claimed: Site, op: Operation) -> None:
        op.params = {**op.params, "backup": backup_id}

    _site, op = start_change(
        session,
        principal=principal,
        tenant_id=tenant_id,
        name=site,
        kind=OperationKind.VERIFY_BACKUP,
        allowed_from=("ready",),
        action=Action.BACKUP_SITES,
        prepare=record,
    )
    verified = session.get(Backup, backup_id)
    assert verified is not None
    return verified, op


def policy_read(session: Session, site: Site) -> BackupPolicyRead:
    """The site's policy as the API shows it."""
    return BackupPolicyRead.model_validate(effective_policy(session, site.id), from_attributes=True)


def get_policy(
    session: Session, *, principal: Principal, tenant_id: str, site: str
) -> BackupPolicyRead:
    """A site's backup policy (the defaults until changed)."""
    target = get_site(session, principal=principal, tenant_id=tenant_id, name=site)
    return policy_read(session, target)


def put_policy(
    session: Session, *, principal: Principal, tenant_id: str, site: str, data: BackupPolicyWrite
) -> BackupPolicyRead:
    """Change a site's backup policy (fields left out keep their value); audited."""
    target = get_site(
        session, principal=principal, tenant_id=tenant_id, name=site, action=Action.BACKUP_SITES
    )
    current = effective_policy(session, target.id)
    row = session.get(BackupPolicy, target.id)
    if row is None:
        row = BackupPolicy(
            site_id=target.id,
            enabled=current.enabled,
            hour=current.hour,
            keep_daily=current.keep_daily,
            keep_weekly=current.keep_weekly,
            keep_monthly=current.keep_monthly,
            updated_by=principal.sub,
        )
        session.add(row)
    changes = data.model_dump(exclude_none=True)
    for field, value in changes.items():
        setattr(row, field, value)
    row.updated_by = principal.sub
    audit.record(
        session,
        principal=principal,
        action="site.backup_policy",
        tenant_id=tenant_id,
        target=site,
        detail=changes,
    )
    session.commit()
    return policy_read(session, target)


def create_download_link(
    session: Session,
    *,
    principal: Principal,
    keyring: Keyring,
    tenant_id: str,
    site: str,
    backup_id: str,
    ttl_seconds: int,
    now: datetime | None = None,
) -> BackupDownloadLink:
    """A link that downloads one succeeded backup for `ttl_seconds` (audited)."""
    backup = get_backup(
        session, principal=principal, tenant_id=tenant_id, site=site, backup_id=backup_id,
        action=Action.DOWNLOAD_BACKUPS,
    )  # fmt: skip
    if backup.status != BackupStatus.SUCCEEDED:
        raise Conflict(f"backup {backup_id!r} is {backup.status}; only a succeeded one downloads")
    expires = (now or clock.now()).replace(microsecond=0) + timedelta(seconds=ttl_seconds)
    token = download.sign(keyring, tenant_id=tenant_id, backup_id=backup.id,
                          user=principal.sub, expires_at=expires)  # fmt: skip
    audit.record(
        session,
        principal=principal,
        action="site.backup_download_link",
        tenant_id=tenant_id,
        target=site,
        detail={"backup_id": backup.id, "expires_at": expires.isoformat()},
    )
    session.commit()
    return BackupDownloadLink(url=f"/v1/backup-downloads/{token}", expires_at=expires)


def open_download(
    session: Session, *, keyring: Keyring, token: str, now: datetime | None = None
) -> Backup:
    """The backup a valid link names; NotVisible (404) for a bad, expired or stale link, or
    one whose user may no longer download the tenant's backups (the tenant deleted, or an
    admin changed the user's role or tenants since the link was made)."""
    try:
        tenant_id, backup_id, uid = download.verify(keyring, token, now=now or clock.now())
    except download.BadLink as exc:
        raise NotVisible(f"download link not valid: {exc}") from exc
    tenant = session.get(Tenant, tenant_id)
    user = session.get(User, uid)
    if (
        tenant is None
        or tenant.status == DELETED
        or (
            user is not None
            and not is_allowed(
                Principal(uid, Role(user.role), tenants=frozenset(user.tenants)),
                Action.DOWNLOAD_BACKUPS,
                tenant_id,
            )
        )
    ):
        raise NotVisible("download link not valid: its user may no longer download it")
    backup = session.get(Backup, backup_id)
    if backup is None or backup.tenant_id != tenant_id or backup.status != BackupStatus.SUCCEEDED:
        raise NotVisible("download link not valid: the backup is gone")
    return backup
