"""Backups with restic: one encrypted repository per tenant, restored beside the live site.

Layout (all under the stack's backups directory, root-only 0700, never the site's):
`<tenant>/repo` (the restic repository, password = the tenant's backup key, given to restic
in its environment only) and `<tenant>/cache`. A backup is two snapshots with the tag
`aipress-backup=<id>`: `/database.sql` (a streamed `mariadb-dump --single-transaction
--quick`) and `/wp-content` (the files). Each is tagged `aipress-pending=<id>` while written
and gets its final tags (id, sha256, size) only once both are read back and match, so a
killed run leaves nothing that looks complete; the next run forgets it and starts again.

Checksums: `database` is the sha256 of the dump as streamed into restic; `files` the sha256
of a manifest (path, type, mode bits, size, content sha256, link target of every entry of
wp-content) computed from what restic stored. Both are checked again before a swap.

A restore is staged beside the site (schema `<db>__restore`, directory
`<root>/wp-content.restore`, outside the document root), swapped in with one `RENAME TABLE`
of the tables (views, which it cannot move across schemas, are recreated after it with the
site's database user as definer) and two directory renames (then a graceful PHP-FPM reload:
no cached script of the replaced copy runs after), the replaced copy kept as
`<db>__previous` and `<root>/wp-content.previous` until `discard_previous`. Triggers go with
their tables (controlplane.providers.triggers). Not handled yet: stored routines are not
carried over.
"""

from __future__ import annotations

import errno
import grp
import gzip
import hashlib
import io
import json
import os
import pwd
import queue
import re
import secrets
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from pymysql import MySQLError
from pymysql.cursors import Cursor

from controlplane.backups.restic import Restic, ResticError, Snapshot
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
    TablePrint,
)
from controlplane.kernel.logs import get_logger
from controlplane.kernel.secret_record import note_secret
from controlplane.providers import site_import
from controlplane.providers.local.base import LocalStep
from controlplane.providers.local.cron import CLI_LOCKDOWN, pool_settings
from controlplane.providers.search_replace import INPUT_ENV, parse_report, script_source
from controlplane.providers.triggers import rename_with_triggers
from controlplane.stack.process import CLEAN_ENV, StackError

log = get_logger("aipress.local.backups")
TAG_ID, TAG_PENDING, TAG_PART = "aipress-backup", "aipress-pending", "aipress-part"
TAG_SHA, TAG_SIZE, TAG_ADDED, TAG_SITE = (
    "aipress-sha256",
    "aipress-size",
    "aipress-added",
    "aipress-site",
)
DATABASE, FILES = "database", "files"
DUMP_NAME, CONTENT = "database.sql", "wp-content"
CHUNK = 1 << 20
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
# Staging a dump takes more room than the dump (InnoDB pages, indexes): the space check asks
# for this much per byte of dump and of files, plus a fixed margin for logs and temp files.
DATABASE_FACTOR, FILES_FACTOR, SPACE_MARGIN = 2.0, 1.1, 64 << 20


def _ident(name: str) -> str:
    """A backtick-quoted SQL identifier (table names come from the tenant's database)."""
    return "`" + name.replace("`", "``") + "`"


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


@dataclass(frozen=True)
class Parts:
    """The two snapshots of one backup."""

    database: Snapshot
    files: Snapshot

    @property
    def location(self) -> str:
        """`restic:<database snapshot>+<files snapshot>`."""
        return f"restic:{self.database.id}+{self.files.id}"


def parse_location(location: str) -> tuple[str, str]:
    """The (database, files) snapshot ids of a `restic:` location."""
    kind, _, ids = location.partition(":")
    database, _, files = ids.partition("+")
    if kind != "restic" or not database or not files:
        raise BackupInvalid(f"not a local restic backup location: {location!r}")
    return database, files


def _drain(stream: IO[bytes]) -> Callable[[], bytes]:
    """Read `stream` to its end in a thread; the returned function waits and gives it."""
    sink: list[bytes] = []
    thread = threading.Thread(target=lambda: sink.append(stream.read()), daemon=True)
    thread.start()

    def result() -> bytes:
        thread.join()
        return b"".join(sink)

    return result


# ---------------------------------------------------------------------------- checksums


def _manifest_line(rel: str, kind: str, mode: int, size: int, digest: str, link: str) -> str:
    return json.dumps([rel, kind, mode, size, digest, link])


