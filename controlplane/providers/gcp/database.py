"""database step: a database and a user per site inside the shared Cloud SQL instance.

Made in SQL over cloud-sql-python-connector as the instance's built-in admin user, never
with the Admin API's `users.insert`, which would make the user a member of
`cloudsqlsuperuser`: the user is granted its own database only.

The platform's own identities log in with IAM database authentication. Cloud SQL makes an
IAM database user with no privilege at all, so the admin user grants them theirs
(`grant_platform_users`) before the control plane migrates its database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pymysql

from controlplane.engine.provider import SiteContext
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.site_database import (
    cap_site_users,
    create_site_database,
    drop_site_database,
)
from controlplane.settings import Settings

DATABASE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
JOB_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"  # the jobs write rows, never the schema
# InnoDB's persistent statistics: every table's size in pages and nothing of its rows. The
# billing job apportions the instance's cost by them, seeing no tenant's data.
TABLE_STATS = "`mysql`.`innodb_table_stats`"
# A restore's side schemas beside the site's database: staged, and the one it replaced.
RESTORE_SUFFIX, PREVIOUS_SUFFIX = "__restore", "__previous"


def quote(name: str) -> str:
    """A MySQL identifier, quoted (a hostile plugin may name a table anything)."""
    return "`" + name.replace("`", "``") + "`"


def mysql_iam_user(email: str) -> str:
    """The MySQL user name of an IAM service account: Cloud SQL for MySQL's users.insert
    takes the full e-mail, and the account logs in as the e-mail up to the @ (PostgreSQL's
    form, the e-mail without `.gserviceaccount.com`, is not MySQL's)."""
    return email.split("@", 1)[0]


def password_connect(settings: Settings) -> Callable[[str, str], Any]:
    """Connections to the shared instance as a database user that logs in with a password
    (the built-in admin, an import's one-off user), through cloud-sql-python-connector."""
    connectors: list[Any] = []

    def connect(user: str, password: str) -> Any:
        from google.cloud.sql.connector import Connector, IPTypes, RefreshStrategy

        if not settings.cloudsql_instance:
            raise ValueError("tenant databases need AIPRESS_CLOUDSQL_INSTANCE")
        if not connectors:
            connectors.append(Connector(refresh_strategy=RefreshStrategy.LAZY))
        return connectors[0].connect(
            settings.cloudsql_instance, "pymysql", user=user, password=password,
            enable_iam_auth=False, ip_type=IPTypes.PUBLIC,
        )  # fmt: skip

    return connect


def admin_connect(settings: Settings) -> Callable[[], Any]:
    """Connections to the shared instance as the built-in admin user (password auth). Only
    the control plane and the backups job (it dumps tenant databases) hold the password: a
    process without it fails when it connects."""
    connect_as = password_connect(settings)

    def connect() -> Any:
        password = settings.cloudsql_admin_password
        if not settings.cloudsql_instance or password is None:
            raise ValueError("tenant databases need AIPRESS_CLOUDSQL_INSTANCE and "
                             "AIPRESS_CLOUDSQL_ADMIN_PASSWORD (the control plane's)")  # fmt: skip
        return connect_as(settings.cloudsql_admin_user, password.get_secret_value())

    return connect


def own_connect(settings: Settings) -> Callable[[], Any]:
    """Connections to the platform's database as this process's own IAM database user (the
    control plane's or a job's), through cloud-sql-python-connector."""
    connectors: list[Any] = []

    def connect() -> Any:
        from google.cloud.sql.connector import Connector, RefreshStrategy

        if not connectors:
            connectors.append(Connector(refresh_strategy=RefreshStrategy.LAZY))
        return connectors[0].connect(
            settings.cloudsql_instance or "", "pymysql", user=settings.cloudsql_user,
            password=settings.cloudsql_password, db=settings.cloudsql_database,
            enable_iam_auth=settings.cloudsql_iam_auth,
        )  # fmt: skip

    return connect


def grant_platform_users(
    connect: Callable[[], Any], database: str, owner: str, jobs: tuple[str, ...] = ()
) -> None:
    """Create the control plane's database and grant it to the control plane's IAM user
    (everything, for migrations) and to the jobs' IAM users (rows only, and the table
    statistics billing reads sizes from). Idempotent."""
    if not DATABASE_NAME.fullmatch(database):
        raise ValueError(f"{database!r} is not a database name (letters, digits, _)")
    with connect() as conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE DATABASE IF NOT EXISTS `{database}` "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        grant_name = database.replace("_", "\\_")
        grants = [(f"{privileges} ON `{grant_name}`.*", user) for user, privileges in
                  ((owner, "ALL PRIVILEGES"), *((j, JOB_PRIVILEGES) for j in jobs))]  # fmt: skip
        grants += [(f"SELECT ON {TABLE_STATS}", job) for job in jobs]
        for what, user in grants:
            try:
                cur.execute(f"GRANT {what} TO %s@'%%'", (user,))
            except pymysql.err.MySQLError as exc:
                if exc.args and exc.args[0] in (1133, 1410):  # no such user
                    raise ValueError(
                        f"Cloud SQL has no database user {user!r}: terraform's google_sql_user "
                        "(type CLOUD_IAM_SERVICE_ACCOUNT) makes it"
                    ) from exc
                raise
        conn.commit()


def prepare_platform_database(settings: Settings) -> None:
    """In gcp mode, before migrating: grant the IAM database users theirs (only the control
    plane holds the admin password; the jobs find their grants made)."""
    if settings.provider != "gcp" or settings.cloudsql_admin_password is None:
        return
    if not settings.cloudsql_user:
        raise ValueError("gcp mode needs AIPRESS_CLOUDSQL_USER (the control plane's IAM user)")
    grant_platform_users(admin_connect(settings), settings.cloudsql_database,
                         settings.cloudsql_user, settings.cloudsql_job_users)  # fmt: skip


class CloudSqlDatabase(GcpStep):
    """CREATE DATABASE / USER / GRANT on the shared instance."""

    def ensure(self, ctx: SiteContext) -> None:
        """Create the database and its user (idempotent; the password comes from the vault)."""
        names = self.names(ctx)
        user, password = ctx.credentials.get_or_create("database", names.db_user)
        with self.clients.sql_connect() as conn, conn.cursor() as cur:
            # '%': Cloud Run reaches the instance through the Cloud SQL proxy socket.
            create_site_database(
                cur,
                database=names.db_name,
                user=user,
                password=password,
                host="%",
                max_connections=self.settings.site_db_max_connections,
            )
            conn.commit()
        ctx.resources["database"] = {
            "name": names.db_name,
            "user": user,
            "instance": self.settings.cloudsql_instance,
        }

    def cap_connections(self, users: Sequence[str]) -> list[str]:
        """Bring existing site users to AIPRESS_SITE_DB_MAX_CONNECTIONS; the ones changed."""
        with self.clients.sql_connect() as conn, conn.cursor() as cur:
            limit = self.settings.site_db_max_connections
            changed = cap_site_users(cur, users=users, host="%", max_connections=limit)
            conn.commit()
        return changed

    def remove(self, ctx: SiteContext) -> None:
        """Drop the database, a restore's side schemas and the user (no-op when gone)."""
        names = self.names(ctx)
        database = ctx.resources.get("database") or {}
        name = database.get("name", names.db_name)
        with self.clients.sql_connect() as conn, conn.cursor() as cur:
            schemas = (name, name + RESTORE_SUFFIX, name + PREVIOUS_SUFFIX)
            user = database.get("user", names.db_user)
            drop_site_database(cur, schemas=schemas, user=user, host="%")
            conn.commit()
        ctx.resources.pop("database", None)
