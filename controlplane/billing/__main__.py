"""`python -m controlplane.billing`: the billing aggregation as a Cloud Run Job.

Cloud Scheduler starts the job (daily); it re-aggregates the trailing window from the
BigQuery billing export into the control-plane database and exits 0, or 1 on failure.
"""

from __future__ import annotations

import sys
from typing import Any

from controlplane.billing.jobs import aggregate
from controlplane.platform import Platform, run_job


def _aggregate(platform: Platform, log: Any) -> dict[str, Any]:
    result = aggregate(platform, progress=lambda m: log.info("billing.progress", step=m))
    return {"rows": result.rows, "since": str(result.since), "until": str(result.until),
            "bytes_scanned": result.bytes_scanned}  # fmt: skip


def main() -> int:
    """Run one aggregation with the process's settings."""
    return run_job("billing", _aggregate)


if __name__ == "__main__":
    sys.exit(main())
