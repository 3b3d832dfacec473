"""The control plane's settings: the shared ones plus databases, sites, billing and cron."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from controlplane.kernel.settings import GCP_REQUIRED, SharedSettings

OUTBOUND_HOST = re.compile(
    r"(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9-]{1,63}"
)
PLACEHOLDER_MARKERS = ("changeme", "change-me", "placeholder", "example")
Workload = Literal["control_plane", "job"]  # the chatbot's settings are ChatSettings
# What the gcp provider needs (the control plane and the jobs build it), checked when built.
GCP_PROVIDER_REQUIRED: tuple[str, ...] = (
    "gcp_project", "tenant_image", "cloudsql_instance", "cloudsql_user", "backups_bucket",
    "platform_domain", "cloudsql_private_ip", "sites_subnetwork",
)  # fmt: skip
GCP_DNS_REQUIRED: dict[str, tuple[str, ...]] = {
    "clouddns": ("clouddns_zone",),
    "cloudflare": ("cloudflare_zone_id", "cloudflare_api_token"),
}


class Settings(SharedSettings):
    """Control-plane settings; with no environment at all they run the embedded default."""

    workload: Workload = "control_plane"  # which process this is (gcp mode's requirements)
    database_url: str | None = None
    # gcp mode: the control-plane database lives in Cloud SQL, reached via the connector.
    cloudsql_instance: str | None = None
    cloudsql_database: str = "aipress"
    cloudsql_user: str | None = None
    cloudsql_password: str | None = None
    cloudsql_iam_auth: bool = True
    # The built-in (password) user that makes tenant databases and grants the IAM users
    # theirs: a new IAM database user holds no privilege until granted one.
    cloudsql_admin_user: str = "aipress-admin"
    cloudsql_admin_password: SecretStr | None = None
    # MySQL users of the jobs' service accounts (billing, cron): read/write, no DDL.
    cloudsql_job_users: tuple[str, ...] = ()
    # Tenant sites reach Cloud SQL on its private IP, with their database user's password,
    # from the sites' own VPC subnet (Direct VPC egress, private ranges only, with the network
    # tag whose firewall rules let through port 3306 to Cloud SQL and nothing else): no
    # tenant identity holds a project-level role.
    cloudsql_private_ip: str | None = None
    sites_subnetwork: str | None = None  # projects/<p>/regions/<r>/subnetworks/<name>
    sites_network_tag: str = Field(
        default="aipress-site", pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
    )

    # Encryption keys: "kid:base64key,kid2:base64key"; empty in local mode means a key file
    # generated once under `home`.
    encryption_keys: str | None = None
    active_key_id: str | None = None

    platform_domain: str = "localhost"
    site_port: int = 8080
    site_listen: str = "127.0.0.1"
    mariadb_port: int = 3307
    wordpress_core: Path = Path("/usr/share/wordpress")
    php_memory_limit: str = "256M"
    upload_limit: str = "64M"
    php_max_children: int = 5
    # Connections one site's database user may hold at once (MAX_USER_CONNECTIONS): the
    # database server is shared with every other site and the control plane itself.
    site_db_max_connections: int = Field(default=40, ge=1, le=10_000)
    # The theme every new site starts with (installed by scripts/install-debs.sh from Debian).
    default_theme: str = Field(default="twentytwentythree", pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    # Hosts a site's WordPress may call out to (WP_ACCESSIBLE_HOSTS; `*.example.com` allowed);
    # everything else is refused in PHP before a socket opens. Updates are the platform's job.
    site_outbound_allow: tuple[str, ...] = ()
    site_ready_timeout: float = 30  # the wordpress step's readiness probe, in seconds
    # New sites are copied from a WordPress installed once per version and theme
    # (providers/local/site_template.py); off: every site runs the installer.
    site_templates: bool = True

    # Nameservers that custom-domain proofs are looked up on ("ip[:port]", comma-separated);
    # empty: the system resolver.
    dns_nameservers: str = ""
    # Denied requests are audited; past this many a minute per caller they are only logged.
    audit_denied_per_minute: int = 20

    # The gcp provider: where tenant sites run.
    tenant_image: str | None = None  # the runtime/wordpress image in Artifact Registry
    gcs_location: str = "US-CENTRAL1"
    dns_provider: Literal["cloudflare", "clouddns"] = "clouddns"
    cloudflare_zone_id: str | None = None
    cloudflare_api_token: SecretStr | None = None
    clouddns_zone: str | None = None
    site_cpu: str = "1"
    site_memory: str = "512Mi"
    site_max_instances: int = 3
    # Requests per instance = Apache prefork workers; each worker may use PHP's memory limit,
    # so concurrency x site_php_memory_limit + 128 MiB (Apache, opcache) must fit site_memory.
    site_concurrency: int = Field(default=4, ge=1, le=80)
    site_php_memory_limit: str = Field(default="96M", pattern=r"^[1-9][0-9]*M$")
    # How the world reaches sites: a global external HTTPS load balancer with Certificate
    # Manager and Cloud CDN (terraform/frontdoor.tf), or Cloud Run domain mappings (Preview,
    # a few regions, the caller must be a verified owner of every domain: small setups only).
    front_door: Literal["load_balancer", "domain_mappings"] = "load_balancer"
    front_door_url_map: str = "aipress-sites"  # made by terraform/frontdoor.tf
    front_door_certificate_map: str = "aipress-sites"
    # Where a stopped site's names are routed: terraform/frontdoor.tf's backend service of the
    # shared stopped-page Cloud Run service (a backend bucket would need an allUsers grant).
    front_door_stopped_backend: str = Field(
        default="backendServices/aipress-stopped",
        pattern=r"^backendServices/[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
    )
    front_door_ipv4: str | None = None  # the load balancer's addresses (Terraform outputs)
    front_door_ipv6: str | None = None
    backups_bucket: str | None = None  # gcp: where database dumps and uploads are copied
    # gcp: the platform catalogue's zips (gs://<bucket>/catalogue/<kind>/<slug>/<version>.zip),
    # written by the control plane, read by the tenants' packages jobs (terraform/).
    catalogue_bucket: str | None = None
    # IAM is eventually consistent: how long a new account is waited for, and the first wait.
    gcp_iam_propagation_seconds: float = Field(default=180, gt=0)
    gcp_iam_retry_seconds: float = Field(default=1.0, gt=0)
    # Cells: a cell is a project with its own Cloud SQL instance(s). Every tenant and site
    # records its cell; a new tenant goes to the first listed cell with room.
    cell: str = Field(default="cell-1", pattern=r"^[a-z][a-z0-9-]{0,19}$")
    cells: tuple[str, ...] = ()  # cells open for new tenants (default: just `cell`)
    cell_max_tenants: int = Field(default=1_400, ge=1)
    # gcp: a site is a Cloud Run service, 1,000 per project and region; the rest is headroom
    # for the platform's own services and jobs.
    cell_max_sites: int = Field(default=950, ge=1)

    # Billing: the export's warehouse, the aggregation window, the in-process schedule.
    billing_warehouse: Literal["duckdb", "bigquery"] | None = None  # bigquery in gcp mode
    billing_duckdb_path: Path | None = None  # default: billing/billing.duckdb under home
    billing_export_table: str | None = None  # project.dataset.gcp_billing_export_v1_XXXX
    billing_bigquery_project: str | None = None  # where query jobs run; default gcp_project
    billing_window_days: int = Field(default=5, ge=1, le=60)
    billing_shared_services: tuple[str, ...] = ("Cloud SQL",)
    billing_schedule: bool = True  # embedded default: meter hourly, aggregate daily
    billing_aggregate_every_hours: float = 24

    # Platform cron (WordPress's own is off: DISABLE_WP_CRON): every ready site's due events
    # run once per interval, each site at a stable offset within it, a few sites at a time.
    cron_schedule: bool = True  # embedded default: a thread of the control plane
    cron_interval_seconds: float = Field(default=300, ge=1, le=86_400)
    cron_concurrency: int = Field(default=4, ge=1, le=64)
    cron_timeout_seconds: float = Field(default=120, gt=0)
    # Backups: the daily schedule (a thread of the control plane locally; Cloud Scheduler
    # starts `python -m controlplane.backups` in gcp mode), how long the backups of a
    # deleted site (the undelete) and the pre-change ones are kept, the download link's life.
    backup_schedule: bool = True
    backup_schedule_interval_seconds: float = Field(default=300, ge=1, le=86_400)
    deleted_site_retention_days: float = Field(default=30, ge=0)
    pre_change_backup_retention_days: float = Field(default=30, ge=0)
    # An import's upload (its files' bytes), and what its archives and dump may unpack to
    # (each counted as it is decompressed: a gzip bomb stops there).
    import_max_bytes: int = Field(default=2 * 1024**3, ge=1)
    import_max_unpacked_bytes: int = Field(default=8 * 1024**3, ge=1)
    # The biggest package zip the catalogue takes (WordPress core is about 25 MB).
    catalogue_max_bytes: int = Field(default=100 * 1024**2, ge=1)
    # Reading a site's packages runs the site's own PHP inside an API request (GET
    # .../packages, POST .../updates): it is cut off after this long.
    packages_list_timeout: float = Field(default=30, gt=0, le=300)
    # How long an update's health probe keeps trying before it rolls the update back.
    update_probe_seconds: float = Field(default=20, ge=0, le=600)
    backup_download_ttl_seconds: int = Field(default=900, ge=30, le=3_600)
    # Each round restores this many sites' newest backups beside them and compares them.
    backup_verify_per_round: int = Field(default=2, ge=0, le=100)
    # One-click wp-admin: how long a sign-in link stays valid (it is also single-use).
    admin_login_ttl_seconds: int = Field(default=60, ge=5, le=300)

    # Event streams end when the caller's token expires (the client reconnects with a fresh
    # one) and ask this often whether the caller still sees the tenant.
    event_stream_recheck_seconds: float = Field(default=30, gt=0, le=3_600)
    # A tenant stream resumed with an old Last-Event-ID (or 0) replays at most this many
    # events and none older than this: the rest is in GET /v1/tenants/{t}/operations.
    event_replay_max_events: int = Field(default=1_000, ge=1, le=100_000)
    event_replay_max_age_seconds: float = Field(default=86_400, gt=0)
    max_parallel_operations: int = 4
    request_threads: int = 4
    # Logs API: a site can fill its own logs, so a request's work is bounded (bytes read
    # across its files) and each caller has at most this many log/metric reads at once.
    log_read_budget_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    log_reads_per_caller: int = Field(default=2, ge=1)
    max_resume_attempts: int = 3
    operation_lease_seconds: float = 30

    @field_validator("site_outbound_allow")
    @classmethod
    def _hosts_only(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for host in hosts:
            if not OUTBOUND_HOST.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name (or *.domain) to allow")
        return tuple(h.lower() for h in hosts)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.provider != "gcp":
            return self
        if not self.encryption_keys:
            raise ValueError(
                "gcp mode needs AIPRESS_ENCRYPTION_KEYS (from Secret Manager); "
                "no key is generated outside the embedded default."
            )
        lowered = self.encryption_keys.lower()
        if any(marker in lowered for marker in PLACEHOLDER_MARKERS):
            raise ValueError("AIPRESS_ENCRYPTION_KEYS holds a placeholder value; set a real key.")
        missing = self.missing(GCP_REQUIRED[self.workload])
        if missing:
            raise ValueError(f"gcp mode ({self.workload}) needs {', '.join(missing)}.")
        return self

    def gcp_provider_missing(self) -> list[str]:
        """What the gcp provider needs and does not have (its settings, and its DNS's in
        the control plane: the jobs never change DNS)."""
        dns = GCP_DNS_REQUIRED[self.dns_provider] if self.workload == "control_plane" else ()
        return self.missing(GCP_PROVIDER_REQUIRED + dns)

    @property
    def sqlalchemy_url(self) -> str:
        """The control-plane database URL (SQLite under `home` unless set)."""
        if self.database_url:
            return self.database_url
        if self.cloudsql_instance:
            return "mysql+pymysql://"
        return f"sqlite:///{self.home / 'controlplane.db'}"

    @property
    def billing_warehouse_name(self) -> Literal["duckdb", "bigquery"]:
        """Where the billing export is read: BigQuery in gcp mode, DuckDB otherwise."""
        if self.billing_warehouse:
            return self.billing_warehouse
        return "bigquery" if self.provider == "gcp" else "duckdb"

    @property
    def billing_duckdb_file(self) -> Path:
        """The embedded default's export-shaped DuckDB file (in a root-only directory: every
        tenant's costs are in it, and DuckDB makes its files and WAL world-readable)."""
        return self.billing_duckdb_path or self.home / "billing" / "billing.duckdb"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
