"""The `gcp` provider: Cloud SQL, Secret Manager, GCS, Cloud Run, Cloudflare or Cloud DNS,
and Cloud Logging, each step behind the engine's Protocols."""

from __future__ import annotations

from typing import Any

from controlplane.db import make_engine, make_sessionmaker
from controlplane.engine.packages import PackagesStep
from controlplane.engine.provider import BackupStep, DnsStep, RuntimeStep, SiteContext, SiteStep
from controlplane.errors import ApplyFailed
from controlplane.observability import SiteLogs
from controlplane.providers.gcp.backups import GcsBackups
from controlplane.providers.gcp.base import GcpClients, GcpStep
from controlplane.providers.gcp.cron import HttpCron
from controlplane.providers.gcp.database import (
    TABLE_STATS,
    CloudSqlDatabase,
    admin_connect,
    own_connect,
    password_connect,
)
from controlplane.providers.gcp.dns import (
    CloudDnsRecords,
    CloudflareRecords,
    DnsRecords,
    DomainMappings,
    MappedFrontDoor,
    SiteDns,
)
from controlplane.providers.gcp.frontdoor import FrontDoor, LoadBalancerFrontDoor
from controlplane.providers.gcp.identity import IamServiceAccounts
from controlplane.providers.gcp.logs import CALLS_PER_MINUTE, CloudLoggingLogs
from controlplane.providers.gcp.packages import GcpPackages
from controlplane.providers.gcp.plan import plan_site
from controlplane.providers.gcp.quota import SharedMinuteBudget
from controlplane.providers.gcp.runtime import CloudRunService
from controlplane.providers.gcp.secrets import SecretManagerSecrets
from controlplane.providers.gcp.storage import GcsBucket
from controlplane.providers.gcp.wordpress import WordPressReady
from controlplane.settings import Settings


def make_clients(settings: Settings) -> GcpClients:
    """Production clients with Application Default Credentials (the service account)."""
    missing = settings.gcp_provider_missing()
    if missing:
        raise ValueError(f"the gcp provider needs {', '.join(missing)}")
    import cloudflare
    import google.auth
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import (  # type: ignore[attr-defined]
        dns,
        logging,
        monitoring_v3,
        run_v2,
        secretmanager,
        storage,
    )

    token = settings.cloudflare_api_token
    session = AuthorizedSession(google.auth.default()[0])  # type: ignore[no-untyped-call]
    return GcpClients(
        run=run_v2.ServicesClient(),
        jobs=run_v2.JobsClient(),
        secrets=secretmanager.SecretManagerServiceClient(),
        storage=storage.Client(project=settings.gcp_project),
        cloudflare=cloudflare.Cloudflare(api_token=token.get_secret_value()) if token else None,
        clouddns=(
            dns.Client(project=settings.gcp_project)
            if settings.dns_provider == "clouddns"
            else None
        ),
        logging=logging.Client(project=settings.gcp_project),  # type: ignore[no-untyped-call]
        sql_connect=admin_connect(settings),
        sql_connect_as=password_connect(settings),
        own_connect=own_connect(settings),
        iam=IamServiceAccounts(session),
        run_v1=session,
        rest=session,
        monitoring=monitoring_v3.MetricServiceClient(),
    )  # fmt: skip


class NoDnsInJobs:
    """The jobs' records: they hold no DNS credentials, so a change is refused."""

    def upsert(self, host: str, kind: str, values: list[str]) -> None:
        """Refused: DNS is the control plane's."""
        raise ApplyFailed(f"DNS changes ({host}) are the control plane's, not a job's")

    def delete(self, host: str) -> None:
        """Refused: DNS is the control plane's."""
        raise ApplyFailed(f"DNS changes ({host}) are the control plane's, not a job's")


def make_records(settings: Settings, clients: GcpClients) -> DnsRecords:
    """Cloudflare or Cloud DNS, as configured (none in the jobs)."""
    if settings.workload != "control_plane":
        return NoDnsInJobs()
    if settings.dns_provider == "cloudflare":
        if not settings.cloudflare_zone_id or clients.cloudflare is None:
            raise ValueError("Cloudflare DNS needs AIPRESS_CLOUDFLARE_ZONE_ID and _API_TOKEN")
        return CloudflareRecords(clients.cloudflare, settings.cloudflare_zone_id)
    if not settings.clouddns_zone:
        raise ValueError("Cloud DNS needs AIPRESS_CLOUDDNS_ZONE (the managed zone's name)")
    return CloudDnsRecords(clients.clouddns, settings.clouddns_zone)


class GcpUsage(GcpStep):
    """Database sizes on the shared instance (for apportioning its cost)."""

    def storage_bytes(self, ctx: SiteContext) -> int:
        """Not metered here: GCS storage is billed with the bucket's labels."""
        return 0

    def database_bytes(self) -> dict[str, int]:
        """Data + index bytes per database, from InnoDB's table statistics, read as this
        process's own database user (information_schema would show the billing job only
        the tables it may read, and it may read no tenant's)."""
        with self.clients.own_connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT database_name, SUM(clustered_index_size + sum_of_other_index_sizes) "
                f"* @@innodb_page_size FROM {TABLE_STATS} GROUP BY database_name"
            )
            return {str(schema): int(size or 0) for schema, size in cur.fetchall()}


class GcpProvider:
    """Every provisioning step against Google Cloud."""

    name = "gcp"

    def __init__(self, settings: Settings, clients: GcpClients | None = None,
                 records: DnsRecords | None = None) -> None:  # fmt: skip
        self.clients = clients or make_clients(settings)
        secrets = SecretManagerSecrets(settings, self.clients)
        records = records or make_records(settings, self.clients)
        self.database: SiteStep = CloudSqlDatabase(settings, self.clients)
        self.secrets: SiteStep = secrets
        self.storage: SiteStep = GcsBucket(settings, self.clients)
        runtime = CloudRunService(settings, self.clients, secrets)
        self.runtime: RuntimeStep = runtime
        front: FrontDoor
        if settings.front_door == "domain_mappings":
            front = MappedFrontDoor(DomainMappings(
                self.clients.run_v1, settings.gcp_project or "", settings.gcp_location,
                self.clients.run_v1_url,
            ))  # fmt: skip
        else:
            front = LoadBalancerFrontDoor(settings, self.clients)
        self.front = front
        dns = SiteDns(settings, self.clients, records, front)
        self.dns: DnsStep = dns
        runtime.served = dns
        self.wordpress: SiteStep = WordPressReady(settings, self.clients)
        self.backups: BackupStep = GcsBackups(settings, self.clients, runtime)
        budget = SharedMinuteBudget(
            make_sessionmaker(make_engine(settings)),
            f"logging.entries.list/{settings.gcp_project}", CALLS_PER_MINUTE,
        )  # fmt: skip
        self.logs: SiteLogs = CloudLoggingLogs(settings, self.clients, budget)
        self.packages: PackagesStep = GcpPackages(settings, self.clients, runtime, self.logs)
        self.usage = GcpUsage(settings, self.clients)
        self.cron = HttpCron(settings)
        self._settings = settings

    def plan(self, ctx: SiteContext) -> list[dict[str, Any]]:
        """The calls a create would make (the dry run)."""
        assert isinstance(self.runtime, CloudRunService)
        return plan_site(self._settings, self.runtime, self.front, ctx)
