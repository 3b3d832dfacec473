"""A local site's diagnosis evidence: its access and PHP logs, its pool's slow log and status,
and the slow queries MariaDB recorded for its schema."""

from __future__ import annotations

import json
import re
import socket
import struct
from collections.abc import Generator, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymysql

from controlplane.diagnosis import PoolSaturation, SiteEvidence, SlowQuery, SlowRequest, redact_sql
from controlplane.engine.provider import SiteContext
from controlplane.observability import LogEntry
from controlplane.providers.local.base import LocalStep
from controlplane.providers.local.logs import (
    _MONTHS,
    ReadBudget,
    parse_access,
    parse_php_errors_reversed,
    reverse_lines,
)

MAX_SLOW = 50  # slow-log entries and slow queries kept per read
STATUS_PATH = "/aipress-fpm-status"  # the pools' pm.status_path (pool.conf.j2)
_SLOW_HEADER = re.compile(r"^\[(\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d)\]\s+\[pool (\S+)\] pid \d+$")
_SLOW_FRAME = re.compile(r"^\[0x[0-9a-f]+\] (.+)$")


def _fpm_time(stamp: str) -> datetime:
    """ "02-Dec-2026 03:50:01" in the machine's zone (php-fpm's own), as UTC."""
    day, month, rest = stamp.split("-", 2)
    year, clock_time = rest.split(" ")
    hour, minute, second = (int(x) for x in clock_time.split(":"))
    local = datetime(int(year), _MONTHS[month], int(day), hour, minute, second)
    return local.astimezone(UTC)


def parse_slowlog_reversed(lines: Iterator[str], pool: str, root: str) -> Generator[SlowRequest]:
    """Slow-log entries of `pool` from lines read last to first (newest entry first), file
    paths shown from the site's root (`root`, which ends in a slash) on."""
    body: list[str] = []
    for line in lines:
        header = _SLOW_HEADER.match(line)
        if header is None:
            body.append(line)
            continue
        body.reverse()
        script = next(
            (b.split("=", 1)[1].strip() for b in body if b.startswith("script_filename")), ""
        )
        trace = [m.group(1) for b in body if (m := _SLOW_FRAME.match(b))]
        body = []
        if header.group(2) != pool:
            continue
        try:
            when = _fpm_time(header.group(1))
        except (ValueError, KeyError):
            continue
        yield SlowRequest(
            time=when,
            script=script.removeprefix(root),
            trace=[t.replace(root, "") for t in trace[:20]],
        )


def _record(kind: int, request_id: int, content: bytes) -> bytes:
    return struct.pack("!BBHHBx", 1, kind, request_id, len(content), 0) + content


def _pair(name: bytes, value: bytes) -> bytes:
    def size(n: int) -> bytes:
        return bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)

    return size(len(name)) + size(len(value)) + name + value


