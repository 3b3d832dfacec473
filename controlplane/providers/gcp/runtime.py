"""runtime step: a Cloud Run v2 service per site running the tenant image.

Secrets reach the container by reference (Secret Manager), never as values; the Cloud SQL
socket is a `cloud_sql_instance` volume at /cloudsql; the uploads bucket is a GCS volume at
wp-content/uploads; scale to zero; startup CPU boost; labels on the service and revisions.
Sites are public: `allUsers` may invoke them, and stopping a site removes that binding.
"""

from __future__ import annotations

import contextlib
from typing import Any

from google.api_core import exceptions
from google.cloud import run_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2

from controlplane.engine.provider import SiteContext
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.naming import labels
from controlplane.providers.gcp.secrets import SecretManagerSecrets

OPERATION_TIMEOUT = 600
UPLOADS = "/var/www/html/wp-content/uploads"
PUBLIC = "allUsers"
INVOKER = "roles/run.invoker"


def tenant_secret_id(tenant_id: str, name: str) -> str:
    """Secret Manager id of a tenant env var (every tenant env var travels by reference).
    Tenant ids never contain "--" and env names are [A-Z0-9_], so no two (tenant, name)
    pairs share an id."""
    return f"aipress-{tenant_id}--env--{name}"


class CloudRunService(GcpStep):
    """Creates, updates and deletes the site's Cloud Run service."""

    def __init__(self, settings: Any, clients: Any, secrets: SecretManagerSecrets) -> None:
        super().__init__(settings, clients)
        self.secrets = secrets

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

    def service(self, ctx: SiteContext) -> run_v2.Service:
        """The desired service (also what `--plan` prints)."""
        if not self.settings.tenant_image or not self.settings.cloudsql_instance:
            raise ValueError(
                "the gcp runtime needs AIPRESS_TENANT_IMAGE and AIPRESS_CLOUDSQL_INSTANCE"
            )
        names = self.names(ctx)
        database = ctx.resources.get("database") or {}
        secret_ids = ctx.resources.get("secrets") or {}
        bucket = (ctx.resources.get("storage") or {}).get("bucket", names.bucket)
        instance = self.settings.cloudsql_instance
        env = [
            run_v2.EnvVar(name="WORDPRESS_DB_HOST", value=f"localhost:/cloudsql/{instance}"),
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
        ]
        env += [
            self._secret_env(k, tenant_secret_id(ctx.tenant_id, k)) for k in sorted(ctx.tenant_env)
        ]
        return run_v2.Service(
            labels=labels(ctx),
            ingress=run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL,
            template=run_v2.RevisionTemplate(
                labels=labels(ctx),
                service_account=self.runtime_account(ctx),
                scaling=run_v2.RevisionScaling(
                    min_instance_count=0, max_instance_count=self.settings.site_max_instances
                ),
                volumes=[
                    run_v2.Volume(name="cloudsql",
                                  cloud_sql_instance=run_v2.CloudSqlInstance(instances=[instance])),
                    run_v2.Volume(name="uploads", gcs=run_v2.GCSVolumeSource(bucket=bucket)),
                ],
                containers=[run_v2.Container(
                    image=self.settings.tenant_image,
                    ports=[run_v2.ContainerPort(container_port=8080)],
                    env=env,
                    resources=run_v2.ResourceRequirements(
                        limits={"cpu": self.settings.site_cpu, "memory": self.settings.site_memory},
                        cpu_idle=True, startup_cpu_boost=True,
                    ),
                    volume_mounts=[run_v2.VolumeMount(name="cloudsql", mount_path="/cloudsql"),
                                   run_v2.VolumeMount(name="uploads", mount_path=UPLOADS)],
                    startup_probe=run_v2.Probe(http_get=run_v2.HTTPGetAction(path="/healthz")),
                )],
            ),
        )  # fmt: skip

    def ensure(self, ctx: SiteContext) -> None:
        """Create the service (or bring it to the desired state) and wait for it."""
        client = self.clients.run
        try:
            existing = client.get_service(name=self._name(ctx))
        except exceptions.NotFound:
            existing = None
        self._publish_tenant_env(ctx)
        desired = self.service(ctx)
        if existing is None:
            operation = client.create_service(
                parent=self._parent(), service=desired, service_id=self.names(ctx).service
            )
        else:
            desired.name = existing.name
            operation = client.update_service(service=desired)
        result: Any = operation.result(timeout=OPERATION_TIMEOUT)
        self._set_public(result.name, True)
        ctx.resources["runtime"] = {"service": result.name, "uri": result.uri}

    def remove(self, ctx: SiteContext) -> None:
        """Delete the service and wait (no-op when gone)."""
        with contextlib.suppress(exceptions.NotFound):
            self.clients.run.delete_service(name=self._name(ctx)).result(timeout=OPERATION_TIMEOUT)
        ctx.resources.pop("runtime", None)

    def _set_public(self, name: str, public: bool) -> None:
        client = self.clients.run
        policy = client.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=name))
        bindings = [b for b in policy.bindings if not (b.role == INVOKER and PUBLIC in b.members)]
        if public:
            bindings.append(policy_pb2.Binding(role=INVOKER, members=[PUBLIC]))
        updated = policy_pb2.Policy(bindings=bindings, etag=policy.etag)
        client.set_iam_policy(
            request=iam_policy_pb2.SetIamPolicyRequest(resource=name, policy=updated)
        )

    def stop(self, ctx: SiteContext) -> None:
        """Nobody may invoke the site (403) until it is started again."""
        self._set_public(self._name(ctx), False)

    def start(self, ctx: SiteContext) -> None:
        """Public again."""
        self._set_public(self._name(ctx), True)

    def apply_env(self, contexts: list[SiteContext]) -> None:
        """Roll each site to a revision with the tenant's current env references."""
        for ctx in contexts:
            self._publish_tenant_env(ctx)
            desired = self.service(ctx)
            desired.name = self._name(ctx)
            self.clients.run.update_service(service=desired).result(timeout=OPERATION_TIMEOUT)
