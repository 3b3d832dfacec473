"""Attack (live): an event stream outlives what let it open. The token is checked once, when
the stream starts: a stream opened with a token that has since expired, or by a user an
admin has since removed from the tenant, kept receiving the tenant's events for as long as
the client held it open (directly and through the chat proxy)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.live import serve

RECHECK_SECONDS = 0.3
EVENTS = "/v1/tenants/acme/operations/events"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Streams re-check visibility every RECHECK_SECONDS."""
    return settings.model_copy(update={"event_stream_recheck_seconds": RECHECK_SECONDS})


def _read_until_closed(lines: Iterator[str]) -> tuple[float, list[str]]:
    """Read a stream to its end: (seconds it took, the lines)."""
    began = time.monotonic()
    seen = list(lines)
    return time.monotonic() - began, seen


def test_the_stream_ends_when_the_token_expires(live_api: str, issuer: LocalTokenIssuer) -> None:
    token = issuer.issue("alice", Role.TENANT, ["acme"], ttl_seconds=2)
    with (
        httpx.Client(base_url=live_api, timeout=8) as api,
        api.stream("GET", EVENTS, headers={"Authorization": f"Bearer {token}"}) as stream,
    ):
        assert stream.status_code == 200
        took, lines = _read_until_closed(stream.iter_lines())
    assert took < 4, took  # exp is whole seconds: at most 2 s away, plus a poll
    assert ": token expired: reconnect with a fresh token" in lines
    # The client reconnects with the expired token: refused.
    with httpx.Client(base_url=live_api, timeout=8) as api:
        again = api.get(EVENTS, headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401


def test_the_operation_stream_ends_when_the_token_expires(
    live_api: str,
    admin_api: httpx.Client,
    issuer: LocalTokenIssuer,
    memory_provider: MemoryProvider,
) -> None:
    gate = memory_provider.gates["ensure:database"] = threading.Event()
    try:
        created = admin_api.post(
            "/v1/tenants/acme/sites", json={"name": "slow", "admin_email": "a@acme.example"}
        )
        assert created.status_code == 202, created.text
        op_id = created.json()["operation"]["id"]
        token = issuer.issue("alice", Role.TENANT, ["acme"], ttl_seconds=2)
        with (
            httpx.Client(base_url=live_api, timeout=8) as api,
            api.stream("GET", f"/v1/operations/{op_id}/events",
                       headers={"Authorization": f"Bearer {token}"}) as stream,
        ):  # fmt: skip
            assert stream.status_code == 200
            took, lines = _read_until_closed(stream.iter_lines())
        assert took < 4, took  # the operation is still held at its database step
        assert ": token expired: reconnect with a fresh token" in lines
    finally:
        gate.set()


@pytest.mark.parametrize("through_proxy", [False, True], ids=["direct", "chat-proxy"])
def test_a_user_removed_from_the_tenant_stops_receiving(
    live_api: str,
    admin_api: httpx.Client,
    issuer: LocalTokenIssuer,
    chat_settings: ChatSettings,
    through_proxy: bool,
) -> None:
    stored = admin_api.put("/v1/users/alice", json={"role": "tenant", "tenants": ["acme"]})
    assert stored.status_code == 200, stored.text
    alice = {"Authorization": f"Bearer {issuer.issue('alice', Role.TENANT, ['acme'])}"}
    with serve(create_chat_app(chat_settings)) as chat_url:
        base, path = (chat_url, f"/api{EVENTS}") if through_proxy else (live_api, EVENTS)
        with (
            httpx.Client(base_url=base, headers=alice, timeout=8) as api,
            api.stream("GET", path) as stream,
        ):
            assert stream.status_code == 200
            time.sleep(2 * RECHECK_SECONDS)  # a few re-checks pass: still hers
            moved = admin_api.put("/v1/users/alice", json={"role": "tenant",
                                                           "tenants": ["globex"]})  # fmt: skip
            assert moved.status_code == 200, moved.text
            took, lines = _read_until_closed(stream.iter_lines())
    assert took < 3, took
    assert ": this tenant is no longer visible to the caller" in lines


def test_a_deleted_tenant_ends_its_streams(live_api: str, admin_api: httpx.Client,
                                           issuer: LocalTokenIssuer) -> None:  # fmt: skip
    viewer = {"Authorization": f"Bearer {issuer.issue('vera', Role.VIEWER, ['globex'])}"}
    with (
        httpx.Client(base_url=live_api, headers=viewer, timeout=8) as api,
        api.stream("GET", "/v1/tenants/globex/operations/events") as stream,
    ):
        assert stream.status_code == 200
        deleted = admin_api.delete("/v1/tenants/globex")
        assert deleted.status_code in (200, 202, 204), deleted.text
        took, lines = _read_until_closed(stream.iter_lines())
    assert took < 3, took
    assert ": this tenant is no longer visible to the caller" in lines
