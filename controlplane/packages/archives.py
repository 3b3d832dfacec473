"""Checks of a package zip before the catalogue keeps it or a site unpacks it: its size
(zipped and unpacked), member names that stay inside one top directory (no zip-slip, no
absolute paths, no `..`), no links or devices, and a readable WordPress header."""

from __future__ import annotations

import hashlib
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from controlplane.engine.packages import CORE_SLUG
from controlplane.kernel.vocabulary import PackageKind
from controlplane.packages.versions import VERSION_TEXT

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_MEMBERS = 20_000
# Unpacked bytes allowed per zipped byte allowed: a core zip unpacks to about 3 times its size.
UNPACK_RATIO = 5
HEADER_BYTES = 8192  # what WordPress's get_file_data() reads of a file
CORE_VERSION_FILE = "wordpress/wp-includes/version.php"
_WP_VERSION = re.compile(r"""^\$wp_version\s*=\s*['"]([^'"]+)['"]\s*;""", re.MULTILINE)


class ArchiveRefused(ValueError):
    """The zip is not a package the platform installs; the message says what is wrong."""


class ArchiveTooLarge(ArchiveRefused):
    """The zip, or what it unpacks to, is bigger than allowed (an answer of 413)."""


@dataclass(frozen=True)
class ArchiveInfo:
    """What a checked zip holds."""

    slug: str
    version: str
    name: str


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def header_field(text: str, field: str) -> str | None:
    """A header line's value as WordPress reads it (`Plugin Name: Demo` in a comment)."""
    found = re.search(
        rf"^(?:[ \t]*<\?php)?[ \t/*#@]*{re.escape(field)}:(.*)$", text, re.MULTILINE | re.IGNORECASE
    )
    if found is None:
        return None
    value = re.sub(r"\s*(?:\*/|\?>).*", "", found.group(1)).strip()
    return value or None


def _member_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The member's path parts; ArchiveRefused for a name that could land outside."""
    name = info.filename
    if "\\" in name or "\x00" in name:
        raise ArchiveRefused(f"member {name!r} has a backslash or NUL in its name")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise ArchiveRefused(f"member {name!r} has an absolute path")
    parts = PurePosixPath(name).parts
    if not parts or any(part in ("..", ".") for part in parts):
        raise ArchiveRefused(f"member {name!r} escapes the package's directory (zip-slip)")
    return parts


def _file_type(info: zipfile.ZipInfo) -> int:
    """The member's Unix file type from its external attributes (0: none recorded)."""
    return stat.S_IFMT(info.external_attr >> 16)


def _check_members(members: list[zipfile.ZipInfo], unpacked_limit: int) -> str:
    """Every member is a plain file or directory under one top directory; returns it."""
    if not members:
        raise ArchiveRefused("the zip is empty")
    if len(members) > MAX_MEMBERS:
        raise ArchiveRefused(f"the zip has {len(members)} members, more than {MAX_MEMBERS}")
    tops: set[str] = set()
    unpacked = 0
    for info in members:
        parts = _member_parts(info)
        kind = _file_type(info)
        if kind == stat.S_IFLNK:
            raise ArchiveRefused(f"member {info.filename!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveRefused(f"member {info.filename!r} is not a plain file or directory")
        if len(parts) == 1 and not info.is_dir():
            raise ArchiveRefused(
                f"member {info.filename!r} is outside a top directory: zip the package's "
                "directory (demo/demo.php), not its files"
            )
        tops.add(parts[0])
        unpacked += info.file_size
        if unpacked > unpacked_limit:
            raise ArchiveTooLarge(f"the zip unpacks to more than {unpacked_limit} bytes")
    if len(tops) != 1:
        raise ArchiveRefused(
            f"the zip has {len(tops)} top directories ({', '.join(sorted(tops)[:5])}); "
            "a package is one directory"
        )
    return tops.pop()


def _read_head(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    with archive.open(info) as handle:
        return handle.read(HEADER_BYTES).decode("utf-8", errors="replace")


def _plugin(archive: zipfile.ZipFile, top: str) -> ArchiveInfo:
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        parts = PurePosixPath(info.filename).parts
        if len(parts) == 2 and parts[1].endswith(".php") and not info.is_dir():
            head = _read_head(archive, info)
            name, version = header_field(head, "Plugin Name"), header_field(head, "Version")
            if name and version:
                return ArchiveInfo(slug=top, version=version, name=name)
    raise ArchiveRefused(
        f"no plugin header: no PHP file directly in {top}/ has 'Plugin Name:' and 'Version:'"
    )


def _theme(archive: zipfile.ZipFile, top: str) -> ArchiveInfo:
    try:
        info = archive.getinfo(f"{top}/style.css")
    except KeyError:
        raise ArchiveRefused(f"no theme header: {top}/style.css is missing") from None
    head = _read_head(archive, info)
    name, version = header_field(head, "Theme Name"), header_field(head, "Version")
    if not (name and version):
        raise ArchiveRefused(f"no theme header: {top}/style.css lacks 'Theme Name:' or 'Version:'")
    return ArchiveInfo(slug=top, version=version, name=name)


def _core(archive: zipfile.ZipFile, top: str) -> ArchiveInfo:
    if top != "wordpress":
        raise ArchiveRefused(f"a WordPress core zip has wordpress/ at the top, not {top}/")
    try:
        info = archive.getinfo(CORE_VERSION_FILE)
    except KeyError:
        raise ArchiveRefused(f"no core header: {CORE_VERSION_FILE} is missing") from None
    found = _WP_VERSION.search(_read_head(archive, info))
    if found is None:
        raise ArchiveRefused(f"no core header: {CORE_VERSION_FILE} sets no $wp_version")
    return ArchiveInfo(slug=CORE_SLUG, version=found.group(1), name="WordPress")


def inspect_archive(path: Path, kind: PackageKind, *, max_bytes: int) -> ArchiveInfo:
    """Check a package zip and read its slug, version and name; ArchiveRefused (saying what
    is wrong) for anything the platform would not unpack into a site."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ArchiveTooLarge(f"the zip is {size} bytes, more than the {max_bytes} allowed")
    if not zipfile.is_zipfile(path):
        raise ArchiveRefused("the file is not a zip archive")
    try:
        with zipfile.ZipFile(path) as archive:
            top = _check_members(archive.infolist(), max_bytes * UNPACK_RATIO)
            reader = {PackageKind.PLUGIN: _plugin, PackageKind.THEME: _theme,
                      PackageKind.CORE: _core}[kind]  # fmt: skip
            info = reader(archive, top)
    # zipfile raises NotImplementedError for a compression method it does not support.
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
        raise ArchiveRefused(f"the zip cannot be read: {exc}") from exc
    if kind is not PackageKind.CORE and not SLUG.fullmatch(info.slug):
        raise ArchiveRefused(
            f"the directory name {info.slug!r} is not a slug (lowercase letters, digits, - and _)"
        )
    if not VERSION_TEXT.fullmatch(info.version):
        raise ArchiveRefused(f"the version {info.version!r} is not a version number")
    return ArchiveInfo(slug=info.slug, version=info.version, name=info.name[:200])
