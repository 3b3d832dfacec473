"""/v1/operations and /v1/tenants/{tenant_id}/operations"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep
from controlplane.kernel import clock
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import FINISHED_STATUSES
from controlplane.models import Operation
from controlplane.permissions import Action
from controlplane.schemas import OperationRead
from controlplane.services import operations as service
from controlplane.services.tenants import get_visible_tenant, still_visible

router = APIRouter(tags=["operations"])
POLL_SECONDS = 0.1
MAX_EVENT_ID = 2**63 - 1  # BIGINT; a larger Last-Event-ID overflowed the query (a 500 mid-stream)
TENANT_POLL_SECONDS = 0.5  # a dashboard keeps this stream open for as long as it is shown
# Event ids are taken at insert and become visible at commit, so an operation committing a
# moment after another can land below the cursor: the tenant stream looks back this long.
LATE_COMMIT_SECONDS = 5.0
REPLAY_CUT = (
    "replay limited to the last {settings.event_replay_max_events} events and "
    "{settings.event_replay_max_age_seconds:g} s; older ones: GET /v1/tenants/{{t}}/operations"
)
# How both event routes answer, in the OpenAPI too.
EVENT_STREAM: dict[str, Any] = {
    "response_class": EventSourceResponse,
    "responses": {200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
}


class _Lifetime:
    """Ends a stream once its token expires or its caller no longer sees the tenant: the
    token was checked once, when the stream opened."""

    def __init__(self, platform: PlatformDep, principal: Principal, tenant_id: str) -> None:
        self._platform = platform
        self._principal = principal
        self._tenant_id = tenant_id
        self._every = platform.settings.event_stream_recheck_seconds
        self._next_check = time.monotonic() + self._every

    async def over(self) -> ServerSentEvent | None:
        """None while the stream may go on, else the comment that closes it."""
        expires = self._principal.expires_at
        if expires is not None and time.time() >= expires:
            return ServerSentEvent(comment="token expired: reconnect with a fresh token")
        if time.monotonic() < self._next_check:
            return None
        self._next_check = time.monotonic() + self._every
        if await asyncio.to_thread(self._visible):
            return None
        return ServerSentEvent(comment="this tenant is no longer visible to the caller")

    def _visible(self) -> bool:
        with self._platform.sessions() as session:
            return still_visible(session, principal=self._principal, tenant_id=self._tenant_id)


@router.get("/v1/operations/{operation_id}", response_model=OperationRead)
def get_operation(
    operation_id: str, session: SessionDep, principal: CurrentPrincipal
) -> OperationRead:
    """An operation with its steps."""
    return service.to_read(
        service.get_operation(session, principal=principal, operation_id=operation_id)
    )


@router.get("/v1/tenants/{tenant_id}/operations", response_model=list[OperationRead])
def tenant_operations(
    tenant_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[OperationRead]:
    """A tenant's operations, newest first."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.READ_SITES)
    ops = service.list_operations(session, tenant_id=tenant_id, limit=limit)
    return [service.to_read(o) for o in ops]


@router.get("/v1/operations/{operation_id}/events", **EVENT_STREAM)
def operation_events(
    operation_id: str,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Each step's start/finish/failure, then the final state; resumable with Last-Event-ID."""
    op = service.get_operation(session, principal=principal, operation_id=operation_id)
    lifetime = _Lifetime(platform, principal, op.tenant_id)
    start_after = _resume_after(last_event_id)
    session.close()  # the stream polls with its own sessions: hold no connection meanwhile

    async def stream() -> AsyncIterator[dict[str, str] | ServerSentEvent]:
        after = start_after
        while True:
            if (last := await lifetime.over()) is not None:
                yield last
                return
            events, status = await asyncio.to_thread(_poll, platform, operation_id, after)
            for event in events:
                after = event["id_int"]  # type: ignore[assignment]
                yield {
                    "id": str(event["id_int"]),
                    "event": str(event["type"]),
                    "data": json.dumps({k: v for k, v in event.items() if k != "id_int"}),
                }
            if status in FINISHED_STATUSES and not events:
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_SECONDS)

    return EventSourceResponse(stream(), ping=15)


