"""Attack (live): each open event stream keeps its request's database session (and so a
pooled connection) checked out for as long as the stream lives: FastAPI closes a yield
dependency's session only after the response ends. 40 streams (pool 30 + overflow 10) from
one viewer of one tenant leave no connection for anyone: every other tenant's call, and the
engine's steps, wait 30 s for the pool and fail."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx

from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from tests.live import in_own_loop

STREAMS = int(__import__("os").environ.get("ATTACK_N", "45"))


def test_open_streams_do_not_hold_database_connections(
    live_api: str, issuer: LocalTokenIssuer
) -> None:
    mallory = {"Authorization": f"Bearer {issuer.issue('mallory', Role.VIEWER, ['acme'])}"}
    bob = {"Authorization": f"Bearer {issuer.issue('bob', Role.TENANT, ['globex'])}"}

    async def attack() -> float:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(base_url=live_api, timeout=60, limits=limits) as evil:
            opening = [
                evil.send(
                    evil.build_request(
                        "GET", "/v1/tenants/acme/operations/events", headers=mallory
                    ),
                    stream=True,
                )
                for _ in range(STREAMS)
            ]
            tasks = [asyncio.ensure_future(o) for o in opening]
            await asyncio.sleep(3)  # the streams open (the later ones wait for the pool)
            try:
                async with httpx.AsyncClient(base_url=live_api, timeout=30) as victim:
                    began = time.monotonic()
                    try:
                        answer = await asyncio.wait_for(
                            victim.get("/v1/tenants/globex/sites", headers=bob), 8
                        )
                        assert answer.status_code == 200, answer.text
                    except TimeoutError:
                        pass
                    return time.monotonic() - began
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(BaseException):
                        await (await task).aclose()

    waited = in_own_loop(attack())
    assert waited < 5, f"globex's site list waited {waited:.1f} s behind acme's {STREAMS} streams"
