"""The stopped page: what a stopped site's names show at the load balancer (gcp).

One shared Cloud Run service of the platform image runs `python -m controlplane.stopped_page`
(terraform/frontdoor.tf). Every path and method gets the same page with 503 and
`Retry-After` (crawlers keep the site's pages: the stop is temporary) and `no-store`, so
Cloud CDN keeps no copy and a started site needs no invalidation. It reads no settings,
secrets or requests' bodies, and imports nothing else of the platform.
"""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = (
    b"<!doctype html><html lang=en><meta charset=utf-8><title>Site stopped</title>"
    b"<h1>This site is stopped</h1><p>Its owner has taken it offline for now.</p></html>"
)
RETRY_AFTER = "3600"


class StoppedPage(BaseHTTPRequestHandler):
    """503 with the stopped page, for any path and method."""

    server_version = "aipress"
    sys_version = ""

    def _answer(self, body: bool) -> None:
        self.send_response(503)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Retry-After", RETRY_AFTER)
        self.end_headers()
        if body:
            self.wfile.write(PAGE)

    def do_GET(self) -> None:
        """The page."""
        self._answer(body=True)

    def do_HEAD(self) -> None:
        """The page's headers."""
        self._answer(body=False)

    def __getattr__(self, name: str) -> object:
        # The server looks up `do_<METHOD>` for whatever method a client sends (PROPFIND,
        # TRACE, ...); a missing one would answer 501 instead of the page.
        if name.startswith("do_"):
            return self.do_GET
        raise AttributeError(name)

    def log_message(self, format: str, *args: object) -> None:
        """No access log: the load balancer keeps one."""


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    """The stopped page's server, bound (serve_forever runs it)."""
    server = ThreadingHTTPServer((host, port), StoppedPage)
    server.daemon_threads = True
    return server


def main() -> None:
    """Serve on $PORT (Cloud Run sets it)."""
    make_server("0.0.0.0", int(os.environ.get("PORT", "8080"))).serve_forever()  # noqa: S104


if __name__ == "__main__":
    main()
