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
A scope (`CopyScope`, a staging site's promotion) narrows both: only its tables are loaded
(the others' statements are read for the checksum and skipped) and renamed, and objects move
only when it has the files; the swap marker records it, so a re-run finishes the same swap.
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

from controlplane.engine.provider import (
    ALL,
    AS_TAKEN,
    BackupInvalid,
    BackupRecord,
    CopyScope,
    Fingerprint,
    ImportSource,
    ImportStaged,
    RewriteReport,
    SiteContext,
    Staging,
)
from controlplane.kernel import clock
from controlplane.providers import site_import
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.database import PREVIOUS_SUFFIX, RESTORE_SUFFIX, quote
from controlplane.providers.gcp.fingerprint import fingerprint
from controlplane.providers.gcp.imports import drop_import_user, load_dump, stage_uploads
from controlplane.providers.gcp.runtime import CloudRunService
from controlplane.providers.gcp.search_replace_job import SearchReplaceJob
from controlplane.providers.gcp.storage import RESERVED
from controlplane.providers.triggers import rename_with_triggers

MANIFEST = "manifest.json"
DUMP = "database.sql.gz"
FILES = "files/"
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


_TABLE = re.compile(r"(?:DROP TABLE IF EXISTS|CREATE TABLE|INSERT INTO) `((?:[^`]|``)+)`")


def statement_table(statement: str) -> str | None:
    """The table a dump's statement is about (None for a SET)."""
    found = _TABLE.match(statement)
    return found[1].replace("``", "`") if found else None


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

    def __init__(self, settings: Any, clients: Any, runtime: CloudRunService) -> None:
        super().__init__(settings, clients)
        self.runtime = runtime  # its container: what the search-replace job runs
        self.search_replace = SearchReplaceJob(settings, clients)

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

    def stage_import(self, ctx: SiteContext, source: ImportSource) -> ImportStaged:
        """An uploaded site staged as a backup is: its dump loaded into `<db>__restore` by a
        database user granted that schema only, its prefix and admin settled, its address
        rewritten by the search-replace job; its uploads written under `.aipress-restore/`
        (without content the live uploads stay: the import's swap leaves files alone). Any
        failure drops it all again. Returns the imported title and the rewrite's report."""
        self.unstage(ctx)
        side = self._database(ctx) + RESTORE_SUFFIX
        try:
            with self._connect() as conn, conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE {quote(side)} "
                            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")  # fmt: skip
            load_dump(self._connect, self.clients.sql_connect_as, ctx.site_id, side, source.dump)
            with self._connect() as conn, conn.cursor() as cur:
                title = site_import.settle(cur, side, source.table_prefix, ctx.admin_user,
                                           ctx.admin_email, reset=source.reset_admin)  # fmt: skip
                conn.commit()
            report = self._rewrite_side(ctx, side, source.rewrite_from)
            if source.content is not None:
                bucket = self._bucket(self._site_bucket(ctx))
                stage_uploads(bucket, source.content, STAGED)
        except BaseException:
            self.unstage(ctx)
            raise
        return ImportStaged(title, report)

    def _rewrite_side(self, ctx: SiteContext, side: str, old: str) -> RewriteReport:
        """`old` rewritten to this site's address in `side` by the search-replace job (the
        tenant image's PHP, as the site's database user)."""
        return self.search_replace.run(
            ctx, self.runtime.container(ctx), self.runtime.volumes(ctx),
            self.runtime.vpc_access(), self._connect,
            side, old, f"https://{self.names(ctx).preview_host}",
        )  # fmt: skip

    def stage(
        self, ctx: SiteContext, record: BackupRecord, how: Staging = AS_TAKEN
    ) -> RewriteReport | None:
        """Stream the dump into `<db>__restore` (checking its sha256 on the way; only the
        tables in `scope`) and copy the files into the bucket's `.aipress-restore/` (checking
        each crc32c; only when `scope.files`); from scratch. With `rewrite_from`, that
        address is rewritten to this site's by the search-replace job (the tenant image's
        PHP, as the site's database user); its report returned."""
        rewrite_from, scope = how.rewrite_from, how.scope
        where, manifest = self._checked_manifest(ctx, record)
        key = backup_key(ctx.tenant_id, ctx.backup_password)
        self.unstage(ctx)
        side = self._database(ctx) + RESTORE_SUFFIX
        report = None
        if manifest["database"] and scope.tables != ():
            self._import(where, key, manifest["database"], side, scope)
            if rewrite_from:
                report = self._rewrite_side(ctx, side, rewrite_from)
        elif scope.tables:
            raise ValueError(f"the copy has no table {scope.tables[0]} (it has no database)")
        if not scope.files:
            return report
        bucket = self._site_bucket(ctx)
        for entry in manifest["files"]:
            source = self._blob(where.bucket, f"{where.prefix}{FILES}{entry['name']}", key)
            target = self._rewrite(source, self._blob(bucket, STAGED + entry["name"]))
            if target.crc32c != entry["crc32c"]:
                raise BackupInvalid(f"the staged copy of {entry['name']} differs from the backup")
        return report

    def _import(
        self, where: Where, key: bytes, dumped: dict[str, Any], side: str, scope: CopyScope = ALL
    ) -> None:
        """Run the dump's statements into `side`, skipping those of tables out of `scope`."""
        digest = hashlib.sha256()
        loaded: set[str] = set()

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
                    table = statement_table(statement)
                    if table is not None:
                        if not scope.covers(table):
                            continue  # read (its bytes are in the checksum), not loaded
                        loaded.add(table)
                    cur.execute(statement)
                conn.commit()
                if digest.hexdigest() != dumped["sha256"]:
                    raise BackupInvalid(f"{where.location}{DUMP} is corrupted (sha256 differs)")
                missing = [t for t in scope.tables or () if t not in loaded]
                if missing:
                    raise ValueError(f"the copy has no table {missing[0]}")
            except BaseException:
                cur.execute(f"DROP DATABASE IF EXISTS {quote(side)}")
                raise

    def _no_swap_under_way(self, bucket: str) -> None:
        if self._marker(bucket) is not None:
            raise RuntimeError("a swap of this site is under way: finish it (swap) or undo it "
                               "(unswap) first")  # fmt: skip

    def unstage(self, ctx: SiteContext) -> None:
        """Drop `<db>__restore`, the staged objects and an import's database user (no-op
        when there are none)."""
        self._no_swap_under_way(self._site_bucket(ctx))
        drop_import_user(self._connect, ctx.site_id)  # an import killed while it loaded
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

    def _set_marker(self, bucket: str, op: str, phase: int, scope: CopyScope) -> None:
        tables = None if scope.tables is None else sorted(scope.tables)
        marker = json.dumps({"op": op, "phase": phase, "tables": tables, "files": scope.files})
        blob = self._blob(bucket, SWAP_MARKER)
        blob.upload_from_string(marker.encode(), content_type="application/json")

    @staticmethod
    def _marked_scope(marker: dict[str, Any], asked: CopyScope) -> CopyScope:
        """The scope a half-done swap was started with, which must be the one asked for (a
        marker written before scopes existed is a whole swap)."""
        tables = marker.get("tables")
        marked = CopyScope(
            None if tables is None else tuple(tables), bool(marker.get("files", True))
        )
        same_tables = (marked.tables is None) == (asked.tables is None) and set(
            marked.tables or ()) == set(asked.tables or ())  # fmt: skip
        if not same_tables or marked.files != asked.files:
            raise RuntimeError(f"a swap of this site is under way with another scope ({marked}): "
                               "finish or undo it with that scope")  # fmt: skip
        return marked

    def _move_all(self, bucket: str, source_prefix: str, target_prefix: str) -> None:
        """Move every object under `source_prefix` ("" = the live uploads) to `target_prefix`."""
        for blob in self._names(bucket, source_prefix):
            name = blob.name
            if not source_prefix and name.startswith(RESERVED):
                continue
            self._move(bucket, name, target_prefix + name[len(source_prefix) :])

    def _rename(
        self, ctx: SiteContext, moves: list[tuple[str, str]], only: tuple[str, ...] | None = None
    ) -> None:
        """One RENAME TABLE for every (from database, to database) pair's tables (those in
        `only` when it is set), their triggers with them."""
        live = self._database(ctx)
        user = str((ctx.resources.get("database") or {}).get("user", self.names(ctx).db_user))
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote(live + PREVIOUS_SUFFIX)} "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")  # fmt: skip
            moved = [(a, b, [t for t in self._tables(cur, a) if only is None or t in only])
                     for a, b in moves]  # fmt: skip
            rename_with_triggers(cur, moved, f"{quote(user)}@'%'")
            conn.commit()

    def _db_swapped(self, live: str, scope: CopyScope = ALL) -> bool:
        """Whether the swap's RENAME TABLE ran (and was not undone). Whole: `__previous`
        holds tables and `__restore` none. Scoped: `__previous` exists (made just before the
        rename) and `__restore` holds none of the scope's tables (it held all of them)."""
        with self._connect() as conn, conn.cursor() as cur:
            staged = self._tables(cur, live + RESTORE_SUFFIX)
            if scope.tables is None:
                return bool(self._tables(cur, live + PREVIOUS_SUFFIX)) and not staged
            cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                        (live + PREVIOUS_SUFFIX,))  # fmt: skip
            return cur.fetchone() is not None and not set(staged) & set(scope.tables)

    def _check_staged(self, live: str, scope: CopyScope) -> None:
        with self._connect() as conn, conn.cursor() as cur:
            staged = self._tables(cur, live + RESTORE_SUFFIX)
        if not staged:
            raise RuntimeError("nothing is staged: stage a backup before swapping")
        missing = [t for t in scope.tables or () if t not in staged]
        if missing:
            raise RuntimeError(f"the staged copy has no table {missing[0]}: stage again with "
                               "the swap's scope")  # fmt: skip

    def swap(self, ctx: SiteContext, scope: CopyScope = ALL) -> None:
        """Make the staged copy live: the tables (those in `scope`) in one RENAME TABLE
        (atomic), then the objects (when `scope.files`). Not atomic in GCS: objects are moved
        one by one (copy, then delete), so a crash leaves some uploads moved. A marker object
        records the scope and the phase (1: live uploads moving to `.aipress-previous/`, 2:
        staged ones moving live); the engine's re-run of this idempotent step reads it and
        finishes the moves for that scope (and `unswap` undoes them from any phase), so once
        the operation ends the site is never a mix."""
        live, bucket = self._database(ctx), self._site_bucket(ctx)
        marker = self._marker(bucket)
        if marker and marker["op"] != "swap":
            raise RuntimeError("an unswap of this site is under way: run unswap to its end")
        if marker is None:
            tables_done = scope.tables == () or self._db_swapped(live, scope)
            if tables_done and not (scope.files and self._names(bucket, STAGED)):
                return  # swapped already (or nothing of this scope was staged)
            if scope.tables != ():
                self._check_staged(live, scope)
            self._set_marker(bucket, "swap", 1, scope)
            marker = {"op": "swap", "phase": 1}
        else:
            scope = self._marked_scope(marker, scope)
        if marker["phase"] == 1:
            if scope.tables != () and not self._db_swapped(live, scope):
                self._rename(ctx, [(live, live + PREVIOUS_SUFFIX),
                                    (live + RESTORE_SUFFIX, live)], scope.tables)  # fmt: skip
            if scope.files:
                self._move_all(bucket, "", PREVIOUS)
            self._set_marker(bucket, "swap", 2, scope)
        if scope.files:
            self._move_all(bucket, STAGED, "")
        self._blob(bucket, SWAP_MARKER).delete()

    def unswap(self, ctx: SiteContext, scope: CopyScope = ALL) -> None:
        """Put the previous copy back live (the tables of `scope` in one RENAME TABLE, the
        objects moved back when `scope.files`), from a finished or a crashed swap (with the
        scope its marker recorded); a no-op when nothing was swapped."""
        live, bucket = self._database(ctx), self._site_bucket(ctx)
        marker = self._marker(bucket)
        if marker is None:
            tables_swapped = scope.tables != () and self._db_swapped(live, scope)
            if not tables_swapped and not (scope.files and self._names(bucket, PREVIOUS)):
                return
            marker = {"op": "swap", "phase": 2}
        else:
            scope = self._marked_scope(marker, scope)
        if marker["op"] == "swap":
            # In phase 1 no staged object went live yet: the live ones are the site's own.
            phase = 1 if marker["phase"] == 2 else 2
            self._set_marker(bucket, "unswap", phase, scope)
            marker = {"op": "unswap", "phase": phase}
        if scope.files:
            if marker["phase"] == 1:
                self._move_all(bucket, "", STAGED)
                self._set_marker(bucket, "unswap", 2, scope)
            self._move_all(bucket, PREVIOUS, "")
        if scope.tables is None:
            with self._connect() as conn, conn.cursor() as cur:
                swapped = bool(self._tables(cur, live + PREVIOUS_SUFFIX))
        else:
            swapped = scope.tables != () and self._db_swapped(live, scope)
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote(live + RESTORE_SUFFIX)} "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")  # fmt: skip
        if swapped:
            self._rename(ctx, [(live, live + RESTORE_SUFFIX), (live + PREVIOUS_SUFFIX, live)],
                         scope.tables)  # fmt: skip
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote(live + PREVIOUS_SUFFIX)}")  # empty now
        with contextlib.suppress(exceptions.NotFound):
            self._blob(bucket, SWAP_MARKER).delete()

    def fingerprint(self, ctx: SiteContext) -> Fingerprint:
        """Per table of the live database its exact row count and CHECKSUM TABLE, per upload
        its MD5 (or CRC32C) as GCS lists it; the platform's `.aipress-` objects left out."""
        return fingerprint(self._connect, self._database(ctx),
                           self._names(self._site_bucket(ctx)))  # fmt: skip

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
