"""Live servers for tests: a real uvicorn server in a thread, and a fresh local stack's home."""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from controlplane.settings import Settings
from controlplane.stack.local import LocalStack
from tests.conftest import LOG_FILE, remove_after_scan

T = TypeVar("T")


def in_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a fresh event loop in its own thread (the test's thread
    may already run one: Playwright's sync API leaves its loop there)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@contextmanager
def serve(app: Any, port: int = 0, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve an ASGI app on a loopback port (a free one by default); yield its base URL (https
    with `tls`, a (certificate, key) pair)."""
    with serve_many((app, tls), ports=(port,)) as (url,):
        yield url


@contextmanager
def serve_many(
    *apps: Any | tuple[Any, tuple[Path, Path] | None], ports: tuple[int, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Serve several ASGI apps (each an app, or (app, tls) as `serve` takes them) on loopback
    ports; yield their base URLs in order. They start and stop side by side: uvicorn notices a
    stop only on its 0.1 s tick and then waits 0.1 s more, which one after another adds up."""
    running: list[tuple[uvicorn.Server, threading.Thread, socket.socket, str]] = []
    try:
        for index, spec in enumerate(apps):
            app, tls = spec if isinstance(spec, tuple) else (spec, None)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", ports[index] if index < len(ports) else 0))
            certificate, key = (str(tls[0]), str(tls[1])) if tls else (None, None)
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    log_level="warning",
                    access_log=False,
                    ws="websockets-sansio",
                    ssl_certfile=certificate,
                    ssl_keyfile=key,
                    # A client that keeps an idle connection open must not hold a stop: over
                    # TLS the server would wait for its close_notify (asyncio's 30 s).
                    timeout_graceful_shutdown=2,
                )
            )
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            url = f"{'https' if tls else 'http'}://127.0.0.1:{sock.getsockname()[1]}"
            thread.start()
            running.append((server, thread, sock, url))
        deadline = time.monotonic() + 20
        for server, thread, _, _ in running:
            while not server.started:
                if time.monotonic() > deadline or not thread.is_alive():
                    raise RuntimeError("test server did not start")
                time.sleep(0.01)
        yield tuple(url for _, _, _, url in running)
    finally:
        for server, _, _, _ in running:
            server.should_exit = True
        deadline = time.monotonic() + 20
        for _, thread, sock, url in running:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            sock.close()
            if thread.is_alive():  # it keeps serving in the background: say so, not hide it
                warnings.warn(
                    f"test server {url} still running 20 s after its stop: a client holds a "
                    "connection (over TLS the server waits for the client's close_notify); "
                    "close the client before leaving serve()",
                    RuntimeWarning,
                    stacklevel=3,
                )


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick, not a guess in a shared range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def local_stack_home(prefix: str, **overrides: Any) -> Iterator[Settings]:
    """Settings of a fresh local stack (own home, MariaDB and site ports); afterwards its
    servers are stopped and its home removed, whatever the test did."""
    base = Path(tempfile.mkdtemp(prefix=f"aipress-{prefix}-", dir="/tmp"))
    base.chmod(0o755)  # the site users and nginx traverse it
    values: dict[str, Any] = {
        "provider": "local",
        "home": base / "home",
        "mariadb_port": free_port(),
        "site_port": free_port(),
        "log_file": LOG_FILE,
        **overrides,
    }
    settings = Settings(**values)
    try:
        yield settings
    finally:
        LocalStack.from_settings(settings).stop()
        remove_after_scan(base)  # its logs are scanned for secrets first
