"""The dry run: the exact resources and API calls the gcp provider would make for a new
site, computed from the same code that makes them, without calling anything."""

from __future__ import annotations

from typing import Any

from google.cloud import run_v2

from controlplane.engine.provider import SiteContext
from controlplane.providers.gcp.dns import MAPPING_TARGET
from controlplane.providers.gcp.install_job import job_id
from controlplane.providers.gcp.naming import labels
from controlplane.providers.gcp.runtime import PROBE_PATH, CloudRunService
from controlplane.settings import Settings


def plan_site(
    settings: Settings, runtime: CloudRunService, ctx: SiteContext
) -> list[dict[str, Any]]:
    """Every call of a create, in order, with its target and body."""
    names = runtime.names(ctx)
    project = runtime.project
    tags = labels(ctx)
    secret_ids = [names.db_password_secret, names.salts_secret, names.admin_password_secret,
                  names.login_key_secret]  # fmt: skip
    runtime_sa = runtime.runtime_account(ctx)
    ctx.resources.setdefault(
        "secrets",
        {
            "db_password": names.db_password_secret,
            "salts": names.salts_secret,
            "admin_password": names.admin_password_secret,
            "login_key": names.login_key_secret,
        },
    )
    ctx.resources.setdefault("database", {"name": names.db_name, "user": names.db_user})
    ctx.resources.setdefault("storage", {"bucket": names.bucket})
    service = run_v2.Service.to_dict(runtime.service(ctx))
    install = runtime.install
    job = run_v2.Job.to_dict(install.job(ctx, runtime.container(ctx), runtime.volumes(ctx)))
    calls: list[dict[str, Any]] = [
        {
            "step": "database",
            "api": "Cloud SQL (SQL via cloud-sql-python-connector)",
            "target": settings.cloudsql_instance,
            "sql": [
                f"CREATE DATABASE IF NOT EXISTS `{names.db_name}` CHARACTER SET utf8mb4",
                f"CREATE USER IF NOT EXISTS '{names.db_user}'@'%' IDENTIFIED BY <generated>",
                f"GRANT ALL PRIVILEGES ON `{names.db_name}`.* TO '{names.db_user}'@'%'",
            ],
        },
    ]
    for secret in secret_ids:
        path = f"projects/{project}/secrets/{secret}"
        calls += [
            {
                "step": "secrets",
                "api": "secretmanager.projects.secrets.create",
                "target": path,
                "body": {"replication": {"automatic": {}}, "labels": tags},
            },
            {
                "step": "secrets",
                "api": "secretmanager.projects.secrets.addVersion",
                "target": path,
                "body": {"payload": "<generated, never shown>"},
            },
        ]
        if runtime_sa:
            calls.append(
                {
                    "step": "secrets",
                    "api": "secretmanager.projects.secrets.setIamPolicy",
                    "target": path,
                    "body": {
                        "role": "roles/secretmanager.secretAccessor",
                        "member": f"serviceAccount:{runtime_sa}",
                    },
                }
            )
    calls.append(
        {
            "step": "storage",
            "api": "storage.buckets.insert",
            "target": names.bucket,
            "body": {
                "location": settings.gcs_location,
                "labels": tags,
                "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": True}},
            },
        }
    )
    if runtime_sa:
        calls.append(
            {
                "step": "storage",
                "api": "storage.buckets.setIamPolicy",
                "target": names.bucket,
                "body": {
                    "role": "roles/storage.objectAdmin",
                    "member": f"serviceAccount:{runtime_sa}",
                },
            }
        )
    parent = f"projects/{project}/locations/{settings.gcp_location}"
    job_name = f"{parent}/jobs/{job_id(names.service)}"
    calls += [
        {
            "step": "runtime",
            "api": "run.projects.locations.jobs.create",
            "target": parent,
            "query": {"jobId": job_id(names.service)},
            "body": job,
        },
        {
            "step": "runtime",
            "api": "run.projects.locations.jobs.run (wait for the execution: WordPress installed)",
            "target": job_name,
        },
        {
            # Public from its first revision by `invokerIamDisabled`: no allUsers binding.
            "step": "runtime",
            "api": "run.projects.locations.services.create",
            "target": parent,
            "query": {"serviceId": names.service},
            "body": service,
        },
    ]
    cloudflare = settings.dns_provider == "cloudflare"
    where = "Cloudflare POST /zones/{zone}/dns_records" if cloudflare else "dns.changes.create"
    for host in [names.preview_host, *ctx.domains]:
        calls.append(
            {
                "step": "dns",
                "api": "run.namespaces.domainmappings.create (v1)",
                "target": host,
                "body": {"spec": {"routeName": names.service, "certificateMode": "AUTOMATIC"}},
            }
        )
        calls.append(
            {
                "step": "dns",
                "api": where,
                "target": host,
                "body": {"type": "CNAME", "content": MAPPING_TARGET},
            }
        )
    calls.append(
        {
            "step": "wordpress",
            "api": f"GET <service uri>{PROBE_PATH} until 200",
            "target": names.service,
        }
    )
    return calls
