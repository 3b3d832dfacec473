"""The checks an uploaded site passes before anything changes (zip-slip, bombs, not WordPress).

An upload is a directory holding either `archive.tar.gz` (`database.sql` or
`database.sql.gz` and `wp-content/` at its top) or `dump` (a `.sql` or `.sql.gz` dump) with
an optional `content.tar.gz` (`wp-content/` at its top). Checking an archive writes its dump
beside it as `dump`, so the import reads one dump file either way.

Refused: links (symbolic or hard), absolute names, `..`, devices and other special files,
set-uid / set-gid files, anything outside `wp-content/` (and the dump), PHP files under
`wp-content/uploads/`, more unpacked bytes than the limit (a gzip bomb stops there), and a
dump that is not of one WordPress site (no `<prefix>options` and `<prefix>users` tables).
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

ARCHIVE, DUMP, CONTENT_TAR = "archive.tar.gz", "dump", "content.tar.gz"
CONTENT = "wp-content"
UPLOADS = "wp-content/uploads/"
DUMP_MEMBERS = ("database.sql", "database.sql.gz")
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
# Any name part a web server might run as PHP: x.php, x.PHTML, x.php5, x.php.jpg.
PHP_NAME = re.compile(r"\.(php\d*|phtml|phar|pht|phps|pgif)(\.|$)", re.IGNORECASE)
CREATE_TABLE = re.compile(rb"CREATE TABLE (?:IF NOT EXISTS )?`((?:[^`]|``)+)`")
SWITCHES_DATABASE = re.compile(rb"(USE\s|CREATE (DATABASE|SCHEMA)\b)", re.IGNORECASE)
PREFIX = re.compile(r"[A-Za-z0-9_]+")


class ImportRefused(ValueError):
    """An upload that cannot be imported; the message says what is wrong and what to send."""


@dataclass(frozen=True)
class CheckedUpload:
    """An upload that passed every check: where its parts are and the dump's table prefix."""

    dump: Path  # a .sql file or a gzip of one (told apart by its first bytes)
    content: Path | None  # a .tar.gz whose `wp-content/` members are the files; None: no files
    table_prefix: str


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Budget(io.RawIOBase):
    """A reader that refuses to give more than `limit` bytes in all: bounds what a
    decompressor may produce (a gzip bomb stops at the limit, not at the disk's end)."""

    def __init__(self, source: _Readable, limit: int, what: str) -> None:
        super().__init__()
        self._source, self._left, self._what = source, limit, what
        self._limit = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        self._left -= len(data)
        if self._left < 0:
            raise ImportRefused(
                f"{self._what} unpacks to more than {self._limit} bytes (the import limit, "
                "AIPRESS_IMPORT_MAX_UNPACKED_BYTES): send a smaller site"
            )
        buffer[: len(data)] = data
        return len(data)


def _gunzip(path: Path, limit: int, what: str) -> tuple[IO[bytes], IO[bytes]]:
    """(the raw file, its decompressed bytes read through a budget)."""
    raw = path.open("rb")
    budget = _Budget(gzip.GzipFile(fileobj=raw, mode="rb"), limit, what)
    return raw, io.BufferedReader(budget, CHUNK)


def is_gzip(path: Path) -> bool:
    """Whether the file starts like a gzip stream."""
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def _member_problem(member: tarfile.TarInfo, *, with_dump: bool) -> str | None:
    """Why this archive member is refused, or None."""
    name = member.name
    if name.startswith("/") or re.match(r"[A-Za-z]:[\\/]", name):
        return f"{name!r} is an absolute path"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return f"{name!r} climbs out of the archive with '..'"
    if member.issym() or member.islnk():
        return f"{name!r} is a link (to {member.linkname!r}); links are not imported"
    if not (member.isreg() or member.isdir()):
        return f"{name!r} is a device or special file"
    if member.mode & stat.S_ISUID or (member.isreg() and member.mode & stat.S_ISGID):
        return f"{name!r} has the set-uid or set-gid bit"
    clean = "/".join(p for p in parts if p != ".")
    if clean == "" and member.isdir():
        return None  # "./", the top of `tar -C dir .`
    if with_dump and clean in DUMP_MEMBERS and member.isreg():
        return None
    if clean != CONTENT and not clean.startswith(f"{CONTENT}/"):
        wanted = "database.sql (or .sql.gz) and wp-content/" if with_dump else "wp-content/"
        return f"{name!r} is outside wp-content/: the archive holds {wanted} at its top"
    if clean.lower().startswith(UPLOADS) and PHP_NAME.search(PurePosixPath(clean).name):
        return f"{name!r} is a PHP file under wp-content/uploads/; remove it (uploads hold media)"
    return None


