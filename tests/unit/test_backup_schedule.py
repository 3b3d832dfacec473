"""The backup schedule with an injected clock (never today's date): each site once per UTC day
at its hour, retention after each scheduled backup over 100 simulated days, and the pruning
of deleted sites' (and old pre-change) backups after a short retention setting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from controlplane.backups.policy import default_hour
from controlplane.kernel import clock
from controlplane.kernel.vocabulary import BackupKind, BackupStatus
from controlplane.models import Backup, Site
from controlplane.platform import Platform
from controlplane.providers.memory import MemoryProvider
from controlplane.services.backups import start_backup, start_restore
from controlplane.services.sites import delete_site
from controlplane.settings import Settings
from tests.conftest import LOG_FILE
from tests.platform_sites import ADMIN, TENANT, backup_round, platform_of_acme, ready_site


@pytest.fixture
def provider() -> MemoryProvider:
    return MemoryProvider()


@pytest.fixture
def platform(tmp_path: Path, provider: MemoryProvider) -> Iterator[Platform]:
    settings = Settings(
        provider="memory", home=tmp_path / "home", log_file=LOG_FILE, max_parallel_operations=2,
        deleted_site_retention_days=2, pre_change_backup_retention_days=3,
    )  # fmt: skip
    yield from platform_of_acme(settings, provider)


def _rows(platform: Platform, name: str, kind: BackupKind | None = None) -> list[Backup]:
    with platform.sessions() as session:
        query = select(Backup).where(Backup.site_name == name).order_by(Backup.created_at)
        if kind is not None:
            query = query.where(Backup.kind == kind)
        return list(session.scalars(query))


DAY = datetime(2031, 3, 10, tzinfo=UTC)


def test_each_site_is_backed_up_once_a_day_at_its_hour(platform: Platform) -> None:
    ready_site(platform, "early", hour=3)
    ready_site(platform, "late", hour=20)
    ready_site(platform, "off", hour=0, enabled=False)

    assert backup_round(platform, DAY.replace(hour=2, minute=59)).started == {}
    assert set(backup_round(platform, DAY.replace(hour=3)).started) == {"early"}
    assert backup_round(platform, DAY.replace(hour=3, minute=5)).started == {}  # once per day
    assert backup_round(platform, DAY.replace(hour=19, minute=59)).started == {}
    assert set(backup_round(platform, DAY.replace(hour=23, minute=59)).started) == {"late"}
    next_day = DAY + timedelta(days=1)
    assert set(backup_round(platform, next_day.replace(hour=21)).started) == {"early", "late"}

    assert len(_rows(platform, "early", BackupKind.SCHEDULED)) == 2
    assert len(_rows(platform, "late", BackupKind.SCHEDULED)) == 2
    assert _rows(platform, "off") == []
    assert {b.status for b in _rows(platform, "early")} == {BackupStatus.SUCCEEDED}
    assert {b.requested_by for b in _rows(platform, "early")} == {"backup-scheduler"}


def test_a_busy_site_is_backed_up_by_a_later_round(platform: Platform) -> None:
    site_id = ready_site(platform, "busy", hour=1)
    with platform.sessions() as session:
        session.execute(update(Site).where(Site.id == site_id).values(current_operation_id="x"))
        session.commit()
    held = backup_round(platform, DAY.replace(hour=2))
    assert held.started == {} and held.busy == ["busy"]
    with platform.sessions() as session:
        session.execute(update(Site).where(Site.id == site_id).values(current_operation_id=None))
        session.commit()
    assert set(backup_round(platform, DAY.replace(hour=2, minute=5)).started) == {"busy"}
    assert len(_rows(platform, "busy")) == 1  # the refused claim left no row


def test_the_default_hour_is_spread_by_site_id() -> None:
    hours = [default_hour(f"{i:032x}") for i in range(2400)]
    assert set(hours) == set(range(24))
    assert max(hours.count(h) for h in range(24)) < 2 * 2400 / 24
    assert default_hour("ab" * 16) == default_hour("ab" * 16)


def test_retention_keeps_what_the_policy_says_over_100_days(
    platform: Platform, provider: MemoryProvider
) -> None:
    ready_site(platform, "kept", hour=5)  # the defaults: keep 7 daily, 4 weekly, 3 monthly
    start = datetime(2031, 1, 1, 5, 30, tzinfo=UTC)  # a Wednesday
    with clock.travel(start - timedelta(hours=1)), platform.sessions() as session:
        _backup, op = start_backup(session, principal=ADMIN, tenant_id=TENANT, site="kept")
        manual = _backup.id
    platform.engine.run(op.id)
    for day in range(100):
        assert set(backup_round(platform, start + timedelta(days=day)).started) == {"kept"}

    scheduled = _rows(platform, "kept", BackupKind.SCHEDULED)
    assert len(scheduled) == 100
    kept = sorted(b.created_at.date() for b in scheduled if b.status == BackupStatus.SUCCEEDED)
    # Written out by hand: the last 7 days; the newest of each of the last 4 ISO weeks (Sun
    # 6 Apr, 30 and 23 Mar besides this week's); of the last 3 months (31 Mar, 28 Feb).
    assert kept == [
        date(2031, 2, 28), date(2031, 3, 23), date(2031, 3, 30), date(2031, 3, 31),
        *(date(2031, 4, d) for d in range(4, 11)),
    ]  # fmt: skip
    forgotten = [b for b in scheduled if b.status == BackupStatus.FORGOTTEN]
    assert len(forgotten) == 89 and all(b.forgotten_at for b in forgotten)
    stored = provider.stored_backups(TENANT)
    assert set(stored) == {b.id for b in scheduled if b.status == BackupStatus.SUCCEEDED} | {
        manual
    }  # the manual backup is the user's to remove


def test_deleted_sites_backups_are_pruned_after_the_retention_setting(
    platform: Platform, provider: MemoryProvider
) -> None:
    ready_site(platform, "gone", hour=23)
    deleted_at = DAY.replace(hour=1)
    with clock.travel(deleted_at), platform.sessions() as session:
        _site_row, op = delete_site(session, principal=ADMIN, tenant_id=TENANT, name="gone")
        platform.engine.run(op.id)
    (pre_delete,) = _rows(platform, "gone")
    assert pre_delete.kind == BackupKind.PRE_DELETE and pre_delete.site_deleted_at is not None
    assert set(provider.stored_backups(TENANT)) == {pre_delete.id}

    # deleted_site_retention_days=2: kept through day 2, pruned once it has passed.
    assert backup_round(platform, deleted_at + timedelta(days=2, seconds=-5)).pruned == []
    assert backup_round(platform, deleted_at + timedelta(days=2, seconds=5)).pruned == [
        pre_delete.id
    ]
    (row,) = _rows(platform, "gone")
    assert row.status == BackupStatus.FORGOTTEN and row.forgotten_at is not None
    assert provider.stored_backups(TENANT) == {}
    assert backup_round(platform, deleted_at + timedelta(days=3)).pruned == []  # once


def test_old_pre_restore_backups_are_pruned_and_others_stay(
    platform: Platform, provider: MemoryProvider
) -> None:
    ready_site(platform, "live", hour=23)
    with clock.travel(DAY):
        with platform.sessions() as session:
            manual, op = start_backup(session, principal=ADMIN, tenant_id=TENANT, site="live")
            manual_id = manual.id
        platform.engine.run(op.id)
        with platform.sessions() as session:
            _s, _b, pre, restore = start_restore(
                session, principal=ADMIN, tenant_id=TENANT, site="live", backup_id=manual_id
            )
            pre_id = pre.id
        platform.engine.run(restore.id)
    assert backup_round(platform, DAY + timedelta(days=2, hours=1)).pruned == []
    assert backup_round(platform, DAY + timedelta(days=3, hours=1)).pruned == [pre_id]
    assert set(provider.stored_backups(TENANT)) >= {manual_id}
    assert pre_id not in provider.stored_backups(TENANT)
