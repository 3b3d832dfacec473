"""database step: a database and a user per site inside the shared Cloud SQL instance.

Made in SQL over cloud-sql-python-connector, never with the Admin API's `users.insert`,
which would make the user a member of `cloudsqlsuperuser`: the user is granted its own
database only.
"""

from __future__ import annotations

from controlplane.engine.provider import SiteContext
from controlplane.providers.gcp.base import GcpStep


class CloudSqlDatabase(GcpStep):
    """CREATE DATABASE / USER / GRANT on the shared instance."""

    def ensure(self, ctx: SiteContext) -> None:
        """Create the database and its user (idempotent; the password comes from the vault)."""
        names = self.names(ctx)
        user, password = ctx.credentials.get_or_create("database", names.db_user)
        with self.clients.sql_connect() as conn, conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE IF NOT EXISTS `{names.db_name}` "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            # '%': Cloud Run reaches the instance through the Cloud SQL proxy socket.
            cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
            cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, password))
            grant_name = names.db_name.replace("_", "\\_")
            cur.execute(f"GRANT ALL PRIVILEGES ON `{grant_name}`.* TO %s@'%%'", (user,))
            conn.commit()
        ctx.resources["database"] = {
            "name": names.db_name,
            "user": user,
            "instance": self.settings.cloudsql_instance,
        }

    def remove(self, ctx: SiteContext) -> None:
        """Drop the database and its user (no-op when gone)."""
        names = self.names(ctx)
        database = ctx.resources.get("database") or {}
        with self.clients.sql_connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database.get('name', names.db_name)}`")
            cur.execute("DROP USER IF EXISTS %s@'%%'", (database.get("user", names.db_user),))
            conn.commit()
        ctx.resources.pop("database", None)
