"""wordpress step: wp-config.php (0640, the site's group) and a non-interactive install."""

from __future__ import annotations

import grp
import hashlib
import hmac
import json
import os
from pathlib import Path

import httpx

from controlplane.engine.provider import SiteContext
from controlplane.logs import get_logger
from controlplane.providers.local.base import LocalStep
from controlplane.stack.process import StackError, run
from controlplane.stack.templates import php_string, render

SALT_NAMES = (
    "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
    "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT",
)  # fmt: skip
log = get_logger("aipress.local.wordpress")
INSTALLER_SOURCE = (Path(__file__).parent / "wp_install.php").read_text()


def salts(seed: str) -> list[tuple[str, str]]:
    """The eight WordPress salts, derived from one stored secret."""
    return [
        (n, hmac.new(seed.encode(), n.encode(), hashlib.sha256).hexdigest()) for n in SALT_NAMES
    ]


class WordPressStep(LocalStep):
    """Writes wp-config.php and installs WordPress with the requested admin."""

    def ensure(self, ctx: SiteContext) -> None:
        """Configure and install (or, if installed, re-sync the admin password)."""
        names = self.names(ctx)
        db_user, db_password = ctx.credentials.get_or_create("database", names.db_user)
        _, seed = ctx.credentials.get_or_create("wp_salts", "wordpress")
        admin_user, admin_password = ctx.credentials.get_or_create(
            "wordpress_admin", ctx.admin_user
        )
        url = self.preview_url(ctx).rstrip("/")
        config = render(
            "wp-config.php.j2",
            site=ctx.site_name,
            tenant=ctx.tenant_id,
            db_name=names.db_name,
            db_user=db_user,
            db_password=db_password,
            db_host=f"127.0.0.1:{self.stack.mariadb.port}",
            salts=salts(seed),
            home_url=url,
        )
        path = names.root / "htdocs" / "wp-config.php"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w") as handle:
            handle.write(config)
        os.chown(tmp, 0, grp.getgrnam(names.system_user).gr_gid)
        os.replace(tmp, path)

        payload = json.dumps(
            {
                "url": url,
                "title": ctx.title,
                "admin_user": admin_user,
                "admin_email": ctx.admin_email,
                "admin_password": admin_password,
            }
        )
        # The script and its input travel on stdin: nothing is written where the site's user
        # could swap in a link, and the password never appears in argv.
        script = INSTALLER_SOURCE.replace("__AIPRESS_INPUT__", php_string(payload), 1)
        output = run(
            ["runuser", "-u", names.system_user, "--", "php",
             "-d", f"open_basedir={names.root}/", "-d", "memory_limit=256M",
             "--", str(names.root / "htdocs")],
            what="WordPress install",
            input_text=script,
        )  # fmt: skip
        try:
            result = json.loads(output.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise StackError(f"WordPress install printed no result: {output[-500:]}") from exc
        if not result.get("installed"):
            raise StackError(f"WordPress install did not finish: {result}")
        self.purge_page_cache(ctx)  # drop anything cached before the install finished
        self._warm(names.preview_host)
        ctx.resources["wordpress"] = {"url": url, "admin": admin_user, "version": "debian"}

    def _warm(self, host: str) -> None:
        """Fetch the homepage once so the owner's first visit hits warm caches."""
        port = self.settings.site_port
        try:
            httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": f"{host}:{port}"}, timeout=30)
        except httpx.HTTPError as exc:
            log.warning("wordpress.warm_failed", error=type(exc).__name__)

    def remove(self, ctx: SiteContext) -> None:
        """WordPress lives in the database and the site files; their steps remove it."""
        ctx.resources.pop("wordpress", None)