def check_tar(path: Path, *, limit: int, dump_to: Path | None) -> None:
    """Refuse an archive with any member `_member_problem` names; with `dump_to`, the
    archive must hold the dump, which is written there."""
    what = "the archive" if dump_to is not None else "the wp-content archive"
    if not is_gzip(path):
        raise ImportRefused(f"{what} is not a .tar.gz (no gzip header)")
    raw, stream = _gunzip(path, limit, what)
    found_dump = found_content = False
    try:
        with raw, stream, tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                problem = _member_problem(member, with_dump=dump_to is not None)
                if problem is not None:
                    raise ImportRefused(f"{what} is refused: {problem}")
                clean = member.name.removeprefix("./")
                found_content = found_content or clean.split("/", 1)[0] == CONTENT
                if dump_to is not None and clean in DUMP_MEMBERS:
                    if found_dump:
                        raise ImportRefused(f"{what} holds more than one database dump")
                    found_dump = True
                    _write_member(archive, member, dump_to)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ImportRefused(f"{what} cannot be read as a .tar.gz: {exc}") from exc
    if dump_to is not None and not found_dump:
        raise ImportRefused(f"{what} holds no database.sql or database.sql.gz at its top")
    if not found_content:
        raise ImportRefused(
            f"{what} holds no wp-content/ at its top (tar czf site.tar.gz wp-content ...); "
            "to import the database alone, send it as dump"
        )


def _write_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = archive.extractfile(member)
    assert source is not None  # a regular file
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK)
    partial.chmod(0o600)
    partial.replace(target)


def open_dump(path: Path, limit: int) -> tuple[IO[bytes], IO[bytes]]:
    """(the raw file, the dump's SQL bytes), decompressed when gzipped, within the limit."""
    if is_gzip(path):
        return _gunzip(path, limit, "the dump")
    raw = path.open("rb")
    return raw, io.BufferedReader(_Budget(raw, limit, "the dump"), CHUNK)


def dump_tables(path: Path, limit: int) -> list[str]:
    """The tables the dump creates, in order; ImportRefused when it switches databases."""
    tables: list[str] = []
    raw, stream = open_dump(path, limit)
    at_line_start = True
    try:
        with raw, stream:
            # A bounded readline: one huge line (a crafted dump) never sits whole in memory.
            while chunk := stream.readline(1 << 16):
                if at_line_start:
                    if SWITCHES_DATABASE.match(chunk):
                        raise ImportRefused(
                            "the dump switches database (USE / CREATE DATABASE): dump the one "
                            "database without --databases or --all-databases"
                        )
                    found = CREATE_TABLE.match(chunk)
                    if found:
                        tables.append(found.group(1).decode(errors="replace").replace("``", "`"))
                at_line_start = chunk.endswith(b"\n")
    except (OSError, EOFError, zlib.error) as exc:
        raise ImportRefused(f"the dump cannot be read: {exc}") from exc
    return tables


def table_prefix(tables: list[str]) -> str:
    """The WordPress table prefix of a dump's tables (`foo_options` + `foo_users`: `foo_`)."""
    names = set(tables)
    prefixes = sorted(
        t.removesuffix("options")
        for t in names
        if t.endswith("options") and f"{t.removesuffix('options')}users" in names
    )
    prefixes = [p for p in prefixes if PREFIX.fullmatch(p)]
    if not prefixes:
        raise ImportRefused(
            "the dump is not of a WordPress site: it creates no <prefix>options and "
            "<prefix>users tables (send a mysqldump / mariadb-dump of the site's database)"
        )
    if len(prefixes) > 1:
        raise ImportRefused(
            f"the dump holds more than one WordPress site (prefixes {', '.join(prefixes)}): "
            "dump one site's tables"
        )
    prefix = prefixes[0]
    if f"{prefix}blogs" in names:
        raise ImportRefused("the dump is of a multisite network; import one site at a time")
    return prefix


# What an upload may unpack to beyond its own size: real dumps and sites compress 5-20x, so
# a small upload cannot make the control plane write gigabytes before a check refuses it.
UNPACK_RATIO = 50
UNPACK_FLOOR = 256 * 1024 * 1024


def unpack_limit(directory: Path, limit: int) -> int:
    """The bytes the upload in `directory` may unpack to: `limit`, or less for a small one."""
    uploaded = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    return min(limit, max(UNPACK_FLOOR, UNPACK_RATIO * uploaded))


def check_upload(directory: Path, *, limit: int) -> CheckedUpload:
    """Every check of the upload in `directory` (see the module docstring); ImportRefused
    says what is wrong. Changes nothing but writing an archive's dump to `dump`."""
    limit = unpack_limit(directory, limit)
    archive = directory / ARCHIVE
    dump = directory / DUMP
    content: Path | None
    if archive.is_file():
        check_tar(archive, limit=limit, dump_to=dump)
        content = archive
    else:
        if not dump.is_file():
            raise ImportRefused("send an archive, or a dump (and optionally a content archive)")
        content = directory / CONTENT_TAR
        if content.is_file():
            check_tar(content, limit=limit, dump_to=None)
        else:
            content = None
    return CheckedUpload(dump, content, table_prefix(dump_tables(dump, limit)))
