"""Cron: a site's due events run by a request to its Cloud Run service's /wp-cron.php.

The tenant image serves PHP with mod_php, so wp-cron.php answers only after the events ran
(no `fastcgi_finish_request`), and Cloud Run keeps the CPU for the request's whole life.
The service's own run.app URL is used, not a custom domain behind someone else's proxy.
"""

from __future__ import annotations

from typing import Any

import httpx

from controlplane.cron import CronResult
from controlplane.engine.provider import SiteContext


class HttpCron:
    """GETs `<service uri>/wp-cron.php` and records the answer."""

    def __init__(self, settings: Any, http: httpx.Client | None = None) -> None:
        self.http = http or httpx.Client(
            timeout=settings.cron_timeout_seconds, follow_redirects=False
        )

    def run_due(self, ctx: SiteContext) -> CronResult:
        """One request; a non-200 answer is a failed run."""
        uri = (ctx.resources.get("runtime") or {}).get("uri")
        if not uri:
            return CronResult(ok=False, detail="the site has no Cloud Run service URL")
        try:
            response = self.http.get(
                f"{uri.rstrip('/')}/wp-cron.php", headers={"User-Agent": "AIPress-Cron/1"}
            )
        except httpx.HTTPError as exc:
            return CronResult(ok=False, detail=f"wp-cron.php unreachable: {type(exc).__name__}")
        if response.status_code != 200:
            return CronResult(ok=False, detail=f"wp-cron.php answered HTTP {response.status_code}")
        return CronResult(ok=True, detail="wp-cron.php answered 200")
