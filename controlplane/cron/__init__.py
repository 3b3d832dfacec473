"""Cron done by the platform: WordPress's own WP-Cron is off (`DISABLE_WP_CRON`), and the
control plane runs each ready site's due events once per `cron_interval_seconds`.

Each site runs at a stable offset within the interval (from its id), so a thousand sites do
not all start at :00, and at most `cron_concurrency` sites run at a time. The embedded
default runs rounds in a thread of the control plane (`schedule.py`); in production Cloud
Scheduler starts `python -m controlplane.cron` (a Cloud Run Job) once per interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controlplane.engine.provider import SiteContext


@dataclass(frozen=True)
class CronResult:
    """How one run of a site's due events went."""

    ok: bool
    detail: str
    events_run: int | None = None  # None: the site did not say


class CronRunner(Protocol):
    """Runs one site's due WP-Cron events (a provider's `cron`)."""

    def run_due(self, ctx: SiteContext) -> CronResult:
        """Run what is due now; raise or return ok=False when it failed."""
        ...
