"""The one search-replace of a site's address: where its PHP script is, what it reads, and
its report. The local provider feeds the script to `php` as the site's user; on gcp a Cloud
Run job of the tenant image runs the copy the image holds (runtime/wordpress/Dockerfile
copies this very file). What the script rewrites and why is in its header."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controlplane.engine.provider import RewriteReport

SCRIPT = Path(__file__).parent / "local" / "search_replace.php"
IMAGE_SCRIPT = "/usr/local/share/aipress/search-replace.php"  # its path in the tenant image
INPUT_ENV = "AIPRESS_SEARCH_REPLACE"  # the environment variable holding the input JSON
# Where a run whose output nobody reads (a Cloud Run job's goes to Cloud Logging) leaves its
# report: a table of the rewritten schema, read and dropped by the caller.
REPORT_TABLE = "aipress_search_replace_report"


def script_source() -> str:
    """The script's text (fed to `php --` on stdin)."""
    return SCRIPT.read_text()


def job_input(database: str, old: str, new: str, *, dry_run: bool = False) -> str:
    """The input JSON of a job: no connection members (they come from the image's env), the
    report written to REPORT_TABLE."""
    return json.dumps({"database": database, "from": old.rstrip("/"), "to": new.rstrip("/"),
                       "dry_run": dry_run, "report_table": REPORT_TABLE})  # fmt: skip


def parse_report(output: str) -> RewriteReport:
    """The report the script printed last; ValueError when there is none."""
    lines = output.strip().splitlines()
    try:
        data: dict[str, Any] = json.loads(lines[-1])
        tables = {str(t): {str(c): int(n) for c, n in cols.items()}
                  for t, cols in dict(data["tables"]).items()}  # fmt: skip
        return RewriteReport(
            tables=tables, rows=int(data["rows"]), cells=int(data["cells"]),
            dry_run=bool(data["dry_run"]), unparsed=int(data.get("unparsed", 0)),
        )  # fmt: skip
    except (IndexError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"the search-replace printed no report: {output[-300:]!r}") from exc
