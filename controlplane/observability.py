"""Site logs and metrics: the query, the entries and the figures, independent of provider."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, Field

from controlplane.engine.provider import SiteContext
from controlplane.errors import TooBusy
from controlplane.kernel import clock

if TYPE_CHECKING:
    from controlplane.diagnosis import SiteEvidence

MAX_LOG_LIMIT = 1000
_RELATIVE = re.compile(r"(\d{1,12})\s*(s|m|h|d|w)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Severity(IntEnum):
    """Log severities, ordered so a filter can ask for "this or worse"."""

    DEBUG = 10
    INFO = 20
    NOTICE = 25
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @classmethod
    def parse(cls, value: str) -> Severity:
        """Case-insensitive name ("error", "warn" too)."""
        name = value.strip().upper()
        name = {"WARN": "WARNING", "ERR": "ERROR", "CRIT": "CRITICAL", "FATAL": "CRITICAL"}.get(
            name, name
        )
        try:
            return cls[name]
        except KeyError as exc:
            raise ValueError(
                f"severity {value!r} is unknown; use one of "
                + ", ".join(s.name.lower() for s in cls)
            ) from exc


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time, or a time ago such as "15m", "2h", "1d" (relative to now)."""
    now = now or clock.now()
    text = value.strip()
    match = _RELATIVE.fullmatch(text)
    if match:
        try:
            return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        except OverflowError as exc:  # before year 1 (or past timedelta's range)
            raise ValueError(
                f"time {value!r} reaches back past year 1; use a shorter duration (e.g. 30d)"
            ) from exc
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"time {value!r} is neither ISO 8601 (2026-11-22T10:00:00Z) "
            "nor a duration ago (15m, 2h, 1d)"
        ) from exc
    try:
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        raise ValueError(
            f"time {value!r} is out of range; use a time between the years 1 and 9999 (UTC)"
        ) from exc


@lru_cache(maxsize=64)  # called for every log entry a query filters
def status_matcher(value: str) -> tuple[int, int]:
    """ "404" -> (404, 404); "5xx" -> (500, 599)."""
    text = value.strip().lower()
    if re.fullmatch(r"[1-5]xx", text):
        base = int(text[0]) * 100
        return base, base + 99
    if re.fullmatch(r"[1-5]\d\d", text):
        return int(text), int(text)
    raise ValueError(f"status {value!r} must be a code (404) or a class (5xx)")


class LogQuery(BaseModel):
    """Filters of a log search; entries come back newest first."""

    since: datetime
    until: datetime
    severity: Severity | None = None
    status: str | None = None
    path: str | None = None
    text: str | None = None
    limit: int = Field(default=100, ge=1, le=MAX_LOG_LIMIT)


class LogEntry(BaseModel):
    """One log line of a site."""

    time: datetime
    source: str = Field(description="access (HTTP requests), server (web server), php (PHP errors)")
    severity: str
    message: str
    method: str | None = None
    path: str | None = None
    status: int | None = None
    latency_ms: float | None = None
    bytes: int | None = None
    cache: str | None = Field(default=None, description="Page cache: HIT, MISS, BYPASS...")


class LogsRead(BaseModel):
    """The answer to a log search."""

    site: str
    since: datetime
    until: datetime
    entries: list[LogEntry]
    truncated: bool = Field(
        description="More entries may match: the limit, or the request's read budget on a "
        "large log, ended the search; narrow since/until or the filters to see older ones"
    )


class LatencyRead(BaseModel):
    """Request latency percentiles in milliseconds."""

    p50: float | None
    p95: float | None
    p99: float | None


class MetricsRead(BaseModel):
    """Request figures of a site over a window."""

    site: str
    since: datetime
    until: datetime
    requests: int
    requests_per_minute: float
    errors: int = Field(description="Responses with status 5xx")
    client_errors: int = Field(description="Responses with status 4xx")
    error_rate: float = Field(description="errors / requests")
    latency_ms: LatencyRead
    bytes_sent: int
    busy_seconds: float = Field(
        default=0.0, description="Sum of request latencies: time spent serving requests"
    )
    cache_hit_ratio: float | None
    status_counts: dict[str, int]
    instances: int | None = Field(
        default=None, description="Most instances serving at once (Cloud Run); None locally"
    )


class SiteLogs(Protocol):
    """Reads a site's logs and derives its request metrics."""

    def read_logs(self, ctx: SiteContext, query: LogQuery) -> tuple[list[LogEntry], bool]:
        """Matching entries, newest first, and whether more matched than the limit."""
        ...

    def metrics(self, ctx: SiteContext, since: datetime, until: datetime) -> MetricsRead:
        """Figures over [since, until]."""
        ...

    def evidence(self, ctx: SiteContext, since: datetime, until: datetime) -> SiteEvidence:
        """What a diagnosis reads over [since, until] (requests, PHP errors, slow requests,
        pool saturation, slow queries), each read bounded."""
        ...


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def metrics_from_access(
    site: str, entries: list[LogEntry], since: datetime, until: datetime
) -> MetricsRead:
    """Metrics computed from access-log entries inside the window."""
    window = [e for e in entries if e.source == "access" and since <= e.time <= until]
    statuses = [e.status or 0 for e in window]
    latencies = sorted(e.latency_ms for e in window if e.latency_ms is not None)
    counts: dict[str, int] = {}
    for status in statuses:
        key = f"{status // 100}xx"
        counts[key] = counts.get(key, 0) + 1
    errors = sum(1 for s in statuses if s >= 500)
    cacheable = [e for e in window if e.cache in ("HIT", "MISS", "EXPIRED", "STALE", "UPDATING")]
    hits = sum(1 for e in cacheable if e.cache == "HIT")
    minutes = max((until - since).total_seconds() / 60, 1 / 60)
    return MetricsRead(
        site=site,
        since=since,
        until=until,
        requests=len(window),
        requests_per_minute=round(len(window) / minutes, 3),
        errors=errors,
        client_errors=sum(1 for s in statuses if 400 <= s < 500),
        error_rate=round(errors / len(window), 4) if window else 0.0,
        latency_ms=LatencyRead(
            p50=percentile(latencies, 0.50),
            p95=percentile(latencies, 0.95),
            p99=percentile(latencies, 0.99),
        ),
        bytes_sent=sum(e.bytes or 0 for e in window),
        busy_seconds=round(sum(latencies) / 1000, 3),
        cache_hit_ratio=round(hits / len(cacheable), 4) if cacheable else None,
        status_counts=dict(sorted(counts.items())),
    )


def matches(entry: LogEntry, query: LogQuery) -> bool:
    """Whether an entry passes every filter of the query."""
    if not (query.since <= entry.time <= query.until):
        return False
    if query.severity is not None and Severity.parse(entry.severity) < query.severity:
        return False
    if query.status is not None:
        low, high = status_matcher(query.status)
        if entry.status is None or not (low <= entry.status <= high):
            return False
    if query.path is not None and not (entry.path or "").startswith(query.path):
        return False
    return query.text is None or query.text.lower() in entry.message.lower()


class CallerSlots:
    """At most `per_caller` requests of one caller at once; past it, TooBusy (429)."""

    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}

    @contextmanager
    def hold(self, caller: str) -> Iterator[None]:
        """Take one of the caller's slots for the duration of the block."""
        with self._lock:
            running = self._active.get(caller, 0)
            if running >= self.per_caller:
                raise TooBusy(
                    f"you already have {running} log or metric reads running; wait for them "
                    "to finish (or narrow since/until and filters so each ends sooner)"
                )
            self._active[caller] = running + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._active.pop(caller) - 1
                if left:
                    self._active[caller] = left
