"""Attack (live): `Last-Event-ID: 0` on the tenant event stream replayed the tenant's whole
history in one answer, every reconnect (a query and a response that grow without bound).
A resume replays the newest `event_replay_max_events` events at most, none older than
`event_replay_max_age_seconds`, and says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from controlplane.kernel import clock
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.models import Operation, OperationEvent
from controlplane.settings import Settings
from tests.agent_fixtures import make_site

MAX_EVENTS = 5
EVENTS = "/v1/tenants/acme/operations/events"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A replay of at most MAX_EVENTS events, none older than an hour."""
    return settings.model_copy(
        update={"event_replay_max_events": MAX_EVENTS, "event_replay_max_age_seconds": 3_600}
    )


def _notes(app: FastAPI, messages: list[str]) -> None:
    """Add `note` events with these messages to acme's newest operation, now."""
    with app.state.platform.sessions() as session:
        op_id = session.scalar(
            select(Operation.id).where(Operation.tenant_id == "acme").order_by(Operation.created_at)
        )
        session.add_all(OperationEvent(operation_id=op_id, type="note", message=m)
                        for m in messages)  # fmt: skip
        session.commit()


def _replay(live_api: str, token: str, last: str) -> tuple[list[str], list[str]]:
    """Resume from event 0, read until the note `last`: (comments, messages in order)."""
    comments: list[str] = []
    messages: list[str] = []
    with (
        httpx.Client(base_url=live_api, timeout=10) as api,
        api.stream("GET", EVENTS, headers={"Authorization": f"Bearer {token}",
                                           "Last-Event-ID": "0"}) as stream,
    ):  # fmt: skip
        assert stream.status_code == 200
        lines: Iterator[str] = stream.iter_lines()
        for line in lines:
            if line.startswith(":"):
                comments.append(line)
            elif line.startswith("data:"):
                data = json.loads(line.removeprefix("data:"))
                messages.append(f"{data['type']}:{data['message']}")
                if data["message"] == last:
                    break
    return comments, messages


def test_a_resume_from_zero_replays_only_the_newest_events(
    live_api: str, live_app: FastAPI, admin_api: httpx.Client, issuer: LocalTokenIssuer
) -> None:
    make_site(admin_api, "acme", "crumbs")  # more than MAX_EVENTS events of its own
    _notes(live_app, [f"n{i}" for i in range(8)])
    token = issuer.issue("alice", Role.TENANT, ["acme"])
    comments, messages = _replay(live_api, token, "n7")
    assert messages == [f"note:n{i}" for i in range(3, 8)]
    assert comments[0] == (
        ": replay limited to the last 5 events and 3600 s; older ones: "
        "GET /v1/tenants/{t}/operations"
    )


def test_a_resume_from_zero_replays_nothing_older_than_the_window(
    live_api: str, live_app: FastAPI, admin_api: httpx.Client, issuer: LocalTokenIssuer
) -> None:
    make_site(admin_api, "acme", "crumbs")
    with live_app.state.platform.sessions() as session:  # the site was made two hours ago
        session.execute(update(OperationEvent).values(at=clock.now() - timedelta(hours=2)))
        session.commit()
    _notes(live_app, ["r0", "r1"])
    token = issuer.issue("alice", Role.TENANT, ["acme"])
    _, messages = _replay(live_api, token, "r1")
    assert messages == ["note:r0", "note:r1"]
