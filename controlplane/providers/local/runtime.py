"""runtime step: a PHP-FPM pool per site and an nginx server block checked with `nginx -t`."""

from __future__ import annotations

import grp
import os
import re
import shutil
from pathlib import Path

from controlplane.engine.provider import SiteContext
from controlplane.providers.local.base import LocalStep
from controlplane.stack.process import StackError, wait_for_path
from controlplane.stack.templates import render


def ini_quote(value: str) -> str:
    """A double-quoted php-fpm ini value: backslash, quote and `$` (which expands) escaped."""
    if any(c in value for c in "\r\n\x00"):
        raise StackError("an env value must be a single line without NUL characters")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def pool_env(env: dict[str, str]) -> list[tuple[str, str]]:
    """The tenant's env as (name, quoted value) pool lines."""
    return [(name, ini_quote(value)) for name, value in sorted(env.items())]


class RuntimeStep(LocalStep):
    """Serves the site: pool (own user, socket, open_basedir) + server block (+ page cache)."""

    def _write_pool(self, ctx: SiteContext) -> None:
        names = self.names(ctx)
        phpfpm = self.stack.phpfpm
        content = render(
            "pool.conf.j2",
            site=ctx.site_name,
            tenant=ctx.tenant_id,
            pool=names.system_user,
            user=names.system_user,
            socket=phpfpm.socket(names.system_user),
            root=names.root,
            env=pool_env(ctx.tenant_env),
            max_children=self.settings.php_max_children,
            memory_limit=self.settings.php_memory_limit,
            upload_limit=self.settings.upload_limit,
        )
        path = phpfpm.pool_file(names.system_user)
        tmp = path.with_suffix(".tmp")
        # The pool file carries the tenant's secrets: root-only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.replace(tmp, path)

    def _write_vhost(self, ctx: SiteContext, stopped: bool) -> None:
        names = self.names(ctx)
        nginx = self.stack.nginx
        zone = "c_" + re.sub(r"[^a-z0-9_]", "_", names.key)
        access_log, error_log = self.log_files(ctx)
        site_group = grp.getgrnam(names.system_user).gr_gid
        for log_file in (access_log, error_log):  # the site's group reads its own, no one else
            nginx.prepare_log(log_file, group=site_group)
        content = nginx.render_site(
            site=ctx.site_name,
            tenant=ctx.tenant_id,
            server_names=[names.preview_host, *ctx.domains],
            root=names.root,
            socket=self.stack.phpfpm.socket(names.system_user),
            cache_dir=nginx.cache_dir / names.key,
            zone=zone,
            access_log=access_log,
            error_log=error_log,
            upload_limit=self.settings.upload_limit.lower(),
            stopped=stopped,
        )
        nginx.install_site(names.key, content)

    def log_files(self, ctx: SiteContext) -> tuple[Path, Path]:
        """The site's nginx access and error logs."""
        key, log_dir = self.names(ctx).key, self.stack.nginx.log_dir
        return log_dir / f"{key}.access.json", log_dir / f"{key}.error.log"

    def ensure(self, ctx: SiteContext) -> None:
        """Write and load the pool, then enable the server block."""
        names = self.names(ctx)
        self.stack.ensure_running()
        self._write_pool(ctx)
        self.stack.phpfpm.reload()
        if not wait_for_path(self.stack.phpfpm.socket(names.system_user), 10):
            raise StackError(f"pool {names.system_user} did not open its socket")
        stopped = bool(ctx.resources.get("runtime", {}).get("stopped", False))
        self._write_vhost(ctx, stopped=stopped)
        ctx.resources["runtime"] = {
            "pool": names.system_user,
            "vhost": names.key,
            "stopped": stopped,
        }

    def remove(self, ctx: SiteContext) -> None:
        """Disable the server block, stop the pool, drop the page cache."""
        names = self.names(ctx)
        nginx = self.stack.nginx
        if nginx.site_file(names.key).exists():
            nginx.remove_site(names.key)
        pool = self.stack.phpfpm.pool_file(names.system_user)
        if pool.exists():
            pool.unlink()
            self.stack.phpfpm.reload()
        shutil.rmtree(nginx.cache_dir / names.key, ignore_errors=True)
        for log_file in self.log_files(ctx):  # nginx no longer writes them (reloaded above)
            log_file.unlink(missing_ok=True)
        ctx.resources.pop("runtime", None)

    def stop(self, ctx: SiteContext) -> None:
        """Answer 503 instead of serving; nothing is deleted."""
        self._write_vhost(ctx, stopped=True)
        ctx.resources.setdefault("runtime", {})["stopped"] = True

    def start(self, ctx: SiteContext) -> None:
        """Serve again after `stop`."""
        self._write_vhost(ctx, stopped=False)
        ctx.resources.setdefault("runtime", {})["stopped"] = False

    def apply_env(self, contexts: list[SiteContext]) -> None:
        """Rewrite each site's pool with its tenant's env, then reload PHP-FPM once."""
        for ctx in contexts:
            self._write_pool(ctx)
        self.stack.phpfpm.reload()
        for ctx in contexts:
            self.purge_page_cache(ctx)  # pages rendered with the old values must not be served
