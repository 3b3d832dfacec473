"""database step: one MariaDB database and user per site, the user granted only its database."""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.engine.provider import SiteContext
from controlplane.providers.local.base import LocalStep
from controlplane.providers.site_database import (
    cap_site_users,
    create_site_database,
    drop_site_database,
)

# The sites reach the server over loopback.
HOST = "127.0.0.1"


class DatabaseStep(LocalStep):
    """CREATE DATABASE / USER / GRANT on the local MariaDB (the Cloud SQL stand-in)."""

    def ensure(self, ctx: SiteContext) -> None:
        """Create the database and its user (idempotent; the password comes from the vault)."""
        names = self.names(ctx)
        user, password = ctx.credentials.get_or_create("database", names.db_user)
        self.stack.ensure_running()
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            create_site_database(
                cur,
                database=names.db_name,
                user=user,
                password=password,
                host=HOST,
                max_connections=self.settings.site_db_max_connections,
            )
        ctx.resources["database"] = {
            "name": names.db_name,
            "user": user,
            "host": HOST,
            "port": self.stack.mariadb.port,
        }

    def cap_connections(self, users: Sequence[str]) -> list[str]:
        """Bring existing site users to AIPRESS_SITE_DB_MAX_CONNECTIONS; the ones changed."""
        self.stack.ensure_running()
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            limit = self.settings.site_db_max_connections
            return cap_site_users(cur, users=users, host=HOST, max_connections=limit)

    def remove(self, ctx: SiteContext) -> None:
        """Drop the database, a restore's side schemas (staged, replaced) and the user (no-op
        when gone)."""
        names = self.names(ctx)
        self.stack.ensure_running()
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            schemas = (names.db_name, names.restore_db, names.previous_db)
            drop_site_database(cur, schemas=schemas, user=names.db_user, host=HOST)
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
