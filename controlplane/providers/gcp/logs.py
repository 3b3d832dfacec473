"""Logs and metrics of a Cloud Run site from Cloud Logging, behind the same API as the local
provider's. `entries.list` allows 60 calls a minute per project: every query has a time
bound, answers are cached for a short while, and the calls are counted against one budget
per project that every control-plane instance shares (`quota.py`, in the database)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from controlplane.diagnosis import PoolSaturation, SiteEvidence
from controlplane.engine.provider import SiteContext
from controlplane.observability import (
    LogEntry,
    LogQuery,
    MetricsRead,
    Severity,
    matches,
    metrics_from_access,
)
from controlplane.providers.gcp import monitoring
from controlplane.providers.gcp.base import GcpClients
from controlplane.providers.gcp.quota import SharedMinuteBudget
from controlplane.settings import Settings

CALLS_PER_MINUTE = 50  # under the project-wide 60, leaving room for the console
CACHE_SECONDS = 30.0
MAX_ENTRIES = 1000


class RateLimiter:
    """Blocks until a call is allowed (a token bucket)."""

    def __init__(self, per_minute: int) -> None:
        self.interval = 60.0 / per_minute
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        """Sleep until the next call may go."""
        with self.lock:
            now = time.monotonic()
            delay = max(0.0, self.next_at - now)
            self.next_at = max(now, self.next_at) + self.interval
        if delay:
            time.sleep(delay)


def _latency_ms(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "total_seconds"):
        return round(float(value.total_seconds()) * 1000, 3)
    text = str(value)
    return round(float(text.rstrip("s")) * 1000, 3) if text.endswith("s") else None


def to_entry(raw: Any) -> LogEntry:
    """A Cloud Logging entry as the logs API shows it."""
    request = getattr(raw, "http_request", None) or {}
    severity = str(getattr(raw, "severity", None) or "DEFAULT").lower()
    if request:
        status = int(request.get("status") or 0)
        path = request.get("requestUrl", "")
        path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else path
        return LogEntry(
            time=raw.timestamp, source="access", severity=severity if severity != "default" else
            ("error" if status >= 500 else "warning" if status >= 400 else "info"),
            message=f"{request.get('requestMethod', '')} {path} {status}",
            method=request.get("requestMethod"), path=path, status=status,
            latency_ms=_latency_ms(request.get("latency")),
            bytes=int(request.get("responseSize") or 0),
        )  # fmt: skip
    payload = raw.payload if isinstance(raw.payload, str) else str(raw.payload)
    try:
        Severity.parse(severity)
    except ValueError:
        severity = "info"
    return LogEntry(time=raw.timestamp, source="php", severity=severity, message=payload[:4000])


class CloudLoggingLogs:
    """Reads a site's request and application logs."""

    def __init__(self, settings: Settings, clients: GcpClients,
                 budget: SharedMinuteBudget | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.clients = clients
        # Without the control-plane database (a bare client in tests): this process's own.
        self.limiter: SharedMinuteBudget | RateLimiter = budget or RateLimiter(CALLS_PER_MINUTE)
        self.cache: dict[tuple[str, str, str], tuple[float, list[LogEntry]]] = {}

    def _entries(self, ctx: SiteContext, since: datetime, until: datetime) -> list[LogEntry]:
        service = (ctx.resources.get("runtime") or {}).get("service", "").rsplit("/", 1)[-1]
        key = (service, since.isoformat(timespec="seconds"), until.isoformat(timespec="seconds"))
        cached = self.cache.get(key)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        query = (
            'resource.type="cloud_run_revision" '
            f'AND resource.labels.service_name="{service}" '
            f'AND timestamp>="{since.isoformat()}" AND timestamp<="{until.isoformat()}"'
        )
        self.limiter.wait()
        raw = self.clients.logging.list_entries(
            resource_names=[f"projects/{self.settings.gcp_project}"], filter_=query,
            order_by="timestamp desc", max_results=MAX_ENTRIES,
        )  # fmt: skip
        entries = [to_entry(item) for item in raw]
        self.cache[key] = (time.monotonic(), entries)
        return entries

    def read_logs(self, ctx: SiteContext, query: LogQuery) -> tuple[list[LogEntry], bool]:
        """Matching entries, newest first."""
        found = [e for e in self._entries(ctx, query.since, query.until) if matches(e, query)]
        return found[: query.limit], len(found) > query.limit

    def metrics(self, ctx: SiteContext, since: datetime, until: datetime) -> MetricsRead:
        """Figures from Cloud Monitoring alone (no entries.list call); without a Monitoring
        client, from the request log (the same computation as the local provider's)."""
        if self.clients.monitoring is None:
            return metrics_from_access(
                ctx.site_name, self._entries(ctx, since, until), since, until
            )
        service = (ctx.resources.get("runtime") or {}).get("service", "").rsplit("/", 1)[-1]
        return monitoring.metrics(self.clients.monitoring, str(self.settings.gcp_project),
                                  service, ctx.site_name, since, until)  # fmt: skip

    def evidence(self, ctx: SiteContext, since: datetime, until: datetime) -> SiteEvidence:
        """Requests (with latency) and PHP errors from one Cloud Logging read; instances at
        their limit from Cloud Monitoring (requests queue, as a PHP pool at max_children)."""
        entries = self._entries(ctx, since, until)
        saturation = None
        if self.clients.monitoring is not None:
            figures = self.metrics(ctx, since, until)
            limit = self.settings.site_max_instances
            if figures.instances is not None:
                saturation = PoolSaturation(
                    max_children=limit,
                    reached=int(figures.instances >= limit),
                    counted_since=since,
                )
        return SiteEvidence(
            requests=[e for e in entries if e.source == "access"],
            php=[e for e in entries if e.source == "php"],
            saturation=saturation,
            truncated=len(entries) >= MAX_ENTRIES,
            unavailable=[
                "PHP slow log (the Cloud Run image serves PHP with Apache mod_php, which "
                "writes no slow log)",
                "slow queries (the shared Cloud SQL instance's slow log is text a site's "
                "query can forge; it is not read)",
            ],
        )
