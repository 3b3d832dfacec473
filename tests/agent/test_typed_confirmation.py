"""Typed answers to a pending confirmation: a clear yes or no resumes it like the buttons,
anything else is reminded of what waits, and only the thread's own user can answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from chatbot.service import create_app
from chatbot.settings import ChatSettings
from chatbot.typed_answers import typed_answer
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from tests.agent_fixtures import make_site, site_names


@pytest.fixture
def chat_app(chat_settings: ChatSettings) -> Iterator[TestClient]:
    with TestClient(create_app(chat_settings)) as client:
        yield client


def _bearer(issuer: LocalTokenIssuer, sub: str, tenant: str = "acme") -> dict[str, str]:
    token = issuer.issue(sub, Role.TENANT, [tenant], email=f"{sub}@{tenant}.example")
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("yes", True), ("yes, go ahead", True), ("Sure, do it.", True), ("ok", True),
        ("go ahead please", True), ("confirm", True), ("no", False), ("no, keep it", False),
        ("cancel", False), ("Cancel that", False), ("not yet", False), ("don't", False),
        ("never mind", False), ("keep crumbs", False), ("yes but not yet", False),
        ("ok but first back it up", None), ("what will it delete?", None),
        ("list my sites", None), ("yes? what happens to the files", None), ("no, go ahead", None),
        ("maybe", None),
    ],
)  # fmt: skip
def test_what_counts_as_a_typed_answer(text: str, answer: bool | None) -> None:
    assert typed_answer(text) is answer


def _ask_delete(client: TestClient, who: dict[str, str], site: str) -> tuple[str, dict]:  # type: ignore[type-arg]
    asked = client.post("/v1/chat", json={"message": f"delete {site}"}, headers=who).json()
    assert asked["interrupt"]["actions"][0]["action"] == "delete_site"
    return asked["thread_id"], asked["interrupt"]


Asked = tuple[dict[str, str], str, dict[str, Any]]  # alice's headers, the thread, its interrupt


@pytest.fixture
def delete_asked(chat_app: TestClient, issuer: LocalTokenIssuer, admin_api: httpx.Client) -> Asked:
    """Tenant acme's site crumbs, and alice's chat asking her to confirm deleting it."""
    make_site(admin_api, "acme", "crumbs")
    alice = _bearer(issuer, "alice")
    thread, interrupt = _ask_delete(chat_app, alice, "crumbs")
    return alice, thread, interrupt


def test_typed_no_cancels_and_typed_yes_approves_like_the_buttons(
    chat_app: TestClient, admin_api: httpx.Client, delete_asked: Asked
) -> None:
    alice, thread, _ = delete_asked
    kept = chat_app.post("/v1/chat", json={"thread_id": thread, "message": "no, keep it"},
                         headers=alice)  # fmt: skip
    assert kept.status_code == 200 and kept.json()["interrupt"] is None
    assert "Cancelled: crumbs was not deleted" in kept.json()["messages"][-1]["content"]
    assert site_names(admin_api, "acme") == ["crumbs"]
    assert chat_app.get(f"/v1/chat/{thread}", headers=alice).json()["interrupt"] is None
    again = chat_app.post("/v1/chat", json={"thread_id": thread, "message": "delete crumbs"},
                          headers=alice).json()  # fmt: skip
    assert again["interrupt"] is not None
    done = chat_app.post("/v1/chat", json={"thread_id": thread, "message": "yes, go ahead"},
                         headers=alice)  # fmt: skip
    assert done.status_code == 200
    assert "Deleted" in done.json()["messages"][-1]["content"]
    assert site_names(admin_api, "acme") == []


def test_a_typed_yes_from_another_user_never_approves(
    chat_app: TestClient, issuer: LocalTokenIssuer, admin_api: httpx.Client, delete_asked: Asked
) -> None:
    alice, thread, interrupt = delete_asked
    # Another user of the same tenant, and a user of another tenant: neither sees the thread.
    for other in (_bearer(issuer, "bob"), _bearer(issuer, "mallory", "globex")):
        said = chat_app.post("/v1/chat", json={"thread_id": thread, "message": "yes"},
                             headers=other)  # fmt: skip
        assert said.status_code == 404
        with chat_app.websocket_connect("/v1/chat/ws", headers=other) as ws:
            assert ws.receive_json()["type"] == "ready"
            ws.send_json({"type": "message", "text": "yes, go ahead", "thread_id": thread})
            assert ws.receive_json() | {"detail": ""} == {"type": "error", "status": 404,
                                                          "detail": ""}  # fmt: skip
    assert site_names(admin_api, "acme") == ["crumbs"]
    waiting = chat_app.get(f"/v1/chat/{thread}", headers=alice).json()["interrupt"]
    assert waiting["id"] == interrupt["id"]


def test_anything_else_is_reminded_and_changes_nothing(
    chat_app: TestClient, admin_api: httpx.Client, delete_asked: Asked
) -> None:
    alice, thread, interrupt = delete_asked
    before = chat_app.get(f"/v1/chat/{thread}", headers=alice).json()["messages"]
    for text in ("what will it delete?", "ok but first back it up"):
        said = chat_app.post("/v1/chat", json={"thread_id": thread, "message": text},
                             headers=alice).json()  # fmt: skip
        assert said["messages"][0]["content"].startswith("Still waiting for your answer: "
                                                         "Delete site crumbs")  # fmt: skip
        assert said["interrupt"]["id"] == interrupt["id"]
    after = chat_app.get(f"/v1/chat/{thread}", headers=alice).json()
    assert after["messages"] == before and after["interrupt"]["id"] == interrupt["id"]
    assert site_names(admin_api, "acme") == ["crumbs"]


def test_a_typed_yes_never_carries_a_cards_value(
    chat_app: TestClient, issuer: LocalTokenIssuer, admin_api: httpx.Client
) -> None:
    alice = _bearer(issuer, "alice")
    asked = chat_app.post("/v1/chat", json={"message": "store STRIPE_KEY as a secret"},
                          headers=alice).json()  # fmt: skip
    assert asked["interrupt"]["actions"][0]["input"] == "secret"
    said = chat_app.post("/v1/chat", json={"thread_id": asked["thread_id"], "message": "yes"},
                         headers=alice).json()  # fmt: skip
    assert "fill it in there and press Confirm" in said["messages"][0]["content"]
    assert said["interrupt"]["id"] == asked["interrupt"]["id"]
    assert all(v["name"] != "STRIPE_KEY" for v in admin_api.get("/v1/tenants/acme/env").json())
