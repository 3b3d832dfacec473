"""A site's backup policy: its saved row, or the defaults (daily, at an hour spread by id)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy.orm import Session

from controlplane.models import BackupPolicy

KEEP_DAILY, KEEP_WEEKLY, KEEP_MONTHLY = 7, 4, 3


def default_hour(site_id: str) -> int:
    """The UTC hour of a site's daily backup until its owner picks one: stable, and spread
    evenly over the day by the site's id so a thousand sites do not all start at once."""
    digest = hashlib.sha256(site_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 24


@dataclass(frozen=True)
class Policy:
    """What the schedule and retention follow for one site."""

    enabled: bool
    hour: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    customized: bool  # False: the defaults (no row saved)


def effective_policy(session: Session, site_id: str) -> Policy:
    """The site's saved policy, or the defaults."""
    row = session.get(BackupPolicy, site_id)
    if row is None:
        return Policy(True, default_hour(site_id), KEEP_DAILY, KEEP_WEEKLY, KEEP_MONTHLY, False)
    return Policy(row.enabled, row.hour, row.keep_daily, row.keep_weekly, row.keep_monthly, True)
