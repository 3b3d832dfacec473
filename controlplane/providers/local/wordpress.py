"""wordpress step: wp-config.php (0640, the site's group), the platform's must-use plugins, a
non-interactive install with the default theme, and a readiness probe of the homepage."""

from __future__ import annotations

import grp
import hashlib
import hmac
import json
import os
import time

import httpx

from controlplane.admin_login import login_key
from controlplane.engine.provider import SiteContext
from controlplane.kernel.logs import get_logger
from controlplane.kernel.secret_record import note_secret
from controlplane.providers.local.base import LocalStep
from controlplane.providers.local.mu_plugins import install_mu_plugins
from controlplane.providers.local.runtime import RuntimeStep
from controlplane.providers.local.site_php import site_script, with_input
from controlplane.providers.local.site_template import (
    SiteTemplates,
    Template,
    current_template,
    personalise,
    placeholder_input,
)
from controlplane.providers.readiness import get_page, homepage_problem
from controlplane.settings import Settings
from controlplane.stack.local import LocalStack
from controlplane.stack.process import StackError, run
from controlplane.stack.templates import render

SALT_NAMES = (
    "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
    "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT",
)  # fmt: skip
log = get_logger("aipress.local.wordpress")
INSTALLER_SOURCE = site_script("wp_install.php")


def salts(seed: str) -> list[tuple[str, str]]:
    """The eight WordPress salts, derived from one stored secret."""
    derived = [
        (n, hmac.new(seed.encode(), n.encode(), hashlib.sha256).hexdigest()) for n in SALT_NAMES
    ]
    for _name, salt in derived:
        note_secret(salt, "wordpress salt")
    return derived


