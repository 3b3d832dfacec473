"""The trial restore of a backup beside its site (verify_backup) and the backup round's sample
of them, with the memory provider and an injected clock (never today's date)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from controlplane.kernel import clock
from controlplane.kernel.vocabulary import OperationKind
from controlplane.models import Backup, Operation, Site
from controlplane.platform import Platform
from controlplane.providers.memory import MemoryProvider
from controlplane.schemas import BackupPolicyWrite
from controlplane.services.backups import put_policy, start_backup, start_verify, to_read
from controlplane.settings import Settings
from tests.conftest import LOG_FILE
from tests.platform_sites import ADMIN, TENANT, backup_round, platform_of_acme, ready_site

DAY = datetime(2031, 5, 20, tzinfo=UTC)


@pytest.fixture
def provider() -> MemoryProvider:
    return MemoryProvider()


@pytest.fixture
def platform(tmp_path: Path, provider: MemoryProvider) -> Iterator[Platform]:
    settings = Settings(provider="memory", home=tmp_path / "home", log_file=LOG_FILE,
                        max_parallel_operations=2)  # fmt: skip
    yield from platform_of_acme(settings, provider)


def _site(platform: Platform, name: str) -> str:
    """A ready site whose scheduled backups are off (the sample tests pick its manual ones)."""
    return ready_site(platform, name, enabled=False)


def _backup(platform: Platform, name: str, at: datetime) -> str:
    with clock.travel(at):
        with platform.sessions() as session:
            backup, op = start_backup(session, principal=ADMIN, tenant_id=TENANT, site=name)
            backup_id = backup.id
        platform.engine.run(op.id)
    return backup_id


def _verify(platform: Platform, name: str, backup_id: str, at: datetime) -> Operation:
    with clock.travel(at):
        with platform.sessions() as session:
            _b, op = start_verify(
                session, principal=ADMIN, tenant_id=TENANT, site=name, backup_id=backup_id
            )
            op_id = op.id
        platform.engine.run(op_id)
    with platform.sessions() as session:
        done = session.get(Operation, op_id)
        assert done is not None
        session.expunge_all()
        return done


def _row(platform: Platform, backup_id: str) -> Backup:
    with platform.sessions() as session:
        row = session.get(Backup, backup_id)
        assert row is not None
        session.expunge_all()
        return row


def _free(platform: Platform, site_id: str) -> tuple[str, str | None]:
    with platform.sessions() as session:
        site = session.get(Site, site_id)
        assert site is not None
        return site.status, site.current_operation_id


def test_a_good_backup_is_restored_beside_the_site_and_marked_verified(
    platform: Platform, provider: MemoryProvider
) -> None:
    site_id = _site(platform, "good")
    backup_id = _backup(platform, "good", DAY.replace(hour=1))
    provider.write_content(site_id, "database", "the live site, changed since")
    at = DAY.replace(hour=9)

    op = _verify(platform, "good", backup_id, at)

    assert op.status == "succeeded", op.error
    assert [s.name for s in op.steps] == ["stage", "compare", "unstage"]
    row = _row(platform, backup_id)
    assert row.verified_at is not None and abs(row.verified_at - at) < timedelta(seconds=30)
    assert row.sample_checked_at == row.verified_at and row.verification_error is None
    read = to_read(row, platform.settings)
    assert read.sample_checked_at == row.sample_checked_at and read.verification_error is None
    # Staged beside the site, never swapped in, and nothing left staged.
    assert "stage:backup:good" in provider.calls
    assert not [c for c in provider.calls if c.startswith(("swap:", "maintenance:"))]
    assert provider.content(site_id)["database"] == "the live site, changed since"
    assert provider.content(site_id, "staged") == {}
    assert _free(platform, site_id) == ("ready", None)


def test_a_corrupted_backup_fails_verification_and_the_live_site_is_untouched(
    platform: Platform, provider: MemoryProvider
) -> None:
    site_id = _site(platform, "bad")
    backup_id = _backup(platform, "bad", DAY.replace(hour=1))
    written = _row(platform, backup_id).verified_at
    provider.write_content(site_id, "database", "the live site")
    provider.corrupt(TENANT, backup_id)

    op = _verify(platform, "bad", backup_id, DAY.replace(hour=9))

    assert op.status == "rolled_back" and "does not match its checksums" in (op.error or "")
    row = _row(platform, backup_id)
    assert row.verification_error and "does not match its checksums" in row.verification_error
    assert row.sample_checked_at is not None and row.verified_at == written  # not re-verified
    assert to_read(row, platform.settings).verification_error == row.verification_error
    assert provider.content(site_id)["database"] == "the live site"
    assert provider.content(site_id, "staged") == {}
    assert not provider.in_maintenance(site_id)
    assert _free(platform, site_id) == ("ready", None)
    logged = [line for line in LOG_FILE.read_text().splitlines() if backup_id in line]
    assert any("backup.verification_failed" in line for line in logged), logged


@pytest.mark.parametrize(
    ("fault", "said"),
    [("no room", "free some space"), ("stage:backup", "injected failure at stage:backup")],
)
def test_a_verification_that_cannot_run_does_not_mark_the_backup(
    platform: Platform, provider: MemoryProvider, fault: str, said: str
) -> None:
    site_id = _site(platform, "full")
    backup_id = _backup(platform, "full", DAY.replace(hour=1))
    if fault == "no room":
        provider.free_bytes = 1  # no room to stage beside the site
    else:
        provider.fail_on = {fault}  # storage unreachable while staging

    op = _verify(platform, "full", backup_id, DAY.replace(hour=9))

    assert op.status == "rolled_back" and said in (op.error or ""), op.error
    row = _row(platform, backup_id)
    assert row.verification_error is None and row.sample_checked_at is None
    assert _free(platform, site_id) == ("ready", None)


def test_the_round_verifies_the_newest_backups_tried_longest_ago(
    platform: Platform, provider: MemoryProvider
) -> None:
    assert Settings().backup_verify_per_round == 2
    ids = {name: _site(platform, name) for name in ("ann", "bob", "cy", "dee")}
    newest = {name: _backup(platform, name, DAY.replace(hour=1)) for name in ids}
    older = _backup(platform, "ann", DAY.replace(hour=0))  # created earlier: not the newest
    by_id = sorted(ids, key=ids.__getitem__)

    first = backup_round(platform, DAY.replace(hour=10))
    assert list(first.verifying) == by_id[:2]  # never tried: by site id
    assert {s: b for s, (b, _op) in first.verifying.items()} == {s: newest[s] for s in by_id[:2]}
    assert older not in {b for b, _op in first.verifying.values()}
    assert first.started == {}
    second = backup_round(platform, DAY.replace(hour=11))
    assert list(second.verifying) == by_id[2:]
    # All tried: the ones tried longest ago come round again.
    assert list(backup_round(platform, DAY.replace(hour=12)).verifying) == by_id[:2]
    for name in ids:
        assert _row(platform, newest[name]).verification_error is None
        assert _row(platform, newest[name]).sample_checked_at is not None

    # A site a change holds, and a site not ready, are left out; a new backup is tried first.
    held, _stopped = by_id[2], by_id[3]
    with platform.sessions() as session:
        session.execute(update(Site).where(Site.id == ids[held]).values(current_operation_id="x"))
        session.execute(update(Site).where(Site.id == ids[_stopped]).values(status="stopped"))
        session.commit()
    fresh = _backup(platform, by_id[1], DAY.replace(hour=13))
    picked = backup_round(platform, DAY.replace(hour=14)).verifying
    assert list(picked) == [by_id[1], by_id[0]] and picked[by_id[1]][0] == fresh
    with platform.sessions() as session:
        kinds = set(
            session.scalars(
                select(Operation.kind).where(Operation.id.in_([op for _b, op in picked.values()]))
            )
        )
    assert kinds == {OperationKind.VERIFY_BACKUP}


def test_a_site_backed_up_by_the_round_is_not_also_verified_by_it(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The round's backup finishes before the sample is read (an engine that runs it at
    # once): the sample must not depend on how fast it was.
    monkeypatch.setattr(platform.engine, "submit", platform.engine.run)
    _site(platform, "due")
    _backup(platform, "due", DAY.replace(hour=1))
    with platform.sessions() as session:
        put_policy(session, principal=ADMIN, tenant_id=TENANT, site="due",
                   data=BackupPolicyWrite(enabled=True, hour=3))  # fmt: skip
    result = backup_round(platform, DAY.replace(hour=4))
    assert list(result.started) == ["due"] and result.verifying == {}
    assert list(backup_round(platform, DAY.replace(hour=5)).verifying) == ["due"]
