"""Where an upload lives (`<home>/imports/<operation id>/`, root's, 0700) and how the
multipart request is written there: streamed part by part, counted against the limit, never
whole in memory."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from controlplane.errors import Invalid, TooBusy, TooLarge
from controlplane.imports.checks import ARCHIVE, CONTENT_TAR, DUMP, UNPACK_FLOOR, UNPACK_RATIO

# Form field -> the file it is written to in the upload directory.
FILE_FIELDS = {"archive": ARCHIVE, "dump": DUMP, "content": CONTENT_TAR}
TEXT_FIELDS = ("old_url", "admin")
MAX_TEXT = 4096
# Multipart framing (boundaries, part headers, the text fields) beyond the files' bytes.
FRAMING_ALLOWANCE = 64 * 1024


@dataclass(frozen=True)
class UploadForm:
    """What one multipart route accepts: its file fields (field -> file name written), its
    text fields, what to tell a sender of anything else, and the setting holding its limit."""

    files: dict[str, str]
    texts: tuple[str, ...]
    hint: str
    setting: str


IMPORT_FORM = UploadForm(FILE_FIELDS, TEXT_FIELDS,
                         "send archive, or dump (and content), with old_url and admin",
                         "AIPRESS_IMPORT_MAX_BYTES")  # fmt: skip
SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
SPACE_MARGIN = 512 * 1024 * 1024  # left free for the databases and logs beside the imports


def imports_root(home: Path) -> Path:
    """`<home>/imports`, made root-only if missing."""
    root = home / "imports"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.chmod(0o700)
    return root


def upload_dir(home: Path, operation_id: str) -> Path:
    """The directory of the import operation `operation_id`'s upload."""
    if not SAFE_ID.fullmatch(operation_id):
        raise ValueError(f"not an operation id: {operation_id!r}")
    return imports_root(home) / operation_id


@contextlib.contextmanager
def tenant_slot(home: Path, tenant_id: str) -> Iterator[None]:
    """Hold the tenant's one upload slot (an exclusive lock on a file, released however the
    request ends): a tenant cannot have the control plane unpack several uploads at once."""
    if not SAFE_ID.fullmatch(tenant_id):
        raise Invalid(f"{tenant_id!r} is not a tenant id")
    slots = home / "import-slots"  # beside imports/, which holds uploads only
    slots.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(slots / tenant_id, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TooBusy(f"another import of tenant {tenant_id} is being uploaded or checked; "
                          "send this one when it is done", retry_after=30) from None  # fmt: skip
        yield
    finally:
        os.close(fd)  # closing releases the lock


def check_space(home: Path, declared: int | None, settings_limit: int, unpacked: int) -> None:
    """TooBusy unless the platform's disk has room for the upload and what it may unpack to
    (with a margin for everything else on it), before a byte is read."""
    upload = declared if declared is not None else settings_limit
    needed = upload + min(unpacked, max(UNPACK_FLOOR, UNPACK_RATIO * upload)) + SPACE_MARGIN
    free = shutil.disk_usage(imports_root(home)).free
    if free < needed:
        raise TooBusy(f"the platform has {free >> 20} MiB of disk free and this import may "
                      f"need {needed >> 20} MiB; try again later or send a smaller export",
                      retry_after=300)  # fmt: skip


def new_incoming(home: Path) -> Path:
    """A fresh root-only directory an upload is written to before its operation exists."""
    path = imports_root(home) / f".incoming-{secrets.token_hex(8)}"
    path.mkdir(mode=0o700)
    return path


def discard(path: Path) -> None:
    """Remove an upload directory (no-op when gone)."""
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class ReceivedForm:
    """The text fields of the form, and the file fields written to the directory."""

    fields: dict[str, str] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)


class _Receiver:
    """python-multipart callbacks that write each file part to its file as it arrives."""

    def __init__(self, directory: Path, limit: int, spec: UploadForm) -> None:
        self.directory, self.limit, self.form = directory, limit, ReceivedForm()
        self.spec = spec
        self.file_bytes = 0
        self._name, self._value = b"", b""
        self._disposition = b""
        self._field: str | None = None
        self._text = bytearray()
        self._out: IO[bytes] | None = None

    def on_part_begin(self) -> None:
        self._disposition, self._field, self._text = b"", None, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if self._name.lower() == b"content-disposition":
            self._disposition = self._value
        self._name, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _kind, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode(errors="replace")
        if name not in self.spec.files and name not in self.spec.texts:
            raise Invalid(f"unknown form field {name!r}: {self.spec.hint}")
        if name in self.form.fields or name in self.form.files:
            raise Invalid(f"the form field {name!r} was sent twice")
        self._field = name
        if name in self.spec.files:
            fd = os.open(
                self.directory / self.spec.files[name],
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                0o600,
            )
            self._out = os.fdopen(fd, "wb")
            self.form.files.add(name)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._out is not None:
            self.file_bytes += len(chunk)
            if self.file_bytes > self.limit:
                raise TooLarge(
                    f"the upload is larger than {self.limit} bytes ({self.spec.setting}): "
                    "send a smaller one, or raise the limit"
                )
            self._out.write(chunk)
            return
        self._text += chunk
        if len(self._text) > MAX_TEXT:
            raise Invalid(f"the form field {self._field!r} is longer than {MAX_TEXT} bytes")

    def on_part_end(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        elif self._field is not None:
            self.form.fields[self._field] = self._text.decode(errors="replace").strip()

    def close(self) -> None:
        """Close a file left open by a cut request."""
        if self._out is not None:
            self._out.close()


async def receive(
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
    directory: Path,
    *,
    limit: int,
    spec: UploadForm = IMPORT_FORM,
) -> ReceivedForm:
    """Write a multipart/form-data request's files into `directory`; TooLarge (413) past
    `limit` file bytes (told by Content-Length before any is read, when it is sent),
    Invalid (422) for a form that is not `spec`'s (the import's by default)."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise Invalid(f"send the upload as multipart/form-data ({spec.hint})")
    if (
        content_length
        and content_length.isdigit()
        and int(content_length) > limit + FRAMING_ALLOWANCE
    ):
        raise TooLarge(
            f"the upload is {content_length} bytes, more than the {limit} allowed "
            f"({spec.setting}): send a smaller one, or raise the limit"
        )
    receiver = _Receiver(directory, limit, spec)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": receiver.on_part_begin,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
        },
    )
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise Invalid(f"the multipart body cannot be read: {exc}") from exc
    finally:
        receiver.close()
    return receiver.form
