"""/v1/tenants/{tenant_id}/sites/{site}/logs and /metrics"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep
from controlplane.errors import Invalid
from controlplane.kernel import clock
from controlplane.kernel.identity import Principal
from controlplane.observability import (
    MAX_LOG_LIMIT,
    CallerSlots,
    LogQuery,
    LogsRead,
    MetricsRead,
    Severity,
    parse_time,
    status_matcher,
)
from controlplane.services import sites as sites_service

router = APIRouter(prefix="/v1/tenants/{tenant_id}/sites/{site}", tags=["logs and metrics"])
SinceQ = Annotated[
    str, Query(description="ISO 8601 time or a duration ago: 15m, 2h, 1d (default 1h)")
]
_SLOTS_GUARD = threading.Lock()
UntilQ = Annotated[str | None, Query(description="ISO 8601 time or a duration ago; default now")]


def _caller_key(principal: Principal) -> str:
    return principal.key  # (issuer, subject, tenant scope)


def one_read_slot(request: Request, principal: CurrentPrincipal) -> Iterator[None]:
    """Held while a log or metric read runs: a caller's reads past the limit answer 429."""
    state = request.app.state
    with _SLOTS_GUARD:
        slots: CallerSlots | None = getattr(state, "log_read_slots", None)
        if slots is None:
            slots = CallerSlots(state.platform.settings.log_reads_per_caller)
            state.log_read_slots = slots
    with slots.hold(_caller_key(principal)):
        yield


ReadSlot = Depends(one_read_slot)


def _window(since: str, until: str | None) -> tuple[datetime, datetime]:
    now = clock.now()
    try:
        start = parse_time(since, now=now)
        end = parse_time(until, now=now) if until else now
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    if start > end:
        raise Invalid("since must be before until")
    return start, end


@router.get("/logs", response_model=LogsRead, dependencies=[ReadSlot])
def site_logs(
    tenant_id: str,
    site: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
    since: SinceQ = "1h",
    until: UntilQ = None,
    severity: Annotated[str | None, Query(description="Minimum: info, warning, error...")] = None,
    status: Annotated[str | None, Query(description="HTTP status (404) or class (5xx)")] = None,
    path: Annotated[str | None, Query(max_length=2000, description="Request path prefix")] = None,
    q: Annotated[str | None, Query(max_length=500, description="Text the entry contains")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_LIMIT)] = 100,
) -> LogsRead:
    """A site's logs (requests, web-server errors, PHP errors), newest first."""
    record = sites_service.get_site(session, principal=principal, tenant_id=tenant_id, name=site)
    start, end = _window(since, until)
    try:
        level = Severity.parse(severity) if severity else None
        if status:
            status_matcher(status)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    query = LogQuery(
        since=start, until=end, severity=level, status=status, path=path, text=q, limit=limit
    )
    ctx = platform.engine.read_context(session, record)
    entries, truncated = platform.provider.logs.read_logs(ctx, query)
    return LogsRead(site=site, since=start, until=end, entries=entries, truncated=truncated)


@router.get("/metrics", response_model=MetricsRead, dependencies=[ReadSlot])
def site_metrics(
    tenant_id: str,
    site: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
    since: SinceQ = "1h",
    until: UntilQ = None,
) -> MetricsRead:
    """Requests, error rate, latency percentiles and bytes over a window."""
    record = sites_service.get_site(session, principal=principal, tenant_id=tenant_id, name=site)
    start, end = _window(since, until)
    ctx = platform.engine.read_context(session, record)
    return platform.provider.logs.metrics(ctx, start, end)
