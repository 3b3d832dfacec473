"""Backups before delete: a logical dump of the site's database (over the same admin
connection, no mysqldump binary needed) and a copy of its uploads, in the backups bucket.

The dump streams: rows come from an unbuffered server-side cursor a batch at a time and go
through gzip straight into a resumable upload, so a large table never sits in the control
plane's memory (1 GiB on Cloud Run)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import IO, Any

import pymysql.cursors

from controlplane.engine.provider import SiteContext
from controlplane.kernel import clock
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.naming import labels


def _literal(conn: Any, value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex() if value else "''"
    return str(conn.escape(value))


BATCH_ROWS = 500


def dump_statements(conn: Any, database: str) -> Iterator[str]:
    """CREATE TABLE and INSERT statements of every table, one at a time."""
    yield "SET NAMES utf8mb4;\nSET FOREIGN_KEY_CHECKS=0;\n"
    with conn.cursor() as cur:
        cur.execute(f"SHOW FULL TABLES FROM `{database}` WHERE Table_type = 'BASE TABLE'")
        tables = [row[0] for row in cur.fetchall()]
    for table in tables:
        with conn.cursor() as cur:
            cur.execute(f"SHOW CREATE TABLE `{database}`.`{table}`")
            yield f"DROP TABLE IF EXISTS `{table}`;\n{cur.fetchone()[1]};\n"
        # Unbuffered: the server sends rows as they are read, not the whole table at once.
        with conn.cursor(pymysql.cursors.SSCursor) as rows:
            rows.execute(f"SELECT * FROM `{database}`.`{table}`")
            while batch := rows.fetchmany(BATCH_ROWS):
                yield "".join(
                    f"INSERT INTO `{table}` VALUES ({', '.join(_literal(conn, v) for v in row)});\n"
                    for row in batch
                )
    yield "SET FOREIGN_KEY_CHECKS=1;\n"


def dump_database(conn: Any, database: str, out: IO[bytes]) -> None:
    """Write the gzipped dump of `database` to `out` as it is read."""
    with gzip.GzipFile(fileobj=out, mode="wb") as packed:
        for statement in dump_statements(conn, database):
            packed.write(statement.encode())


class GcsBackups(GcpStep):
    """Writes backups to `AIPRESS_BACKUPS_BUCKET` under <tenant>/<site>/<time>-<label>/."""

    def backup(self, ctx: SiteContext, label: str) -> str:
        """Dump and copy; return the gs:// prefix of the backup."""
        if not self.settings.backups_bucket:
            raise ValueError("the gcp provider needs AIPRESS_BACKUPS_BUCKET for backups")
        stamp = clock.now().strftime("%Y%m%dT%H%M%S%fZ")
        prefix = f"{ctx.tenant_id}/{ctx.site_name}/{stamp}-{label}"
        storage = self.clients.storage
        target = storage.bucket(self.settings.backups_bucket)
        database = (ctx.resources.get("database") or {}).get("name")
        if database:
            blob = target.blob(f"{prefix}/database.sql.gz")
            blob.metadata = labels(ctx)
            with (
                self.clients.sql_connect() as conn,
                blob.open("wb", content_type="application/gzip", ignore_flush=True) as out,
            ):
                dump_database(conn, database, out)
        bucket = (ctx.resources.get("storage") or {}).get("bucket")
        if bucket:
            source = storage.bucket(bucket)
            for item in storage.list_blobs(bucket):
                source.copy_blob(item, target, f"{prefix}/uploads/{item.name}")
        return f"gs://{self.settings.backups_bucket}/{prefix}/"
