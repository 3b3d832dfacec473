"""`python -m controlplane.cron`: one cron round as a Cloud Run Job.

Cloud Scheduler starts the job once per `AIPRESS_CRON_INTERVAL_SECONDS`; it runs every
ready site's wp-cron once, each at its offset in the interval, and exits 0 (1 if the round
itself could not run; a site's failed run is recorded on the site, not fatal).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from controlplane.cron.rounds import round_start, run_round
from controlplane.platform import Platform, run_job


def _round(platform: Platform, log: Any) -> dict[str, Any]:
    started = round_start(time.time(), platform.settings.cron_interval_seconds)
    results = run_round(platform, started=started)
    failed = sum(1 for r in results.values() if r is not None and not r.ok)
    return {"sites": len(results), "failed": failed}


def main() -> int:
    """Run the round of the current interval with the process's settings."""
    return run_job("cron", _round)


if __name__ == "__main__":
    sys.exit(main())
