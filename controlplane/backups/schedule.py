"""The embedded default's backup schedule: a thread of the control plane that runs a backup
round every `backup_schedule_interval_seconds` (production: Cloud Scheduler starts
`python -m controlplane.backups`)."""

from __future__ import annotations

import threading

from controlplane.backups.rounds import run_round
from controlplane.kernel.logs import get_logger
from controlplane.platform import Platform

log = get_logger("aipress.backups")


class BackupSchedule:
    """A background thread; `stop()` ends it (operations it started run on in the engine)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backup-schedule", daemon=True)

    def start(self) -> None:
        """Run a round now, then once per interval."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the round in progress."""
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        interval = self.platform.settings.backup_schedule_interval_seconds
        while not self._stop.is_set():
            try:
                run_round(self.platform)
            except Exception as exc:  # a failed round is logged; the next one runs anyway
                log.error("backup.round_failed", error_type=type(exc).__name__,
                          error=str(exc)[:500])  # fmt: skip
            if self._stop.wait(interval):
                return
