"""The dry run: the exact resources and API calls the gcp provider would make for a new
site, computed from the same code that makes them, without calling anything."""

from __future__ import annotations

from typing import Any

from google.cloud import run_v2

from controlplane.engine.provider import SiteContext
from controlplane.providers.gcp.dns import MAPPING_TARGET
from controlplane.providers.gcp.frontdoor import FrontDoor, LoadBalancerFrontDoor
from controlplane.providers.gcp.install_job import job_id
from controlplane.providers.gcp.naming import labels
from controlplane.providers.gcp.runtime import PROBE_PATH, CloudRunService
from controlplane.settings import Settings


def _load_balancer_calls(
    settings: Settings, front: LoadBalancerFrontDoor, ctx: SiteContext, service: str,
    preview: str, where: str,
) -> list[dict[str, Any]]:  # fmt: skip
    """The front door's calls: the site's NEG, backend and host rule, the preview name's
    certificate, and each claimed custom domain's, made only once it is proven."""
    project, ids = front.project, front.ids(service)
    compute = f"projects/{project}"
    cm = f"projects/{project}/locations/global"
    certmap = f"{cm}/certificateMaps/{settings.front_door_certificate_map}"
    calls: list[dict[str, Any]] = [
        {"step": "dns", "api": "compute.regionNetworkEndpointGroups.insert",
         "target": f"{compute}/regions/{settings.gcp_location}", "body": front.neg_body(service)},
        {"step": "dns", "api": "compute.backendServices.insert", "target": f"{compute}/global",
         "body": front.backend_body(service)},
        {"step": "dns", "api": "compute.urlMaps.patch (with its fingerprint)",
         "target": f"{compute}/global/urlMaps/{settings.front_door_url_map}",
         "body": {"hostRules": [{"hosts": [preview, *ctx.domains], "pathMatcher": ids["matcher"]}],
                  "pathMatchers": [{"name": ids["matcher"], "defaultService":
                                    f"{compute}/global/backendServices/{ids['backend']}"}]}},
        {"step": "dns", "api": "certificatemanager.dnsAuthorizations.create",
         "target": f"{cm}/dnsAuthorizations/{ids['authorization']}", "body": {"domain": preview}},
        {"step": "dns", "api": where, "target": f"<the authorization's CNAME for {preview}>",
         "body": {"type": "CNAME"}},
        {"step": "dns", "api": where, "target": preview,
         "body": {"type": "A", "content": settings.front_door_ipv4}},
    ]  # fmt: skip
    if settings.front_door_ipv6:
        calls.append({"step": "dns", "api": where, "target": preview,
                      "body": {"type": "AAAA", "content": settings.front_door_ipv6}})  # fmt: skip
    claimed = [d for d in ctx.resources.get("claimed_domains") or [] if d not in ctx.domains]
    later = "after the domain's TXT proof is verified"
    for host, when in [(preview, None), *((d, None) for d in ctx.domains),
                       *((d, later) for d in claimed)]:  # fmt: skip
        rid = front.entry_id(service, host)
        for call in (
            {"step": "dns", "api": "certificatemanager.certificates.create",
             "target": f"{cm}/certificates/c-{rid}",
             "body": front.certificate_body(ctx, host, host == preview, service)},
            {"step": "dns", "api": "certificatemanager.certificateMapEntries.create",
             "target": f"{certmap}/certificateMapEntries/e-{rid}",
             "body": front.entry_body(ctx, host, service)},
        ):  # fmt: skip
            if when:
                call["when"] = when
            calls.append(call)
    return calls


def plan_site(
    settings: Settings, runtime: CloudRunService, front: FrontDoor, ctx: SiteContext
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
    job = run_v2.Job.to_dict(
        install.job(ctx, runtime.container(ctx), runtime.volumes(ctx), runtime.vpc_access())
    )
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
    if isinstance(front, LoadBalancerFrontDoor):
        calls += _load_balancer_calls(
            settings, front, ctx, names.service, names.preview_host, where
        )
    else:
        for host in [names.preview_host, *ctx.domains]:
            calls += [
                {"step": "dns", "api": "run.namespaces.domainmappings.create (v1)", "target": host,
                 "body": {"spec": {"routeName": names.service, "certificateMode": "AUTOMATIC"}}},
                {"step": "dns", "api": "run.namespaces.domainmappings.get (v1): status.conditions",
                 "target": host},
            ]  # fmt: skip
        calls.append({"step": "dns", "api": where, "target": names.preview_host,
                      "body": {"type": "CNAME", "content": MAPPING_TARGET}})  # fmt: skip
    calls.append(
        {
            "step": "wordpress",
            "api": "Cloud SQL (SQL via cloud-sql-python-connector)",
            "target": names.db_name,
            "sql": [f"UPDATE `{names.db_name}`.<prefix>options SET option_value = "
                    f"'{'1' if ctx.public else '0'}' WHERE option_name = 'blog_public'"],
        }
    )  # fmt: skip
    calls.append(
        {
            "step": "wordpress",
            "api": f"GET <service uri>{PROBE_PATH} until 200",
            "target": names.service,
        }
    )
    return calls
