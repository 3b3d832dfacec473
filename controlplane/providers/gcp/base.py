"""What every gcp step shares: settings, the clients, and the site's names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controlplane.engine.provider import SiteContext
from controlplane.providers.gcp.naming import GcpNames, gcp_names
from controlplane.settings import Settings

if TYPE_CHECKING:
    from controlplane.providers.gcp.identity import Propagation


@dataclass
class GcpClients:
    """The Google Cloud (and Cloudflare) clients; tests pass ones aimed at local fakes."""

    run: Any = None  # run_v2.ServicesClient
    jobs: Any = None  # run_v2.JobsClient (the WordPress install job)
    secrets: Any = None  # secretmanager.SecretManagerServiceClient
    storage: Any = None  # storage.Client
    cloudflare: Any = None  # cloudflare.Cloudflare
    clouddns: Any = None  # dns.Client
    logging: Any = None  # logging.Client
    iam: Any = None  # IAM service accounts (identity.IamServiceAccounts)
    monitoring: Any = None  # monitoring_v3.MetricServiceClient
    run_v1: Any = None  # a requests-like session for the Cloud Run v1 API (domain mappings)
    run_v1_url: str | None = None  # its base URL (tests point it at a fake)
    # A requests-like session for the APIs called over plain REST (Compute for the load
    # balancer, Certificate Manager), and their base URLs (tests point them at fakes).
    rest: Any = None
    compute_url: str = "https://compute.googleapis.com"
    certificates_url: str = "https://certificatemanager.googleapis.com"
    sqladmin_url: str = "https://sqladmin.googleapis.com"  # the instance's disk (backups)
    sql_connect: Any = None  # () -> a DB-API connection to the shared instance, as admin
    own_connect: Any = None  # () -> one as this process's own IAM database user
    sql_connect_as: Any = None  # (user, password) -> one as that user (an import's own)
    extra: dict[str, Any] = field(default_factory=dict)


class GcpStep:
    """Base of the gcp provider's steps."""

    def __init__(self, settings: Settings, clients: GcpClients) -> None:
        self.settings = settings
        self.clients = clients

    @property
    def project(self) -> str:
        """The platform's project."""
        if not self.settings.gcp_project:
            raise ValueError("the gcp provider needs AIPRESS_GCP_PROJECT")
        return self.settings.gcp_project

    @property
    def propagation(self) -> Propagation:
        """How long IAM changes are waited for and retried."""
        from controlplane.providers.gcp.identity import Propagation

        return Propagation(
            first_wait=self.settings.gcp_iam_retry_seconds,
            timeout=self.settings.gcp_iam_propagation_seconds,
        )

    def runtime_account(self, ctx: SiteContext) -> str:
        """The service account the site runs as: its tenant's."""
        from controlplane.providers.gcp.identity import tenant_account

        return tenant_account(self.project, ctx.tenant_id)

    def names(self, ctx: SiteContext) -> GcpNames:
        """The site's names (as recorded when it was built)."""
        return gcp_names(ctx, self.project, self.settings.platform_domain)
