"""The embedded default's cron schedule: a thread of the control plane that runs a round
every `cron_interval_seconds` (production: Cloud Scheduler starts `python -m controlplane.cron`)."""

from __future__ import annotations

import threading
import time

from controlplane.cron.rounds import round_start, run_round
from controlplane.kernel.logs import get_logger
from controlplane.platform import Platform
from controlplane.schedule import Schedule

log = get_logger("aipress.cron")


class CronSchedule(Schedule):
    """Begins with the current interval (sites whose turn has passed run at once); `stop()`
    waits for the runs in progress."""

    def __init__(self, platform: Platform) -> None:
        super().__init__("cron", log, join_seconds=platform.settings.cron_timeout_seconds + 10)
        self.platform = platform

    def run_round(self, now: float, stop: threading.Event) -> None:
        """Run the sites whose turn in the interval that holds `now` has come."""
        interval = self.platform.settings.cron_interval_seconds
        run_round(self.platform, started=round_start(now, interval), stop=stop)

    def seconds_to_next(self, now: float) -> float:
        """Until the next interval begins."""
        interval = self.platform.settings.cron_interval_seconds
        return max(0.0, round_start(now, interval) + interval - time.time())
