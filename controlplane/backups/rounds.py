"""One backup round: start the scheduled backup of every site whose hour has come today, start
the trial restore of a sample of backups, then prune what is kept no longer (deleted sites'
backups, old pre-change ones).

A site is due once per UTC day: when its policy is on, its hour has passed and it has no
scheduled backup dated today yet. A site busy with another change is tried again next round.
Retention of scheduled backups runs as the last step of each backup operation.

The sample: up to `backup_verify_per_round` ready sites no change holds, whose newest
succeeded backup was never tried (or tried longest ago); each is restored beside its site
and compared (the verify_backup kind), the live site untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.backups.policy import default_hour
from controlplane.credentials import tenant_backup_password
from controlplane.engine.backup_steps import record_of
from controlplane.errors import Conflict
from controlplane.kernel import clock
from controlplane.kernel.identity import Principal, Role
from controlplane.kernel.logs import get_logger
from controlplane.kernel.vocabulary import BackupKind, BackupStatus
from controlplane.models import Backup, BackupPolicy, Operation, Site
from controlplane.permissions import NotVisible
from controlplane.platform import Platform
from controlplane.services.backups import PRE_CHANGE, start_backup, start_verify

log = get_logger("aipress.backups")
SCHEDULER = Principal("backup-scheduler", Role.ADMIN)


@dataclass
class RoundResult:
    """What one round did."""

    started: dict[str, str] = field(default_factory=dict)  # site name -> operation id
    busy: list[str] = field(default_factory=list)  # due, but another change held the site
    pruned: list[str] = field(default_factory=list)  # backup ids forgotten
    # site name -> (backup id, operation id) of the trial restores started
    verifying: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class DueSite:
    """A site whose scheduled backup is due."""

    site_id: str
    tenant_id: str
    name: str


def due_sites(session: Session, now: datetime) -> list[DueSite]:
    """Ready sites whose scheduled backup of `now`'s UTC day is due and not yet taken (read
    as plain rows: a round looks at every site of the platform)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    done = set(
        session.scalars(
            select(Backup.site_id).where(
                Backup.kind == BackupKind.SCHEDULED,
                Backup.created_at >= day,
                Backup.created_at < day + timedelta(days=1),
            )
        )
    )
    saved = {
        site_id: (enabled, hour)
        for site_id, enabled, hour in session.execute(
            select(BackupPolicy.site_id, BackupPolicy.enabled, BackupPolicy.hour)
        )
    }
    due = []
    for site_id, tenant_id, name in session.execute(
        select(Site.id, Site.tenant_id, Site.name).where(Site.status == "ready").order_by(Site.id)
    ):
        enabled, hour = saved.get(site_id) or (True, default_hour(site_id))
        if enabled and now.hour >= hour and site_id not in done:
            due.append(DueSite(site_id, tenant_id, name))
    return due


def start_due(platform: Platform, now: datetime) -> RoundResult:
    """Start (submit to the engine) the scheduled backup of every due site."""
    result = RoundResult()
    with platform.sessions() as session:
        due = [(s.tenant_id, s.name) for s in due_sites(session, now)]
    for tenant_id, name in due:
        with platform.sessions() as session:
            try:
                _backup, op = start_backup(
                    session, principal=SCHEDULER, tenant_id=tenant_id, site=name,
                    kind=BackupKind.SCHEDULED,
                )  # fmt: skip
            except Conflict:
                result.busy.append(name)
                continue
            except NotVisible:  # deleted since the list was read
                continue
        platform.engine.submit(op.id)
        result.started[name] = op.id
    return result


@dataclass(frozen=True)
class SampleBackup:
    """A site's newest backup, picked for a trial restore."""

    tenant_id: str
    site_name: str
    backup_id: str


