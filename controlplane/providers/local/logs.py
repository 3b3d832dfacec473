"""Site logs on one machine: nginx's JSON access log and error log, and the PHP error log."""

from __future__ import annotations

import heapq
import json
import os
import re
import stat
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from controlplane.diagnosis import SiteEvidence
from controlplane.engine.provider import SiteContext
from controlplane.observability import (
    LogEntry,
    LogQuery,
    MetricsRead,
    matches,
    metrics_from_access,
)
from controlplane.providers.local.base import LocalStep

TAIL_BYTES = 16 * 1024 * 1024
READ_BLOCK = 64 * 1024
_NGINX_ERROR = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*)$")
_NGINX_REQUEST = re.compile(r'request: "(\w+) (\S+)')
_PHP_ERROR = re.compile(r"^\[(\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d) ([^\]]+)\] (.*)$")
_NGINX_LEVELS = {
    "debug": "DEBUG", "info": "INFO", "notice": "NOTICE", "warn": "WARNING",
    "error": "ERROR", "crit": "CRITICAL", "alert": "CRITICAL", "emerg": "CRITICAL",
}  # fmt: skip


def open_regular(path: Path, trusted_parent: Path | None = None) -> int | None:
    """Open a log file for reading without following links, FIFOs or devices.

    Path components below `trusted_parent` may be controlled by a site's user (its `logs/`
    directory), so each is opened with O_NOFOLLOW relative to the previous one.
    """
    parent = trusted_parent or path.parent
    parts = path.relative_to(parent).parts
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], flags, dir_fd=fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        return None
    return file_fd


def tail_lines(
    path: Path, max_bytes: int = TAIL_BYTES, trusted_parent: Path | None = None
) -> list[str]:
    """The last lines of a regular file (at most `max_bytes`, from a line boundary)."""
    fd = open_regular(path, trusted_parent)
    if fd is None:
        return []
    with os.fdopen(fd, "rb") as handle:
        size = handle.seek(0, 2)
        start = max(0, size - max_bytes)
        handle.seek(start)
        data = handle.read(max_bytes)
    if start:
        data = data.split(b"\n", 1)[-1]
    return data.decode("utf-8", errors="replace").splitlines()


@dataclass
class ReadBudget:
    """Bytes one request may still read, shared by every file it reads."""

    limit: int
    used: int = 0

    def take(self, wanted: int) -> int:
        """Grant up to `wanted` bytes (0 once spent)."""
        granted = max(0, min(wanted, self.limit - self.used))
        self.used += granted
        return granted

    @property
    def spent(self) -> bool:
        """Whether nothing is left."""
        return self.used >= self.limit


def reverse_lines(
    path: Path,
    budget: ReadBudget,
    trusted_parent: Path | None = None,
    block: int = READ_BLOCK,
) -> Iterator[str]:
    """A regular file's lines from the last to the first, read backwards in blocks, until
    the start of the file or the end of `budget` (a line cut by the budget is dropped)."""
    fd = open_regular(path, trusted_parent)
    if fd is None:
        return
    with os.fdopen(fd, "rb") as handle:
        position = handle.seek(0, 2)  # what is appended while we read is not read
        partial = b""
        while position > 0:
            size = budget.take(min(block, position))
            if size == 0:
                return
            position -= size
            handle.seek(position)
            lines = (handle.read(size) + partial).split(b"\n")
            partial = lines[0]
            for line in reversed(lines[1:]):
                if line:
                    yield line.rstrip(b"\r").decode("utf-8", errors="replace")
        if partial:
            yield partial.rstrip(b"\r").decode("utf-8", errors="replace")


def access_severity(status: int) -> str:
    """5xx: ERROR, 4xx: WARNING, else INFO."""
    return "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"


def parse_access(lines: Iterable[str]) -> Generator[LogEntry]:
    """nginx `aipress_json` lines."""
    for line in lines:
        try:
            record = json.loads(line)
            status = int(record["status"])
            latency = float(record.get("request_time") or 0) * 1000
            yield LogEntry(
                time=datetime.fromisoformat(record["time"]),
                source="access",
                severity=access_severity(status),
                message=f"{record['method']} {record['uri']} {status} {latency:.0f} ms",
                method=record["method"],
                path=record["uri"],
                status=status,
                latency_ms=round(latency, 3),
                bytes=int(record.get("bytes") or 0),
                cache=record.get("cache") or None,
            )
        except (ValueError, KeyError, TypeError):
            continue


def parse_nginx_errors(lines: Iterable[str]) -> Generator[LogEntry]:
    """nginx error-log lines (times are in the machine's local zone)."""
    for line in lines:
        match = _NGINX_ERROR.match(line)
        if not match:
            continue
        try:
            when = _nginx_time(match.group(1))
        except ValueError:
            continue
        request = _NGINX_REQUEST.search(match.group(3))
        yield LogEntry(
            time=when,
            source="server",
            severity=_NGINX_LEVELS.get(match.group(2), "ERROR"),
            message=match.group(3),
            method=request.group(1) if request else None,
            path=request.group(2) if request else None,
        )


def php_severity(message: str) -> str:
    """PHP's own label: Fatal/Parse -> CRITICAL, Warning -> WARNING, Notice/Deprecated -> NOTICE."""
    lowered = message.lower()
    if "fatal error" in lowered or "parse error" in lowered:
        return "CRITICAL"
    if "warning" in lowered:
        return "WARNING"
    if "notice" in lowered or "deprecated" in lowered:
        return "NOTICE"
    return "ERROR"


_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
)}  # fmt: skip


