"""What the gcp provider's Cloud Run jobs of the tenant image share: one task built from the
site's service container, created or updated in place, run to its end."""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions
from google.cloud import run_v2
from google.protobuf import duration_pb2

from controlplane.engine.provider import SiteContext
from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.naming import labels


def tenant_job(
    ctx: SiteContext,
    container: run_v2.Container,
    volumes: list[run_v2.Volume],
    vpc_access: run_v2.VpcAccess,
    *,
    account: str,
    retries: int,
    timeout: int,
) -> run_v2.Job:
    """One task of `container` (its env, the site's volumes and network, the tenant's
    identity), second-generation environment, labelled as the site."""
    return run_v2.Job(
        labels=labels(ctx),
        template=run_v2.ExecutionTemplate(
            labels=labels(ctx), task_count=1, parallelism=1,
            template=run_v2.TaskTemplate(
                containers=[container], volumes=volumes, vpc_access=vpc_access,
                max_retries=retries, timeout=duration_pb2.Duration(seconds=timeout),
                service_account=account,
                execution_environment=run_v2.ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2,
            ),
        ),
    )  # fmt: skip


def run_to_end(
    client: Any, name: str, desired: run_v2.Job, *, what: str, timeout: int,
    overrides: run_v2.RunJobRequest.Overrides | None = None,
) -> None:  # fmt: skip
    """Create the job `name` (or update it to `desired`), run it (with `overrides`: this
    execution's env) and wait; ApplyFailed saying what the execution said (`what`: "the
    WordPress install job")."""
    try:
        client.get_job(name=name)
    except exceptions.NotFound:
        parent, _, jid = name.rpartition("/jobs/")
        client.create_job(parent=parent, job=desired, job_id=jid).result(timeout=timeout)
    else:
        desired.name = name
        client.update_job(job=desired).result(timeout=timeout)
    try:
        request = run_v2.RunJobRequest(name=name, overrides=overrides)
        execution = client.run_job(request=request).result(timeout=timeout)
    except exceptions.GoogleAPICallError as exc:
        raise ApplyFailed(f"{what} failed: {exc.message}") from exc
    if execution.succeeded_count < 1:
        said = "; ".join(c.message for c in execution.conditions if c.message) or "no detail"
        raise ApplyFailed(f"{what} failed ({said}); its logs: {execution.log_uri}")
