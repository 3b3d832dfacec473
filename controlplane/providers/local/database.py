"""database step: one MariaDB database and user per site, the user granted only its database."""

from __future__ import annotations

from controlplane.engine.provider import SiteContext
from controlplane.providers.local.base import LocalStep


class DatabaseStep(LocalStep):
    """CREATE DATABASE / USER / GRANT on the local MariaDB (the Cloud SQL stand-in)."""

    def ensure(self, ctx: SiteContext) -> None:
        """Create the database and its user (idempotent; the password comes from the vault)."""
        names = self.names(ctx)
        user, password = ctx.credentials.get_or_create("database", names.db_user)
        self.stack.ensure_running()
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE IF NOT EXISTS `{names.db_name}` "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            cur.execute(
                "CREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY %s", (user, password)
            )
            # One site must not take the shared server's connections (the control plane's too).
            cur.execute(
                f"ALTER USER %s@'127.0.0.1' IDENTIFIED BY %s "
                f"WITH MAX_USER_CONNECTIONS {int(self.settings.site_db_max_connections)}",
                (user, password),
            )
            # In a GRANT, "_" in a database name is a wildcard: escape it.
            grant_name = names.db_name.replace("_", "\\_")
            cur.execute(f"GRANT ALL PRIVILEGES ON `{grant_name}`.* TO %s@'127.0.0.1'", (user,))
        ctx.resources["database"] = {
            "name": names.db_name,
            "user": user,
            "host": "127.0.0.1",
            "port": self.stack.mariadb.port,
        }

    def remove(self, ctx: SiteContext) -> None:
        """Drop the database, a restore's side schemas (staged, replaced) and the user (no-op
        when gone)."""
        names = self.names(ctx)
        self.stack.ensure_running()
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            for schema in (names.db_name, names.restore_db, names.previous_db):
                cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")
            cur.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (names.db_user,))
        ctx.resources.pop("database", None)


class SecretsStep(LocalStep):
    """secrets step: the site's generated secrets (DB password, WordPress salts) in the vault.

    Locally the encrypted vault is the secret store; in production this step writes
    Secret Manager secrets.
    """

    def ensure(self, ctx: SiteContext) -> None:
        """Generate the salts' seed once."""
        ctx.credentials.get_or_create("wp_salts", "wordpress")
        ctx.resources["secrets"] = {
            "store": "controlplane-vault",
            "kinds": ["database", "wp_salts"],
        }

    def remove(self, ctx: SiteContext) -> None:
        """The vault rows go with the site record; nothing lives elsewhere."""
        ctx.resources.pop("secrets", None)
