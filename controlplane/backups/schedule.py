"""The embedded default's backup schedule: a thread of the control plane that runs a backup
round every `backup_schedule_interval_seconds` (production: Cloud Scheduler starts
`python -m controlplane.backups`)."""

from __future__ import annotations

import threading

from controlplane.backups.rounds import run_round
from controlplane.kernel.logs import get_logger
from controlplane.platform import Platform
from controlplane.schedule import Schedule

log = get_logger("aipress.backups")


class BackupSchedule(Schedule):
    """A round now, then once per interval after each; `stop()` waits for the round in
    progress (operations it started run on in the engine)."""

    def __init__(self, platform: Platform) -> None:
        super().__init__("backup", log, join_seconds=60)
        self.platform = platform

    def run_round(self, now: float, stop: threading.Event) -> None:
        """Start the backups that are due."""
        run_round(self.platform)

    def seconds_to_next(self, now: float) -> float:
        """The interval, counted from the round's end."""
        return float(self.platform.settings.backup_schedule_interval_seconds)
