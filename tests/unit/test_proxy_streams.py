"""The chat proxy's event streams: a caller holds at most a few open, on connections of their
own, so one tenant's open pages never hold up another tenant's calls."""

from __future__ import annotations

import asyncio
import time

import httpx

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from chatbot.web import MAX_STREAMS_PER_CALLER
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from tests.live import in_own_loop, serve

EVENTS = "/api/v1/tenants/acme/operations/events"


def test_a_caller_holds_a_few_streams_and_others_are_not_held_up(
    chat_settings: ChatSettings, admin_api: httpx.Client, issuer: LocalTokenIssuer
) -> None:
    mallory = {"Authorization": f"Bearer {issuer.issue('mallory', Role.VIEWER, ['acme'])}"}
    bob = {"Authorization": f"Bearer {issuer.issue('bob', Role.TENANT, ['globex'])}"}

    async def scenario(chat_url: str) -> tuple[int, int, float, int]:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(base_url=chat_url, timeout=30, limits=limits) as client:
            streams = []
            for _ in range(MAX_STREAMS_PER_CALLER):
                ctx = client.stream("GET", EVENTS, headers=mallory)
                response = await ctx.__aenter__()
                assert response.status_code == 200
                streams.append(ctx)
            try:
                one_more = (
                    await asyncio.wait_for(client.get(EVENTS, headers=mallory), 5)
                ).status_code
            except TimeoutError:
                one_more = 200  # it opened: a stream that is let through never ends
            began = time.monotonic()
            other = (await client.get("/api/v1/me", headers=bob)).status_code
            waited = time.monotonic() - began
            await streams.pop().__aexit__(None, None, None)  # one page closes...
            await asyncio.sleep(0.2)
            again = client.stream("GET", EVENTS, headers=mallory)
            reopened = (await again.__aenter__()).status_code  # ...and its slot is free
            streams.append(again)
            for ctx in streams:
                await ctx.__aexit__(None, None, None)
            return one_more, other, waited, reopened

    with serve(create_chat_app(chat_settings)) as chat_url:
        one_more, other, waited, reopened = in_own_loop(scenario(chat_url))
    assert one_more == 429
    assert other == 200 and waited < 2, f"globex's call waited {waited:.1f} s"
    assert reopened == 200
