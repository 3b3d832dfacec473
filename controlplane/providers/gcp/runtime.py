"""runtime step: a Cloud Run v2 service per site running the tenant image.

Secrets reach the container by reference (Secret Manager), never as values; the uploads
bucket is a GCS volume at wp-content/uploads (second-generation environment, mounted
uid=33,gid=33 for www-data); scale to zero; startup CPU boost; labels on the service and
revisions.

The database is Cloud SQL's private IP, reached over TLS with the site's own database user
and password through Direct VPC egress into the sites' subnet (private ranges only: the
internet is reached directly). The sites' firewall lets their network tag reach port 3306
of Cloud SQL's range and nothing else private. Not the Cloud SQL volume: it connects as the
service's identity, which would need Cloud SQL's client role on the whole project for every
tenant (Cloud SQL has no instance-level IAM), one policy entry per tenant.

WordPress is installed by a Cloud Run job of the same image before the service exists, so no
one can reach install.php and no two instances race to install. Sites are public with the
invoker IAM check disabled (`invoker_iam_disabled`): an `allUsers` binding is refused under
Domain Restricted Sharing, which new organisations enforce by default. Stopping a site sets
its ingress to internal only: a service-level field (no new revision, no IAM change) that
turns away every request from the internet and the external load balancer alike.

Plugins and themes live in the site's bucket too (`.aipress-code/plugins`, `.aipress-code/
themes`), mounted read-only over wp-content/plugins and wp-content/themes (gcsfuse's
`only-dir`); the tenant's jobs mount them writable (the install job seeds them from the
image, the packages job updates them). Core stays in the image: a core update is a revision
on the image tag carrying that version (`resources.runtime.image`). opcache never revalidates
files, so a change of code is followed by a new revision (`AIPRESS_CODE`, see roll_code).

Maintenance (a restore runs) is a new revision with `AIPRESS_MAINTENANCE=on` and the site's
probe token (a Secret Manager reference): the image's Apache answers every request 503 with
`Retry-After` and `no-store` except the startup probe's path and requests carrying the token
in `X-AIPress-Probe` (the restore's readiness check). Not ingress: internal-only ingress
answers a bare 404 from Google's front end, with no Retry-After, and shuts out the probe too.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Protocol

from google.api_core import exceptions
from google.cloud import run_v2

from controlplane.engine.provider import SiteContext
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.install_job import InstallJob
from controlplane.providers.gcp.naming import labels
from controlplane.providers.gcp.search_replace_job import SearchReplaceJob
from controlplane.providers.gcp.secrets import SecretManagerSecrets

OPERATION_TIMEOUT = 600
UPLOADS = "/var/www/html/wp-content/uploads"
# The site's code in its own bucket: volume name -> (bucket prefix, mount path).
CODE_VOLUMES = {
    "plugins": (".aipress-code/plugins", "/var/www/html/wp-content/plugins"),
    "themes": (".aipress-code/themes", "/var/www/html/wp-content/themes"),
}
CODE_ENV = "AIPRESS_CODE"  # changed with the code, so new instances load it (opcache)
# Not /healthz: Cloud Run's front end reserves some paths ending in "z" and answers them itself.
PROBE_PATH = "/aipress-probe"
WWW_DATA = ("uid=33", "gid=33")  # the official image's www-data owns the uploads mount
BASE_MEMORY_MIB = 128  # Apache's parent, opcache and the shell, beside the PHP workers
# Cloud Run refuses HTTP/1 request bodies over 32 MiB: a larger upload limit could not work.
MAX_REQUEST_MIB = 32
MAINTENANCE_ENV, PROBE_TOKEN_ENV = "AIPRESS_MAINTENANCE", "AIPRESS_PROBE_TOKEN"
OPEN = run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL
CLOSED = run_v2.IngressTraffic.INGRESS_TRAFFIC_INTERNAL_ONLY


def mebibytes(size: str) -> int:
    """'512Mi', '1Gi', '96M', '64M' as MiB (M and Mi alike: PHP's M is a mebibyte)."""
    found = re.fullmatch(r"(\d+)\s*(Mi|M|Gi|G)", size.strip())
    if not found:
        raise ValueError(f"{size!r} is not a size like 512Mi or 1Gi")
    number, unit = int(found[1]), found[2]
    return number * 1024 if unit in ("Gi", "G") else number


def upload_limit(setting: str) -> str:
    """PHP's upload limit: the setting, capped at what Cloud Run accepts in one request."""
    return f"{min(mebibytes(setting), MAX_REQUEST_MIB)}M"


def check_php_fits(memory: str, concurrency: int, php_memory_limit: str) -> None:
    """Refuse a concurrency whose PHP workers could together exceed the instance's memory."""
    needed = concurrency * mebibytes(php_memory_limit) + BASE_MEMORY_MIB
    if needed > mebibytes(memory):
        raise ValueError(
            f"AIPRESS_SITE_CONCURRENCY={concurrency} prefork workers x "
            f"AIPRESS_SITE_PHP_MEMORY_LIMIT={php_memory_limit} + {BASE_MEMORY_MIB} MiB needs "
            f"{needed} MiB, more than AIPRESS_SITE_MEMORY={memory}: lower the concurrency or "
            "the PHP limit, or raise the memory"
        )


def probe_token(ctx: SiteContext) -> str:
    """The per-site secret that lets the platform's probes past maintenance mode."""
    return ctx.credentials.get_or_create("build_probe", "aipress")[1]


def probe_headers(ctx: SiteContext) -> dict[str, str]:
    """Headers of a platform probe (admitted while the site is in maintenance)."""
    maintenance = (ctx.resources.get("runtime") or {}).get("maintenance")
    return {"X-AIPress-Probe": probe_token(ctx)} if maintenance else {}


def tenant_secret_id(tenant_id: str, name: str) -> str:
    """Secret Manager id of a tenant env var (every tenant env var travels by reference).
    Tenant ids never contain "--" and env names are [A-Z0-9_], so no two (tenant, name)
    pairs share an id."""
    return f"{tenant_env_prefix(tenant_id)}{name}"


def tenant_env_prefix(tenant_id: str) -> str:
    """What every Secret Manager id of the tenant's env vars starts with."""
    return f"aipress-{tenant_id}--env--"


class Switchable(Protocol):
    """What serves a site's names, switched by stop and start (the dns step)."""

    def stop(self, ctx: SiteContext) -> None:
        """Serve the stopped page for the site's names."""
        ...

    def start(self, ctx: SiteContext) -> None:
        """Serve the site's names from the site."""
        ...


class CloudRunService(GcpStep):
    """Creates, updates and deletes the site's Cloud Run service."""

    def __init__(self, settings: Any, clients: Any, secrets: SecretManagerSecrets) -> None:
        super().__init__(settings, clients)
        self.secrets = secrets
        self.install = InstallJob(settings, clients)
        # The site's names at the front door (SiteDns), which stop and start switch too.
        self.served: Switchable | None = None

    def _publish_tenant_env(self, ctx: SiteContext) -> None:
        """The tenant's env vars and secrets as Secret Manager secrets the service references."""
        tenant_labels = {"app": "aipress", "aipress-tenant-id": ctx.tenant_id}
        reader = self.runtime_account(ctx)
        for name, value in sorted(ctx.tenant_env.items()):
            self.secrets.put(tenant_secret_id(ctx.tenant_id, name), value, tenant_labels, reader)

    def _parent(self) -> str:
        return f"projects/{self.project}/locations/{self.settings.gcp_location}"

    def _name(self, ctx: SiteContext) -> str:
        recorded = (ctx.resources.get("runtime") or {}).get("service")
        return str(recorded) if recorded else f"{self._parent()}/services/{self.names(ctx).service}"

    def _secret_env(self, name: str, secret: str) -> run_v2.EnvVar:
        return run_v2.EnvVar(
            name=name,
            value_source=run_v2.EnvVarSource(
                secret_key_ref=run_v2.SecretKeySelector(secret=secret, version="latest")
            ),
        )

    def env(self, ctx: SiteContext) -> list[run_v2.EnvVar]:
        """The container's env: plain settings, and every secret by reference."""
        names = self.names(ctx)
        database = ctx.resources.get("database") or {}
        secret_ids = ctx.resources.get("secrets") or {}
        env = [
            run_v2.EnvVar(
                name="WORDPRESS_DB_HOST", value=f"{self.settings.cloudsql_private_ip}:3306"
            ),
            # Cloud SQL takes encrypted connections only (terraform's ssl_mode).
            run_v2.EnvVar(name="WORDPRESS_DB_TLS", value="on"),
            run_v2.EnvVar(name="WORDPRESS_DB_NAME", value=database.get("name", names.db_name)),
            run_v2.EnvVar(name="WORDPRESS_DB_USER", value=database.get("user", names.db_user)),
            self._secret_env(
                "WORDPRESS_DB_PASSWORD", secret_ids.get("db_password", names.db_password_secret)
            ),
            self._secret_env("WORDPRESS_SALTS", secret_ids.get("salts", names.salts_secret)),
            run_v2.EnvVar(name="WORDPRESS_SITE_URL", value=f"https://{names.preview_host}"),
            run_v2.EnvVar(name="WORDPRESS_TITLE", value=ctx.title),
            run_v2.EnvVar(name="WORDPRESS_ADMIN_USER", value=ctx.admin_user),
            run_v2.EnvVar(name="WORDPRESS_ADMIN_EMAIL", value=ctx.admin_email),
            run_v2.EnvVar(name="WORDPRESS_THEME", value=self.settings.default_theme),
            run_v2.EnvVar(
                name="WORDPRESS_OUTBOUND_ALLOW", value=",".join(self.settings.site_outbound_allow)
            ),
            self._secret_env(
                "WORDPRESS_ADMIN_PASSWORD",
                secret_ids.get("admin_password", names.admin_password_secret),
            ),
            # One-click wp-admin: the mu-plugin checks links signed with this site's key.
            run_v2.EnvVar(name="AIPRESS_SITE_ID", value=ctx.site_id),
            self._secret_env(
                "AIPRESS_LOGIN_KEY", secret_ids.get("login_key", names.login_key_secret)
            ),
            # Read by the image's Apache (prefork workers) and php.ini (limits).
            run_v2.EnvVar(name="APACHE_MAX_WORKERS", value=str(self.settings.site_concurrency)),
            run_v2.EnvVar(name="PHP_MEMORY_LIMIT", value=self.settings.site_php_memory_limit),
            run_v2.EnvVar(name="PHP_UPLOAD_LIMIT", value=upload_limit(self.settings.upload_limit)),
        ]
        runtime = ctx.resources.get("runtime") or {}
        if runtime.get("code"):
            env.append(run_v2.EnvVar(name=CODE_ENV, value=str(runtime["code"])))
        if runtime.get("maintenance"):
            env += [
                run_v2.EnvVar(name=MAINTENANCE_ENV, value="on"),
                self._secret_env(PROBE_TOKEN_ENV, secret_ids.get(
                    "probe_token", names.probe_token_secret)),
            ]  # fmt: skip
        return env + [
            self._secret_env(k, tenant_secret_id(ctx.tenant_id, k)) for k in sorted(ctx.tenant_env)
        ]

    def volumes(self, ctx: SiteContext, *, code_writable: bool = False) -> list[run_v2.Volume]:
        """The uploads bucket (writable by www-data), and its code prefixes (read-only but
        in the tenant's jobs, `code_writable`)."""
        bucket = (ctx.resources.get("storage") or {}).get("bucket", self.names(ctx).bucket)
        return [
            run_v2.Volume(name="uploads", gcs=run_v2.GCSVolumeSource(
                bucket=bucket, mount_options=list(WWW_DATA))),
            *(run_v2.Volume(name=name, gcs=run_v2.GCSVolumeSource(
                bucket=bucket, read_only=not code_writable,
                mount_options=[*WWW_DATA, f"only-dir={prefix}"]))
              for name, (prefix, _path) in CODE_VOLUMES.items()),
        ]  # fmt: skip

    def image(self, ctx: SiteContext) -> str:
        """The tenant image the site runs: the tag of its core version once one was
        installed, else the platform's."""
        recorded = (ctx.resources.get("runtime") or {}).get("image")
        return str(recorded or self.settings.tenant_image)

    def vpc_access(self) -> run_v2.VpcAccess:
        """Direct VPC egress into the sites' subnet, for Cloud SQL's private IP only."""
        return run_v2.VpcAccess(
            network_interfaces=[run_v2.VpcAccess.NetworkInterface(
                subnetwork=self.settings.sites_subnetwork,
                tags=[self.settings.sites_network_tag])],
            egress=run_v2.VpcAccess.VpcEgress.PRIVATE_RANGES_ONLY,
        )  # fmt: skip

    def container(self, ctx: SiteContext) -> run_v2.Container:
        """The tenant image with its env, limits and mounts (the service's and the job's)."""
        settings = self.settings
        needed = ("tenant_image", "cloudsql_private_ip", "sites_subnetwork")
        missing = settings.missing(needed)
        if missing:
            raise ValueError(f"the gcp runtime needs {', '.join(missing)}")
        check_php_fits(settings.site_memory, settings.site_concurrency,
                       settings.site_php_memory_limit)  # fmt: skip
        return run_v2.Container(
            image=self.image(ctx),
            env=self.env(ctx),
            resources=run_v2.ResourceRequirements(
                limits={"cpu": settings.site_cpu, "memory": settings.site_memory}
            ),
            volume_mounts=[
                run_v2.VolumeMount(name="uploads", mount_path=UPLOADS),
                *(run_v2.VolumeMount(name=name, mount_path=path)
                  for name, (_prefix, path) in CODE_VOLUMES.items()),
            ],
        )  # fmt: skip

    def service(self, ctx: SiteContext) -> run_v2.Service:
        """The desired service (also what `--plan` prints)."""
        container = self.container(ctx)
        container.ports = [run_v2.ContainerPort(container_port=8080)]
        container.resources.cpu_idle = True
        container.resources.startup_cpu_boost = True
        # Any 2xx or 3xx passes; the probe script answers 200 only once WordPress is installed.
        container.startup_probe = run_v2.Probe(
            http_get=run_v2.HTTPGetAction(path=PROBE_PATH, port=8080),
            period_seconds=5, timeout_seconds=4, failure_threshold=24,
        )  # fmt: skip
        stopped = bool((ctx.resources.get("runtime") or {}).get("stopped"))
        return run_v2.Service(
            labels=labels(ctx),
            ingress=CLOSED if stopped else OPEN,
            invoker_iam_disabled=True,
            template=run_v2.RevisionTemplate(
                labels=labels(ctx),
                service_account=self.runtime_account(ctx),
                execution_environment=run_v2.ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2,
                max_instance_request_concurrency=self.settings.site_concurrency,
                scaling=run_v2.RevisionScaling(
                    min_instance_count=0, max_instance_count=self.settings.site_max_instances
                ),
                volumes=self.volumes(ctx),
                vpc_access=self.vpc_access(),
                containers=[container],
            ),
        )

    def ensure(self, ctx: SiteContext) -> None:
        """Install WordPress with the job (once), then create the public service (or bring it
        to the desired state) and wait for it."""
        client = self.clients.run
        self._publish_tenant_env(ctx)
        recorded = dict(ctx.resources.get("runtime") or {})
        # Also for a site made before its code moved to the bucket: the job seeds it from
        # the image (and installs nothing again).
        if not recorded.get("installed") or not recorded.get("code_seeded"):
            recorded["install_job"] = self.install.run(
                ctx, self.container(ctx), self.volumes(ctx, code_writable=True), self.vpc_access()
            )
            recorded["installed"] = recorded["code_seeded"] = True
            ctx.resources["runtime"] = recorded
        try:
            existing = client.get_service(name=self._name(ctx))
        except exceptions.NotFound:
            existing = None
        desired = self.service(ctx)
        if existing is None:
            operation = client.create_service(
                parent=self._parent(), service=desired, service_id=self.names(ctx).service
            )
        else:
            desired.name = existing.name
            operation = client.update_service(service=desired)
        result: Any = operation.result(timeout=OPERATION_TIMEOUT)
        ctx.resources["runtime"] = {**recorded, "service": result.name, "uri": result.uri}

    def remove(self, ctx: SiteContext) -> None:
        """Delete the service and the install job, and wait (no-op when gone)."""
        with contextlib.suppress(exceptions.NotFound):
            self.clients.run.delete_service(name=self._name(ctx)).result(timeout=OPERATION_TIMEOUT)
        self.install.remove(ctx)
        SearchReplaceJob(self.settings, self.clients).remove(ctx)  # left by a cut-off run
        from controlplane.providers.gcp.packages import job_id  # it builds on this module

        self._remove_job(f"{self._parent()}/jobs/{job_id(self.names(ctx).service)}")
        ctx.resources.pop("runtime", None)

    def _remove_job(self, name: str) -> None:
        """Delete a job a cut-off run left (no-op when gone)."""
        with contextlib.suppress(exceptions.NotFound):
            self.clients.jobs.delete_job(name=name).result(timeout=OPERATION_TIMEOUT)

    def _redeploy(self, ctx: SiteContext) -> None:
        """Bring the service to the desired state of `ctx` and wait for it."""
        desired = self.service(ctx)
        desired.name = self._name(ctx)
        self.clients.run.update_service(service=desired).result(timeout=OPERATION_TIMEOUT)

    def _set_ingress(self, ctx: SiteContext, stopped: bool) -> None:
        recorded = dict(ctx.resources.get("runtime") or {})
        recorded["stopped"] = stopped
        ctx.resources["runtime"] = recorded
        self._redeploy(ctx)

    def stop(self, ctx: SiteContext) -> None:
        """The front door's names to the stopped page (and out of Cloud CDN's cache), then
        internal ingress only: requests from the internet are turned away until start."""
        if self.served is not None:
            self.served.stop(ctx)
        self._set_ingress(ctx, stopped=True)

    def start(self, ctx: SiteContext) -> None:
        """All ingress again, then the front door's names back to the site."""
        self._set_ingress(ctx, stopped=False)
        if self.served is not None:
            self.served.start(ctx)

    def maintenance(self, ctx: SiteContext, on: bool) -> None:
        """Roll the service to a revision in (or out of) maintenance mode and wait for it;
        the probe token is published first (Cloud Run checks secret access at deploy)."""
        recorded = dict(ctx.resources.get("runtime") or {})
        if on:
            token = probe_token(ctx)
            secret = self.names(ctx).probe_token_secret
            self.secrets.put(secret, token, labels(ctx), self.runtime_account(ctx))
            ctx.resources["secrets"] = {**(ctx.resources.get("secrets") or {}),
                                        "probe_token": secret}  # fmt: skip
        recorded["maintenance"] = on
        ctx.resources["runtime"] = recorded
        self._redeploy(ctx)

    def roll_code(self, ctx: SiteContext, stamp: str) -> None:
        """Roll the service to a new revision after its code changed (opcache keeps what an
        instance loaded): `stamp` names the change (a repeat deploys the same template)."""
        recorded = dict(ctx.resources.get("runtime") or {})
        recorded["code"] = stamp
        ctx.resources["runtime"] = recorded
        self._redeploy(ctx)

    def apply_env(self, contexts: list[SiteContext]) -> None:
        """Roll each site to a revision with the tenant's current env references, then
        delete the secrets of variables no longer set (no serving revision names them)."""
        for ctx in contexts:
            self._publish_tenant_env(ctx)
            self._redeploy(ctx)
        for ctx in {c.tenant_id: c for c in contexts}.values():
            self._delete_unset_env(ctx.tenant_id, set(ctx.tenant_env))

    def _delete_unset_env(self, tenant_id: str, names: set[str]) -> None:
        """Delete the tenant's env secrets whose variable is unset: an unset secret's value
        must not stay stored (every version goes with the secret)."""
        prefix = tenant_env_prefix(tenant_id)
        keep = {tenant_secret_id(tenant_id, name) for name in names}
        listed = self.clients.secrets.list_secrets(
            request={"parent": f"projects/{self.project}",
                     "filter": f"labels.aipress-tenant-id={tenant_id}"}
        )  # fmt: skip
        for secret in listed:
            secret_id = secret.name.rsplit("/", 1)[-1]
            if secret_id.startswith(prefix) and secret_id not in keep:
                with contextlib.suppress(exceptions.NotFound):
                    self.clients.secrets.delete_secret(request={"name": secret.name})
