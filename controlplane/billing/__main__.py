"""`python -m controlplane.billing`: the billing aggregation as a Cloud Run Job.

Cloud Scheduler starts the job (daily); it re-aggregates the trailing window from the
BigQuery billing export into the control-plane database and exits 0, or 1 on failure.
"""

from __future__ import annotations

import sys

from controlplane.billing.jobs import aggregate
from controlplane.kernel.logs import configure_logging, get_logger
from controlplane.platform import build_platform
from controlplane.settings import get_settings


def main() -> int:
    """Run one aggregation with the process's settings."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_file, settings.log_json)
    log = get_logger("aipress.billing.job")
    platform = build_platform(settings)
    try:
        result = aggregate(platform, progress=lambda m: log.info("billing.progress", step=m))
    except Exception as exc:
        log.error("billing.job_failed", error_type=type(exc).__name__, error=str(exc)[:500])
        return 1
    finally:
        platform.close()
    log.info("billing.job_done", rows=result.rows, since=str(result.since), until=str(result.until),
             bytes_scanned=result.bytes_scanned)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
