"""A site's MariaDB database and its user: the same statements on the local server and on
Cloud SQL, where only the user's host differs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from pymysql.cursors import Cursor


@runtime_checkable
class ConnectionCapped(Protocol):
    """A database step that can bring existing site users to the connection limit."""

    def cap_connections(self, users: Sequence[str]) -> list[str]:
        """Set the limit on those of `users` that hold another; the ones changed."""
        ...


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


def cap_site_users(
    cur: Cursor, *, users: Sequence[str], host: str, max_connections: int
) -> list[str]:
    """`MAX_USER_CONNECTIONS` on each existing `user`@`host` of `users` whose limit differs
    (users made before the limit, or before it changed); the users changed. One read when
    every user already holds it: this runs at every control-plane start."""
    wanted = set(users)
    cur.execute(
        "SELECT User FROM mysql.user WHERE Host = %s AND max_user_connections <> %s",
        (host, int(max_connections)),
    )
    changed = sorted(str(user) for (user,) in cur.fetchall() if user in wanted)
    at = f"%s@'{host.replace('%', '%%')}'"
    for user in changed:
        cur.execute(f"ALTER USER {at} WITH MAX_USER_CONNECTIONS {int(max_connections)}", (user,))
    return changed


def drop_site_database(cur: Cursor, *, schemas: Iterable[str], user: str, host: str) -> None:
    """Drop the site's schemas and its user (no-op for what is gone)."""
    for schema in schemas:
        cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")
    cur.execute(f"DROP USER IF EXISTS %s@'{host.replace('%', '%%')}'", (user,))