# Sliced by hand: strptime was most of a read's CPU. Cached: a busy log repeats each stamp.
@lru_cache(maxsize=4096)
def _nginx_time(stamp: str) -> datetime:
    """ "2026/12/01 10:00:00" in the machine's zone, as UTC."""
    if len(stamp) != 19 or stamp[4] != "/" or stamp[7] != "/" or stamp[10] != " ":
        raise ValueError(f"not an nginx time: {stamp!r}")
    when = datetime(int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]),
                    int(stamp[11:13]), int(stamp[14:16]), int(stamp[17:19]))  # fmt: skip
    return when.astimezone(UTC)


@lru_cache(maxsize=4096)
def _php_time(stamp: str, zone_name: str) -> datetime:
    """ "01-Dec-2026 10:00:00" in `zone_name` (UTC if unknown), as UTC."""
    try:
        zone = ZoneInfo(zone_name)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    if len(stamp) != 20 or stamp[2] != "-" or stamp[6] != "-" or stamp[11] != " ":
        raise ValueError(f"not a PHP time: {stamp!r}")
    month = _MONTHS.get(stamp[3:6])
    if month is None:
        raise ValueError(f"not a PHP time: {stamp!r}")
    day, year = int(stamp[0:2]), int(stamp[7:11])
    hour, minute, second = int(stamp[12:14]), int(stamp[15:17]), int(stamp[18:20])
    when = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    return when.astimezone(UTC)


def _php_entry(match: re.Match[str], trace: list[str]) -> LogEntry | None:
    try:
        when = _php_time(match.group(1), match.group(2))
    except ValueError:
        return None
    severity = php_severity(match.group(3))
    message = "\n".join([match.group(3), *trace])
    return LogEntry(time=when, source="php", severity=severity, message=message)


def parse_php_errors(lines: Iterable[str]) -> Generator[LogEntry]:
    """PHP error-log entries; stack-trace lines are joined to their entry."""
    header: re.Match[str] | None = None
    trace: list[str] = []
    for line in lines:
        match = _PHP_ERROR.match(line)
        if match:
            if header is not None and (entry := _php_entry(header, trace)) is not None:
                yield entry
            header, trace = match, []
        elif header is not None and line.strip():
            trace.append(line)
    if header is not None and (entry := _php_entry(header, trace)) is not None:
        yield entry


def parse_php_errors_reversed(lines: Iterable[str]) -> Generator[LogEntry]:
    """PHP error-log entries from lines read last to first (newest entry first)."""
    trace: list[str] = []
    for line in lines:
        match = _PHP_ERROR.match(line)
        if match:
            if (entry := _php_entry(match, trace[::-1])) is not None:
                yield entry
            trace = []
        elif line.strip():
            trace.append(line)
    # Lines before the first entry that was read belong to an entry cut off: dropped.


class LocalLogs(LocalStep):
    """Reads the three log files of a site."""

    def _paths(self, ctx: SiteContext) -> tuple[Path, Path, Path]:
        names = self.names(ctx)
        log_dir = self.stack.nginx.log_dir
        return (
            log_dir / f"{names.key}.access.json",
            log_dir / f"{names.key}.error.log",
            names.root / "logs" / "php-error.log",
        )

    def read_logs(self, ctx: SiteContext, query: LogQuery) -> tuple[list[LogEntry], bool]:
        """Matching entries, newest first, and whether more may match than were returned.

        Each file is read once, backwards from its end, and the three are merged newest
        first: the read stops at `limit` matches, at entries older than `since`, or when the
        request's byte budget (`log_read_budget_bytes`, shared by the files) is spent.
        """
        budget = ReadBudget(self.settings.log_read_budget_bytes)
        found, cut = scan_logs(self._paths(ctx), query, budget)
        return found, cut

    def metrics(self, ctx: SiteContext, since: datetime, until: datetime) -> MetricsRead:
        """Request figures from the access log (read backwards to `since`, at most 16 MB)."""
        access, _server, _php = self._paths(ctx)
        with closing(parse_access(reverse_lines(access, ReadBudget(TAIL_BYTES)))) as entries:
            window = []
            for entry in entries:
                if entry.time < since:
                    break
                window.append(entry)
        return metrics_from_access(ctx.site_name, window, since, until)

    def evidence(self, ctx: SiteContext, since: datetime, until: datetime) -> SiteEvidence:
        """The diagnosis's evidence (`diagnosis.py`), read under one byte budget."""
        from controlplane.providers.local.diagnosis import LocalDiagnosis

        access, _server, php = self._paths(ctx)
        return LocalDiagnosis(self.stack, self.settings).evidence(ctx, since, until, access, php)


def scan_logs(
    paths: tuple[Path, Path, Path], query: LogQuery, budget: ReadBudget
) -> tuple[list[LogEntry], bool]:
    """The newest `query.limit` matching entries of (access, server, php) logs, and whether
    the limit or the budget cut the search short."""
    access, server, php = paths
    streams = [
        parse_access(reverse_lines(access, budget)),
        parse_nginx_errors(reverse_lines(server, budget)),
        # The site's user owns its root's `logs/`: open it without following links.
        parse_php_errors_reversed(reverse_lines(php, budget, trusted_parent=php.parent.parent)),
    ]
    found: list[LogEntry] = []
    more = False
    try:
        for entry in heapq.merge(*streams, key=lambda e: e.time, reverse=True):
            if entry.time < query.since:
                break  # every file is in time order: the rest are older still
            if matches(entry, query):
                if len(found) == query.limit:
                    more = True
                    break
                found.append(entry)
    finally:
        for stream in streams:
            stream.close()
    found.sort(key=lambda e: e.time, reverse=True)  # stable: a file's own order is kept
    return found, more or budget.spent