def _sha256_stream(stream: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _manifest_digest(lines: list[str]) -> str:
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def tar_manifest(stream: IO[bytes]) -> tuple[str, int]:
    """(manifest sha256, bytes of file content) of a `restic dump` tar of wp-content."""
    lines, total = [], 0
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            name = member.name.removeprefix("./")
            if name == CONTENT:
                continue
            rel = name.removeprefix(f"{CONTENT}/").rstrip("/")
            if member.isreg():
                source = archive.extractfile(member)
                assert source is not None
                digest, size = _sha256_stream(source)
                total += size
                lines.append(_manifest_line(rel, "f", member.mode & 0o7777, size, digest, ""))
            elif member.isdir():
                lines.append(_manifest_line(rel, "d", member.mode & 0o7777, 0, "", ""))
            elif member.issym():
                lines.append(_manifest_line(rel, "l", 0, 0, "", member.linkname))
            else:
                lines.append(_manifest_line(rel, "o", member.mode & 0o7777, 0, "", ""))
    return _manifest_digest(lines), total


def tree_manifest(root: Path) -> tuple[str, int]:
    """The same manifest of a directory on disk (links are not followed)."""
    lines, total = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                with path.open("rb") as handle:
                    digest, size = _sha256_stream(handle)
                total += size
                lines.append(_manifest_line(rel, "f", info.st_mode & 0o7777, size, digest, ""))
            elif stat.S_ISDIR(info.st_mode):
                lines.append(_manifest_line(rel, "d", info.st_mode & 0o7777, 0, "", ""))
            elif stat.S_ISLNK(info.st_mode):
                lines.append(_manifest_line(rel, "l", 0, 0, "", os.readlink(path)))
            else:
                lines.append(_manifest_line(rel, "o", info.st_mode & 0o7777, 0, "", ""))
    return _manifest_digest(lines), total


# ---------------------------------------------------------------------------- mirror


def mirror_tree(source: Path, target: Path) -> None:
    """Make `target` a copy of the directory `source` that no link leads out of: walked by
    file descriptor (a directory turned into a link mid-walk is not entered), regular files
    hard-linked (copied across filesystems), links recreated as links, other kinds left out.
    An empty `target` when `source` is missing or is not a directory."""
    target.mkdir(mode=0o700)
    if source.is_symlink() or not source.is_dir():
        return
    dir_times: list[tuple[Path, int, int]] = []
    for dirpath, dirnames, filenames, dirfd in os.fwalk(source, follow_symlinks=False):
        into = target / os.path.relpath(dirpath, source)
        top = os.fstat(dirfd)
        if into != target:
            into.mkdir(mode=0o700)
        os.chown(into, top.st_uid, top.st_gid)
        os.chmod(into, stat.S_IMODE(top.st_mode))
        dir_times.append((into, top.st_atime_ns, top.st_mtime_ns))
        entered: list[str] = []
        for name in dirnames + filenames:
            try:
                info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    entered.append(name)
                elif stat.S_ISREG(info.st_mode):
                    _mirror_file(dirfd, name, into / name, info)
                elif stat.S_ISLNK(info.st_mode):
                    os.symlink(os.readlink(name, dir_fd=dirfd), into / name)
                    os.chown(into / name, info.st_uid, info.st_gid, follow_symlinks=False)
            except FileNotFoundError:
                continue  # the live site removed it meanwhile
        dirnames[:] = entered  # only what was a directory when looked at is walked into
    for path, atime, mtime in reversed(dir_times):
        os.utime(path, ns=(atime, mtime))


def _mirror_file(dirfd: int, name: str, dest: Path, info: os.stat_result) -> None:
    try:
        # No AT_SYMLINK_FOLLOW: if the name became a link, the link is linked, not its target.
        os.link(name, dest, src_dir_fd=dirfd, follow_symlinks=False)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    with os.fdopen(fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
            return
        with dest.open("xb") as out:
            shutil.copyfileobj(source, out, CHUNK)
    os.chown(dest, info.st_uid, info.st_gid)
    os.chmod(dest, stat.S_IMODE(info.st_mode))
    os.utime(dest, ns=(info.st_atime_ns, info.st_mtime_ns))


# ---------------------------------------------------------------------------- fingerprint

# wp-content's directories of regenerated files: a change there is no drift.
UNHASHED_DIRS = frozenset({"cache", "upgrade", "et-cache", "w3tc-config"})
# Files above this, and sparse ones (a site's PHP can make a 1 TiB file of no blocks), are
# compared by size and modification time instead of read: drift runs in the API request.
HASHED_MAX_BYTES = 64 * 1024 * 1024


def file_hashes(root: Path) -> dict[str, str]:
    """Path under `root` -> sha256 of every regular file (`size:mtime` for big or sparse
    ones), walked by descriptor without following a link (a link is neither entered nor
    read); {} when `root` is missing."""
    hashes: dict[str, str] = {}
    if root.is_symlink() or not root.is_dir():
        return hashes
    for dirpath, dirnames, filenames, dirfd in os.fwalk(root, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in UNHASHED_DIRS]
        for name in filenames:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
            except OSError:
                continue  # a link (ELOOP), a fifo's peer gone, or removed meanwhile
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    continue
                if info.st_size > HASHED_MAX_BYTES or info.st_blocks * 512 < info.st_size:
                    digest = f"size:{info.st_size}:mtime:{info.st_mtime_ns}"
                else:
                    digest, _size = _sha256_stream(handle)
            hashes[os.path.normpath(os.path.join(rel_dir, name))] = digest
    return hashes


# ---------------------------------------------------------------------------- staging sources


def _restic_chunks(repo: Restic, snapshot_id: str, record: BackupRecord) -> Iterator[bytes]:
    """A backup's dump as restic reads it; BackupInvalid when it cannot."""
    try:
        with repo.dump(snapshot_id, f"/{DUMP_NAME}") as stream:
            while chunk := stream.read(CHUNK):
                yield chunk
    except ResticError as exc:
        raise BackupInvalid(
            f"the database of backup {record.location} cannot be read: {exc}"
        ) from exc


def _file_chunks(path: Path) -> Iterator[bytes]:
    """An uploaded dump's SQL, decompressed when it is a gzip (checked: within the limit)."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if not gzipped:
            while chunk := raw.read(CHUNK):
                yield chunk
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            while chunk := stream.read(CHUNK):
                yield chunk


def _unpack_content(archive: Path, into: Path, user: str) -> None:
    """The archive's wp-content/ members unpacked into `into` (the dump member left out),
    with tarfile's `data` filter (no link out, no device, no set-uid) and the site's user
    as owner (group www-data)."""
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam("www-data").gr_gid

    def owned(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        safe = tarfile.data_filter(member, path)
        return safe.replace(uid=uid, gid=gid, uname="", gname="", deep=False)

    with tarfile.open(archive, mode="r|gz") as tar:
        members = (m for m in tar if m.name.removeprefix("./").split("/", 1)[0] == CONTENT)
        # Every member was checked before the operation began; the filter checks again.
        tar.extractall(into, members=members, filter=owned)  # noqa: S202


def _nothing_to_check(_restored: Path) -> None:
    """An import's files were checked before the operation began."""


# ---------------------------------------------------------------------------- the step


class BackupStep(LocalStep):
    """The local BackupStep: restic repositories under the stack's backups directory."""

    # -------------------------------------------------------------- repository

    def _tenant_dir(self, tenant_id: str) -> Path:
        if not SAFE_NAME.fullmatch(tenant_id):
            raise ValueError(f"not a tenant id: {tenant_id!r}")
        base = self.stack.backups_dir
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        base.chmod(0o700)
        tenant_dir = base / tenant_id
        tenant_dir.mkdir(exist_ok=True, mode=0o700)
        tenant_dir.chmod(0o700)
        return tenant_dir

    def repository(self, tenant_id: str, password: str) -> Restic:
        """The tenant's restic repository (not created here)."""
        if not password:
            raise StackError("the tenant's backup key is missing (SiteContext.backup_password)")
        note_secret(password, "backup password")
        tenant_dir = self._tenant_dir(tenant_id)
        return Restic(tenant_dir / "repo", password, tenant_dir / "cache")

    def _parts(self, repo: Restic, record: BackupRecord) -> Parts:
        """The record's two snapshots, or BackupInvalid when either is gone."""
        database_id, files_id = parse_location(record.location)
        if not repo.exists():
            raise BackupInvalid("the tenant has no backup repository")
        try:
            found = {s.id: s for s in repo.snapshots()}
        except ResticError as exc:
            raise BackupInvalid(f"the backup repository cannot be read: {exc}") from exc
        if database_id not in found or files_id not in found:
            raise BackupInvalid(f"backup {record.location} is not in the repository")
        return Parts(found[database_id], found[files_id])

    @staticmethod
    def _complete(repo: Restic, backup_id: str) -> Parts | None:
        """The backup's two snapshots if it was taken (and verified) in full."""
        by_part: dict[str, Snapshot] = {}
        for snap in repo.snapshots([f"{TAG_ID}={backup_id}"]):
            part = snap.tag_value(TAG_PART)
            if part and snap.tag_value(TAG_SHA):
                by_part.setdefault(part, snap)
        if DATABASE in by_part and FILES in by_part:
            return Parts(by_part[DATABASE], by_part[FILES])
        return None

    @staticmethod
    def _record(parts: Parts) -> BackupRecord:
        def number(snap: Snapshot, key: str) -> int:
            return int(snap.tag_value(key) or 0)

        return BackupRecord(
            location=parts.location,
            size_bytes=number(parts.database, TAG_SIZE) + number(parts.files, TAG_SIZE),
            added_bytes=number(parts.database, TAG_ADDED) + number(parts.files, TAG_ADDED),
            checksums={
                DATABASE: parts.database.tag_value(TAG_SHA) or "",
                FILES: parts.files.tag_value(TAG_SHA) or "",
            },
        )

    # -------------------------------------------------------------- backup

    def backup(self, ctx: SiteContext, backup_id: str) -> BackupRecord:
        """Snapshot the database (streamed dump) and wp-content, read both back, then tag
        them as backup `backup_id`; a backup already taken under that id is returned."""
        if not SAFE_NAME.fullmatch(backup_id):
            raise ValueError(f"not a backup id: {backup_id!r}")
        names = self.names(ctx)
        self.stack.ensure_running()
        repo = self.repository(ctx.tenant_id, ctx.backup_password)
        repo.init_if_missing()
        done = self._complete(repo, backup_id)
        if done is not None:
            return self._record(done)
        # An interrupted attempt's snapshots (pending, or only one part finished): gone.
        leftovers = repo.snapshots([f"{TAG_PENDING}={backup_id}"]) + repo.snapshots(
            [f"{TAG_ID}={backup_id}"]
        )
        repo.forget([s.id for s in leftovers], prune=False)
        pending = [f"{TAG_PENDING}={backup_id}", f"{TAG_SITE}={ctx.site_id}"]

        streamed = hashlib.sha256()
        database = repo.backup_stdin(
            self._dump_chunks(names.db_name, streamed),
            DUMP_NAME,
            [*pending, f"{TAG_PART}={DATABASE}"],
        )
        # restic (root) walks by path, so a tenant who flips a directory of wp-content into a
        # link while it runs gets root-only files into its backup: restic reads a root-only
        # mirror instead, built by fd without following a link (files hard-linked).
        stage = self._tenant_dir(ctx.tenant_id) / "stage" / ctx.site_id
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True, mode=0o700)
        try:
            mirror_tree(names.root / "htdocs" / CONTENT, stage / CONTENT)
            files = repo.backup_dir(stage / CONTENT, [*pending, f"{TAG_PART}={FILES}"])
        finally:
            shutil.rmtree(stage, ignore_errors=True)

        # Checked after writing: read back from the repository, as a restore would (restic
        # authenticates every blob it reads). No `restic check` here: it locks the whole
        # repository, and the tenant's other sites may be backing up; `verify` runs it.
        try:
            with repo.dump(database.snapshot_id, f"/{DUMP_NAME}") as stream:
                stored, db_size = _sha256_stream(stream)
            with repo.dump(files.snapshot_id, f"/{CONTENT}") as stream:
                files_sha, files_size = tar_manifest(stream)
        except ResticError as exc:
            raise BackupInvalid(f"the backup just written cannot be read back: {exc}") from exc
        if stored != streamed.hexdigest():
            raise BackupInvalid("the database read back from the backup differs from the dump")
        # Files first, database last: a backup is complete only once the database has its
        # final tags, and `_complete` asks for both.
        for summary, digest, size in (
            (files, files_sha, files_size),
            (database, stored, db_size),
        ):
            repo.tag(
                [summary.snapshot_id],
                add=[f"{TAG_ID}={backup_id}", f"{TAG_SHA}={digest}", f"{TAG_SIZE}={size}",
                     f"{TAG_ADDED}={summary.data_added}"],
                remove=[f"{TAG_PENDING}={backup_id}"],
            )  # fmt: skip
        done = self._complete(repo, backup_id)
        if done is None:
            raise StackError(f"backup {backup_id} was written but its snapshots are not found")
        record = self._record(done)
        log.info("backup.taken", site=ctx.site_id, backup=backup_id, size=record.size_bytes,
                 added=record.added_bytes)  # fmt: skip
        return record

    def _database_exists(self, name: str) -> bool:
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
            return cur.fetchone() is not None

    def _dump_chunks(self, database: str, digest: hashlib._Hash) -> Iterator[bytes]:
        """The database's dump a chunk at a time (constant memory), hashed as it goes; an
        empty dump when the database does not exist (a half-built site's delete)."""
        if not self._database_exists(database):
            return
        proc = subprocess.Popen(
            ["mariadb-dump", f"--socket={self.stack.mariadb.socket}", "--user=root",
             "--single-transaction", "--quick", "--routines", "--triggers",
             # No date: an unchanged database dumps to the same bytes (restic dedups them).
             "--skip-dump-date", "--skip-comments", "--", database],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CLEAN_ENV, cwd="/",
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        errors = _drain(proc.stderr)
        finished = False
        try:
            while chunk := proc.stdout.read(CHUNK):
                digest.update(chunk)
                yield chunk
            finished = True
        finally:
            if not finished:
                proc.kill()
            proc.stdout.close()
            returncode = proc.wait()
        if returncode != 0:
            message = errors().decode(errors="replace").strip()[-1000:]
            raise StackError(f"mariadb-dump of {database} failed (exit {returncode}): {message}")

    # -------------------------------------------------------------- verify, space

    def verify(self, ctx: SiteContext, record: BackupRecord) -> None:
        """Read the whole backup back (restic authenticates every blob) and compare it with
        its checksums; BackupInvalid when anything is missing, unreadable or different."""
        repo = self.repository(ctx.tenant_id, ctx.backup_password)
        parts = self._parts(repo, record)
        try:
            repo.check()
            with repo.dump(parts.database.id, f"/{DUMP_NAME}") as stream:
                database, _ = _sha256_stream(stream)
            with repo.dump(parts.files.id, f"/{CONTENT}") as stream:
                files, _ = tar_manifest(stream)
        except (ResticError, tarfile.TarError) as exc:
            raise BackupInvalid(f"backup {record.location} cannot be read: {exc}") from exc
        self._compare(record, DATABASE, database)
        self._compare(record, FILES, files)

    @staticmethod
    def _compare(record: BackupRecord, part: str, digest: str) -> None:
        expected = record.checksums.get(part)
        if not expected:
            raise BackupInvalid(f"backup {record.location} records no checksum of its {part}")
        if digest != expected:
            raise BackupInvalid(f"the {part} of backup {record.location} differs from its checksum")

    def check_space(self, ctx: SiteContext, record: BackupRecord) -> None:
        """ValueError unless the staged database and files fit, with a margin, on their disks."""
        repo = self.repository(ctx.tenant_id, ctx.backup_password)
        parts = self._parts(repo, record)
        database = int(parts.database.tag_value(TAG_SIZE) or record.size_bytes)
        files = int(parts.files.tag_value(TAG_SIZE) or record.size_bytes)
        needs: dict[int, tuple[Path, float]] = {}
        for path, size in (
            (self.stack.mariadb.datadir, database * DATABASE_FACTOR),
            (self.names(ctx).root, files * FILES_FACTOR),
        ):
            device = path.stat().st_dev
            _, before = needs.get(device, (path, 0.0))
            needs[device] = (path, before + size)
        for path, need in needs.values():
            need += SPACE_MARGIN
            free = shutil.disk_usage(path).free
            if free < need:
                raise ValueError(
                    f"restoring this backup needs {_human(need)} free on the disk of {path}, "
                    f"{_human(free)} is free: free {_human(need - free)} (old backups, "
                    "deleted sites' files) and try again"
                )

    # -------------------------------------------------------------- stage

    def _schemas(self, ctx: SiteContext) -> tuple[str, str, str]:
        names = self.names(ctx)
        return names.db_name, names.restore_db, names.previous_db

    def _dirs(self, ctx: SiteContext) -> tuple[Path, Path, Path, Path]:
        """Live wp-content, and (outside the document root) restore, previous, partial."""
        root = self.names(ctx).root
        return (
            root / "htdocs" / CONTENT,
            root / f"{CONTENT}.restore",
            root / f"{CONTENT}.previous",
            root / f".{CONTENT}.restore.partial",
        )

    def stage(
        self, ctx: SiteContext, record: BackupRecord, how: Staging = AS_TAKEN
    ) -> RewriteReport | None:
        """Restore the dump into `<db>__restore` and the files into wp-content.restore, each
        checked against its checksum (what was staged before is replaced); with a scope,
        only its tables stay staged, and the files only when it has them; with
        `rewrite_from`, that address rewritten to this site's (its report returned)."""
        rewrite_from, scope = how.rewrite_from, how.scope
        self.stack.ensure_running()
        repo = self.repository(ctx.tenant_id, ctx.backup_password)
        parts = self._parts(repo, record)
        reports: list[RewriteReport] = []

        def load(schema: str) -> None:
            digest = self._load_sql(schema, _restic_chunks(repo, parts.database.id, record))
            self._compare(record, DATABASE, digest)
            if scope.tables is not None:
                self._keep_tables(schema, scope.tables)
            if rewrite_from:
                reports.append(self._rewrite(
                    ctx, schema, rewrite_from.rstrip("/"), self.preview_url(ctx).rstrip("/")
                ))  # fmt: skip

        def fill(partial: Path) -> None:
            try:
                repo.restore(parts.files.id, partial)
            except ResticError as exc:
                raise BackupInvalid(
                    f"the files of backup {record.location} cannot be read: {exc}"
                ) from exc

        def check(restored: Path) -> None:
            digest, _ = tree_manifest(restored)
            self._compare(record, FILES, digest)

        files = (fill, check) if scope.files else None
        self._stage(ctx, load, files, what=f"backup {record.location}")
        log.info("backup.staged", site=ctx.site_id, backup=record.location,
                 tables=list(scope.tables or ()), files=scope.files)  # fmt: skip
        return reports[0] if reports else None

    def stage_import(self, ctx: SiteContext, source: ImportSource) -> ImportStaged:
        """An uploaded site staged as a backup is: its dump loaded (by a database user that
        may touch nothing but the side schema: the dump is the uploader's SQL), its tables
        and prefix-bearing keys renamed to the site's prefix, the platform's admin made an
        administrator if asked, its address rewritten; its files unpacked (checked already;
        tarfile's `data` filter again), owned by the site's user."""
        self.stack.ensure_running()
        names = self.names(ctx)
        titles: list[str] = []
        reports: list[RewriteReport] = []

        def load(schema: str) -> None:
            self._load_sql(schema, _file_chunks(source.dump), as_user=self._import_user(ctx))
            with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
                titles.append(site_import.settle(
                    cur, schema, source.table_prefix, ctx.admin_user, ctx.admin_email,
                    reset=source.reset_admin,
                ))  # fmt: skip
            reports.append(self._rewrite(
                ctx, schema, source.rewrite_from.rstrip("/"), self.preview_url(ctx).rstrip("/")
            ))  # fmt: skip

        def fill(partial: Path) -> None:
            assert source.content is not None
            _unpack_content(source.content, partial, names.system_user)

        files = None if source.content is None else (fill, _nothing_to_check)
        try:
            self._stage(ctx, load, files, what="the import")
        finally:
            self._drop_import_user(ctx)
        log.info("backup.import_staged", site=ctx.site_id, files=source.content is not None)
        return ImportStaged(titles[0], reports[0])

    def _stage(
        self,
        ctx: SiteContext,
        load: Callable[[str], None],
        files: tuple[Callable[[Path], None], Callable[[Path], None]] | None,
        *,
        what: str,
    ) -> None:
        """The one staging path of restores and imports: what was staged is dropped, the
        side schema made and `load`ed, then (`files`: fill the partial directory, check what
        came out) wp-content.restore; any failure drops it all again."""
        self.unstage(ctx)
        _live, restore, _previous = self._schemas(ctx)
        try:
            with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
                cur.execute(
                    f"CREATE DATABASE {_ident(restore)} "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            load(restore)
            if files is not None:
                self._stage_files(ctx, *files, what=what)
        except BaseException:
            self.unstage(ctx)
            raise

    def _keep_tables(self, schema: str, tables: tuple[str, ...]) -> None:
        """Drop every staged table and view but `tables`; ValueError for one the copy lacks."""
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            staged = self._tables(cur, schema)
            missing = sorted(set(tables) - set(staged))
            if missing:
                raise ValueError(f"the copy has no table {', '.join(missing)}")
            for name, *_ in self._views(cur, schema):
                cur.execute(f"DROP VIEW IF EXISTS {_ident(schema)}.{_ident(name)}")
            for table in staged:
                if table not in tables:
                    cur.execute(f"DROP TABLE {_ident(schema)}.{_ident(table)}")

    def _load_sql(
        self, schema: str, chunks: Iterator[bytes], *, as_user: tuple[str, str] | None = None
    ) -> str:
        """Pipe a dump into `schema` with the mariadb client (as root, or `as_user` over TCP);
        the sha256 of what was piped."""
        # --sandbox: the dump is the tenant's data; no client command may touch the disk.
        args = ["mariadb", "--sandbox", "--batch", "--local-infile=0"]
        env = dict(CLEAN_ENV)
        if as_user is None:
            args += [f"--socket={self.stack.mariadb.socket}", "--user=root"]
        else:
            args += ["--protocol=TCP", "--host=127.0.0.1", f"--port={self.stack.mariadb.port}",
                     f"--user={as_user[0]}"]  # fmt: skip
            env["MYSQL_PWD"] = as_user[1]  # the environment: never in argv
        client = subprocess.Popen(
            [*args, f"--database={schema}"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=env, cwd="/",
        )  # fmt: skip
        assert client.stdin is not None and client.stderr is not None
        errors = _drain(client.stderr)
        digest = hashlib.sha256()
        try:
            for chunk in chunks:
                digest.update(chunk)
                client.stdin.write(chunk)
            client.stdin.close()
        except BrokenPipeError:
            # The client stopped reading before the dump's end (an error, or a `quit` in
            # the dump): refused whatever its exit status.
            client.wait()
            message = errors().decode(errors="replace").strip()[-1000:]
            raise StackError(f"loading the database stopped before its end: {message}") from None
        except BaseException:
            client.kill()
            client.wait()
            raise
        finally:
            if isinstance(chunks, Generator):
                chunks.close()  # a dump's reader (restic) ends now, not when collected
        if client.wait() != 0:
            message = errors().decode(errors="replace").strip()[-1000:]
            raise StackError(f"loading the database failed: {message}")
        return digest.hexdigest()

    def _import_user_name(self, ctx: SiteContext) -> str:
        return f"imp_{ctx.site_id[:24]}"

    def _import_user(self, ctx: SiteContext) -> tuple[str, str]:
        """A database user for one import, with every right on the side schema and no
        other: the uploaded SQL cannot reach the live site, another site or the server."""
        user, password = self._import_user_name(ctx), secrets.token_urlsafe(24)
        note_secret(password, "import database password")
        _live, restore, _previous = self._schemas(ctx)
        grant = _ident(restore.replace("_", "\\_"))
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (user,))
            cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
            cur.execute(f"GRANT ALL PRIVILEGES ON {grant}.* TO %s@'127.0.0.1'", (user,))
        return user, password

    def _drop_import_user(self, ctx: SiteContext) -> None:
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (self._import_user_name(ctx),))

    def _stage_files(
        self,
        ctx: SiteContext,
        fill: Callable[[Path], None],
        check: Callable[[Path], None],
        *,
        what: str,
    ) -> None:
        names = self.names(ctx)
        _live, restore, _previous, partial = self._dirs(ctx)
        partial.mkdir(mode=0o700)  # root's: the site's user cannot reach in while it fills
        fill(partial)
        restored = partial / CONTENT
        if not restored.is_dir():
            raise BackupInvalid(f"{what} holds no wp-content")
        check(restored)
        self._own(restored, names.system_user)
        restored.rename(restore)
        partial.rmdir()

    @staticmethod
    def _own(tree: Path, user: str) -> None:
        """Give the restored files to the site's user, as its own files were (group
        www-data, what wp-content's setgid bit gives); root's files (the hard-linked default
        theme) stay root's. Mode bits are put back after the chown, set-uid and set-gid
        of files left off."""
        uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam("www-data").gr_gid
        paths = [tree]
        for dirpath, dirnames, filenames in os.walk(tree):
            paths += [Path(dirpath) / name for name in dirnames + filenames]
        for path in paths:
            info = path.lstat()
            if info.st_uid in (0, uid):
                continue
            os.chown(path, uid, gid, follow_symlinks=False)
            if not stat.S_ISLNK(info.st_mode):
                mode = stat.S_IMODE(info.st_mode)
                if not stat.S_ISDIR(info.st_mode):
                    # A set-gid file given group www-data would let the site's code run as
                    # that group (other sites' files); set-uid gives it nothing it needs.
                    mode &= ~(stat.S_ISUID | stat.S_ISGID)
                os.chmod(path, mode)

    def _rewrite(self, ctx: SiteContext, schema: str, old: str, new: str) -> RewriteReport:
        """Replace the backup's site URL with this site's in the staged schema: the
        search-replace script, run as the site's user with its pool's settings (its input,
        the database password too, in the environment: never on a command line)."""
        names = self.names(ctx)
        db_user, db_password = ctx.credentials.get_or_create("database", names.db_user)
        pool_file = self.stack.phpfpm.pool_file(names.system_user)
        if not pool_file.exists():
            raise StackError("the site has no PHP-FPM pool: its runtime step runs first")
        flags, _env = pool_settings(pool_file)
        payload = json.dumps(
            {"host": "127.0.0.1", "port": self.stack.mariadb.port, "user": db_user,
             "password": db_password, "database": schema, "from": old, "to": new}
        )  # fmt: skip
        grant = schema.replace("_", "\\_")
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"GRANT ALL PRIVILEGES ON {_ident(grant)}.* TO %s@'127.0.0.1'", (db_user,))
        try:
            done = subprocess.run(
                ["runuser", "-u", names.system_user, "--", "php", *flags, *CLI_LOCKDOWN,
                 "-d", "memory_limit=256M", "-d", "max_execution_time=0", "--"],
                input=script_source(), capture_output=True, text=True, timeout=3600,
                check=False, env={**CLEAN_ENV, INPUT_ENV: payload}, cwd="/",
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise StackError("rewriting the site's address timed out after 3600 s") from exc
        finally:
            self._revoke(schema, db_user)
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip()[-2000:]
            raise StackError(
                f"rewriting the site's address failed (exit {done.returncode}): {said}"
            )
        report = parse_report(done.stdout)
        log.info("backup.rewritten", site=ctx.site_id, rows=report.rows, cells=report.cells,
                 tables=len(report.tables), unparsed=report.unparsed)  # fmt: skip
        return report

    def _revoke(self, schema: str, db_user: str) -> None:
        grant = schema.replace("_", "\\_")
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM mysql.db WHERE Db = %s AND User = %s", (grant, db_user))
            if cur.fetchone() is not None:
                cur.execute(
                    f"REVOKE ALL PRIVILEGES ON {_ident(grant)}.* FROM %s@'127.0.0.1'", (db_user,)
                )

    def unstage(self, ctx: SiteContext) -> None:
        """Drop the staged schema and directory (no-op when gone)."""
        names = self.names(ctx)
        _live, restore, _previous = self._schemas(ctx)
        self.stack.ensure_running()
        self._revoke(restore, names.db_user)
        self._drop_import_user(ctx)  # an import killed while it loaded leaves it
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {_ident(restore)}")
        _content, restore_dir, _previous_dir, partial = self._dirs(ctx)
        for path in (partial, restore_dir):
            if path.is_symlink():
                path.unlink()
            elif path.exists():
                shutil.rmtree(path)

    # -------------------------------------------------------------- swap

    @staticmethod
    def _tables(cur: Cursor, schema: str) -> list[str]:
        """The schema's tables, views left out (RENAME TABLE cannot move a view across
        schemas: `_move_views` recreates them)."""
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME",
            (schema,),
        )
        return [str(row[0]) for row in cur.fetchall()]

    @staticmethod
    def _views(cur: Cursor, schema: str) -> list[tuple[str, str, str, str]]:
        cur.execute(
            "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, SECURITY_TYPE "
            "FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
            (schema,),
        )
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in cur.fetchall()]

    def _move_views(
        self, cur: Cursor, ctx: SiteContext, source: str, target: str, *, replace: bool
    ) -> None:
        """Recreate the views of `source` in `target`, references to `source` re-pointed to
        `target`, then drop them from `source`; one `target` already has is kept unless
        `replace` (so a re-run after a crash does not overwrite what it moved)."""
        views = self._views(cur, source)
        if not views:
            return
        cur.execute(
            f"CREATE DATABASE IF NOT EXISTS {_ident(target)} "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        there = {name for name, *_ in self._views(cur, target)}
        names = self.names(ctx)
        # The tenant's user is the definer whatever the dump said: a view never runs with
        # root's rights. The definition is tenant data: sent as is, no %-formatting.
        definer = f"{_ident(names.db_user)}@'127.0.0.1'"
        # A view built on another is checked with its definer's rights: lent on the parked
        # copy (the tenant's own data) while the views are made.
        lent = target != names.db_name
        if lent:
            grant = _ident(target.replace("_", "\\_"))
            cur.execute(f"GRANT ALL PRIVILEGES ON {grant}.* TO {definer}")
        try:
            self._create_views(cur, target, source, definer, views, there, replace)
        finally:
            if lent:
                self._revoke(target, names.db_user)
        for name, *_ in views:
            cur.execute(f"DROP VIEW IF EXISTS {_ident(source)}.{_ident(name)}")

    @staticmethod
    def _create_views(
        cur: Cursor,
        target: str,
        source: str,
        definer: str,
        views: list[tuple[str, str, str, str]],
        there: set[str],
        replace: bool,
    ) -> None:
        pending = [v for v in views if replace or v[0] not in there]
        while pending:  # a view built on another view waits for it: passes until none left
            failed: list[tuple[str, str, str, str]] = []
            error: MySQLError | None = None
            for view in pending:
                name, definition, check, security = view
                body = definition.replace(f"{_ident(source)}.", f"{_ident(target)}.")
                option = f" WITH {check} CHECK OPTION" if check in ("CASCADED", "LOCAL") else ""
                invoker = "INVOKER" if security == "INVOKER" else "DEFINER"
                try:
                    cur.execute(
                        f"CREATE OR REPLACE DEFINER = {definer} SQL SECURITY {invoker} "
                        f"VIEW {_ident(target)}.{_ident(name)} AS {body}{option}"
                    )
                except MySQLError as exc:
                    failed.append(view)
                    error = exc
            if len(failed) == len(pending):
                raise StackError(f"the view {failed[0][0]} cannot be made in {target}: {error}")
            pending = failed

    def swap(self, ctx: SiteContext, scope: CopyScope = ALL) -> None:
        """Live -> previous, staged -> live: the database in one RENAME TABLE, then the files
        (a re-run after a crash in between finishes what is left). With `scope.tables`
        only those tables move (views stay); with `scope.files` False the files stay."""
        self._exchange(ctx, scope, undo=False)
        log.info("backup.swapped", site=ctx.site_id)

    def unswap(self, ctx: SiteContext, scope: CopyScope = ALL) -> None:
        """Previous -> live again, the restored copy back to staged (no-op without a swap);
        `scope` as the swap's."""
        self._exchange(ctx, scope, undo=True)
        log.info("backup.unswapped", site=ctx.site_id)

    def _exchange(self, ctx: SiteContext, scope: CopyScope, *, undo: bool) -> None:
        """The swap (staged -> live -> previous) or, `undo`, its reverse (previous -> live ->
        staged): the tables `scope` covers in one RENAME TABLE, the views, then wp-content."""
        live, restore, previous = self._schemas(ctx)
        content, restore_dir, previous_dir, _partial = self._dirs(ctx)
        # What takes the live copy's place, and where the live copy goes.
        incoming, outgoing = (previous, restore) if undo else (restore, previous)
        incoming_dir, outgoing_dir = (
            (previous_dir, restore_dir) if undo else (restore_dir, previous_dir)
        )
        self.stack.ensure_running()
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            arriving = self._tables(cur, incoming)
            if arriving:
                if self._tables(cur, outgoing):
                    raise StackError(
                        f"{outgoing} is not empty: cannot put the previous copy back"
                        if undo
                        else f"{outgoing} still holds the copy an earlier restore replaced: "
                        "discard it before swapping again"
                    )
                cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS {_ident(outgoing)} "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
                leaving = [t for t in self._tables(cur, live) if scope.covers(t)]
                rename_with_triggers(
                    cur, [(live, outgoing, leaving), (incoming, live, arriving)],
                    f"{_ident(self.names(ctx).db_user)}@'127.0.0.1'",
                )  # fmt: skip
            # Views follow the tables (also on a re-run cut short after the RENAME).
            if scope.tables is None and (arriving or self._views(cur, incoming)):
                self._move_views(cur, ctx, live, outgoing, replace=False)
                self._move_views(cur, ctx, incoming, live, replace=True)
            if undo:
                cur.execute(f"DROP DATABASE IF EXISTS {_ident(previous)}")  # empty by now
        if scope.files and incoming_dir.is_dir():
            if content.exists():
                if outgoing_dir.exists():
                    raise StackError(
                        f"{outgoing_dir} is in the way of putting wp-content back"
                        if undo
                        else f"{outgoing_dir} is still there: discard it before swapping again"
                    )
                content.rename(outgoing_dir)
            incoming_dir.rename(content)
            self._drop_cached_scripts()
        self.purge_page_cache(ctx)

    def _drop_cached_scripts(self) -> None:
        """A graceful PHP-FPM reload, which starts with an empty opcache: the swapped-in
        scripts have the paths of the ones they replace, and opcache would go on serving those
        for up to `revalidate_freq` + 1 s (it stats a file at most once per whole-second
        window), or for good when a restored file's mtime equals the cached one's (it compares
        whole seconds, and restic restores the backup's mtimes). It costs every site what a
        pool change already costs it: a short stall and a cold first request."""
        self.stack.phpfpm.reload()

    # -------------------------------------------------------------- fingerprint

    def fingerprint(self, ctx: SiteContext) -> Fingerprint:
        """Per table of the live schema its exact row count and CHECKSUM TABLE; per file of
        wp-content (cache directories left out) its sha256, read as root without following
        a link (the tree is the tenant's)."""
        live, _restore, _previous = self._schemas(ctx)
        content, *_ = self._dirs(ctx)
        self.stack.ensure_running()
        tables: dict[str, TablePrint] = {}
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            for table in self._tables(cur, live):
                name = f"{_ident(live)}.{_ident(table)}"
                cur.execute(f"SELECT COUNT(*) FROM {name}")
                (rows,) = cur.fetchone() or (0,)
                cur.execute(f"CHECKSUM TABLE {name}")
                found = cur.fetchone()
                checksum = int(found[1]) if found is not None and found[1] is not None else 0
                tables[table] = TablePrint(rows=int(rows), checksum=checksum)
        return Fingerprint(tables=tables, files=file_hashes(content))

    def discard_previous(self, ctx: SiteContext) -> None:
        """Drop the copy a finished restore replaced (no-op when gone)."""
        _live, _restore, previous = self._schemas(ctx)
        _content, _restore_dir, previous_dir, _partial = self._dirs(ctx)
        self.stack.ensure_running()
        with self.stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {_ident(previous)}")
        if previous_dir.is_symlink():
            previous_dir.unlink()
        elif previous_dir.exists():
            shutil.rmtree(previous_dir)

    # -------------------------------------------------------------- forget, archive

    def forget(self, tenant_id: str, backup_password: str, records: list[BackupRecord]) -> None:
        """Forget the records' snapshots and prune what only they used."""
        repo = self.repository(tenant_id, backup_password)
        if not repo.exists():
            return
        ids: list[str] = []
        for record in records:
            ids += parse_location(record.location)
        repo.forget(ids, prune=True)

    def archive(
        self, tenant_id: str, backup_password: str, record: BackupRecord
    ) -> Iterator[bytes]:
        """database.sql + wp-content/ as a .tar.gz stream, built while restic reads it."""
        repo = self.repository(tenant_id, backup_password)
        parts = self._parts(repo, record)
        return _archive_stream(repo, parts)


class _Stopped(Exception):
    """The archive's reader went away."""


class _QueueWriter(io.RawIOBase):
    """A write-only file whose bytes go, in chunks, to a bounded queue."""

    def __init__(
        self, out: queue.Queue[bytes | BaseException | None], stop: threading.Event
    ) -> None:
        super().__init__()
        self._out, self._stop, self._buffer = out, stop, bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            self.flush_chunk()
        return len(data)

    def flush_chunk(self) -> None:
        """Hand what is buffered to the reader (waits while the queue is full)."""
        if not self._buffer:
            return
        chunk, self._buffer = bytes(self._buffer), bytearray()
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                self._out.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue


def _snapshot_time(text: str) -> datetime:
    """restic's RFC 3339 time (nanoseconds) as a datetime (microseconds)."""
    match = re.fullmatch(r"(.+?:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        return datetime.fromisoformat(text)
    base, fraction, zone = match.groups()
    micro = f".{fraction[:6]}" if fraction else ""
    return datetime.fromisoformat(base + micro + ("+00:00" if zone == "Z" else zone))


def _archive_stream(repo: Restic, parts: Parts) -> Iterator[bytes]:
    out: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()
    writer = _QueueWriter(out, stop)
    when = _snapshot_time(parts.database.time)

    def produce() -> None:
        try:
            with tarfile.open(fileobj=writer, mode="w|gz") as archive:
                info = tarfile.TarInfo(DUMP_NAME)
                info.size = int(parts.database.tag_value(TAG_SIZE) or 0)
                info.mode, info.mtime = 0o600, int(when.timestamp())
                with repo.dump(parts.database.id, f"/{DUMP_NAME}") as stream:
                    archive.addfile(info, stream)
                top = tarfile.TarInfo(CONTENT)
                top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, int(when.timestamp())
                archive.addfile(top)
                with (
                    repo.dump(parts.files.id, f"/{CONTENT}") as stream,
                    tarfile.open(fileobj=stream, mode="r|") as source,
                ):
                    for member in source:
                        archive.addfile(
                            member, source.extractfile(member) if member.isreg() else None
                        )
            writer.flush_chunk()
            out.put(None)
        except _Stopped:
            return
        except BaseException as exc:  # handed to the reader, raised there
            out.put(exc)

    thread = threading.Thread(target=produce, daemon=True, name="backup-archive")
    thread.start()
    try:
        while True:
            item = out.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)