class WordPressStep(LocalStep):
    """Writes wp-config.php, installs WordPress with the requested admin and the default theme,
    and is done only when the homepage serves the site (then the site leaves `building`)."""

    def __init__(self, stack: LocalStack, settings: Settings, runtime: RuntimeStep) -> None:
        super().__init__(stack, settings)
        self.runtime = runtime
        self.templates = SiteTemplates(stack.mariadb, stack.home / "templates")

    def ensure(self, ctx: SiteContext) -> None:
        """Configure and install (or, if installed, re-sync the admin password)."""
        names = self.names(ctx)
        db_user, db_password = ctx.credentials.get_or_create("database", names.db_user)
        _, seed = ctx.credentials.get_or_create("wp_salts", "wordpress")
        admin_user = ctx.credentials.get_or_create("wordpress_admin", ctx.admin_user)[0]
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
            default_theme=self.settings.default_theme,
            # The site's own names are not "external"; the allow-list is the operator's.
            accessible_hosts=[*ctx.domains, *self.settings.site_outbound_allow],
            loopback=f"127.0.0.1:{self.settings.site_port}",
            site_hosts=[names.preview_host, *ctx.domains],
            site_id=ctx.site_id,
            login_key=login_key(ctx.credentials),
        )
        path = names.root / "htdocs" / "wp-config.php"
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        # Never through a link: O_EXCL after the unlink, O_NOFOLLOW, and chown of the fd.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        with os.fdopen(fd, "w") as handle:
            os.fchown(handle.fileno(), 0, grp.getgrnam(names.system_user).gr_gid)
            handle.write(config)
        os.replace(tmp, path)
        install_mu_plugins(names.root / "htdocs" / "wp-content")

        result = self.install(ctx)
        self._probe(ctx, result)
        self.runtime.serve_built(ctx)
        self.purge_page_cache(ctx)  # the cache starts empty at ready
        self._warm(names.preview_host)
        ctx.resources["wordpress"] = {
            "url": url,
            "admin": admin_user,
            "version": str(result.get("version") or ""),
            "theme": result.get("theme"),
            "template": str(result.get("template") or ""),
        }

    def install(self, ctx: SiteContext) -> dict[str, object]:
        """WordPress in the site's database: copied from the current template and
        personalised; the first site of a template installs it in its own database, which is
        captured, then personalised; the plain install when templates are off or another
        create is building the template. The installer's result."""
        admin_user, admin_password = ctx.credentials.get_or_create(
            "wordpress_admin", ctx.admin_user
        )
        payload: dict[str, object] = {
            "url": self.preview_url(ctx).rstrip("/"),
            "title": ctx.title,
            "admin_user": admin_user,
            "admin_email": ctx.admin_email,
            "admin_password": admin_password,
            "theme": self.settings.default_theme,
            "public": ctx.public,
        }
        database = self.names(ctx).db_name
        if not self.settings.site_templates:
            return self._run_installer(ctx, payload)
        template = current_template(self.settings)
        if self.templates.installed(database):
            if self.templates.pending(database):  # a copy cut short before it was this site's
                return self._personalise(ctx, template, payload)
            return self._run_installer(ctx, payload)
        if not template.inputs["theme_files"]:
            return self._run_installer(ctx, payload)  # no theme: the probe says so; no template
        if not self.templates.ready(template):
            with self.templates.building(template) as mine:
                if not mine:
                    return self._run_installer(ctx, payload)
                if not self.templates.ready(template):
                    self._run_installer(ctx, {**payload, **placeholder_input(template)})
                    self.templates.capture(template, database)
                    return self._personalise(ctx, template, payload)
        self.templates.copy_into(template, database)
        return self._personalise(ctx, template, payload)

    def _personalise(
        self, ctx: SiteContext, template: Template, payload: dict[str, object]
    ) -> dict[str, object]:
        """The copy in the site's database made the site's; the result the installer gives."""
        personalise(
            self.stack.mariadb, self.names(ctx).db_name, url=str(payload["url"]),
            title=ctx.title, admin_user=str(payload["admin_user"]), admin_email=ctx.admin_email,
            admin_password=str(payload["admin_password"]), public=ctx.public,
        )  # fmt: skip
        return {"installed": True, "already": False, "template": template.key,
                "theme": self.settings.default_theme, "theme_exists": True,
                "version": template.inputs["wordpress"]}  # fmt: skip

    def _run_installer(self, ctx: SiteContext, payload: dict[str, object]) -> dict[str, object]:
        """wp_install.php as the site's user with its pool's limits; its JSON result."""
        names = self.names(ctx)
        # The script and its input travel on stdin: nothing is written where the site's user
        # could swap in a link, and the password never appears in argv.
        script = with_input(INSTALLER_SOURCE, json.dumps(payload))
        output = run(
            ["runuser", "-u", names.system_user, "--", "php", *self.site_php_flags(ctx),
             "-d", "memory_limit=256M", "-d", "max_execution_time=300",
             "--", str(names.root / "htdocs")],
            what="WordPress install",
            input_text=script,
        )  # fmt: skip
        try:
            result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise StackError(f"WordPress install printed no result: {output[-500:]}") from exc
        if not result.get("installed"):
            raise StackError(f"WordPress install did not finish: {result}")
        return result

    def _probe(self, ctx: SiteContext, result: dict[str, object]) -> None:
        """Ready means serving: the homepage answers 200 with the site's title and WordPress's
        generator tag within `site_ready_timeout`, or the step fails saying what is wrong."""
        host, port = self.names(ctx).preview_host, self.settings.site_port
        headers = {"Host": f"{host}:{port}", **self.probe_headers(ctx)}
        deadline = time.monotonic() + self.settings.site_ready_timeout
        problem = "nginx did not answer"
        with httpx.Client(timeout=10, follow_redirects=False) as client:
            while True:
                try:
                    response = get_page(client, f"http://127.0.0.1:{port}/", headers=headers)
                    problem = homepage_problem(response.status_code, response.text, ctx.title) or ""
                except httpx.HTTPError as exc:
                    problem = f"nginx did not answer ({type(exc).__name__})"
                if not problem:
                    return
                if problem.endswith("empty page") and not result.get("theme_exists"):
                    break  # no theme: waiting changes nothing
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        if problem.endswith("empty page") and not result.get("theme_exists"):
            themes = self.settings.wordpress_core / "wp-content" / "themes"
            problem += (
                f": no theme is installed (the default theme {self.settings.default_theme!r} "
                f"is not in {themes}; install its package or set AIPRESS_DEFAULT_THEME)"
            )
        elif problem.startswith("the homepage answers HTTP 5"):
            problem += " (a PHP error: see the site's logs)"
        raise StackError(f"the site is not serving after the install: {problem}")

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
