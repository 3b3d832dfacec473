"""The `local` provider: real WordPress sites on one machine (MariaDB, PHP-FPM, nginx)."""

from __future__ import annotations

from controlplane.engine.packages import PackagesStep
from controlplane.engine.provider import BackupStep, DnsStep, RuntimeStep, SiteContext, SiteStep
from controlplane.observability import SiteLogs
from controlplane.providers.local.backups import BackupStep as LocalBackups
from controlplane.providers.local.cron import LocalCron
from controlplane.providers.local.database import DatabaseStep, SecretsStep
from controlplane.providers.local.dns import DnsStep as LocalDns
from controlplane.providers.local.logs import LocalLogs
from controlplane.providers.local.packages import LocalPackages
from controlplane.providers.local.runtime import AnnouncedStep
from controlplane.providers.local.runtime import RuntimeStep as LocalRuntime
from controlplane.providers.local.storage import StorageStep
from controlplane.providers.local.usage import LocalUsage
from controlplane.providers.local.wordpress import WordPressStep
from controlplane.settings import Settings
from controlplane.stack.local import LocalStack


class LocalProvider:
    """Every provisioning step against the local stack."""

    name = "local"

    def __init__(self, settings: Settings, stack: LocalStack | None = None) -> None:
        self.stack = stack or LocalStack.from_settings(settings)
        runtime = LocalRuntime(self.stack, settings)
        # The first step puts the site's names up as "being built" (503) before anything else.
        self.database: SiteStep = AnnouncedStep(DatabaseStep(self.stack, settings), runtime)
        self.secrets: SiteStep = SecretsStep(self.stack, settings)
        self.storage: SiteStep = StorageStep(self.stack, settings)
        self.runtime: RuntimeStep = runtime
        self.dns: DnsStep = LocalDns(self.stack, settings)
        self.wordpress: SiteStep = WordPressStep(self.stack, settings, runtime)
        self.backups: BackupStep = LocalBackups(self.stack, settings)
        self.logs: SiteLogs = LocalLogs(self.stack, settings)
        self.packages: PackagesStep = LocalPackages(self.stack, settings)
        self.usage = LocalUsage(self.stack, settings)
        self.cron = LocalCron(self.stack, settings)
        self._runtime = runtime

    def announce(self, ctx: SiteContext) -> None:
        """Show a site that is about to be built as "being built" (503), from the POST on."""
        if self._runtime.building(ctx):
            self._runtime.announce(ctx)