@router.get("/v1/tenants/{tenant_id}/operations/events", **EVENT_STREAM)
def tenant_operation_events(
    tenant_id: str,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Every event of the tenant's operations from now on (each names its operation, kind and
    site), until the client leaves, its token expires or it loses the tenant. Last-Event-ID
    resumes after that event, replaying at most the newest `event_replay_max_events` (1,000)
    events and none older than `event_replay_max_age_seconds` (a day), whichever are fewer."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.READ_SITES)
    lifetime = _Lifetime(platform, principal, tenant_id)
    # Fixed before the response starts: a client that reads the sites once the stream is
    # open misses nothing in between.
    start_after, cut = 0, False
    if not last_event_id:
        start_after = service.latest_event_id(session)
    else:
        # A resume replays a bounded tail: Last-Event-ID 0 asked for the whole history.
        floor = service.replay_floor(
            session,
            tenant_id=tenant_id,
            max_events=platform.settings.event_replay_max_events,
            since=clock.now() - timedelta(seconds=platform.settings.event_replay_max_age_seconds),
        )
        start_after = _resume_after(last_event_id)
        cut = start_after < floor
        start_after = max(start_after, floor)
    session.close()  # the stream polls with its own sessions: hold no connection meanwhile

    async def stream() -> AsyncIterator[dict[str, str] | ServerSentEvent]:
        cursor = start_after
        marks: deque[tuple[float, int]] = deque([(time.monotonic(), cursor)])
        sent: set[int] = set()
        if cut:
            yield ServerSentEvent(comment=REPLAY_CUT.format(settings=platform.settings))
        while True:
            if (last := await lifetime.over()) is not None:
                yield last
                return
            now = time.monotonic()
            while len(marks) > 1 and marks[1][0] <= now - LATE_COMMIT_SECONDS:
                marks.popleft()
            low = marks[0][1]
            events = await asyncio.to_thread(_poll_tenant, platform, tenant_id, low)
            for event in events:
                event_id = int(str(event.pop("id_int")))
                if event_id in sent:
                    continue
                sent.add(event_id)
                cursor = max(cursor, event_id)
                yield {"id": str(cursor), "event": str(event["type"]), "data": json.dumps(event)}
            marks.append((now, cursor))
            sent = {i for i in sent if i > marks[0][1]}
            if await request.is_disconnected():
                return
            await asyncio.sleep(TENANT_POLL_SECONDS)

    return EventSourceResponse(stream(), ping=15)


def _poll_tenant(platform: PlatformDep, tenant_id: str, after: int) -> list[dict[str, object]]:
    with platform.sessions() as session:
        return [
            {
                "id_int": e.id,
                "operation_id": op.id,
                "kind": op.kind,
                "site": op.site_name,
                "status": op.status,
                "type": e.type,
                "step": e.step,
                "message": e.message,
                "at": e.at.isoformat(),
            }
            for e, op in service.tenant_events_after(session, tenant_id=tenant_id, after_id=after)
        ]


def _resume_after(last_event_id: str | None) -> int:
    """The event id to resume after: a plain decimal id, capped at the largest id the database
    stores; anything else (a superscript two passes isdigit() but not int()) starts over."""
    if last_event_id and last_event_id.isascii() and last_event_id.isdigit():
        return min(int(last_event_id), MAX_EVENT_ID)
    return 0


def _poll(
    platform: PlatformDep, operation_id: str, after: int
) -> tuple[list[dict[str, object]], str]:
    with platform.sessions() as session:
        events = service.events_after(session, operation_id=operation_id, after_id=after)
        op = session.get(Operation, operation_id)
        status = op.status if op is not None else "failed"
        return (
            [
                {
                    "id_int": e.id,
                    "operation_id": operation_id,
                    "type": e.type,
                    "step": e.step,
                    "message": e.message,
                    "at": e.at.isoformat(),
                }
                for e in events
            ],
            status,
        )
