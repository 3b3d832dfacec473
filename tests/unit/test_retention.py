"""Retention over 100 simulated days of daily backups keeps what restic's rules keep."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from controlplane.backups.retention import (
    BackupStamp,
    RetentionPolicy,
    apply_retention,
)

START = date(2026, 11, 20)  # to 2027-02-27: month ends, a year end, ISO week 2026-W53


def _daily(days: int = 100, hour: int = 3) -> list[BackupStamp]:
    stamps = []
    for n in range(days):
        day = START + timedelta(days=n)
        moment = datetime(day.year, day.month, day.day, hour, 15, tzinfo=UTC)
        stamps.append(BackupStamp(id=day.isoformat(), created_at=moment))
    return stamps


def test_the_100_days_run_crosses_the_year() -> None:
    days = _daily()
    assert days[0].id == "2026-11-20" and days[-1].id == "2027-02-27"


def test_default_policy_keeps_7_daily_4_weekly_3_monthly() -> None:
    decision = apply_retention(_daily())
    expected = [
        # 7 daily
        "2027-02-27", "2027-02-26", "2027-02-25", "2027-02-24", "2027-02-23", "2027-02-22",
        "2027-02-21",
        # weekly (newest of each ISO week): 02-27 and 02-21 above, then:
        "2027-02-14", "2027-02-07",
        # monthly (newest of each month): 02-27 above, then:
        "2027-01-31", "2026-12-31",
    ]  # fmt: skip
    assert decision.keep == expected
    assert len(decision.forget) == 100 - len(expected)
    assert set(decision.keep).isdisjoint(decision.forget)


def test_weeks_are_iso_weeks_across_the_year_end() -> None:
    # ISO week 2026-W53 runs Mon 2026-12-28 .. Sun 2027-01-03: its newest is 01-03, and
    # 2026-12-31 is kept only as December's newest, not as a week of its own.
    decision = apply_retention(
        _daily(), RetentionPolicy(keep_daily=2, keep_weekly=10, keep_monthly=5)
    )
    expected = [
        "2027-02-27", "2027-02-26",  # daily
        "2027-02-21", "2027-02-14", "2027-02-07", "2027-01-31", "2027-01-24", "2027-01-17",
        "2027-01-10", "2027-01-03", "2026-12-31", "2026-12-27",
        "2026-11-30",  # monthly: only four months have backups (Feb, Jan, Dec, Nov)
    ]  # fmt: skip
    assert decision.keep == expected


def test_the_newest_of_a_day_is_kept_and_order_of_input_does_not_matter() -> None:
    stamps = [
        *_daily(3, hour=1),
        *[BackupStamp(id=f"late-{s.id}", created_at=s.created_at + timedelta(hours=20))
          for s in _daily(3)],
    ]  # fmt: skip
    decision = apply_retention(list(reversed(stamps)), RetentionPolicy(2, 0, 0))
    assert decision.keep == ["late-2026-11-22", "late-2026-11-21"]
    assert set(decision.forget) == {"2026-11-20", "2026-11-21", "2026-11-22", "late-2026-11-20"}


def test_days_are_utc_days() -> None:
    # 23:30 at UTC-5 on the 20th is the 21st in UTC: same day as the 21st's backup.
    eastern = timezone(timedelta(hours=-5))
    stamps = [
        BackupStamp("a", datetime(2026, 11, 20, 23, 30, tzinfo=eastern)),
        BackupStamp("b", datetime(2026, 11, 21, 6, 0, tzinfo=UTC)),
        BackupStamp("c", datetime(2026, 11, 20, 12, 0)),  # naive: UTC
    ]
    assert apply_retention(stamps, RetentionPolicy(7, 0, 0)).keep == ["b", "c"]


def test_nothing_kept_by_an_empty_policy_and_nothing_to_do_without_backups() -> None:
    assert apply_retention(_daily(5), RetentionPolicy(0, 0, 0)).keep == []
    assert apply_retention([]).keep == [] and apply_retention([]).forget == []


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="keep_weekly must be 0 or more"):
        RetentionPolicy(keep_weekly=-1)
