"""An uploaded site staged on gcp (the import's `stage`): its dump loaded into the side schema
`<db>__restore` on Cloud SQL by a one-off database user granted that schema and nothing else
(the dump is the uploader's SQL), and the `wp-content/uploads/` members of its content
archive written into the site's bucket under `.aipress-restore/`.

The control plane has no `mariadb` client on Cloud Run, so the dump's statements are split
here (mysqldump / mariadb-dump text: `--` comments, `DELIMITER` changes, quoted `;`) and each
sent alone as bytes (pymysql sends no client command and no second statement). The upload was
checked before (controlplane.imports.checks: no links, `..`, PHP under uploads, bombs), so the
archive is read as it passed. Plugins and themes in the archive are not imported on gcp:
they are the site's code in `.aipress-code/`, installed from the catalogue.
"""

from __future__ import annotations

import re
import secrets
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from controlplane.engine.provider import BackupInvalid
from controlplane.imports.checks import CONTENT, open_dump
from controlplane.kernel.secret_record import note_secret
from controlplane.providers.gcp.database import quote

# The longest statement sent: Cloud SQL's max_allowed_packet (64 MiB) takes no more.
STATEMENT_LIMIT = 64 << 20
READ_LIMIT = 1 << 62  # the dump's size was bounded by its check
UPLOADS = f"{CONTENT}/uploads/"
# What ends a stretch: outside quotes, a quote or an escape; in '...' or "...", its quote or
# an escape; in `...`, the backtick (as backups' `_WHOLE`, which reads the whole statement).
_NEXT = {b"": re.compile(rb"['\"`\\]"), b"'": re.compile(rb"['\\]"),
         b'"': re.compile(rb'["\\]'), b"`": re.compile(rb"`")}  # fmt: skip
_DELIMITER = re.compile(rb"DELIMITER\s+(\S+)\s*$", re.IGNORECASE)


class Quotes:
    """Whether a growing statement has every quote it opens closed, each byte read once (a
    dump's string of many lines that end in `;` is not read again from its start at each)."""

    def __init__(self) -> None:
        self.open, self.pos = b"", 0  # the quote we are in ("" for none), and where we are
        self.read = 0  # bytes looked at, over every call

    def closed(self, data: bytes | bytearray, end: int) -> bool:
        """Whether every quote of `data[:end]` (what was given before, extended) is closed."""
        pos = self.pos
        while found := _NEXT[self.open].search(data, pos, end):
            at = found.start()
            if data[at] == 0x5C:  # a backslash: it escapes the next byte
                if at + 1 == end:
                    pos = at  # whose byte has not come yet: read again with the rest
                    break
                pos = at + 2
            else:
                self.open = b"" if self.open else bytes(data[at : at + 1])
                pos = at + 1
        else:
            pos = end
        self.read += pos - self.pos
        self.pos = pos
        return not self.open and pos == end


def upload_statements(stream: IO[bytes]) -> Iterator[bytes]:
    """The statements of a dump, one at a time, without their delimiter; comment lines and
    `DELIMITER` lines between statements are the client's and are dropped. BackupInvalid
    for a statement longer than STATEMENT_LIMIT or a dump that ends inside one."""
    delimiter, pending, size, line_start = b";", bytearray(), 0, True
    quotes, body_end = Quotes(), 0  # body_end: the end of what pending holds but spaces
    while chunk := stream.readline(1 << 20):
        starts_line, line_start = line_start, chunk.endswith(b"\n")
        if not pending and starts_line:
            bare = chunk.strip()
            if not bare or bare.startswith((b"--", b"#")):
                continue
            found = _DELIMITER.match(bare)
            if found:
                delimiter = found[1]
                continue
        if stripped := len(chunk.rstrip()):
            body_end = len(pending) + stripped
        pending += chunk
        size += len(chunk)
        if size > STATEMENT_LIMIT:
            raise BackupInvalid(f"the dump holds a statement over {STATEMENT_LIMIT >> 20} MiB")
        # Only the new bytes are read: a statement of many lines is not copied at each one.
        cut = body_end - len(delimiter)
        ends = line_start and cut >= 0 and pending[cut:body_end] == delimiter
        if ends and quotes.closed(pending, cut):
            statement = bytes(pending[:cut])
            if statement.strip():
                yield statement
            pending, size, quotes, body_end = bytearray(), 0, Quotes(), 0
    if bytes(pending).strip():
        raise BackupInvalid("the database dump ends inside a statement (truncated)")


def import_user(site_id: str) -> str:
    """The one-off database user of an import into this site."""
    return f"imp_{site_id[:24]}"


def drop_import_user(connect: Callable[[], Any], site_id: str) -> None:
    """The import's database user gone (no-op when it is)."""
    with connect() as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS %s@'%%'", (import_user(site_id),))
        conn.commit()


def load_dump(
    connect: Callable[[], Any],
    connect_as: Callable[[str, str], Any],
    site_id: str,
    side: str,
    dump: Path,
) -> None:
    """Run the dump's statements in `side` as a user granted `side` only, made for this
    load and dropped after it however it ends."""
    user, password = import_user(site_id), secrets.token_urlsafe(24)
    note_secret(password, "import database password")
    grant = quote(side.replace("_", "\\_"))
    with connect() as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        cur.execute(f"GRANT ALL PRIVILEGES ON {grant}.* TO %s@'%%'", (user,))
        conn.commit()
    try:
        raw, sql = open_dump(dump, READ_LIMIT)
        with raw, sql, connect_as(user, password) as conn, conn.cursor() as cur:
            cur.execute(f"USE {quote(side)}")
            for statement in upload_statements(sql):
                cur.execute(statement)
            conn.commit()
    finally:
        drop_import_user(connect, site_id)


def stage_uploads(bucket: Any, archive: Path, staged_prefix: str) -> int:
    """Every regular `wp-content/uploads/` member of the checked archive written to
    `<staged_prefix><name under uploads>` in the site's bucket; how many."""
    written = 0
    with tarfile.open(archive, mode="r|gz") as members:
        for member in members:
            name = member.name.removeprefix("./")
            if not member.isreg() or not name.startswith(UPLOADS) or name == UPLOADS:
                continue
            source = members.extractfile(member)
            assert source is not None  # a regular file
            blob = bucket.blob(staged_prefix + name[len(UPLOADS) :])
            blob.upload_from_file(source, size=member.size, rewind=False)
            written += 1
    return written
