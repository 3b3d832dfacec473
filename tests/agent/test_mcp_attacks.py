"""Hostile-client probes of /mcp and its authorization server (review of issue 19): each test
failed before its fix."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from controlplane.settings import Settings
from tests.mcp_harness import McpStack, served_chat

pytestmark = pytest.mark.integration

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "probe", "version": "1"}}}  # fmt: skip
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def stack(settings: Settings, live_api: str) -> Iterator[McpStack]:
    with served_chat(settings, live_api, mcp_sessions_per_user=5) as served:
        yield served


def _open(stack: McpStack, token: str) -> httpx.Response:
    return httpx.post(stack.mcp_url, json=INIT, timeout=30,
                      headers={**ACCEPT, "Authorization": f"Bearer {token}"})  # fmt: skip


def test_one_user_cannot_hold_every_session(stack: McpStack) -> None:
    # The SDK's only cap is 10 000 sessions for everyone, each kept 30 minutes when idle:
    # one tenant opening them all locked every other user out of /mcp.
    alice, bob = stack.token("alice", "tenant", "acme"), stack.token("bob", "tenant", "globex")
    opened = [_open(stack, alice) for _ in range(5)]
    assert all(r.status_code == 200 for r in opened), [r.text for r in opened]
    refused = _open(stack, alice)
    assert refused.status_code == 429 and "sessions" in refused.json()["detail"]
    assert _open(stack, bob).status_code == 200
    # A session the user ends frees its place.
    ended = httpx.delete(stack.mcp_url, timeout=30, headers={
        **ACCEPT, "Authorization": f"Bearer {alice}",
        "mcp-session-id": opened[0].headers["mcp-session-id"]})  # fmt: skip
    assert ended.status_code == 200
    assert _open(stack, alice).status_code == 200
