"""Backups on gcp: the control plane's own streamed logical dump of the site's database over
the Cloud SQL connector and a server-side copy of each upload, in the backups bucket, each
object encrypted with a customer-supplied key (CSEK) of the tenant's own.

Layout, one prefix per backup id: `gs://<backups bucket>/<tenant>/<site>/<backup id>/`
holding `database.sql.gz`, `files/<upload name>` and, written last, `manifest.json` (sizes,
sha256 and crc32c of every part). A backup whose manifest exists is finished: a repeated
call returns it. The tenant's key is HKDF-SHA256 of `ctx.backup_password`, so one tenant's
objects cannot be read (or copied) with another's key; Google keeps only its hash.

Why not Cloud SQL's export/import: the Admin API runs one export or import at a time per
instance and every tenant shares the instance, so one site's restore would wait behind every
other's scheduled export; Cloud SQL writes the export with the bucket's key (no CSEK, so no
per-tenant encryption) and imports only into the database the file names. The dump streams
(an unbuffered server-side cursor, rows in batches, gzip into a resumable upload), so no
table is ever whole in the control plane's memory (1 GiB on Cloud Run).

Restore: `stage` streams the dump back into the side database `<db>__restore` and copies the
files into `.aipress-restore/` in the site's bucket; `swap` moves the live tables to
`<db>__previous` and the restored ones live in one `RENAME TABLE`, then moves objects.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import google_crc32c
import pymysql.cursors
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from google.api_core import exceptions

from controlplane.engine.provider import BackupInvalid, BackupRecord, ImportSource, SiteContext
from controlplane.kernel import clock
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.database import PREVIOUS_SUFFIX, RESTORE_SUFFIX
from controlplane.providers.url_rewrite import rewrite_database

MANIFEST = "manifest.json"
DUMP = "database.sql.gz"
FILES = "files/"
# Prefixes in the site's own bucket (the uploads volume): names WordPress never makes (it
# trims leading dots from upload names), and the tenant image's Apache refuses to serve them.
RESERVED = ".aipress-"
STAGED = ".aipress-restore/"
PREVIOUS = ".aipress-previous/"
SWAP_MARKER = ".aipress-swap.json"
BATCH_ROWS = 500
STATEMENT_BYTES = 1 << 20  # one INSERT of many rows, far below max_allowed_packet (64 MiB)
READ_CHUNK = 1 << 20
# InnoDB pages, indexes and free space take more than a dump's text: staging is allowed to
# need twice the SQL's size before the instance's disk is said to be too small.
INNODB_FACTOR = 2
GIB = 1 << 30
HKDF_SALT = b"aipress-gcs-backup-csek-v1"


def backup_key(tenant_id: str, backup_password: str) -> bytes:
    """The tenant's 32-byte AES-256 customer-supplied encryption key."""
    if not backup_password:
        raise ValueError("the tenant's backup key is missing (SiteContext.backup_password)")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=tenant_id.encode())
    return hkdf.derive(backup_password.encode())


def quote(name: str) -> str:
    """A MySQL identifier, quoted (a hostile plugin may name a table anything)."""
    return "`" + name.replace("`", "``") + "`"


