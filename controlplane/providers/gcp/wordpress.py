"""wordpress step: the runtime step's install job installed WordPress before the service
existed; this step is done when the service answers its probe and its homepage serves the
site (title and WordPress's generator tag), as the local provider's is. It also sets
`blog_public` as the site's role wants (a staging site asks search engines not to index it),
in SQL over the admin connection: it runs again after a restore, clone or promotion swapped
another copy's options in."""

from __future__ import annotations

import time

import httpx

from controlplane.engine.provider import SiteContext
from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.database import quote
from controlplane.providers.gcp.runtime import PROBE_PATH, probe_headers
from controlplane.providers.readiness import generator_version, get_page, homepage_problem

READY_TIMEOUT = 300.0


# The option that says the platform, not the owner, turned search engines away (staging).
HIDDEN_MARK = "aipress_hidden_by_platform"


class WordPressReady(GcpStep):
    """Waits for `<service uri>/aipress-probe`, then for the homepage to be the site's."""

    def __init__(self, settings: object, clients: object, http: httpx.Client | None = None) -> None:
        super().__init__(settings, clients)  # type: ignore[arg-type]
        self.http = http or httpx.Client(timeout=10, follow_redirects=False)
        self.ready_timeout = READY_TIMEOUT

    def set_public(self, ctx: SiteContext) -> None:
        """`blog_public` '0' for a staging site, marked as the platform's doing; back to '1'
        on a public site only where that mark is (options promoted from staging), so an
        owner's own "discourage search engines" stays. In every options table of the site's
        database (WordPress's `<prefix>options`)."""
        database = (ctx.resources.get("database") or {}).get("name") or self.names(ctx).db_name
        with self.clients.sql_connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = "
                        "%s AND column_name = 'option_name' AND table_name LIKE %s",
                        (database, "%options"))  # fmt: skip
            for (name,) in list(cur.fetchall()):
                table = f"{quote(database)}.{quote(str(name))}"
                if not ctx.public:
                    cur.execute(f"UPDATE {table} SET option_value = '0' "
                                "WHERE option_name = 'blog_public'")  # fmt: skip
                    cur.execute(f"INSERT INTO {table} (option_name, option_value) "
                                f"VALUES ('{HIDDEN_MARK}', '1') "
                                "ON DUPLICATE KEY UPDATE option_value = '1'")  # fmt: skip
                    continue
                cur.execute(f"DELETE FROM {table} WHERE option_name = '{HIDDEN_MARK}'")
                if cur.rowcount:
                    cur.execute(f"UPDATE {table} SET option_value = '1' "
                                "WHERE option_name = 'blog_public'")  # fmt: skip
            conn.commit()

    def ensure(self, ctx: SiteContext) -> None:
        """Set `blog_public`, then poll with backoff until the probe and the homepage answer,
        or fail saying what the site does instead."""
        self.set_public(ctx)
        uri = (ctx.resources.get("runtime") or {}).get("uri")
        if not uri:
            raise ApplyFailed("the runtime step recorded no service URL")
        base = uri.rstrip("/")
        headers = probe_headers(ctx)  # a restore checks the site while visitors get a 503
        deadline = time.monotonic() + self.ready_timeout
        delay, last, healthy = 0.5, "no answer", False
        while time.monotonic() < deadline:
            try:
                if not healthy:
                    response = self.http.get(f"{base}{PROBE_PATH}", headers=headers)
                    healthy = response.status_code == 200
                    last = "" if healthy else f"{PROBE_PATH} answers HTTP {response.status_code}"
                if healthy:
                    home = get_page(self.http, f"{base}/", headers=headers)
                    problem = homepage_problem(home.status_code, home.text, ctx.title)
                    if problem is None:  # so the body was read
                        ctx.resources["wordpress"] = {
                            "installed": True,
                            "version": generator_version(home.text or ""),
                        }
                        return
                    last = problem
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(delay)
            delay = min(delay * 2, 10)
        if last.endswith("empty page"):
            last += ": no theme is installed (the tenant image activates WORDPRESS_THEME)"
        raise ApplyFailed(
            f"the site at {uri} is not serving after {self.ready_timeout:.0f} s: {last}"
        )

    def remove(self, ctx: SiteContext) -> None:
        """WordPress lives in the database and bucket: their steps remove it."""
        ctx.resources.pop("wordpress", None)
