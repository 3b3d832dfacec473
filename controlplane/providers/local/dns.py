"""dns step: `<site>.<tenant>.localhost` needs no records (RFC 6761 sends it to loopback);
the step proves every name of the site is answered by its own server block."""

from __future__ import annotations

import time

import httpx

from controlplane.engine.provider import SiteContext
from controlplane.providers.local.base import LocalStep
from controlplane.stack.process import StackError

DEFAULT_SERVER_MARK = "No AIPress site answers to this name."
PROBE_PATH = "/wp-includes/images/blank.gif"


class DnsStep(LocalStep):
    """Preview name and custom domains, served by the site's nginx server block."""

    def ensure(self, ctx: SiteContext, timeout: float = 15) -> None:
        """Wait until nginx routes each name to the site (the reload is asynchronous)."""
        names = [self.names(ctx).preview_host, *ctx.domains]
        # A static file: served by the site's server block without waking PHP.
        address = f"http://127.0.0.1:{self.settings.site_port}{PROBE_PATH}"
        deadline = time.monotonic() + timeout
        pending = list(names)
        probe = self.probe_headers(ctx)  # the site may still be in `building` mode
        with httpx.Client(timeout=5, follow_redirects=False) as client:
            while pending and time.monotonic() < deadline:
                host = pending[0]
                try:
                    response = client.get(address, headers={"Host": host, **probe})
                    if response.status_code == 200 and DEFAULT_SERVER_MARK not in response.text:
                        pending.pop(0)
                        continue
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        if pending:
            raise StackError(f"nginx does not answer for {', '.join(pending)} after {timeout} s")
        ctx.resources["dns"] = {"names": names, "preview_url": self.preview_url(ctx)}

    def remove(self, ctx: SiteContext) -> None:
        """Nothing to delete: the names go with the server block."""
        ctx.resources.pop("dns", None)
