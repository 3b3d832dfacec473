"""Integration fixtures: a private MariaDB server for the whole run."""

from __future__ import annotations

import secrets
import shutil
import tempfile
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