def verify_sample(
    session: Session, limit: int, skip: frozenset[str] = frozenset()
) -> list[SampleBackup]:
    """The newest succeeded backup of each ready, free site (but those in `skip`), those
    never tried first, then those tried longest ago (ties by site id): at most `limit`."""
    newest: dict[str, tuple[str, datetime | None]] = {}
    for site_id, backup_id, checked in session.execute(
        select(Backup.site_id, Backup.id, Backup.sample_checked_at)
        .join(Site, Site.id == Backup.site_id)
        .where(
            Backup.status == BackupStatus.SUCCEEDED,
            Backup.site_deleted_at.is_(None),
            Site.status == "ready",
            Site.current_operation_id.is_(None),
        )
        .order_by(Backup.site_id, Backup.created_at.desc(), Backup.id)
    ):
        if site_id not in skip:
            newest.setdefault(site_id, (backup_id, checked))
    never = datetime.min.replace(tzinfo=UTC)
    order = sorted(newest.items(), key=lambda item: (item[1][1] or never, item[0]))[:limit]
    names = {
        site_id: (tenant_id, name)
        for site_id, tenant_id, name in session.execute(
            select(Site.id, Site.tenant_id, Site.name).where(Site.id.in_([s for s, _ in order]))
        )
    }
    return [SampleBackup(*names[site_id], backup_id) for site_id, (backup_id, _) in order]


def start_verifications(platform: Platform, result: RoundResult) -> None:
    """Start the trial restore of this round's sample: not of a site whose backup this round
    started (whether that backup already ended must not change the sample)."""
    with platform.sessions() as session:
        backed_up = frozenset(
            site_id
            for site_id in session.scalars(
                select(Operation.site_id).where(Operation.id.in_(list(result.started.values())))
            )
            if site_id is not None
        )
        sample = verify_sample(session, platform.settings.backup_verify_per_round, skip=backed_up)
    for picked in sample:
        with platform.sessions() as session:
            try:
                _backup, op = start_verify(
                    session, principal=SCHEDULER, tenant_id=picked.tenant_id,
                    site=picked.site_name, backup_id=picked.backup_id,
                )  # fmt: skip
            except (Conflict, NotVisible):
                continue
        platform.engine.submit(op.id)
        result.verifying[picked.site_name] = (picked.backup_id, op.id)


def prune(platform: Platform, now: datetime) -> list[str]:
    """Forget deleted sites' backups past `deleted_site_retention_days` and pre-change ones
    past `pre_change_backup_retention_days`: removed from storage, their rows marked."""
    settings = platform.settings
    deleted_before = now - timedelta(days=settings.deleted_site_retention_days)
    pre_before = now - timedelta(days=settings.pre_change_backup_retention_days)
    pruned: list[str] = []
    with platform.sessions() as session:
        of_deleted = session.scalars(
            select(Backup).where(
                Backup.site_deleted_at.is_not(None),
                Backup.site_deleted_at <= deleted_before,
                Backup.status != BackupStatus.FORGOTTEN,
            )
        ).all()
        pre_change = session.scalars(
            select(Backup).where(
                Backup.site_deleted_at.is_(None),
                Backup.kind.in_(PRE_CHANGE),
                Backup.created_at <= pre_before,
                Backup.status == BackupStatus.SUCCEEDED,
            )
        ).all()
        by_tenant: dict[str, list[Backup]] = {}
        for backup in [*of_deleted, *pre_change]:
            by_tenant.setdefault(backup.tenant_id, []).append(backup)
        for tenant_id, rows in sorted(by_tenant.items()):
            written = [b for b in rows if b.status == BackupStatus.SUCCEEDED and b.location]
            try:
                if written:
                    password = tenant_backup_password(session, platform.keyring, tenant_id)
                    platform.provider.backups.forget(
                        tenant_id, password, [record_of(b) for b in written]
                    )
            except Exception as exc:  # one tenant's storage failing leaves the others' work
                session.rollback()
                log.error("backup.prune_failed", tenant_id=tenant_id,
                          error_type=type(exc).__name__, error=str(exc)[:300])  # fmt: skip
                continue
            for backup in rows:
                backup.status = BackupStatus.FORGOTTEN
                backup.forgotten_at = clock.now()
                pruned.append(backup.id)
            session.commit()
    if pruned:
        log.info("backup.pruned", backups=len(pruned))
    return pruned


def run_round(platform: Platform, now: datetime | None = None) -> RoundResult:
    """Start the due scheduled backups, then prune; `now` defaults to the platform clock."""
    at = now or clock.now()
    result = start_due(platform, at)
    start_verifications(platform, result)
    result.pruned = prune(platform, at)
    log.info("backup.round", started=len(result.started), busy=len(result.busy),
             verifying=len(result.verifying), pruned=len(result.pruned))  # fmt: skip
    return result
