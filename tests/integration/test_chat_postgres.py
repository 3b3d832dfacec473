"""The chatbot's production store: LangGraph checkpoints and thread owners on PostgreSQL.
A confirmation asked by one chat instance is answered through another (Cloud Run may route
the resume anywhere)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from chatbot.conversation import ChatEngine
from chatbot.settings import ChatSettings
from chatbot.store import ThreadNotFound
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from tests.agent_fixtures import make_site, site_names
from tests.integration.postgres_server import postgres_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def test_threads_and_interrupts_survive_across_instances(
    postgres_url: str,
    chat_settings: ChatSettings,
    issuer: LocalTokenIssuer,
    admin_api: httpx.Client,
) -> None:
    make_site(admin_api, "acme", "crumbs")
    settings = chat_settings.model_copy(update={"chat_database_url": postgres_url})
    token = issuer.issue("alice", Role.TENANT, ["acme"])
    first = ChatEngine(settings)
    try:
        ctx = first.context(issuer.verify(token), token)
        thread = first.open_thread(ctx, None, "delete crumbs")
        events = list(first.turn(ctx, thread, message="delete crumbs"))
        assert any(e["type"] == "interrupt" for e in events)
    finally:
        first.close()
    second = ChatEngine(settings)
    try:
        ctx = second.context(issuer.verify(token), token)
        assert second.pending_interrupt(thread) is not None
        events = list(second.turn(ctx, thread, approve=True))
        assert any(e["type"] == "tool_end" and e["status"] == "ok" for e in events)
        assert site_names(admin_api, "acme") == []
        assert [m["role"] for m in second.history(thread)][:2] == ["user", "assistant"]
        with pytest.raises(ThreadNotFound):
            second.threads.get(
                thread, owner_key=issuer.verify(issuer.issue("bob", Role.TENANT, ["acme"])).key
            )
        assert (
            second.threads.list(
                owner_key=issuer.verify(issuer.issue("bob", Role.TENANT, ["acme"])).key
            )
            == []
        )
    finally:
        second.close()
