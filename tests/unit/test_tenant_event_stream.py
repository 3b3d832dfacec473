"""The tenant's operation event stream (what the dashboard follows), direct and through the
chat service's proxy: events from the moment it opens, each naming its operation and site."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI

from chatbot.service import create_app as create_chat_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.models import OperationEvent
from controlplane.settings import Settings
from tests.agent_fixtures import make_site
from tests.live import serve


def _events_until(
    lines: Iterator[str], last_type: str, site: str
) -> list[tuple[str, dict[str, Any]]]:
    """Read SSE lines until an event of `last_type` for `site`; (event id, data) pairs."""
    seen: list[tuple[str, dict[str, Any]]] = []
    event_id = ""
    for line in lines:
        if line.startswith("id:"):
            event_id = line.removeprefix("id:").strip()
        elif line.startswith("data:"):
            data = json.loads(line.removeprefix("data:"))
            seen.append((event_id, data))
            if data["type"] == last_type and data["site"] == site:
                return seen
    raise AssertionError(f"the stream ended before {last_type} of {site}: {seen}")


def test_the_stream_starts_now_and_follows_every_operation_of_the_tenant(
    live_api: str, admin_api: httpx.Client, issuer: LocalTokenIssuer
) -> None:
    make_site(admin_api, "acme", "before")  # finished before the stream opens: not replayed
    alice = {"Authorization": f"Bearer {issuer.issue('alice', Role.TENANT, ['acme'])}"}
    with (
        httpx.Client(base_url=live_api, headers=alice, timeout=20) as api,
        api.stream("GET", "/v1/tenants/acme/operations/events") as stream,
    ):
        assert stream.status_code == 200
        make_site(admin_api, "globex", "elsewhere")  # another tenant's: not shown
        created = api.post("/v1/tenants/acme/sites", json={"name": "crumbs",
                                                           "admin_email": "a@acme.example"})  # fmt: skip
        assert created.status_code == 202, created.text
        lines = stream.iter_lines()
        seen = _events_until(lines, "operation_succeeded", "crumbs")
        # Polls look back a while for late commits: what was sent is not sent again.
        stopped = api.post("/v1/tenants/acme/sites/crumbs/stop")
        assert stopped.status_code == 202, stopped.text
        after = _events_until(lines, "operation_succeeded", "crumbs")
    assert {d["operation_id"] for _, d in after} == {stopped.json()["operation"]["id"]}
    datas = [d for _, d in seen]
    assert {d["site"] for d in datas} == {"crumbs"}
    assert {d["operation_id"] for d in datas} == {created.json()["operation"]["id"]}
    assert {d["kind"] for d in datas} == {"create_site"}
    assert datas[0]["type"] == "operation_started"
    started = [d["step"] for d in datas if d["type"] == "step_started"]
    assert started == [s["name"] for s in created.json()["operation"]["steps"]]
    ids = [int(i) for i, _ in seen]
    assert ids == sorted(set(ids))  # each event once, in order

    # Resuming after the first event replays the rest (and nothing before it).
    with (
        httpx.Client(base_url=live_api, headers=alice, timeout=20) as api,
        api.stream("GET", "/v1/tenants/acme/operations/events",
                   headers={"Last-Event-ID": seen[0][0]}) as stream,
    ):  # fmt: skip
        again = _events_until(stream.iter_lines(), "operation_succeeded", "crumbs")
    assert again == seen[1:]


def test_the_stream_is_refused_outside_the_callers_tenants(
    live_api: str, issuer: LocalTokenIssuer
) -> None:
    alice = {"Authorization": f"Bearer {issuer.issue('alice', Role.TENANT, ['acme'])}"}
    with httpx.Client(base_url=live_api, headers=alice, timeout=20) as api:
        assert api.get("/v1/tenants/globex/operations/events").status_code == 404
        assert (
            api.get("/v1/tenants/acme/operations/events", headers={"Authorization": ""}).status_code
            == 401
        )


def test_the_chat_proxy_passes_the_stream_through_as_it_comes(
    chat_settings: Settings, admin_api: httpx.Client, issuer: LocalTokenIssuer
) -> None:
    alice = {"Authorization": f"Bearer {issuer.issue('alice', Role.TENANT, ['acme'])}"}
    with (
        serve(create_chat_app(chat_settings)) as chat_url,
        httpx.Client(base_url=chat_url, headers=alice, timeout=20) as api,
        api.stream("GET", "/api/v1/tenants/acme/operations/events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        # The create starts after the stream is open: its events can only arrive live.
        created = api.post("/api/v1/tenants/acme/sites", json={"name": "live",
                                                              "admin_email": "a@acme.example"})  # fmt: skip
        assert created.status_code == 202, created.text
        seen = _events_until(stream.iter_lines(), "operation_succeeded", "live")
    assert seen[0][1]["type"] == "operation_started"


def test_an_event_committed_late_below_the_cursor_still_arrives(
    live_api: str, live_app: FastAPI, admin_api: httpx.Client, issuer: LocalTokenIssuer
) -> None:
    alice = {"Authorization": f"Bearer {issuer.issue('alice', Role.TENANT, ['acme'])}"}
    platform = live_app.state.platform
    with (
        httpx.Client(base_url=live_api, headers=alice, timeout=20) as api,
        api.stream("GET", "/v1/tenants/acme/operations/events") as stream,
    ):
        lines = stream.iter_lines()
        created = api.post("/v1/tenants/acme/sites", json={"name": "crumbs",
                                                           "admin_email": "a@acme.example"})  # fmt: skip
        op_id = created.json()["operation"]["id"]
        cursor = int(_events_until(lines, "operation_succeeded", "crumbs")[-1][0])

        def commit(event_id: int, message: str) -> None:
            with platform.sessions() as session:
                session.add(OperationEvent(id=event_id, operation_id=op_id, type="note",
                                           message=message))  # fmt: skip
                session.commit()

        # Two writers: the one that took the higher id commits first, the other a poll later.
        commit(cursor + 2, "first to commit")
        assert _events_until(lines, "note", "crumbs")[-1][1]["message"] == "first to commit"
        commit(cursor + 1, "committed late")
        commit(cursor + 3, "next")  # without the look-back, the stream skips to this one
        assert _events_until(lines, "note", "crumbs")[-1][1]["message"] == "committed late"
