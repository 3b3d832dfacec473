"""The one settings class: every knob of the platform, read from `AIPRESS_*` variables."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Provider = Literal["local", "gcp", "memory"]
ChatModel = Literal["offline", "gemini", "openai"]


def default_home() -> Path:
    """State directory: /var/lib/aipress for root, else $XDG_DATA_HOME/aipress."""
    if os.geteuid() == 0:
        return Path("/var/lib/aipress")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "aipress"


OUTBOUND_HOST = re.compile(
    r"(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9-]{1,63}"
)
PLACEHOLDER_MARKERS = ("changeme", "change-me", "placeholder", "example")
Workload = Literal["control_plane", "job", "chatbot"]

# What each gcp-mode process must have set ("a|b": either). The validator refuses to start
# without them; terraform's static test checks that every service sets its workload's.
GCP_REQUIRED: dict[str, tuple[str, ...]] = {
    "control_plane": ("firebase_project_id", "encryption_keys", "cloudsql_instance|database_url"),
    "job": ("firebase_project_id", "encryption_keys", "cloudsql_instance|database_url"),
    "chatbot": ("firebase_project_id", "encryption_keys", "chat_database_url",
                "chat_control_plane_url", "firebase_web_api_key", "firebase_auth_domain"),
}  # fmt: skip
# What the gcp provider needs (the control plane and the jobs build it), checked when built.
GCP_PROVIDER_REQUIRED: tuple[str, ...] = (
    "gcp_project", "tenant_image", "cloudsql_instance", "cloudsql_user", "backups_bucket",
    "platform_domain",
)  # fmt: skip
GCP_DNS_REQUIRED: dict[str, tuple[str, ...]] = {
    "clouddns": ("clouddns_zone",),
    "cloudflare": ("cloudflare_zone_id", "cloudflare_api_token"),
}


class Settings(BaseSettings):
    """Platform settings; with no environment at all they run the embedded default."""

    model_config = SettingsConfigDict(env_prefix="AIPRESS_", extra="ignore")

    provider: Provider = "local"
    workload: Workload = "control_plane"  # which process this is (gcp mode's requirements)
    home: Path = Field(default_factory=default_home)
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

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None

    # Encryption keys: "kid:base64key,kid2:base64key"; empty in local mode means a key file
    # generated once under `home`.
    encryption_keys: str | None = None
    active_key_id: str | None = None

    # Auth. Local tokens are signed with an Ed25519 key kept under `home`.
    token_ttl_seconds: int = 12 * 3600
    firebase_project_id: str | None = None
    allow_auth_emulator: bool = False

    platform_domain: str = "localhost"
    site_port: int = 8080
    site_listen: str = "127.0.0.1"
    mariadb_port: int = 3307
    wordpress_core: Path = Path("/usr/share/wordpress")
    php_memory_limit: str = "256M"
    upload_limit: str = "64M"
    php_max_children: int = 5
    # The theme every new site starts with (installed by scripts/install-debs.sh from Debian).
    default_theme: str = Field(default="twentytwentythree", pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    # Hosts a site's WordPress may call out to (WP_ACCESSIBLE_HOSTS; `*.example.com` allowed);
    # everything else is refused in PHP before a socket opens. Updates are the platform's job.
    site_outbound_allow: tuple[str, ...] = ()
    site_ready_timeout: float = 30  # the wordpress step's readiness probe, in seconds

    # Nameservers that custom-domain proofs are looked up on ("ip[:port]", comma-separated);
    # empty: the system resolver.
    dns_nameservers: str = ""
    # Denied requests are audited; past this many a minute per caller they are only logged.
    audit_denied_per_minute: int = 20

    log_level: str = "INFO"
    log_file: Path | None = None
    log_json: bool = True

    # The chatbot service (agent) and its model.
    chat_host: str = "127.0.0.1"
    chat_port: int = 8001
    chat_model: ChatModel | None = None  # default: gemini in gcp mode, offline otherwise
    chat_database_url: str | None = None  # checkpoints + thread owners; SQLite under home
    chat_control_plane_url: str | None = None  # where the tools reach the API; base_url
    chat_rate_per_minute: int = 20
    chat_max_message_chars: int = 4000
    chat_operation_wait_seconds: float = 900
    chat_allowed_origins: tuple[str, ...] = ()  # pages on other origins that embed the widget
    firebase_web_api_key: str | None = None  # the browser's Firebase config (gcp mode)
    firebase_auth_domain: str | None = None
    firebase_sign_in_providers: tuple[str, ...] = ("google", "email")
    gemini_model: str = "gemini-2.5-flash"
    gemini_endpoint: str | None = None  # a private endpoint or gateway; Vertex AI's otherwise
    gcp_project: str | None = None
    gcp_location: str = "us-central1"
    openai_base_url: str | None = None
    openai_model: str | None = None
    openai_api_key: SecretStr | None = None

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
    front_door_ipv4: str | None = None  # the load balancer's addresses (Terraform outputs)
    front_door_ipv6: str | None = None
    backups_bucket: str | None = None  # gcp: where database dumps and uploads are copied
    # IAM is eventually consistent: how long a new account is waited for, and the first wait.
    gcp_iam_propagation_seconds: float = Field(default=180, gt=0)
    gcp_iam_retry_seconds: float = Field(default=1.0, gt=0)
    # Cells: a cell is a project with its own Cloud SQL instance(s). Every tenant and site
    # records its cell; a new tenant goes to the first listed cell with room.
    cell: str = Field(default="cell-1", pattern=r"^[a-z][a-z0-9-]{0,19}$")
    cells: tuple[str, ...] = ()  # cells open for new tenants (default: just `cell`)
    cell_max_tenants: int = Field(default=1_400, ge=1)

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
    # One-click wp-admin: how long a sign-in link stays valid (it is also single-use).
    admin_login_ttl_seconds: int = Field(default=60, ge=5, le=300)

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
        if os.environ.get("FIREBASE_AUTH_EMULATOR_HOST") and not self.allow_auth_emulator:
            raise ValueError(
                "FIREBASE_AUTH_EMULATOR_HOST is set: the emulator accepts unsigned tokens, "
                "so gcp mode refuses to start. Unset it "
                "(or set AIPRESS_ALLOW_AUTH_EMULATOR=1 in tests)."
            )
        if not self.firebase_project_id:
            raise ValueError(
                "gcp mode needs AIPRESS_FIREBASE_PROJECT_ID to verify Firebase tokens."
            )
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

    def missing(self, required: tuple[str, ...]) -> list[str]:
        """The environment variables of `required` ("a|b": either) that are unset."""
        return [
            " or ".join(f"AIPRESS_{name.upper()}" for name in entry.split("|"))
            for entry in required
            if not any(getattr(self, name) for name in entry.split("|"))
        ]

    def gcp_provider_missing(self) -> list[str]:
        """What the gcp provider needs and does not have (its settings, and its DNS's in
        the control plane: the jobs never change DNS)."""
        dns = GCP_DNS_REQUIRED[self.dns_provider] if self.workload == "control_plane" else ()
        return self.missing(GCP_PROVIDER_REQUIRED + dns)

    @property
    def keys_dir(self) -> Path:
        """Directory of generated keys (0700)."""
        return self.home / "keys"

    @property
    def sqlalchemy_url(self) -> str:
        """The control-plane database URL (SQLite under `home` unless set)."""
        if self.database_url:
            return self.database_url
        if self.cloudsql_instance:
            return "mysql+pymysql://"
        return f"sqlite:///{self.home / 'controlplane.db'}"

    @property
    def chat_model_name(self) -> ChatModel:
        """The agent's model: as set, else gemini in gcp mode and the offline planner here."""
        if self.chat_model:
            return self.chat_model
        return "gemini" if self.provider == "gcp" else "offline"

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

    @property
    def chat_checkpoint_url(self) -> str:
        """The chatbot's database (LangGraph checkpoints and thread owners)."""
        return self.chat_database_url or f"sqlite:///{self.home / 'chat.db'}"

    @property
    def chat_url(self) -> str:
        """Where the chatbot service listens."""
        return f"http://{self.chat_host}:{self.chat_port}"

    @property
    def tools_base_url(self) -> str:
        """The control-plane URL the agent's tools call."""
        return self.chat_control_plane_url or self.base_url

    @property
    def base_url(self) -> str:
        """Where the control-plane API is reachable."""
        return self.public_url or f"http://{self.host}:{self.port}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
