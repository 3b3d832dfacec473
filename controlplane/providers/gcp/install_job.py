"""The install job: a Cloud Run job of the tenant image (command `aipress-install`) that
installs WordPress into the site's database once, before the site's service exists, so
install.php is never open to the internet and no two cold instances race to install."""

from __future__ import annotations

import contextlib

from google.api_core import exceptions
from google.cloud import run_v2
from google.protobuf import duration_pb2

from controlplane.engine.provider import SiteContext
from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.naming import labels

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
        return run_v2.Job(
            labels=labels(ctx),
            template=run_v2.ExecutionTemplate(
                labels=labels(ctx), task_count=1, parallelism=1,
                template=run_v2.TaskTemplate(
                    containers=[container], volumes=volumes, vpc_access=vpc_access, max_retries=1,
                    timeout=duration_pb2.Duration(seconds=JOB_TIMEOUT),
                    service_account=self.runtime_account(ctx),
                    execution_environment=run_v2.ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2,
                ),
            ),
        )  # fmt: skip

    def run(
        self,
        ctx: SiteContext,
        container: run_v2.Container,
        volumes: list[run_v2.Volume],
        vpc_access: run_v2.VpcAccess,
    ) -> str:
        """Install WordPress; return the job's name. Fails saying what the execution said."""
        client = self.clients.jobs
        name = self.name(ctx)
        desired = self.job(ctx, container, volumes, vpc_access)
        try:
            client.get_job(name=name)
        except exceptions.NotFound:
            parent, _, jid = name.rpartition("/jobs/")
            client.create_job(parent=parent, job=desired, job_id=jid).result(timeout=JOB_TIMEOUT)
        else:
            desired.name = name
            client.update_job(job=desired).result(timeout=JOB_TIMEOUT)
        try:
            execution = client.run_job(name=name).result(timeout=JOB_TIMEOUT)
        except exceptions.GoogleAPICallError as exc:
            raise ApplyFailed(f"the WordPress install job failed: {exc.message}") from exc
        if execution.succeeded_count < 1:
            said = "; ".join(c.message for c in execution.conditions if c.message) or "no detail"
            raise ApplyFailed(
                f"the WordPress install job failed ({said}); its logs: {execution.log_uri}"
            )
        return name

    def remove(self, ctx: SiteContext) -> None:
        """Delete the job (no-op when gone)."""
        with contextlib.suppress(exceptions.NotFound):
            self.clients.jobs.delete_job(name=self.name(ctx)).result(timeout=JOB_TIMEOUT)
