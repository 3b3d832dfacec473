"""`python -m controlplane.cron`: one cron round as a Cloud Run Job.

Cloud Scheduler starts the job once per `AIPRESS_CRON_INTERVAL_SECONDS`; it runs every
ready site's wp-cron once, each at its offset in the interval, and exits 0 (1 if the round
itself could not run; a site's failed run is recorded on the site, not fatal).
"""

from __future__ import annotations

import sys
import time

from controlplane.cron.rounds import round_start, run_round
from controlplane.kernel.logs import configure_logging, get_logger
from controlplane.platform import build_platform
from controlplane.settings import get_settings


def main() -> int:
    """Run the round of the current interval with the process's settings."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_file, settings.log_json)
    log = get_logger("aipress.cron.job")
    platform = build_platform(settings)
    try:
        started = round_start(time.time(), settings.cron_interval_seconds)
        results = run_round(platform, started=started)
    except Exception as exc:
        log.error("cron.job_failed", error_type=type(exc).__name__, error=str(exc)[:500])
        return 1
    finally:
        platform.close()
    failed = sum(1 for r in results.values() if r is not None and not r.ok)
    log.info("cron.job_done", sites=len(results), failed=failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
