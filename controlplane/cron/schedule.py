"""The embedded default's cron schedule: a thread of the control plane that runs a round
every `cron_interval_seconds` (production: Cloud Scheduler starts `python -m controlplane.cron`)."""

from __future__ import annotations

import threading
import time

from controlplane.cron.rounds import round_start, run_round
from controlplane.kernel.logs import get_logger
from controlplane.platform import Platform

log = get_logger("aipress.cron")


class CronSchedule:
    """A background thread; `stop()` ends it (a run in progress finishes first)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cron-schedule", daemon=True)

    def start(self) -> None:
        """Begin with the current interval (sites whose turn has passed run at once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the runs in progress."""
        self._stop.set()
        self._thread.join(timeout=self.platform.settings.cron_timeout_seconds + 10)

    def _run(self) -> None:
        interval = self.platform.settings.cron_interval_seconds
        while not self._stop.is_set():
            started = round_start(time.time(), interval)
            try:
                run_round(self.platform, started=started, stop=self._stop)
            except Exception as exc:  # a failed round is logged; the next one runs anyway
                log.error("cron.round_failed", error_type=type(exc).__name__,
                          error=str(exc)[:500])  # fmt: skip
            if self._stop.wait(max(0.0, started + interval - time.time())):
                return
