"""Agent fixtures: the control plane served over real HTTP (memory provider), a chat engine
with the offline planner, and a helper that runs turns as a given user."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from langchain_core.language_models import BaseChatModel

from chatbot.conversation import ChatEngine
from chatbot.settings import ChatSettings
from controlplane.api.app import create_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.live import serve

TENANTS = ("acme", "globex")


@pytest.fixture
def live_app(settings: Settings, memory_provider: MemoryProvider) -> FastAPI:
    """The control-plane app (memory provider); its platform exists once it is served."""
    return create_app(
        settings, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )


@pytest.fixture
def live_api(live_app: FastAPI, settings: Settings) -> Iterator[str]:
    """The control-plane API on a loopback port, tenants acme and globex created."""
    with serve(live_app) as url:
        token = LocalTokenIssuer(settings).issue("root", Role.ADMIN)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
            for tenant in TENANTS:
                assert api.post("/v1/tenants", json={"id": tenant, "name": tenant}).is_success
        yield url


@pytest.fixture
def admin_api(live_api: str, issuer: LocalTokenIssuer) -> Iterator[httpx.Client]:
    """An admin's HTTP client of the live API."""
    token = issuer.issue("root", Role.ADMIN)
    with httpx.Client(
        base_url=live_api, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        yield api


def make_site(api: httpx.Client, tenant: str, name: str) -> None:
    """Create a site as admin and wait for it."""
    response = api.post(
        f"/v1/tenants/{tenant}/sites", json={"name": name, "admin_email": "o@example.com"}
    )
    assert response.status_code == 202, response.text
    op_id = response.json()["operation"]["id"]
    for _ in range(500):
        if api.get(f"/v1/operations/{op_id}").json()["status"] in ("succeeded", "failed"):
            return
        import time

        time.sleep(0.01)
    raise AssertionError("site creation did not finish")


def site_names(api: httpx.Client, tenant: str) -> list[str]:
    """The tenant's sites, sorted."""
    return sorted(s["name"] for s in api.get(f"/v1/tenants/{tenant}/sites").json())


@pytest.fixture
def chat_settings(settings: Settings, live_api: str) -> ChatSettings:
    """Chat settings (the same home) whose tools call the live API."""
    return ChatSettings(**settings.shared(), chat_control_plane_url=live_api)


EngineFactory = Callable[[BaseChatModel | None], ChatEngine]


@pytest.fixture
def engine_factory(chat_settings: ChatSettings) -> Iterator[EngineFactory]:
    """Build chat engines (closed at the end)."""
    engines: list[ChatEngine] = []

    def make(model: BaseChatModel | None = None) -> ChatEngine:
        engine = ChatEngine(chat_settings, model)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def engine(engine_factory: EngineFactory) -> ChatEngine:
    """A chat engine with the offline planner."""
    return engine_factory(None)


@dataclass
class Turn:
    """What one turn produced."""

    events: list[dict[str, Any]]

    @property
    def reply(self) -> str:
        """The assistant's text of the turn."""
        return "\n".join(
            str(e["message"]["content"]) for e in self.events if e["type"] == "message"
        ).strip()

    @property
    def proposed(self) -> list[dict[str, Any]]:
        """Tool calls the model made in this turn."""
        return [
            c for e in self.events if e["type"] == "message" for c in e["message"]["tool_calls"]
        ]

    @property
    def executed(self) -> list[dict[str, Any]]:
        """Tool results (tool_end events)."""
        return [e for e in self.events if e["type"] == "tool_end"]

    @property
    def interrupt(self) -> dict[str, Any] | None:
        """The confirmation asked for, if any."""
        return next((e for e in self.events if e["type"] == "interrupt"), None)


@dataclass
class Chatter:
    """One user's conversation."""

    engine: ChatEngine
    token: str
    issuer: LocalTokenIssuer
    thread_id: str | None = None
    turns: list[Turn] = field(default_factory=list)

    def say(self, text: str) -> Turn:
        """Send a message."""
        ctx = self.engine.context(self.issuer.verify(self.token), self.token)
        self.thread_id = self.engine.open_thread(ctx, self.thread_id, text)
        turn = Turn(list(self.engine.turn(ctx, self.thread_id, message=text)))
        self.turns.append(turn)
        return turn

    def resume(
        self,
        approve: bool,
        secrets: dict[str, str] | None = None,
        uploads: dict[str, str] | None = None,
    ) -> Turn:
        """Answer the pending confirmation (with the values its card asks for, and the
        operations its uploads started)."""
        assert self.thread_id is not None
        ctx = self.engine.context(self.issuer.verify(self.token), self.token)
        events = self.engine.turn(
            ctx, self.thread_id, approve=approve, secrets=secrets, uploads=uploads
        )
        turn = Turn(list(events))
        self.turns.append(turn)
        return turn


ChatFactory = Callable[..., Chatter]


@pytest.fixture
def chat(engine: ChatEngine, issuer: LocalTokenIssuer) -> ChatFactory:
    """chat(role, *tenants, sub=, email=, engine=) -> a Chatter for that user."""

    def make(
        role: str,
        *tenants: str,
        sub: str | None = None,
        email: str | None = None,
        engine_: ChatEngine | None = None,
    ) -> Chatter:
        token = issuer.issue(sub or f"{role}-user", Role(role), list(tenants), email=email)
        return Chatter(engine_ or engine, token, issuer)

    return make
