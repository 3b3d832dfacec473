"""The embedded default's billing schedule: meter every hour, aggregate every day.

It runs as a thread of the control plane (one process runs the embedded default). In
production, Cloud Scheduler starts the Cloud Run Job (`python -m controlplane.billing`).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

from controlplane.billing.jobs import aggregate, meter
from controlplane.kernel import clock
from controlplane.kernel.logs import get_logger
from controlplane.platform import Platform

log = get_logger("aipress.billing")
AFTER_THE_HOUR = timedelta(minutes=1)  # let the hour's last access-log lines land


def next_hour(now: datetime) -> datetime:
    """The next whole hour after `now`."""
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def seconds_until(moment: datetime) -> float:
    """How long to sleep until `moment`."""
    return max(0.0, (moment - clock.now()).total_seconds())


def wait_or_stop(stop: Any, seconds: float) -> bool:
    """Sleep until stopped (True) or the time passes (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop.wait(min(5.0, deadline - time.monotonic())):
            return True
    return False


class BillingSchedule:
    """A background thread; `stop()` ends it between jobs."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="billing-schedule", daemon=True)
        self.last_aggregated: datetime | None = None

    def start(self) -> None:
        """Begin (meters the last hour and aggregates at once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the current job to finish."""
        self._stop.set()
        self._thread.join(timeout=60)

    def run_once(self, now: datetime) -> None:
        """Meter the hour before `now`; aggregate when a day has passed since the last time."""
        meter(self.platform, 1, now=now)
        every = timedelta(hours=self.platform.settings.billing_aggregate_every_hours)
        if self.last_aggregated is None or now - self.last_aggregated >= every:
            aggregate(self.platform)
            self.last_aggregated = now

    def _run(self) -> None:
        while not self._stop.is_set():
            now = clock.now()
            try:
                self.run_once(now)
            except Exception as exc:  # a failed run is logged and retried next hour
                log.error("billing.schedule_failed", error_type=type(exc).__name__,
                          error=str(exc)[:500])  # fmt: skip
            if wait_or_stop(self._stop, seconds_until(next_hour(now) + AFTER_THE_HOUR)):
                return
