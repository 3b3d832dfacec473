"""wordpress step: the tenant image installs WordPress on its first start (from env and
secret env); this step waits until the service answers its health check."""

from __future__ import annotations

import time

import httpx

from controlplane.engine.provider import SiteContext
from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.base import GcpStep

READY_TIMEOUT = 300.0


class WordPressReady(GcpStep):
    """Waits for `<service uri>/healthz` to answer 200."""

    def __init__(self, settings: object, clients: object, http: httpx.Client | None = None) -> None:
        super().__init__(settings, clients)  # type: ignore[arg-type]
        self.http = http or httpx.Client(timeout=10, follow_redirects=False)

    def ensure(self, ctx: SiteContext) -> None:
        """Poll the health endpoint with backoff until it answers or the time runs out."""
        uri = (ctx.resources.get("runtime") or {}).get("uri")
        if not uri:
            raise ApplyFailed("the runtime step recorded no service URL")
        deadline = time.monotonic() + READY_TIMEOUT
        delay, last = 0.5, "no answer"
        while time.monotonic() < deadline:
            try:
                response = self.http.get(f"{uri.rstrip('/')}/healthz")
                if response.status_code == 200:
                    ctx.resources["wordpress"] = {"installed": True}
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(delay)
            delay = min(delay * 2, 10)
        raise ApplyFailed(
            f"WordPress did not become healthy at {uri} within {READY_TIMEOUT:.0f} s ({last})"
        )

    def remove(self, ctx: SiteContext) -> None:
        """WordPress lives in the database and bucket: their steps remove it."""
        ctx.resources.pop("wordpress", None)
