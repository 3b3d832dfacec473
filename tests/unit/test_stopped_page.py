"""The stopped page the load balancer shows for a stopped site's names (gcp)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from controlplane.stopped_page import make_server


@pytest.fixture
def page() -> Iterator[str]:
    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_every_path_and_method_gets_the_uncached_stopped_page(page: str) -> None:
    for method, path in (("GET", "/"), ("GET", "/wp-admin/?x=1"), ("POST", "/wp-login.php"),
                         ("GET", "/wp-content/uploads/2026/11/cake.jpg"), ("DELETE", "/x"),
                         ("OPTIONS", "/"), ("PROPFIND", "/dav/"), ("TRACE", "/")):  # fmt: skip
        response = requests.request(method, page + path, data=b"log=a&pwd=b", timeout=5)
        assert response.status_code == 503  # temporary: crawlers keep the site's pages
        assert response.headers["Cache-Control"] == "no-store"  # Cloud CDN keeps no copy
        assert response.headers["Retry-After"] == "3600"
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "<h1>This site is stopped</h1>" in response.text
    head = requests.head(page + "/", timeout=5)
    assert head.status_code == 503 and head.content == b""
