"""runtime step: a PHP-FPM pool per site and an nginx server block checked with `nginx -t`."""

from __future__ import annotations

import base64
import grp
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

from controlplane.engine.provider import BASIC_AUTH, SiteContext, SiteStep
from controlplane.kernel.names import ENV_NAME
from controlplane.providers.local.base import LocalStep
from controlplane.providers.site_database import ConnectionCapped
from controlplane.stack.process import StackError, wait_for_path
from controlplane.stack.templates import render


def htpasswd_line(username: str, password: str, salt: bytes | None = None) -> str:
    """One htpasswd line nginx reads: the password as salted SHA-1 (`{SSHA}`; the password
    is random and long, the file readable by nginx only)."""
    salt = salt if salt is not None else secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 (nginx's {SSHA})
    return f"{username}:{{SSHA}}{base64.b64encode(digest + salt).decode()}\n"


def htpasswd_matches(line: str, username: str, password: str) -> bool:
    """Whether an htpasswd line is this login's (its salt reused to check the digest)."""
    name, _, hashed = line.strip().partition(":")
    if name != username or not hashed.startswith("{SSHA}"):
        return False
    try:
        salt = base64.b64decode(hashed.removeprefix("{SSHA}"))[20:]
    except ValueError:
        return False
    return htpasswd_line(username, password, salt).strip() == line.strip()


def ini_quote(value: str) -> str:
    """A double-quoted php-fpm ini value: backslash, quote and `$` (which expands) escaped."""
    if any(c in value for c in "\r\n\x00"):
        raise StackError("an env value must be a single line without NUL characters")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def ini_key(name: str) -> str:
    """A double-quoted `env[...]` key: unquoted, PHP's INI parser reads NULL/TRUE/FALSE/...
    as keywords and constant names as their values (`env[E_ALL]` is `env[32767]`, `env[NULL]`
    an empty key that fails the whole config); quoted, it keeps the name as written."""
    if not ENV_NAME.fullmatch(name):
        raise StackError(f"env var name {name!r} cannot be written to a pool file")
    return f'"{name}"'


def pool_env(env: dict[str, str]) -> list[tuple[str, str]]:
    """The tenant's env as (quoted name, quoted value) pool lines."""
    return [(ini_key(name), ini_quote(value)) for name, value in sorted(env.items())]


class RuntimeStep(LocalStep):
    """Serves the site: pool (own user, socket, open_basedir) + server block (+ page cache)."""

    def _pool(self, ctx: SiteContext) -> tuple[Path, str]:
        """The site's pool file and its content."""
        names = self.names(ctx)
        phpfpm = self.stack.phpfpm
        content = render(
            "pool.conf.j2",
            site=ctx.site_name,
            tenant=ctx.tenant_id,
            pool=names.system_user,
            user=names.system_user,
            socket=phpfpm.socket(names.system_user),
            slowlog=phpfpm.slowlog(names.system_user),
            root=names.root,
            env=pool_env(ctx.tenant_env),
            max_children=self.settings.php_max_children,
            memory_limit=self.settings.php_memory_limit,
            upload_limit=self.settings.upload_limit,
        )
        return phpfpm.pool_file(names.system_user), content

    def _write_vhost(self, ctx: SiteContext, stopped: bool, building: bool = False) -> None:
        self._prepare_logs(ctx)
        content = self._render_vhost(
            ctx, stopped=stopped, building=building, maintenance=self.in_maintenance(ctx)
        )
        path = self.stack.nginx.site_file(self.names(ctx).key)
        if path.exists() and path.read_text() == content:
            return  # unchanged: no reload
        self.stack.nginx.install_site(self.names(ctx).key, content)

    def _prepare_logs(self, ctx: SiteContext) -> None:
        """The site's group reads its own logs, no one else (root only until the site's user
        exists: a site is announced as being built before its storage step)."""
        try:
            site_group = grp.getgrnam(self.names(ctx).system_user).gr_gid
        except KeyError:
            site_group = 0
        for log_file in self.log_files(ctx):
            self.stack.nginx.prepare_log(log_file, group=site_group)

    def log_files(self, ctx: SiteContext) -> tuple[Path, Path]:
        """The site's nginx access and error logs."""
        key, log_dir = self.names(ctx).key, self.stack.nginx.log_dir
        return log_dir / f"{key}.access.json", log_dir / f"{key}.error.log"

    def _render_vhost(
        self, ctx: SiteContext, stopped: bool, building: bool, maintenance: bool = False
    ) -> str:
        names = self.names(ctx)
        nginx = self.stack.nginx
        access_log, error_log = self.log_files(ctx)
        zone = "c_" + re.sub(r"[^a-z0-9_]", "_", names.key)
        auth_file = self._basic_auth_file(ctx)
        return nginx.render_site(
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
            building=building,
            maintenance=maintenance and not building,
            probe_token=self.probe_token(ctx) if building or maintenance or auth_file else "",
            auth_file=auth_file or "",
        )

    def _basic_auth_file(self, ctx: SiteContext) -> Path | None:
        """The site's htpasswd file when its vault holds a basic-auth login (a staging site
        kept from visitors), written 0640 root:www-data (nginx's workers read it, the sites'
        users do not); None, and any old file removed, when it has none."""
        auth_dir = self.stack.nginx.base / "auth"
        path = auth_dir / f"{self.names(ctx).key}.htpasswd"
        login = ctx.credentials.get(BASIC_AUTH)
        if login is None:
            path.unlink(missing_ok=True)
            return None
        www = grp.getgrnam("www-data").gr_gid
        auth_dir.mkdir(mode=0o710, parents=True, exist_ok=True)
        os.chown(auth_dir, 0, www)
        auth_dir.chmod(0o710)
        if not (path.exists() and htpasswd_matches(path.read_text(), *login)):
            line = htpasswd_line(*login)
            tmp = path.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
            with os.fdopen(fd, "w") as handle:
                os.fchown(handle.fileno(), 0, www)
                handle.write(line)
            os.replace(tmp, path)
        return path

    @staticmethod
    def in_maintenance(ctx: SiteContext) -> bool:
        """Whether the site answers visitors with the maintenance page (a restore runs)."""
        return bool((ctx.resources.get("runtime") or {}).get("maintenance", False))

    def maintenance(self, ctx: SiteContext, on: bool) -> None:
        """Answer visitors 503 (Retry-After, never cached) while a restore runs; the
        platform's probe (its per-site header) still reaches PHP. Idempotent."""
        runtime = ctx.resources.setdefault("runtime", {})
        runtime["maintenance"] = on
        self._write_vhost(
            ctx, stopped=bool(runtime.get("stopped", False)), building=self.building(ctx)
        )
        self.purge_page_cache(ctx)  # no page from before (or during) the restore is served

    def building(self, ctx: SiteContext) -> bool:
        """Whether the site is still being built (its readiness probe has not passed)."""
        runtime = ctx.resources.get("runtime") or {}
        return bool(runtime.get("building", "wordpress" not in ctx.resources))

    def announce(self, ctx: SiteContext) -> None:
        """Put the site's names up in `building` mode (503, never cached) before the rest of
        the create, so nothing of a half-built site is ever shown or cached."""
        nginx = self.stack.nginx
        path = nginx.site_file(self.names(ctx).key)
        if path.exists():
            return
        if nginx.pid() is None:
            # nginx is not up yet: it starts with this block (`nginx -t` first), so the names
            # never answer with the default server's 404 in between.
            with nginx.locked():
                nginx.write_master()
                self._prepare_logs(ctx)
                path.write_text(self._render_vhost(ctx, stopped=False, building=True))
        self.stack.ensure_running()
        self._write_vhost(ctx, stopped=False, building=True)

    def withdraw(self, ctx: SiteContext) -> None:
        """Take down what `announce` put up (no-op when gone), with its logs and page cache
        (nginx makes the cache directory when it loads the `building` block)."""
        self.stack.nginx.remove_site(self.names(ctx).key)
        shutil.rmtree(self.stack.nginx.cache_dir / self.names(ctx).key, ignore_errors=True)
        for log_file in self.log_files(ctx):
            log_file.unlink(missing_ok=True)

    def serve_built(self, ctx: SiteContext) -> None:
        """The probe passed: the serving server block replaces the building one."""
        runtime = ctx.resources.setdefault("runtime", {})
        self._write_vhost(ctx, stopped=bool(runtime.get("stopped", False)))
        runtime["building"] = False

    def ensure(self, ctx: SiteContext) -> None:
        """Write and load the pool, then enable the server block."""
        names = self.names(ctx)
        self.stack.ensure_running()
        self.stack.phpfpm.apply(dict([self._pool(ctx)]))
        if not wait_for_path(self.stack.phpfpm.socket(names.system_user), 10):
            raise StackError(f"pool {names.system_user} did not open its socket")
        stopped = bool(ctx.resources.get("runtime", {}).get("stopped", False))
        building = self.building(ctx)
        self._write_vhost(ctx, stopped=stopped, building=building)
        ctx.resources["runtime"] = {
            "pool": names.system_user,
            "vhost": names.key,
            "stopped": stopped,
            "building": building,
            "maintenance": self.in_maintenance(ctx),
        }

    def remove(self, ctx: SiteContext) -> None:
        """Disable the server block, stop the pool, drop the page cache."""
        names = self.names(ctx)
        nginx = self.stack.nginx
        nginx.remove_site(names.key)
        # Removed under the lock that covers `php-fpm -t`: a test that globbed the pool
        # directory must never find the file gone when it opens it.
        self.stack.phpfpm.apply({self.stack.phpfpm.pool_file(names.system_user): None})
        shutil.rmtree(nginx.cache_dir / names.key, ignore_errors=True)
        for log_file in self.log_files(ctx):  # nginx no longer writes them (reloaded above)
            log_file.unlink(missing_ok=True)
        self.stack.phpfpm.slowlog(names.system_user).unlink(missing_ok=True)
        (nginx.base / "auth" / f"{names.key}.htpasswd").unlink(missing_ok=True)
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
        self.stack.phpfpm.apply(dict(self._pool(ctx) for ctx in contexts))
        for ctx in contexts:
            self.purge_page_cache(ctx)  # pages rendered with the old values must not be served


class AnnouncedStep:
    """The first create step, which first puts the site's names up in `building` mode (so a
    visitor sees 503 from the POST on, never a 404, an empty page or a half-installed one)
    and on undo also takes them down."""

    def __init__(self, inner: SiteStep, runtime: RuntimeStep) -> None:
        self.inner = inner
        self.runtime = runtime

    def ensure(self, ctx: SiteContext) -> None:
        """Announce the site as being built, then run the step."""
        if self.runtime.building(ctx):
            self.runtime.announce(ctx)
        self.inner.ensure(ctx)

    def cap_connections(self, users: Sequence[str]) -> list[str]:
        """The wrapped database step's connection cap (none for another step)."""
        if not isinstance(self.inner, ConnectionCapped):
            return []
        return self.inner.cap_connections(users)

    def remove(self, ctx: SiteContext) -> None:
        """Undo the step, then take the building server block down."""
        self.inner.remove(ctx)
        if "runtime" not in ctx.resources:
            self.runtime.withdraw(ctx)