def fastcgi_get(sock_path: Path, script: str, query: str = "", timeout: float = 3) -> bytes:
    """The body of a FastCGI GET of `script` on a PHP-FPM socket (root reads any pool's)."""
    params = b"".join(
        _pair(k.encode(), v.encode())
        for k, v in {
            "REQUEST_METHOD": "GET", "SCRIPT_NAME": script, "SCRIPT_FILENAME": script,
            "REQUEST_URI": script, "QUERY_STRING": query, "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }.items()
    )  # fmt: skip
    message = (
        _record(1, 1, struct.pack("!HB5x", 1, 0))  # BEGIN_REQUEST, role responder
        + _record(4, 1, params)
        + _record(4, 1, b"")
        + _record(5, 1, b"")
    )
    out = bytearray()
    with closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as conn:
        conn.settimeout(timeout)
        conn.connect(str(sock_path))
        conn.sendall(message)
        buffer = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            buffer += chunk
            while len(buffer) >= 8:
                _v, kind, _id, length, padding = struct.unpack("!BBHHB", buffer[:7])
                if len(buffer) < 8 + length + padding:
                    break
                if kind == 6:  # STDOUT
                    out += buffer[8 : 8 + length]
                buffer = buffer[8 + length + padding :]
                if kind == 3:  # END_REQUEST
                    return bytes(out.split(b"\r\n\r\n", 1)[-1])
            if len(out) > 1 << 20:
                break
    return bytes(out.split(b"\r\n\r\n", 1)[-1])


class LocalDiagnosis(LocalStep):
    """Reads the evidence of one site, each file bounded by the request's byte budget."""

    def evidence(
        self, ctx: SiteContext, since: datetime, until: datetime, access: Path, php: Path
    ) -> SiteEvidence:
        """Requests and PHP errors since `since`, slow-log entries, pool status, slow queries."""
        budget = ReadBudget(self.settings.log_read_budget_bytes)
        requests = _since(parse_access(reverse_lines(access, budget)), since)
        php_entries = _since(
            parse_php_errors_reversed(reverse_lines(php, budget, trusted_parent=php.parent.parent)),
            since,
        )
        pool = self.names(ctx).system_user
        slowlog = self.stack.phpfpm.slowlog(pool)
        slow: list[SlowRequest] = []
        with closing(
            parse_slowlog_reversed(reverse_lines(slowlog, budget), pool, f"{self.names(ctx).root}/")
        ) as entries:
            for entry in entries:
                if entry.time < since or len(slow) == MAX_SLOW:
                    break
                slow.append(entry)
        unavailable: list[str] = []
        saturation = self._saturation(pool, unavailable)
        queries = self._slow_queries(self.names(ctx).db_name, since, until, unavailable)
        return SiteEvidence(
            requests=[e for e in requests if e.time <= until],
            php=[e for e in php_entries if e.time <= until],
            slow_requests=[s for s in slow if s.time <= until],
            saturation=saturation,
            slow_queries=queries,
            truncated=budget.spent,
            unavailable=unavailable,
        )

    def _saturation(self, pool: str, unavailable: list[str]) -> PoolSaturation | None:
        """The pool's status page: times max_children was reached since the pool started."""
        try:
            raw = fastcgi_get(self.stack.phpfpm.socket(pool), STATUS_PATH, "json")
            status = json.loads(raw)
        except (OSError, ValueError):
            unavailable.append("pool status (the pool did not answer)")
            return None
        started = datetime.fromtimestamp(int(status.get("start time", 0)), UTC)
        return PoolSaturation(
            max_children=self.settings.php_max_children,
            reached=int(status.get("max children reached", 0)),
            last=None,
            counted_since=started,
        )

    def _slow_queries(
        self, schema: str, since: datetime, until: datetime, unavailable: list[str]
    ) -> list[SlowQuery]:
        """MariaDB's slow log (a table) filtered to the site's schema, newest first."""
        try:
            with closing(self.stack.mariadb.connect()) as conn, conn.cursor() as cursor:
                cursor.execute("SET time_zone = '+00:00'")
                cursor.execute(
                    "SELECT start_time, query_time, rows_examined, LEFT(sql_text, 4000) "
                    "FROM mysql.slow_log WHERE db = %s AND start_time BETWEEN %s AND %s "
                    "ORDER BY start_time DESC LIMIT %s",
                    (schema, since.replace(tzinfo=None), until.replace(tzinfo=None), MAX_SLOW),
                )
                rows = cursor.fetchall()
        except pymysql.MySQLError:
            unavailable.append("slow queries (MariaDB did not answer)")
            return []
        return [
            SlowQuery(
                time=start.replace(tzinfo=UTC),
                seconds=round(_seconds(took), 3),
                rows_examined=int(examined),
                query=redact_sql(text.decode() if isinstance(text, bytes) else str(text)),
            )
            for start, took, examined, text in rows
        ]


def _seconds(value: object) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(str(value))


def _since(entries: Generator[LogEntry], since: datetime) -> list[LogEntry]:
    """Entries of a newest-first stream down to `since`."""
    found = []
    with closing(entries):
        for entry in entries:
            if entry.time < since:
                break
            found.append(entry)
    return found
