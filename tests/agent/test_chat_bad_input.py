"""Bad input to the chat service answers a 4xx problem (or an error frame) and keeps going."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from chatbot.service import create_app
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role


@pytest.fixture
def chat_app(chat_settings: ChatSettings) -> Iterator[TestClient]:
    with TestClient(create_app(chat_settings)) as client:
        yield client


def _token(issuer: LocalTokenIssuer) -> str:
    return issuer.issue("alice", Role.TENANT, ["acme"], email="alice@acme.example")


@pytest.mark.parametrize("field", ["tenant_id", "thread_id"])
@pytest.mark.parametrize("value", [["acme", "globex"], {"id": "acme"}, 7, True])
def test_a_frame_with_a_non_string_field_answers_422_and_keeps_the_socket(
    chat_app: TestClient, issuer: LocalTokenIssuer, field: str, value: object
) -> None:
    with chat_app.websocket_connect("/v1/chat/ws") as ws:
        ws.send_json({"type": "auth", "token": _token(issuer)})
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"type": "message", "text": "list my sites", field: value})
        error = ws.receive_json()
        assert error["type"] == "error" and error["status"] == 422
        assert f"'{field}' must be a string" in error["detail"]
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}  # the socket is still open


@pytest.mark.parametrize("path", ["/api/v1/tenants%00", "/api/v1/tenants/acme%00/sites",
                                  "/api/v1/me%01", "/api/v1/%7f"])  # fmt: skip
def test_the_proxy_refuses_control_characters_with_400(
    chat_app: TestClient, issuer: LocalTokenIssuer, path: str
) -> None:
    answer = chat_app.get(path, headers={"Authorization": f"Bearer {_token(issuer)}"})
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "control character" in answer.json()["detail"]
    fine = chat_app.get("/api/v1/me", headers={"Authorization": f"Bearer {_token(issuer)}"})
    assert fine.status_code == 200 and fine.json()["sub"] == "alice"


def test_a_trailing_slash_is_not_redirected_to_the_host_header(chat_app: TestClient) -> None:
    answer = chat_app.get("/dashboard/", headers={"Host": "evil.example"}, follow_redirects=False)
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert answer.json()["detail"].endswith("paths take no trailing slash: /dashboard")


def test_chat_service_still_serves_its_pages(chat_app: TestClient) -> None:
    assert chat_app.get("/dashboard").status_code == 200
    assert httpx.codes.is_success(chat_app.get("/webchat/markdown.js").status_code)


@pytest.mark.parametrize("value", [["op"], {"call_1": 7}, "op", 3])
def test_a_resume_frame_with_bad_uploads_answers_422_and_keeps_the_socket(
    chat_app: TestClient, issuer: LocalTokenIssuer, value: object
) -> None:
    with chat_app.websocket_connect("/v1/chat/ws") as ws:
        ws.send_json({"type": "auth", "token": _token(issuer)})
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"type": "resume", "thread_id": "t", "approve": True, "uploads": value})
        error = ws.receive_json()
        assert error["type"] == "error" and error["status"] == 422, error
        assert "'uploads' must map tool call ids to the operation ids" in error["detail"]
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}
