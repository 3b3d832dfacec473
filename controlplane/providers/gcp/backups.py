"""Backups before delete: a logical dump of the site's database (over the same admin
connection, no mysqldump binary needed) and a copy of its uploads, in the backups bucket."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from typing import Any

from controlplane.engine.provider import SiteContext
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.naming import labels


def _literal(conn: Any, value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex() if value else "''"
    return str(conn.escape(value))


def dump_database(conn: Any, database: str) -> bytes:
    """CREATE TABLE and INSERT statements of every table, gzipped."""
    out = io.StringIO()
    out.write("SET NAMES utf8mb4;\nSET FOREIGN_KEY_CHECKS=0;\n")
    with conn.cursor() as cur:
        cur.execute(f"SHOW FULL TABLES FROM `{database}` WHERE Table_type = 'BASE TABLE'")
        tables = [row[0] for row in cur.fetchall()]
        for table in tables:
            cur.execute(f"SHOW CREATE TABLE `{database}`.`{table}`")
            out.write(f"DROP TABLE IF EXISTS `{table}`;\n{cur.fetchone()[1]};\n")
            cur.execute(f"SELECT * FROM `{database}`.`{table}`")
            for row in cur.fetchall():
                values = ", ".join(_literal(conn, v) for v in row)
                out.write(f"INSERT INTO `{table}` VALUES ({values});\n")
    out.write("SET FOREIGN_KEY_CHECKS=1;\n")
    return gzip.compress(out.getvalue().encode())


class GcsBackups(GcpStep):
    """Writes backups to `AIPRESS_BACKUPS_BUCKET` under <tenant>/<site>/<time>-<label>/."""

    def backup(self, ctx: SiteContext, label: str) -> str:
        """Dump and copy; return the gs:// prefix of the backup."""
        if not self.settings.backups_bucket:
            raise ValueError("the gcp provider needs AIPRESS_BACKUPS_BUCKET for backups")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        prefix = f"{ctx.tenant_id}/{ctx.site_name}/{stamp}-{label}"
        storage = self.clients.storage
        target = storage.bucket(self.settings.backups_bucket)
        database = (ctx.resources.get("database") or {}).get("name")
        if database:
            with self.clients.sql_connect() as conn:
                blob = target.blob(f"{prefix}/database.sql.gz")
                blob.metadata = labels(ctx)
                blob.upload_from_string(
                    dump_database(conn, database), content_type="application/gzip"
                )
        bucket = (ctx.resources.get("storage") or {}).get("bucket")
        if bucket:
            source = storage.bucket(bucket)
            for item in storage.list_blobs(bucket):
                source.copy_blob(item, target, f"{prefix}/uploads/{item.name}")
        return f"gs://{self.settings.backups_bucket}/{prefix}/"
