"""The chat service over HTTP and WebSocket: tokens, limits, streaming, confirmations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from fastapi.testclient import TestClient
from rich.console import Console

from chatbot.service import create_app
from chatbot.settings import ChatSettings
from chatbot.store import ThreadNotFound, ThreadStore
from chatbot.terminal import TerminalChat
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Principal, Role
from tests.agent_fixtures import make_site, site_names
from tests.live import serve


@pytest.fixture
def chat_app(chat_settings: ChatSettings) -> Iterator[TestClient]:
    settings = chat_settings.model_copy(update={"chat_rate_per_minute": 8})
    with TestClient(create_app(settings)) as client:
        yield client


def _bearer(
    issuer: LocalTokenIssuer, sub: str, role: str = "tenant", *tenants: str
) -> dict[str, str]:
    token = issuer.issue(sub, Role(role), list(tenants or ("acme",)), email=f"{sub}@acme.example")
    return {"Authorization": f"Bearer {token}"}


def test_chat_needs_a_valid_token(chat_app: TestClient) -> None:
    missing = chat_app.post("/v1/chat", json={"message": "hi"})
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    forged = chat_app.post(
        "/v1/chat", json={"message": "hi"}, headers={"Authorization": "Bearer x.y.z"}
    )
    assert forged.status_code == 401


def test_http_chat_confirm_and_resume(
    chat_app: TestClient, issuer: LocalTokenIssuer, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    alice = _bearer(issuer, "alice")
    listed = chat_app.post("/v1/chat", json={"message": "list my sites"}, headers=alice)
    assert listed.status_code == 200
    body = listed.json()
    assert body["interrupt"] is None
    assert [m["role"] for m in body["messages"]] == ["assistant", "tool", "assistant"]
    assert "crumbs" in body["messages"][-1]["content"]
    thread = body["thread_id"]
    asked = chat_app.post(
        "/v1/chat", json={"thread_id": thread, "message": "delete it"}, headers=alice
    )
    interrupt = asked.json()["interrupt"]
    assert interrupt["actions"][0] | {"tool_call_id": None} == {
        "tool_call_id": None, "action": "delete_site", "site": "crumbs", "tenant_id": "acme",
        "url": interrupt["actions"][0]["url"],
        "question": "Delete site crumbs of tenant acme? Its database, files and address are "
        "removed; a backup is taken first.",
    }  # fmt: skip
    history = chat_app.get(f"/v1/chat/{thread}", headers=alice).json()
    assert history["interrupt"]["id"] == interrupt["id"]
    bob = _bearer(issuer, "bob")
    assert chat_app.get(f"/v1/chat/{thread}", headers=bob).status_code == 404
    assert (
        chat_app.post(f"/v1/chat/{thread}/resume", json={"approve": True}, headers=bob).status_code
        == 404
    )
    assert site_names(admin_api, "acme") == ["crumbs"]
    done = chat_app.post(f"/v1/chat/{thread}/resume", json={"approve": True}, headers=alice)
    assert done.status_code == 200
    assert "Deleted" in done.json()["messages"][-1]["content"]
    assert site_names(admin_api, "acme") == []
    again = chat_app.post(f"/v1/chat/{thread}/resume", json={"approve": True}, headers=alice)
    assert again.status_code == 409
    threads = chat_app.get("/v1/chat/threads", headers=alice).json()
    assert [t["id"] for t in threads] == [thread]
    assert chat_app.get("/v1/chat/threads", headers=bob).json() == []


def test_limits_answer_413_and_429_and_touch_nobody_else(
    chat_app: TestClient, issuer: LocalTokenIssuer, chat_settings: ChatSettings
) -> None:
    alice = _bearer(issuer, "alice")
    long = "x" * (chat_settings.chat_max_message_chars + 1)
    too_long = chat_app.post("/v1/chat", json={"message": long}, headers=alice)
    assert too_long.status_code == 413
    assert "limit is 4000" in too_long.json()["detail"]
    assert chat_app.get("/v1/chat/threads", headers=alice).json() == []  # nothing was made
    for _ in range(8):
        assert chat_app.post("/v1/chat", json={"message": "hi"}, headers=alice).status_code == 200
    limited = chat_app.post("/v1/chat", json={"message": "hi"}, headers=alice)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert "at most 8 a minute" in limited.json()["detail"]
    bob = _bearer(issuer, "bob")
    assert chat_app.post("/v1/chat", json={"message": "hi"}, headers=bob).status_code == 200
    assert chat_app.get("/v1/chat/threads", headers=alice).status_code == 200
    assert len(chat_app.get("/v1/chat/threads", headers=alice).json()) == 8


def test_operator_picks_one_of_their_tenants(
    chat_app: TestClient, issuer: LocalTokenIssuer
) -> None:
    olga = _bearer(issuer, "olga", "operator", "acme", "globex")
    ok = chat_app.post(
        "/v1/chat", json={"message": "list sites", "tenant_id": "globex"}, headers=olga
    )
    assert ok.status_code == 200
    assert "Tenant globex" in ok.json()["messages"][-1]["content"]
    other = chat_app.post(
        "/v1/chat", json={"message": "list sites", "tenant_id": "initech"}, headers=olga
    )
    assert other.status_code == 403


def _until_done(ws: Any) -> list[dict[str, Any]]:
    events = []
    while True:
        event = ws.receive_json()
        events.append(event)
        if event["type"] in ("done", "error"):
            return events


def test_websocket_streams_tokens_tools_progress_and_interrupts(
    chat_app: TestClient, issuer: LocalTokenIssuer, admin_api: httpx.Client
) -> None:
    token = _bearer(issuer, "alice")["Authorization"].split()[1]
    with chat_app.websocket_connect("/v1/chat/ws") as ws:
        ws.send_json({"type": "auth", "token": token})
        assert ws.receive_json()["type"] == "ready"
        ws.send_json(
            {"type": "message", "text": "create a site called crumbs for alice@acme.example"}
        )
        events = _until_done(ws)
        kinds = [e["type"] for e in events]
        assert kinds[0] == "thread" and kinds[-1] == "done"
        assert kinds.index("tool_start") < kinds.index("progress") < kinds.index("tool_end")
        steps = [
            e["step"] for e in events if e["type"] == "progress" and e["event"] == "step_finished"
        ]
        assert steps == ["database", "secrets", "storage", "runtime", "dns", "wordpress"]
        tokens = [e["text"] for e in events if e["type"] == "token"]
        said = "".join(e["message"]["content"] for e in events if e["type"] == "message")
        assert len(tokens) > 5 and "".join(tokens) == said
        thread = events[0]["thread_id"]
        ws.send_json({"type": "message", "thread_id": thread, "text": "delete crumbs"})
        events = _until_done(ws)
        interrupt = next(e for e in events if e["type"] == "interrupt")
        assert interrupt["actions"][0]["site"] == "crumbs"
        ws.send_json({"type": "resume", "thread_id": thread, "approve": True})
        events = _until_done(ws)
        assert any(e["type"] == "tool_end" and e["status"] == "ok" for e in events)
        assert site_names(admin_api, "acme") == []
        ws.send_json({"type": "message", "text": "y" * 5000})
        assert ws.receive_json() == {
            "type": "error", "status": 413,
            "detail": "the message is 5000 characters long; the limit is 4000: shorten it",
        }  # fmt: skip
        ws.send_json({"type": "resume", "thread_id": "not-mine", "approve": True})
        assert ws.receive_json()["status"] == 404
        ws.send_json({"type": "bogus"})
        assert ws.receive_json()["status"] == 422


def test_websocket_refuses_a_bad_token(chat_app: TestClient) -> None:
    with chat_app.websocket_connect("/v1/chat/ws") as ws:
        ws.send_json({"type": "auth", "token": "not-a-token"})
        error = ws.receive_json()
        assert error["type"] == "error" and error["status"] == 401


def test_terminal_client_streams_and_confirms(
    chat_settings: ChatSettings, issuer: LocalTokenIssuer, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    asked: list[str] = []
    typed = iter(["what happens to the files?", "no, keep it"])

    def confirm(question: str) -> str:
        asked.append(question)
        return next(typed)

    console = Console(record=True, width=120)
    with serve(create_app(chat_settings)) as url:
        token = issuer.issue("alice", Role.TENANT, ["acme"])
        session = TerminalChat(url, token, console, confirm)
        try:
            session.send("delete crumbs")
        finally:
            session.close()
    question = ("Delete site crumbs of tenant acme? Its database, files and address are "
                "removed; a backup is taken first. [yes/no]")  # fmt: skip
    assert asked == [question, question]  # asked again after the reminder
    shown = console.export_text()
    assert "Still waiting for your answer" in shown
    assert "Cancelled: crumbs was not deleted" in shown
    assert site_names(admin_api, "acme") == ["crumbs"]


def test_a_message_while_a_confirmation_waits_is_reminded_not_refused(
    chat_app: TestClient, issuer: LocalTokenIssuer, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    alice = _bearer(issuer, "alice")
    asked = chat_app.post("/v1/chat", json={"message": "delete crumbs"}, headers=alice).json()
    thread = asked["thread_id"]
    assert asked["interrupt"] is not None
    other = chat_app.post("/v1/chat", json={"thread_id": thread, "message": "list my sites"},
                          headers=alice)  # fmt: skip
    assert other.status_code == 200
    assert (
        "Still waiting for your answer: Delete site crumbs"
        in other.json()["messages"][0]["content"]
    )
    assert other.json()["interrupt"]["id"] == asked["interrupt"]["id"]
    assert [m["role"] for m in other.json()["messages"]] == ["assistant"]  # no tool ran
    done = chat_app.post(f"/v1/chat/{thread}/resume", json={"approve": False}, headers=alice)
    assert "not deleted" in done.json()["messages"][-1]["content"]
    assert site_names(admin_api, "acme") == ["crumbs"]


def test_a_thread_keeps_its_tenant(
    chat_app: TestClient, issuer: LocalTokenIssuer, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "blog")
    make_site(admin_api, "globex", "blog")
    olga = _bearer(issuer, "olga", "operator", "acme", "globex")
    first = chat_app.post("/v1/chat", json={"message": "list sites", "tenant_id": "acme"},
                          headers=olga).json()  # fmt: skip
    switched = chat_app.post(
        "/v1/chat", headers=olga,
        json={"thread_id": first["thread_id"], "message": "delete blog", "tenant_id": "globex"},
    )  # fmt: skip
    assert switched.status_code == 409
    assert "start a new thread" in switched.json()["detail"]
    assert site_names(admin_api, "acme") == ["blog"] and site_names(admin_api, "globex") == ["blog"]


def test_local_sign_in_answers_loopback_names_only(chat_app: TestClient) -> None:
    for host in ("evil.example", "testserver"):
        response = chat_app.post("/auth/local/token", json={"uid": "admin"}, headers={"Host": host})
        assert response.status_code == 403
        assert chat_app.get("/auth/local/users", headers={"Host": host}).status_code == 403


def test_local_sign_in_needs_the_machine_sign_in_key(
    chat_settings: ChatSettings, admin_api: httpx.Client, issuer: LocalTokenIssuer
) -> None:
    from controlplane.kernel.auth import load_sign_in_key, sign_in_key_path

    assert admin_api.put("/v1/users/admin", json={"role": "admin", "tenants": []}).is_success
    with TestClient(create_app(chat_settings), base_url="http://127.0.0.1:8001") as client:
        key = load_sign_in_key(chat_settings)
        path = sign_in_key_path(chat_settings)
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
        # Code on this machine sets any Host header: without the key it gets nothing.
        for headers, status in (({}, 401), ({"X-AIPress-Sign-In-Key": "guess"}, 403),
                                ({"X-AIPress-Sign-In-Key": key[:-1] + "x"}, 403)):  # fmt: skip
            listed = client.get("/auth/local/users", headers=headers)
            minted = client.post("/auth/local/token", json={"uid": "admin"}, headers=headers)
            for response in (listed, minted):
                assert response.status_code == status, response.text
                assert "aipress signin-url" in response.json()["detail"]
                assert "token" not in response.json()
        good = {"X-AIPress-Sign-In-Key": key}
        assert [u["uid"] for u in client.get("/auth/local/users", headers=good).json()] == ["admin"]
        token = client.post("/auth/local/token", json={"uid": "admin"}, headers=good).json()
        assert issuer.verify(token["token"]).role == Role.ADMIN
        # A user id is a path segment of the control-plane call: no traversal, no 500.
        for uid in ("../me", "admin/", "..", ".", "a b", "admin?x=1", "", "x" * 129):
            bad = client.post("/auth/local/token", json={"uid": uid}, headers=good)
            assert bad.status_code == 422, (uid, bad.text)
        missing = client.post("/auth/local/token", json={"uid": "nobody@x"}, headers=good)
        assert missing.status_code == 404 and "aipress users list" in missing.json()["detail"]
        # Rotation: browsers holding the old key must get the new URL.
        load_sign_in_key(chat_settings, rotate=True)
        assert client.get("/auth/local/users", headers=good).status_code == 403


class _TwoIssuers:
    """The local issuer, plus tokens a second issuer vouched for (same subjects)."""

    def __init__(self, local: LocalTokenIssuer, foreign: dict[str, Principal]) -> None:
        self.local = local
        self.foreign = foreign

    def verify(self, token: str) -> Principal:
        return self.foreign.get(token) or self.local.verify(token)


def test_same_subject_in_another_tenant_or_issuer_shares_no_thread_and_no_limit(
    chat_settings: ChatSettings, issuer: LocalTokenIssuer
) -> None:
    # `aipress token` once gave every token `sub: local-user`: the subject alone is no owner.
    foreign = Principal("local-user", Role.TENANT, frozenset({"acme"}), issuer="https://other")
    verifier = _TwoIssuers(issuer, {"foreign-token": foreign})
    settings = chat_settings.model_copy(update={"chat_rate_per_minute": 4})
    acme = _bearer(issuer, "local-user", "tenant", "acme")
    globex = _bearer(issuer, "local-user", "tenant", "globex")
    admin = _bearer(issuer, "local-user", "admin")
    other_issuer = {"Authorization": "Bearer foreign-token"}
    with TestClient(create_app(settings, verifier=verifier)) as chat:
        thread = chat.post("/v1/chat", json={"message": "hi"}, headers=acme).json()["thread_id"]
        for intruder in (globex, admin, other_issuer):
            assert chat.get("/v1/chat/threads", headers=intruder).json() == []
            assert chat.get(f"/v1/chat/{thread}", headers=intruder).status_code == 404
            resumed = chat.post(f"/v1/chat/{thread}/resume", json={"approve": True},
                                headers=intruder)  # fmt: skip
            assert resumed.status_code == 404
            continued = chat.post("/v1/chat", json={"thread_id": thread, "message": "hi"},
                                  headers=intruder)  # fmt: skip
            assert continued.status_code == 404
        assert [t["id"] for t in chat.get("/v1/chat/threads", headers=acme).json()] == [thread]
        with chat.websocket_connect("/v1/chat/ws") as ws:
            ws.send_json({"type": "auth", "token": globex["Authorization"].split()[1]})
            assert ws.receive_json()["type"] == "ready"
            ws.send_json({"type": "resume", "thread_id": thread, "approve": True})
            assert ws.receive_json()["status"] == 404
            ws.send_json({"type": "message", "thread_id": thread, "text": "hi"})
            assert ws.receive_json()["status"] == 404
        # acme's 4th message spends its limit; the same subject elsewhere has its own (each
        # intruder spent 2 above; globex spent all 4 and its WebSocket frames were still 404s).
        for _ in range(3):
            assert chat.post("/v1/chat", json={"message": "hi"}, headers=acme).status_code == 200
        assert chat.post("/v1/chat", json={"message": "hi"}, headers=acme).status_code == 429
        assert chat.post("/v1/chat", json={"message": "hi"}, headers=admin).status_code == 200
        assert chat.post("/v1/chat", json={"message": "hi"}, headers=other_issuer).status_code == (
            200
        )


def test_threads_stored_before_owner_keys_belong_to_nobody(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    old = sqlalchemy.create_engine(url)
    with old.begin() as conn:
        conn.execute(sqlalchemy.text(
            "CREATE TABLE chat_threads (id VARCHAR(36) PRIMARY KEY, owner_sub VARCHAR(128), "
            "tenant_id VARCHAR(64), title VARCHAR(80), created_at DATETIME, updated_at DATETIME)"
        ))  # fmt: skip
        conn.execute(sqlalchemy.text(
            "INSERT INTO chat_threads VALUES ('t1', 'local-user', 'acme', 'old', "
            "'2020-01-01 00:00:00', '2020-01-01 00:00:00')"
        ))  # fmt: skip
    old.dispose()
    store = ThreadStore(url)
    try:
        caller = Principal("local-user", Role.TENANT, frozenset({"acme"}), issuer="aipress-local")
        with pytest.raises(ThreadNotFound):
            store.get("t1", owner_key=caller.key)
        assert store.list(owner_key=caller.key) == []
        new = store.create(owner_key=caller.key, owner_sub=caller.sub, tenant_id="acme",
                           first_message="hello")  # fmt: skip
        assert [t.id for t in store.list(owner_key=caller.key)] == [new]
    finally:
        store.close()
