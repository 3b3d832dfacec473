"""`python -m controlplane.backups`: one backup round as a Cloud Run Job.

Cloud Scheduler starts it (hourly is enough: each site is due once a day at its hour); it
starts the due scheduled backups, prunes what is kept no longer, waits for the backups it
started and exits 0 (1 if the round itself could not run; a failed backup is recorded on its
row and operation, not fatal).
"""

from __future__ import annotations

import sys

from controlplane.backups.rounds import run_round
from controlplane.kernel.logs import configure_logging, get_logger
from controlplane.platform import build_platform
from controlplane.settings import get_settings


def main() -> int:
    """Run one round with the process's settings and wait for what it started."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_file, settings.log_json)
    log = get_logger("aipress.backups.job")
    platform = build_platform(settings)
    try:
        result = run_round(platform)
        for op_id in result.started.values():
            platform.engine.wait(op_id)
    except Exception as exc:
        log.error("backup.job_failed", error_type=type(exc).__name__, error=str(exc)[:500])
        return 1
    finally:
        platform.close()
    log.info("backup.job_done", started=len(result.started), busy=len(result.busy),
             pruned=len(result.pruned))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
