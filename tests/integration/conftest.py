"""Integration fixtures: a private MariaDB server for the whole run."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.stack.mariadb import MariaDB


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
    name = "cp_" + secrets.token_hex(4)
    password = secrets.token_urlsafe(16)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cur.execute(f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT ALL ON `{name}`.* TO '{name}'@'127.0.0.1'")
    yield f"mysql+pymysql://{name}:{password}@127.0.0.1:{mariadb.port}/{name}?charset=utf8mb4"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"DROP USER IF EXISTS '{name}'@'127.0.0.1'")