def _literal(conn: Any, value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex() if value else "''"
    return str(conn.escape(value))


HEADER = (
    "SET NAMES utf8mb4;\nSET time_zone = '+00:00';\nSET FOREIGN_KEY_CHECKS = 0;\n"
    "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO';\n"
)


def dump_statements(conn: Any, database: str) -> Iterator[str]:
    """CREATE TABLE and multi-row INSERT statements of every table, one at a time, read in
    one consistent snapshot (as `mysqldump --single-transaction` does)."""
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cur.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
            (database,),
        )
        tables = [str(row[0]) for row in cur.fetchall()]
    yield HEADER
    for table in tables:
        with conn.cursor() as cur:
            cur.execute(f"SHOW CREATE TABLE {quote(database)}.{quote(table)}")
            yield f"DROP TABLE IF EXISTS {quote(table)};\n{cur.fetchone()[1]};\n"
        # Unbuffered: the server sends rows as they are read, not the whole table at once.
        with conn.cursor(pymysql.cursors.SSCursor) as rows:
            rows.execute(f"SELECT * FROM {quote(database)}.{quote(table)}")
            head, values, size = f"INSERT INTO {quote(table)} VALUES ", [], 0
            while batch := rows.fetchmany(BATCH_ROWS):
                for row in batch:
                    value = "(" + ",".join(_literal(conn, v) for v in row) + ")"
                    values.append(value)
                    size += len(value)
                    if size >= STATEMENT_BYTES:
                        yield head + ",".join(values) + ";\n"
                        values, size = [], 0
            if values:
                yield head + ",".join(values) + ";\n"
    conn.rollback()
    yield "SET FOREIGN_KEY_CHECKS = 1;\n"


def dump_database(conn: Any, database: str, out: IO[bytes]) -> None:
    """Write the gzipped dump of `database` to `out` as it is read."""
    with gzip.GzipFile(fileobj=out, mode="wb") as packed:
        for statement in dump_statements(conn, database):
            packed.write(statement.encode())


# A statement is whole when every quote it opens is closed (strings escape with a backslash
# or a doubled quote, identifiers with a doubled backtick: both read as two quoted runs).
_WHOLE = re.compile(r"""(?:[^'"`\\]|\\.|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`)*""", re.S)
# The only statements a dump holds (`dump_statements`), each on an unqualified table name.
_ALLOWED = re.compile(
    r"SET (NAMES utf8mb4|time_zone = '\+00:00'|FOREIGN_KEY_CHECKS = [01]|"
    r"SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO');"
    r"|(DROP TABLE IF EXISTS|CREATE TABLE|INSERT INTO) `(?:[^`]|``)+`[\s(;].*",
    re.S,
)


def split_statements(chunks: Iterable[str]) -> Iterator[str]:
    """The statements of a dump read a chunk at a time (each ends with `;` at a line's end,
    outside any quote)."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        start = 0
        while (end := pending.find(";\n", start)) >= 0:
            candidate = pending[: end + 1]
            if _WHOLE.fullmatch(candidate):
                yield candidate.strip()
                pending = pending[end + 2 :]
                start = 0
            else:
                start = end + 2
    if pending.strip():
        raise BackupInvalid("the database dump ends inside a statement (truncated)")


class _Hashing:
    """A write-only file that hashes and counts what passes through it to `out`."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.sha256, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


class Crc32c:
    """GCS's object checksum (base64 of the big-endian CRC32C), computed a chunk at a time."""

    def __init__(self) -> None:
        self._sum = google_crc32c.Checksum()  # type: ignore[no-untyped-call]

    def update(self, chunk: bytes) -> None:
        """Add a chunk."""
        self._sum.update(chunk)  # type: ignore[no-untyped-call]

    def b64(self) -> str:
        """As GCS writes it in `crc32c`."""
        return base64.b64encode(self._sum.digest()).decode()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Where:
    """A backup's bucket and prefix (ends with /)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, location: str) -> Where:
        """From `gs://<bucket>/<prefix>/`."""
        found = re.fullmatch(r"gs://([^/]+)/(.+/)", location)
        if not found:
            raise BackupInvalid(f"{location!r} is not a gs://bucket/prefix/ backup location")
        return cls(found[1], found[2])

    @property
    def location(self) -> str:
        """gs://<bucket>/<prefix>/"""
        return f"gs://{self.bucket}/{self.prefix}"


