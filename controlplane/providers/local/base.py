"""What every local step shares: the stack and the site's derived names."""

from __future__ import annotations

import shutil
from dataclasses import replace

from controlplane.engine.provider import SiteContext
from controlplane.providers.local.naming import SiteNames, site_names
from controlplane.settings import Settings
from controlplane.stack.local import LocalStack
from controlplane.stack.process import StackError


class LocalStep:
    """Base of the local provider's steps."""

    def __init__(self, stack: LocalStack, settings: Settings) -> None:
        self.stack = stack
        self.settings = settings

    def names(self, ctx: SiteContext) -> SiteNames:
        """The site's local names: the ones recorded when it was built, else derived."""
        derived = site_names(ctx, self.stack.sites_dir, self.settings.platform_domain)
        database = ctx.resources.get("database") or {}
        storage = ctx.resources.get("storage") or {}
        return replace(
            derived,
            system_user=storage.get("user", derived.system_user),
            db_name=database.get("name", derived.db_name),
            db_user=database.get("user", derived.db_user),
        )

    def preview_url(self, ctx: SiteContext) -> str:
        """http://<site>.<tenant>.localhost:8080/"""
        port = self.settings.site_port
        suffix = "" if port == 80 else f":{port}"
        return f"http://{self.names(ctx).preview_host}{suffix}/"

    def probe_token(self, ctx: SiteContext) -> str:
        """The per-site secret that lets the platform's probes past a site being built."""
        return ctx.credentials.get_or_create("build_probe", "aipress")[1]

    def probe_headers(self, ctx: SiteContext) -> dict[str, str]:
        """Headers of a platform probe of the site (the `building` server block admits it)."""
        return {"X-AIPress-Probe": self.probe_token(ctx)}

    def site_php_flags(self, ctx: SiteContext) -> list[str]:
        """The site's pool limits for php-cli: a re-run loads the tenant's own plugins."""
        from controlplane.providers.local.cron import CLI_LOCKDOWN, pool_settings  # imports us

        pool_file = self.stack.phpfpm.pool_file(self.names(ctx).system_user)
        if not pool_file.exists():
            raise StackError("the site has no PHP-FPM pool yet: its runtime step runs first")
        flags, _env = pool_settings(pool_file)
        return [*flags, *CLI_LOCKDOWN]

    def purge_page_cache(self, ctx: SiteContext) -> None:
        """Empty the site's nginx page cache."""
        cache = self.stack.nginx.cache_dir / self.names(ctx).key
        if cache.is_dir():
            for child in cache.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
