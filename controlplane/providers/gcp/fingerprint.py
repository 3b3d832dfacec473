"""A gcp site's content at one moment (what staging's drift compares against): per table of
its Cloud SQL database the exact row count and CHECKSUM TABLE, per object of its uploads
bucket the hash GCS keeps of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from controlplane.engine.provider import Fingerprint, TablePrint
from controlplane.providers.gcp.database import quote
from controlplane.providers.gcp.storage import RESERVED


def table_prints(connect: Callable[[], Any], database: str) -> dict[str, TablePrint]:
    """Row count and checksum of every base table of `database`, over the admin connection."""
    prints: dict[str, TablePrint] = {}
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_type = 'BASE TABLE' ORDER BY table_name", (database,))  # fmt: skip
        for (table,) in list(cur.fetchall()):
            name = f"{quote(database)}.{quote(str(table))}"
            cur.execute(f"SELECT COUNT(*) FROM {name}")
            rows = int(cur.fetchone()[0])
            cur.execute(f"CHECKSUM TABLE {name}")
            checksum = cur.fetchone()[1]
            prints[str(table)] = TablePrint(rows=rows, checksum=int(checksum or 0))
        conn.rollback()
    return prints


def object_hash(blob: Any) -> str:
    """The content hash GCS lists for an object: its MD5, or its CRC32C when it has no MD5
    (a composite object), each prefixed by its kind."""
    if blob.md5_hash:
        return f"md5:{blob.md5_hash}"
    return f"crc32c:{blob.crc32c}"


def file_prints(blobs: Iterable[Any]) -> dict[str, str]:
    """Object name -> content hash of the site's uploads (not the platform's objects)."""
    return {b.name: object_hash(b) for b in blobs if not b.name.startswith(RESERVED)}


def fingerprint(connect: Callable[[], Any], database: str, blobs: Iterable[Any]) -> Fingerprint:
    """The site's tables and uploads as they are now."""
    return Fingerprint(tables=table_prints(connect, database), files=file_prints(blobs))