class GcsBackups(GcpStep):
    """Every BackupStep method against Cloud SQL (over the connector) and GCS."""

    # -- objects ------------------------------------------------------------------------
    def _bucket(self, name: str) -> Any:
        return self.clients.storage.bucket(name)

    def _blob(self, bucket: str, name: str, key: bytes | None = None) -> Any:
        return self._bucket(bucket).blob(name, encryption_key=key, chunk_size=8 * READ_CHUNK)

    def _read(self, blob: Any) -> Iterator[bytes]:
        """The object's bytes, a chunk at a time (never whole in memory)."""
        try:
            with blob.open("rb", chunk_size=READ_CHUNK) as reader:
                while chunk := reader.read(READ_CHUNK):
                    yield chunk
        except exceptions.NotFound as exc:
            raise BackupInvalid(f"gs://{blob.bucket.name}/{blob.name} is missing") from exc
        except exceptions.BadRequest as exc:  # CSEK: no key or another key
            raise BackupInvalid(
                f"gs://{blob.bucket.name}/{blob.name} cannot be read with this tenant's key"
            ) from exc

    def _names(self, bucket: str, prefix: str = "") -> list[Any]:
        return list(self.clients.storage.list_blobs(bucket, prefix=prefix or None))

    def _rewrite(self, source: Any, target: Any) -> Any:
        """Server-side copy (re-encrypted with the target's key), in as many calls as GCS
        asks for; returns the target with its metadata."""
        token, _done, _total = target.rewrite(source)
        while token is not None:
            token, _done, _total = target.rewrite(source, token=token)
        return target

    def _move(self, bucket: str, source: str, target: str) -> None:
        """Copy then delete: each half idempotent, so a re-run finishes a crashed move."""
        src = self._blob(bucket, source)
        try:
            self._rewrite(src, self._blob(bucket, target))
        except exceptions.NotFound:
            return  # moved by an earlier run
        with contextlib.suppress(exceptions.NotFound):
            src.delete()

    def _where(self, ctx: SiteContext, backup_id: str) -> Where:
        if not self.settings.backups_bucket:
            raise ValueError("the gcp provider needs AIPRESS_BACKUPS_BUCKET for backups")
        if not re.fullmatch(r"[0-9a-f]{32}", backup_id):
            raise ValueError(f"{backup_id!r} is not a backup id (32 hex digits)")
        prefix = f"{ctx.tenant_id}/{ctx.site_name}/{backup_id}/"
        return Where(self.settings.backups_bucket, prefix)

    def _site_bucket(self, ctx: SiteContext) -> str:
        return str((ctx.resources.get("storage") or {}).get("bucket") or self.names(ctx).bucket)

    def _database(self, ctx: SiteContext) -> str:
        return str((ctx.resources.get("database") or {}).get("name") or self.names(ctx).db_name)

    def _manifest(self, where: Where, key: bytes) -> dict[str, Any] | None:
        blob = self._blob(where.bucket, where.prefix + MANIFEST, key)
        try:
            raw = blob.download_as_bytes()
        except exceptions.NotFound:
            return None
        except exceptions.BadRequest as exc:
            raise BackupInvalid(f"{where.location} cannot be read with this tenant's key") from exc
        manifest: dict[str, Any] = json.loads(raw)
        manifest["_sha256"] = hashlib.sha256(raw).hexdigest()
        return manifest

    @staticmethod
    def _files_digest(files: list[dict[str, Any]]) -> str:
        listing = "".join(f"{f['name']}\0{f['size']}\0{f['sha256']}\n" for f in files)
        return hashlib.sha256(listing.encode()).hexdigest()

    def _record(self, where: Where, manifest: dict[str, Any]) -> BackupRecord:
        files = manifest["files"]
        size = int(manifest["database"]["size"] if manifest["database"] else 0)
        size += sum(int(f["size"]) for f in files)
        checksums = {"files": self._files_digest(files), "manifest": manifest["_sha256"]}
        if manifest["database"]:
            checksums["database"] = manifest["database"]["sha256"]
        return BackupRecord(location=where.location, size_bytes=size, added_bytes=size,
                            checksums=checksums)  # fmt: skip

    # -- backup -------------------------------------------------------------------------
    def backup(self, ctx: SiteContext, backup_id: str) -> BackupRecord:
        """Dump the database, copy each upload, verify both, then write the manifest; a
        backup whose manifest exists is returned as it is."""
        where = self._where(ctx, backup_id)
        key = backup_key(ctx.tenant_id, ctx.backup_password)
        found = self._manifest(where, key)
        if found is not None:
            return self._record(where, found)
        database = (ctx.resources.get("database") or {}).get("name")
        dumped = self._dump(where, key, str(database)) if database else None
        bucket = (ctx.resources.get("storage") or {}).get("bucket")
        files = self._copy_files(str(bucket), where, key) if bucket else []
        manifest = {
            "format": 1, "backup_id": backup_id, "tenant": ctx.tenant_id,
            "site": ctx.site_name, "site_id": ctx.site_id,
            "created_at": clock.now().isoformat(), "database": dumped, "files": files,
        }  # fmt: skip
        raw = json.dumps(manifest, indent=1, sort_keys=True).encode()
        blob = self._blob(where.bucket, where.prefix + MANIFEST, key)
        blob.upload_from_string(raw, content_type="application/json")
        return self._record(where, {**manifest, "_sha256": hashlib.sha256(raw).hexdigest()})

    def _dump(self, where: Where, key: bytes, database: str) -> dict[str, Any]:
        """Stream the dump into the bucket, then read it back and compare its sha256."""
        blob = self._blob(where.bucket, where.prefix + DUMP, key)
        sql = hashlib.sha256()
        sql_bytes = 0

        class Counting(gzip.GzipFile):
            def write(self, data: Any) -> int:
                nonlocal sql_bytes
                sql.update(data)
                sql_bytes += len(data)
                return super().write(data)

        with (
            self.clients.sql_connect() as conn,
            blob.open("wb", content_type="application/gzip", ignore_flush=True) as out,
        ):
            hashing = _Hashing(out)
            with Counting(fileobj=hashing, mode="wb") as packed:
                for statement in dump_statements(conn, database):
                    packed.write(statement.encode())
        written = hashing.sha256.hexdigest()
        read = hashlib.sha256()
        for chunk in self._read(self._blob(where.bucket, where.prefix + DUMP, key)):
            read.update(chunk)
        if read.hexdigest() != written:
            raise BackupInvalid(f"{where.location}{DUMP} reads back different from what was sent")
        return {"object": DUMP, "size": hashing.size, "sha256": written,
                "sql_bytes": sql_bytes, "sql_sha256": sql.hexdigest()}  # fmt: skip

    def _copy_files(self, bucket: str, where: Where, key: bytes) -> list[dict[str, Any]]:
        """Copy each upload server-side under the tenant's key, then read the copy back:
        its crc32c must be the source's (as listed) and its own, and its sha256 is kept."""
        files = []
        for item in self._names(bucket):
            if item.name.startswith(RESERVED):
                continue
            target = self._blob(where.bucket, f"{where.prefix}{FILES}{item.name}", key)
            try:  # the generation listed: its crc32c is the one the copy must have
                self._rewrite(self._bucket(bucket).blob(item.name, generation=item.generation),
                              target)  # fmt: skip
            except exceptions.NotFound:
                item = self._bucket(bucket).get_blob(item.name)  # replaced since listed?
                if item is None:
                    continue  # deleted since it was listed: not in this backup
                self._rewrite(self._bucket(bucket).blob(item.name, generation=item.generation),
                              target)  # fmt: skip
            sha256, crc = hashlib.sha256(), Crc32c()
            for chunk in self._read(target):
                sha256.update(chunk)
                crc.update(chunk)
            read_crc = crc.b64()
            if not (target.crc32c == item.crc32c == read_crc):
                raise BackupInvalid(f"the copy of {item.name} differs from the upload")
            files.append({"name": item.name, "size": int(target.size), "crc32c": read_crc,
                          "sha256": sha256.hexdigest()})  # fmt: skip
        return files

    # -- verify, space ------------------------------------------------------------------
    def _checked_manifest(self, ctx: SiteContext, record: BackupRecord) -> tuple[Where, Any]:
        where = Where.parse(record.location)
        key = backup_key(ctx.tenant_id, ctx.backup_password)
        manifest = self._manifest(where, key)
        if manifest is None:
            raise BackupInvalid(f"{where.location} has no manifest: the backup is missing")
        expected = record.checksums.get("manifest")
        if expected and manifest["_sha256"] != expected:
            raise BackupInvalid(f"{where.location}{MANIFEST} differs from the one recorded")
        if self._files_digest(manifest["files"]) != record.checksums.get("files"):
            raise BackupInvalid(f"{where.location}: the file list differs from the one recorded")
        if (manifest["database"] or {}).get("sha256") != record.checksums.get("database"):
            raise BackupInvalid(f"{where.location}: the dump's checksum differs from the record")
        return where, manifest

    def verify(self, ctx: SiteContext, record: BackupRecord) -> None:
        """Read every object back with the tenant's key and compare its sha256 with the
        manifest's (and the manifest with the record's checksums)."""
        where, manifest = self._checked_manifest(ctx, record)
        key = backup_key(ctx.tenant_id, ctx.backup_password)
        parts = [(DUMP, manifest["database"]["sha256"])] if manifest["database"] else []
        parts += [(FILES + f["name"], f["sha256"]) for f in manifest["files"]]
        for name, expected in parts:
            digest = hashlib.sha256()
            for chunk in self._read(self._blob(where.bucket, where.prefix + name, key)):
                digest.update(chunk)
            if digest.hexdigest() != expected:
                raise BackupInvalid(f"{where.location}{name} is corrupted (sha256 differs)")

    def _instance(self) -> dict[str, Any]:
        connection = self.settings.cloudsql_instance or ""
        parts = connection.split(":")
        if len(parts) != 3:
            raise ValueError("AIPRESS_CLOUDSQL_INSTANCE must be project:region:instance")
        url = f"{self.clients.sqladmin_url}/v1/projects/{parts[0]}/instances/{parts[2]}"
        response = self.clients.rest.get(url, timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def _used_bytes(self) -> int:
        with self.clients.sql_connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT SUM(data_length + index_length + data_free) "
                        "FROM information_schema.tables")  # fmt: skip
            return int(cur.fetchone()[0] or 0)

    def check_space(self, ctx: SiteContext, record: BackupRecord) -> None:
        """Refuse when the instance's disk (dataDiskSizeGb, or its auto-resize limit) less
        what its databases use cannot hold the restored copy beside the live one."""
        _where, manifest = self._checked_manifest(ctx, record)
        need = INNODB_FACTOR * int((manifest["database"] or {}).get("sql_bytes", 0))
        if not need:
            return
        settings = self._instance().get("settings", {})
        disk = int(settings.get("dataDiskSizeGb", 0)) * GIB
        if settings.get("storageAutoResize"):
            limit = int(settings.get("storageAutoResizeLimit", 0) or 0)
            if limit == 0:
                return  # Cloud SQL grows the disk as it fills (up to its own maximum)
            disk = limit * GIB
        free = disk - self._used_bytes()
        if need > free:
            raise ValueError(
                f"restoring needs about {need / GIB:.2f} GiB on the Cloud SQL instance and "
                f"{max(free, 0) / GIB:.2f} GiB is free: raise its disk (dataDiskSizeGb) or "
                "its auto-resize limit, or free space first"
            )

    # -- stage, swap --------------------------------------------------------------------
    def _connect(self) -> Any:
        return self.clients.sql_connect()

    def _tables(self, cur: Any, database: str) -> list[str]:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_type = 'BASE TABLE' ORDER BY table_name", (database,))  # fmt: skip
        return [str(row[0]) for row in cur.fetchall()]

    def stage_import(self, ctx: SiteContext, source: ImportSource) -> None:
        """Not built on gcp yet (the upload would go to a bucket, the dump through Cloud SQL
        import): refused before anything changes."""
        raise NotImplementedError("importing a site is not available on the gcp provider yet")

    def stage(self, ctx: SiteContext, record: BackupRecord, rewrite_from: str | None) -> None:
        """Stream the dump into `<db>__restore` (checking its sha256 on the way) and copy the
        files into the bucket's `.aipress-restore/` (checking each crc32c); from scratch."""
        where, manifest = self._checked_manifest(ctx, record)
        key = backup_key(ctx.tenant_id, ctx.backup_password)
        self.unstage(ctx)
        side = self._database(ctx) + RESTORE_SUFFIX
        if manifest["database"]:
            self._import(where, key, manifest["database"], side)
            if rewrite_from:
                new = self.names(ctx).preview_host
                rewrite_database(self._connect, side, rewrite_from.rstrip("/"),
                                 f"https://{new}")  # fmt: skip
        bucket = self._site_bucket(ctx)
        for entry in manifest["files"]:
            source = self._blob(where.bucket, f"{where.prefix}{FILES}{entry['name']}", key)
            target = self._rewrite(source, self._blob(bucket, STAGED + entry["name"]))
            if target.crc32c != entry["crc32c"]:
                raise BackupInvalid(f"the staged copy of {entry['name']} differs from the backup")

    def _import(self, where: Where, key: bytes, dumped: dict[str, Any], side: str) -> None:
        digest = hashlib.sha256()

        def compressed() -> Iterator[bytes]:
            for chunk in self._read(self._blob(where.bucket, where.prefix + DUMP, key)):
                digest.update(chunk)
                yield chunk

        def text() -> Iterator[str]:
            inflate = zlib.decompressobj(wbits=31)
            decode = _Utf8()
            for chunk in compressed():
                yield decode(inflate.decompress(chunk))
            yield decode(inflate.flush(), final=True)

        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {quote(side)} "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")  # fmt: skip
            cur.execute(f"USE {quote(side)}")
            try:
                for statement in split_statements(text()):
                    if not _ALLOWED.fullmatch(statement):
                        raise BackupInvalid(f"the dump holds a statement no dump makes: "
                                            f"{statement[:60]!r}")  # fmt: skip
                    cur.execute(statement)
                conn.commit()
            except BaseException:
                cur.execute(f"DROP DATABASE IF EXISTS {quote(side)}")
                raise
            if digest.hexdigest() != dumped["sha256"]:
                cur.execute(f"DROP DATABASE IF EXISTS {quote(side)}")
                raise BackupInvalid(f"{where.location}{DUMP} is corrupted (sha256 differs)")

    def _no_swap_under_way(self, bucket: str) -> None:
        if self._marker(bucket) is not None:
            raise RuntimeError("a swap of this site is under way: finish it (swap) or undo it "
                               "(unswap) first")  # fmt: skip

    def unstage(self, ctx: SiteContext) -> None:
        """Drop `<db>__restore` and the staged objects (no-op when there are none)."""
        self._no_swap_under_way(self._site_bucket(ctx))
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote(self._database(ctx) + RESTORE_SUFFIX)}")
        bucket = self._site_bucket(ctx)
        for blob in self._names(bucket, STAGED):
            with contextlib.suppress(exceptions.NotFound):
                blob.delete()

    def _marker(self, bucket: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self._blob(bucket, SWAP_MARKER).download_as_bytes()))
        except exceptions.NotFound:
            return None

    def _set_marker(self, bucket: str, op: str, phase: int) -> None:
        marker = json.dumps({"op": op, "phase": phase}).encode()
        self._blob(bucket, SWAP_MARKER).upload_from_string(marker, content_type="application/json")

    def _move_all(self, bucket: str, source_prefix: str, target_prefix: str) -> None:
        """Move every object under `source_prefix` ("" = the live uploads) to `target_prefix`."""
        for blob in self._names(bucket, source_prefix):
            name = blob.name
            if not source_prefix and name.startswith(RESERVED):
                continue
            self._move(bucket, name, target_prefix + name[len(source_prefix) :])

    def _rename(self, live: str, moves: list[tuple[str, str]]) -> None:
        """One RENAME TABLE for every (from database, to database) pair's tables."""
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote(live + PREVIOUS_SUFFIX)} "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")  # fmt: skip
            pairs = [f"{quote(a)}.{quote(t)} TO {quote(b)}.{quote(t)}"
                     for a, b in moves for t in self._tables(cur, a)]  # fmt: skip
            if pairs:
                cur.execute("RENAME TABLE " + ", ".join(pairs))

    def _db_swapped(self, live: str) -> bool:
        with self._connect() as conn, conn.cursor() as cur:
            return bool(self._tables(cur, live + PREVIOUS_SUFFIX)) and not self._tables(
                cur, live + RESTORE_SUFFIX
            )

    def swap(self, ctx: SiteContext) -> None:
        """Make the staged copy live: the tables in one RENAME TABLE (atomic), then the
        objects. Not atomic in GCS: objects are moved one by one (copy, then delete), so a
        crash leaves some uploads moved. A marker object records the phase (1: live uploads
        moving to `.aipress-previous/`, 2: staged ones moving live); the engine's re-run of
        this idempotent step reads it and finishes the moves (and `unswap` undoes them from
        any phase), so once the operation ends the site is never a mix."""
        live, bucket = self._database(ctx), self._site_bucket(ctx)
        marker = self._marker(bucket)
        if marker and marker["op"] != "swap":
            raise RuntimeError("an unswap of this site is under way: run unswap to its end")
        if marker is None:
            if self._db_swapped(live) and not self._names(bucket, STAGED):
                return  # swapped already
            with self._connect() as conn, conn.cursor() as cur:
                if not self._tables(cur, live + RESTORE_SUFFIX):
                    raise RuntimeError("nothing is staged: stage a backup before swapping")
            self._set_marker(bucket, "swap", 1)
            marker = {"op": "swap", "phase": 1}
        if marker["phase"] == 1:
            if not self._db_swapped(live):
                self._rename(live, [(live, live + PREVIOUS_SUFFIX),
                                    (live + RESTORE_SUFFIX, live)])  # fmt: skip
            self._move_all(bucket, "", PREVIOUS)
            self._set_marker(bucket, "swap", 2)
        self._move_all(bucket, STAGED, "")
        self._blob(bucket, SWAP_MARKER).delete()

    def unswap(self, ctx: SiteContext) -> None:
        """Put the previous copy back live (tables in one RENAME TABLE, objects moved back),
        from a finished or a crashed swap; a no-op when nothing was swapped."""
        live, bucket = self._database(ctx), self._site_bucket(ctx)
        marker = self._marker(bucket)
        if marker is None:
            if not self._db_swapped(live) and not self._names(bucket, PREVIOUS):
                return
            marker = {"op": "swap", "phase": 2}
        if marker["op"] == "swap":
            # In phase 1 no staged object went live yet: the live ones are the site's own.
            phase = 1 if marker["phase"] == 2 else 2
            self._set_marker(bucket, "unswap", phase)
            marker = {"op": "unswap", "phase": phase}
        if marker["phase"] == 1:
            self._move_all(bucket, "", STAGED)
            self._set_marker(bucket, "unswap", 2)
        self._move_all(bucket, PREVIOUS, "")
        with self._connect() as conn, conn.cursor() as cur:
            previous = bool(self._tables(cur, live + PREVIOUS_SUFFIX))
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote(live + RESTORE_SUFFIX)} "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")  # fmt: skip
        if previous:
            self._rename(live, [(live, live + RESTORE_SUFFIX), (live + PREVIOUS_SUFFIX, live)])
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote(live + PREVIOUS_SUFFIX)}")  # empty now
        with contextlib.suppress(exceptions.NotFound):
            self._blob(bucket, SWAP_MARKER).delete()

    def discard_previous(self, ctx: SiteContext) -> None:
        """Drop `<db>__previous` and the objects under `.aipress-previous/` (no-op when gone)."""
        self._no_swap_under_way(self._site_bucket(ctx))
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote(self._database(ctx) + PREVIOUS_SUFFIX)}")
        for blob in self._names(self._site_bucket(ctx), PREVIOUS):
            with contextlib.suppress(exceptions.NotFound):
                blob.delete()

    # -- forget, archive ----------------------------------------------------------------
    def forget(self, tenant_id: str, backup_password: str, records: list[BackupRecord]) -> None:
        """Delete each backup's objects, the manifest first (so a half-deleted backup never
        reads as whole); no key is needed to delete."""
        for record in records:
            where = Where.parse(record.location)
            if not where.prefix.startswith(f"{tenant_id}/"):
                raise ValueError(f"{record.location} is not a backup of tenant {tenant_id}")
            with contextlib.suppress(exceptions.NotFound):
                self._blob(where.bucket, where.prefix + MANIFEST).delete()
            for blob in self._names(where.bucket, where.prefix):
                with contextlib.suppress(exceptions.NotFound):
                    blob.delete()

    def archive(
        self, tenant_id: str, backup_password: str, record: BackupRecord
    ) -> Iterator[bytes]:
        """database.sql and wp-content/uploads/... as a .tar.gz built while it is read: each
        object is read a chunk at a time, inflated (the dump) and deflated into the stream."""
        where = Where.parse(record.location)
        if not where.prefix.startswith(f"{tenant_id}/"):
            raise ValueError(f"{record.location} is not a backup of tenant {tenant_id}")
        key = backup_key(tenant_id, backup_password)
        manifest = self._manifest(where, key)
        if manifest is None:
            raise BackupInvalid(f"{where.location} has no manifest: the backup is missing")
        pack = zlib.compressobj(6, zlib.DEFLATED, 31)
        stamp = int(clock.now().timestamp())

        def member(name: str, size: int, chunks: Iterable[bytes]) -> Iterator[bytes]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = size, stamp, 0o644
            yield pack.compress(info.tobuf(tarfile.PAX_FORMAT))
            sent = 0
            for chunk in chunks:
                sent += len(chunk)
                yield pack.compress(chunk)
            if sent != size:
                raise BackupInvalid(f"{where.location}: {name} is not the size recorded")
            yield pack.compress(b"\0" * (-size % tarfile.BLOCKSIZE))

        def inflated(blob: Any) -> Iterator[bytes]:
            inflate = zlib.decompressobj(wbits=31)
            for chunk in self._read(blob):
                yield inflate.decompress(chunk)
            yield inflate.flush()

        if manifest["database"]:
            dump = self._blob(where.bucket, where.prefix + DUMP, key)
            yield from member("database.sql", int(manifest["database"]["sql_bytes"]),
                              inflated(dump))  # fmt: skip
        for entry in manifest["files"]:
            blob = self._blob(where.bucket, f"{where.prefix}{FILES}{entry['name']}", key)
            yield from member(f"wp-content/uploads/{entry['name']}", int(entry["size"]),
                              self._read(blob))  # fmt: skip
        yield pack.compress(b"\0" * (2 * tarfile.BLOCKSIZE)) + pack.flush()


class _Utf8:
    """Decodes UTF-8 arriving in chunks (a character may be split between two)."""

    def __init__(self) -> None:
        import codecs

        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def __call__(self, data: bytes, final: bool = False) -> str:
        return str(self.decoder.decode(data, final))
