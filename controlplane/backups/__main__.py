"""`python -m controlplane.backups`: one backup round as a Cloud Run Job.

Cloud Scheduler starts it (hourly is enough: each site is due once a day at its hour); it
starts the due scheduled backups and the trial restores of a sample, prunes what is kept no
longer, waits for what it started, prints what the round did (one JSON object: started,
busy, pruned, and each verified backup's outcome) and exits 0 (1 if the round itself could
not run; a failed backup or verification is recorded on its row and operation, not fatal).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from controlplane.backups.rounds import RoundResult, run_round
from controlplane.kernel.logs import configure_logging, get_logger
from controlplane.kernel.vocabulary import OperationStatus
from controlplane.models import Backup, Operation
from controlplane.platform import Platform, build_platform
from controlplane.settings import get_settings


def report(platform: Platform, result: RoundResult) -> dict[str, Any]:
    """What a finished round did, with each trial restore's outcome read from its backup."""
    verified: dict[str, dict[str, Any]] = {}
    with platform.sessions() as session:
        for site, (backup_id, op_id) in sorted(result.verifying.items()):
            backup, op = session.get(Backup, backup_id), session.get(Operation, op_id)
            passed = op is not None and op.status == OperationStatus.SUCCEEDED
            error = None if passed else (backup and backup.verification_error) or (op and op.error)
            verified[site] = {"backup": backup_id, "operation": op_id, "passed": passed,
                              "failed_verification": bool(backup and backup.verification_error),
                              "error": error}  # fmt: skip
    return {"started": result.started, "busy": result.busy, "pruned": result.pruned,
            "verified": verified}  # fmt: skip


def main() -> int:
    """Run one round with the process's settings and wait for what it started."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_file, settings.log_json)
    log = get_logger("aipress.backups.job")
    platform = build_platform(settings)
    try:
        result = run_round(platform)
        for op_id in [*result.started.values(), *(op for _b, op in result.verifying.values())]:
            platform.engine.wait(op_id)
        print(json.dumps(report(platform, result), sort_keys=True))
    except Exception as exc:
        log.error("backup.job_failed", error_type=type(exc).__name__, error=str(exc)[:500])
        return 1
    finally:
        platform.close()
    log.info("backup.job_done", started=len(result.started), busy=len(result.busy),
             verifying=len(result.verifying), pruned=len(result.pruned))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
