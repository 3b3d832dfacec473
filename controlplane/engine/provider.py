"""What the provisioning engine needs from a provider: one `Protocol` per step, nothing of GCP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from controlplane.observability import SiteLogs


class CredentialVault(Protocol):
    """Encrypted credentials of one site; passwords are generated once and reused on retry."""

    def get_or_create(self, kind: str, username: str) -> tuple[str, str]:
        """(username, password) of `kind`, generating and storing it on first use."""
        ...

    def get(self, kind: str) -> tuple[str, str] | None:
        """(username, password) of `kind`, if stored."""
        ...


@dataclass
class SiteContext:
    """Everything a step knows about the site it works on."""

    tenant_id: str
    site_id: str
    site_name: str
    title: str
    admin_email: str
    admin_user: str
    domains: list[str]
    credentials: CredentialVault
    # Provider resource ids (names, paths, service ids); persisted after every step.
    resources: dict[str, Any] = field(default_factory=dict)
    # The tenant's env vars and secrets in plain text: for the runtime only, never logged.
    tenant_env: dict[str, str] = field(default_factory=dict, repr=False)
    request_id: str | None = None


class SiteStep(Protocol):
    """One provisioning step: `ensure` and `remove` are idempotent and each undoes the other."""

    def ensure(self, ctx: SiteContext) -> None:
        """Create (or confirm) this step's resources for the site."""
        ...

    def remove(self, ctx: SiteContext) -> None:
        """Remove this step's resources; a no-op when they are already gone."""
        ...


class RuntimeStep(SiteStep, Protocol):
    """The step that serves the site; it can also pause it and take new env vars."""

    def start(self, ctx: SiteContext) -> None:
        """Serve the site again after `stop`."""
        ...

    def stop(self, ctx: SiteContext) -> None:
        """Take the site offline without deleting anything."""
        ...

    def apply_env(self, contexts: list[SiteContext]) -> None:
        """Re-apply each site's tenant env vars and secrets (ctx.tenant_env), all at once."""
        ...


class DnsStep(SiteStep, Protocol):
    """Preview name and custom domains."""

    def preview_url(self, ctx: SiteContext) -> str:
        """The URL that reaches the site with no custom DNS."""
        ...


class BackupStep(Protocol):
    """Copies a site's database and files somewhere safe."""

    def backup(self, ctx: SiteContext, label: str) -> str:
        """Take a backup and return where it lies."""
        ...


class Provider(Protocol):
    """A full set of steps: `local` (one machine), `gcp` (Google Cloud), `memory` (tests)."""

    name: str
    database: SiteStep
    secrets: SiteStep
    storage: SiteStep
    runtime: RuntimeStep
    dns: DnsStep
    wordpress: SiteStep
    backups: BackupStep
    logs: SiteLogs
