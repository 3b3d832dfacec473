"""Integration fixtures: a private MariaDB server for the whole run."""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.stack.mariadb import MariaDB
from tests.integration.scratch_database import scratch_database


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """A real MariaDB server in a temporary directory (installed by `make test`)."""
    if shutil.which("mariadbd") is None and not Path("/usr/sbin/mariadbd").exists():
        pytest.fail("mariadbd is not installed: run `make test`, which installs mariadb-server")
    base = Path(tempfile.mkdtemp(prefix="aipress-test-mariadb-", dir="/tmp"))
    base.chmod(0o755)
    server = MariaDB(base / "mariadb", port=3390 + secrets.randbelow(200))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def mariadb_url(mariadb: MariaDB) -> Iterator[str]:
    """A fresh database and a user granted only that database; dropped afterwards."""
    with scratch_database(mariadb, "cp") as (name, password):
        yield f"mysql+pymysql://{name}:{password}@127.0.0.1:{mariadb.port}/{name}?charset=utf8mb4"


@pytest.fixture(scope="module")
def gcs() -> Iterator[str]:
    """A GCS emulator (gcp-storage-emulator, in memory) for the module; yields its URL."""
    from gcp_storage_emulator.server import create_server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True)
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
