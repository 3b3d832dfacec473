"""A site's MariaDB database and its user: the same statements on the local server and on
Cloud SQL, where only the user's host differs."""

from __future__ import annotations

from collections.abc import Iterable

from pymysql.cursors import Cursor


def create_site_database(
    cur: Cursor, *, database: str, user: str, password: str, host: str, max_connections: int
) -> None:
    """Create the database and `user`@`host`, granted only it (idempotent; the password and
    the connection limit are set again)."""
    at = f"%s@'{host.replace('%', '%%')}'"  # a literal % in a statement with parameters
    cur.execute(
        f"CREATE DATABASE IF NOT EXISTS `{database}` "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    cur.execute(f"CREATE USER IF NOT EXISTS {at} IDENTIFIED BY %s", (user, password))
    # One site must not take the shared server's connections (the control plane's too).
    cur.execute(
        f"ALTER USER {at} IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS {int(max_connections)}",
        (user, password),
    )
    # In a GRANT, "_" in a database name is a wildcard: escape it.
    grant_name = database.replace("_", "\\_")
    cur.execute(f"GRANT ALL PRIVILEGES ON `{grant_name}`.* TO {at}", (user,))


def drop_site_database(cur: Cursor, *, schemas: Iterable[str], user: str, host: str) -> None:
    """Drop the site's schemas and its user (no-op for what is gone)."""
    for schema in schemas:
        cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")
    cur.execute(f"DROP USER IF EXISTS %s@'{host.replace('%', '%%')}'", (user,))
