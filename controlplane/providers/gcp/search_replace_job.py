"""The search-replace job: a Cloud Run job of the tenant image that runs the platform's one
search-replace script (controlplane/providers/local/search_replace.php, baked into the image
at IMAGE_SCRIPT) against a side schema, as the site's own database user. The control plane
has no PHP, and PHP is what reads PHP-serialized values faithfully.

The job is the site's service container (its env: the database user, and the password as a
reference to the site's Secret Manager secret, as the install job has them) with the command
`php IMAGE_SCRIPT` and the input JSON in AIPRESS_SEARCH_REPLACE. The site's user is granted
the side schema for the run only. A job's output goes to Cloud Logging, which the control
plane does not read back: the script writes its report into REPORT_TABLE of the side schema,
which is read and dropped before this returns. The job is deleted after its run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions
from google.cloud import run_v2

from controlplane.engine.provider import RewriteReport, SiteContext
from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.database import quote
from controlplane.providers.gcp.jobs import run_to_end, tenant_job
from controlplane.providers.search_replace import (
    IMAGE_SCRIPT,
    INPUT_ENV,
    REPORT_TABLE,
    job_input,
    parse_report,
)

JOB_TIMEOUT = 3600


def job_id(service_id: str) -> str:
    """The job's id beside the service's ("s-..." becomes "r-...")."""
    return f"r-{service_id.removeprefix('s-')}"


class SearchReplaceJob(GcpStep):
    """Runs the search-replace script in the tenant image against one schema of the site."""

    def name(self, ctx: SiteContext) -> str:
        """projects/P/locations/L/jobs/r-..."""
        parent = f"projects/{self.project}/locations/{self.settings.gcp_location}"
        return f"{parent}/jobs/{job_id(self.names(ctx).service)}"

    def job(
        self, ctx: SiteContext, container: run_v2.Container, volumes: list[run_v2.Volume],
        vpc_access: run_v2.VpcAccess, payload: str,
    ) -> run_v2.Job:  # fmt: skip
        """One task, not retried (a retry would rewrite a half-rewritten schema: the caller
        stages again instead), with the service's container, env, volumes and network."""
        container.command = ["php", IMAGE_SCRIPT]
        container.env.append(run_v2.EnvVar(name=INPUT_ENV, value=payload))
        return tenant_job(ctx, container, volumes, vpc_access, account=self.runtime_account(ctx),
                          retries=0, timeout=JOB_TIMEOUT)  # fmt: skip

    def run(
        self, ctx: SiteContext, container: run_v2.Container, volumes: list[run_v2.Volume],
        vpc_access: run_v2.VpcAccess, connect: Callable[[], Any], schema: str, old: str,
        new: str, *, dry_run: bool = False,
    ) -> RewriteReport:  # fmt: skip
        """Rewrite `old` to `new` in `schema`; the report. Fails saying what the run said."""
        user = str((ctx.resources.get("database") or {}).get("user", self.names(ctx).db_user))
        grant = schema.replace("_", "\\_")
        with connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {quote(schema)}.{quote(REPORT_TABLE)}")
            cur.execute(f"GRANT ALL PRIVILEGES ON {quote(grant)}.* TO %s@'%%'", (user,))
            conn.commit()
        try:
            self._execute(ctx, self.job(ctx, container, volumes, vpc_access,
                                        job_input(schema, old, new, dry_run=dry_run)))  # fmt: skip
            return self._report(connect, schema)
        finally:
            with connect() as conn, conn.cursor() as cur:
                cur.execute(f"REVOKE ALL PRIVILEGES ON {quote(grant)}.* FROM %s@'%%'", (user,))
                cur.execute(f"DROP TABLE IF EXISTS {quote(schema)}.{quote(REPORT_TABLE)}")
                conn.commit()

    def _execute(self, ctx: SiteContext, desired: run_v2.Job) -> None:
        try:
            run_to_end(self.clients.jobs, self.name(ctx), desired,
                       what="the search-replace job", timeout=JOB_TIMEOUT)  # fmt: skip
        finally:
            self.remove(ctx)

    @staticmethod
    def _report(connect: Callable[[], Any], schema: str) -> RewriteReport:
        with connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT report FROM {quote(schema)}.{quote(REPORT_TABLE)}")
            rows = cur.fetchall()
        if len(rows) != 1:
            raise ApplyFailed("the search-replace job finished and left no report")
        return parse_report(str(rows[0][0]))

    def remove(self, ctx: SiteContext) -> None:
        """Delete the job (no-op when gone)."""
        with contextlib.suppress(exceptions.NotFound):
            self.clients.jobs.delete_job(name=self.name(ctx)).result(timeout=JOB_TIMEOUT)
