"""The install job: a Cloud Run job of the tenant image (command `aipress-install`) that
installs WordPress into the site's database once, before the site's service exists, so
install.php is never open to the internet and no two cold instances race to install."""

from __future__ import annotations

import contextlib

from google.api_core import exceptions
from google.cloud import run_v2

from controlplane.engine.provider import SiteContext
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.jobs import run_to_end, tenant_job

INSTALL_COMMAND = "aipress-install"
JOB_TIMEOUT = 900


def job_id(service_id: str) -> str:
    """The job's id beside the service's ("s-..." becomes "i-...")."""
    return f"i-{service_id.removeprefix('s-')}"


class InstallJob(GcpStep):
    """Creates (or updates) the site's install job, runs it and waits for its execution."""

    def name(self, ctx: SiteContext) -> str:
        """projects/P/locations/L/jobs/i-..."""
        recorded = (ctx.resources.get("runtime") or {}).get("install_job")
        if recorded:
            return str(recorded)
        parent = f"projects/{self.project}/locations/{self.settings.gcp_location}"
        return f"{parent}/jobs/{job_id(self.names(ctx).service)}"

    def job(
        self,
        ctx: SiteContext,
        container: run_v2.Container,
        volumes: list[run_v2.Volume],
        vpc_access: run_v2.VpcAccess,
    ) -> run_v2.Job:
        """One task, retried once, with the service's container, env, volumes and network."""
        container.command = [INSTALL_COMMAND]
        return tenant_job(ctx, container, volumes, vpc_access, account=self.runtime_account(ctx),
                          retries=1, timeout=JOB_TIMEOUT)  # fmt: skip

    def run(
        self,
        ctx: SiteContext,
        container: run_v2.Container,
        volumes: list[run_v2.Volume],
        vpc_access: run_v2.VpcAccess,
    ) -> str:
        """Install WordPress; return the job's name. Fails saying what the execution said."""
        name = self.name(ctx)
        run_to_end(self.clients.jobs, name, self.job(ctx, container, volumes, vpc_access),
                   what="the WordPress install job", timeout=JOB_TIMEOUT)  # fmt: skip
        return name

    def remove(self, ctx: SiteContext) -> None:
        """Delete the job (no-op when gone)."""
        with contextlib.suppress(exceptions.NotFound):
            self.clients.jobs.delete_job(name=self.name(ctx)).result(timeout=JOB_TIMEOUT)
