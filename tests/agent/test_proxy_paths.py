"""Attack: the chat proxy must reach only the control plane's /v1/ routes."""

from __future__ import annotations

from collections.abc import Iterator

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


@pytest.mark.parametrize("path", ["/api/v1/%2e%2e/healthz", "/api/v1/%2e%2e/openapi.json",
                                  "/api/v1/x/%2e%2e/%2e%2e/docs"])  # fmt: skip
def test_the_proxy_does_not_climb_out_of_v1(
    chat_app: TestClient, issuer: LocalTokenIssuer, path: str
) -> None:
    token = issuer.issue("alice", Role.TENANT, ["acme"])
    answer = chat_app.get(path, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code in (400, 404), (answer.status_code, answer.text[:200])
