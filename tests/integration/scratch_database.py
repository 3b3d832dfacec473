"""A database of its own on the test MariaDB server, with a user granted only it."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from controlplane.stack.mariadb import MariaDB


@contextmanager
def scratch_database(server: MariaDB, prefix: str) -> Iterator[tuple[str, str]]:
    """Create database and user `<prefix>_<hex>` (the same name) on `server`; yield
    (name, password); drop both afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cur.execute(f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT ALL ON `{name}`.* TO '{name}'@'127.0.0.1'")
    try:
        yield name, password
    finally:
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"DROP USER IF EXISTS '{name}'@'127.0.0.1'")


def dumped_and_dropped(server: MariaDB, name: str) -> bytes:
    """The mariadb-dump of database `name` on `server` (as root); the database is dropped
    whether or not the dump worked."""
    try:
        done = subprocess.run(
            ["mariadb-dump", f"--socket={server.socket}", "--user=root",
             "--single-transaction", "--", name],
            capture_output=True, check=True,
        )  # fmt: skip
    finally:
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS `" + name.replace("`", "``") + "`")
    return done.stdout
