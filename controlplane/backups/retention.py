"""Which backups a retention policy keeps: restic's `--keep-daily/weekly/monthly` rules.

Counting back from the newest backup, each rule keeps the newest backup of each of its last
N periods that have a backup (a day; an ISO 8601 week, Monday to Sunday, numbered by its
ISO year; a calendar month), as `restic forget` does; a backup kept by any rule is kept.
Periods are read in UTC, so local and gcp prune the same backups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class RetentionPolicy:
    """How many daily, weekly and monthly backups to keep (defaults: 7, 4, 3)."""

    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 3

    def __post_init__(self) -> None:
        for name in ("keep_daily", "keep_weekly", "keep_monthly"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, not {getattr(self, name)}")


@dataclass(frozen=True)
class BackupStamp:
    """A backup as the policy sees it: its id and when it was taken."""

    id: str
    created_at: datetime


@dataclass(frozen=True)
class RetentionDecision:
    """The policy's answer: ids to keep and ids to forget (newest first)."""

    keep: list[str]
    forget: list[str]


def _utc(moment: datetime) -> datetime:
    # A naive time is taken as UTC (the control plane stores UTC).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _day(t: datetime) -> tuple[int, ...]:
    return (t.year, t.month, t.day)


def _week(t: datetime) -> tuple[int, ...]:
    iso = t.isocalendar()
    return (iso.year, iso.week)


def _month(t: datetime) -> tuple[int, ...]:
    return (t.year, t.month)


def apply_retention(
    backups: Iterable[BackupStamp], policy: RetentionPolicy | None = None
) -> RetentionDecision:
    """Split the backups into the ones `policy` keeps and the ones to forget."""
    policy = policy or RetentionPolicy()
    ordered = sorted(backups, key=lambda b: (_utc(b.created_at), b.id), reverse=True)
    rules: list[tuple[Callable[[datetime], tuple[int, ...]], int]] = [
        (_day, policy.keep_daily),
        (_week, policy.keep_weekly),
        (_month, policy.keep_monthly),
    ]
    left = [count for _, count in rules]
    last: list[tuple[int, ...] | None] = [None] * len(rules)
    keep: list[str] = []
    forget: list[str] = []
    for backup in ordered:
        moment = _utc(backup.created_at)
        kept = False
        for i, (period, _count) in enumerate(rules):
            if left[i] <= 0:
                continue
            key = period(moment)
            if key != last[i]:  # newest-first: the first seen of a period is its newest
                last[i] = key
                left[i] -= 1
                kept = True
        (keep if kept else forget).append(backup.id)
    return RetentionDecision(keep=keep, forget=forget)
