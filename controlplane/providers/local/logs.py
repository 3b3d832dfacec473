"""Site logs on one machine: nginx's JSON access log and error log, and the PHP error log."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

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


def access_severity(status: int) -> str:
    """5xx: ERROR, 4xx: WARNING, else INFO."""
    return "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"


def parse_access(lines: list[str]) -> Iterator[LogEntry]:
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


def parse_nginx_errors(lines: list[str]) -> Iterator[LogEntry]:
    """nginx error-log lines (times are in the machine's local zone)."""
    for line in lines:
        match = _NGINX_ERROR.match(line)
        if not match:
            continue
        when = datetime.strptime(match.group(1), "%Y/%m/%d %H:%M:%S").astimezone(UTC)
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


def parse_php_errors(lines: list[str]) -> Iterator[LogEntry]:
    """PHP error-log entries; stack-trace lines are joined to their entry."""
    current: LogEntry | None = None
    for line in lines:
        match = _PHP_ERROR.match(line)
        if match:
            if current is not None:
                yield current
            try:
                zone = ZoneInfo(match.group(2))
            except (KeyError, ValueError):
                zone = ZoneInfo("UTC")
            when = datetime.strptime(match.group(1), "%d-%b-%Y %H:%M:%S").replace(tzinfo=zone)
            message = match.group(3)
            current = LogEntry(
                time=when.astimezone(UTC),
                source="php",
                severity=php_severity(message),
                message=message,
            )
        elif current is not None and line.strip():
            current.message += "\n" + line
    if current is not None:
        yield current


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

    def _entries(self, ctx: SiteContext) -> list[LogEntry]:
        access, server, php = self._paths(ctx)
        entries = [
            *parse_access(tail_lines(access)),
            *parse_nginx_errors(tail_lines(server)),
            # The site's user owns its root's `logs/`: open it without following links.
            *parse_php_errors(tail_lines(php, trusted_parent=php.parent.parent)),
        ]
        entries.sort(key=lambda e: e.time, reverse=True)
        return entries

    def read_logs(self, ctx: SiteContext, query: LogQuery) -> tuple[list[LogEntry], bool]:
        """Matching entries, newest first, and whether the limit cut them."""
        found = [e for e in self._entries(ctx) if matches(e, query)]
        return found[: query.limit], len(found) > query.limit

    def metrics(self, ctx: SiteContext, since: datetime, until: datetime) -> MetricsRead:
        """Request figures from the access log."""
        access, _server, _php = self._paths(ctx)
        return metrics_from_access(
            ctx.site_name, list(parse_access(tail_lines(access))), since, until
        )
