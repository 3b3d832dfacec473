"""/v1/tenants/{tenant_id}/sites/{site}/logs and /metrics"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from controlplane.api.deps import CurrentPrincipal, SiteCall, SiteCallDep
from controlplane.diagnosis import DiagnosisRead
from controlplane.engine.provider import SiteContext
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
from controlplane.permissions import Action
from controlplane.services import diagnosis as diagnosis_service
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
    call: SiteCallDep,
    since: SinceQ = "1h",
    until: UntilQ = None,
    severity: Annotated[str | None, Query(description="Minimum: info, warning, error...")] = None,
    status: Annotated[str | None, Query(description="HTTP status (404) or class (5xx)")] = None,
    path: Annotated[str | None, Query(max_length=2000, description="Request path prefix")] = None,
    q: Annotated[str | None, Query(max_length=500, description="Text the entry contains")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_LIMIT)] = 100,
) -> LogsRead:
    """A site's logs (requests, web-server errors, PHP errors), newest first."""
    ctx, start, end = _read(call, since, until)
    try:
        level = Severity.parse(severity) if severity else None
        if status:
            status_matcher(status)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    query = LogQuery(
        since=start, until=end, severity=level, status=status, path=path, text=q, limit=limit
    )
    entries, truncated = call.platform.provider.logs.read_logs(ctx, query)
    return LogsRead(site=call.site, since=start, until=end, entries=entries, truncated=truncated)


@router.get("/metrics", response_model=MetricsRead, dependencies=[ReadSlot])
def site_metrics(call: SiteCallDep, since: SinceQ = "1h", until: UntilQ = None) -> MetricsRead:
    """Requests, error rate, latency percentiles and bytes over a window."""
    ctx, start, end = _read(call, since, until)
    return call.platform.provider.logs.metrics(ctx, start, end)


@router.get("/diagnosis", response_model=DiagnosisRead, dependencies=[ReadSlot])
def site_diagnosis(call: SiteCallDep, since: SinceQ = "1h", until: UntilQ = None) -> DiagnosisRead:
    """Why a site is slow or broken: evidence (latency by cache status, slowest paths, PHP
    slow log, pool saturation, PHP errors, slow queries, latest changes, health probe) and
    a verdict that names the cause and what to do."""
    record = sites_service.get_site(
        call.session, principal=call.principal, tenant_id=call.tenant_id, name=call.site,
        action=Action.READ_DIAGNOSIS,
    )  # fmt: skip
    start, end = _window(since, until)
    ctx = call.platform.engine.read_context(call.session, record)
    return diagnosis_service.diagnose_site(
        call.session, provider=call.platform.provider, site=record, ctx=ctx, since=start, until=end
    )


def _read(call: SiteCall, since: str, until: str | None) -> tuple[SiteContext, datetime, datetime]:
    """The visible site's read context and the window (a bad site or window: nothing read)."""
    record = sites_service.get_site(
        call.session, principal=call.principal, tenant_id=call.tenant_id, name=call.site
    )
    start, end = _window(since, until)
    return call.platform.engine.read_context(call.session, record), start, end
