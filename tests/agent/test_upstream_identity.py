"""In gcp mode the control plane is private: every call the chatbot makes to it (tools and
the browser proxy) carries the chatbot's ID token in X-Serverless-Authorization, next to
the user's own bearer token."""

from __future__ import annotations

from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chatbot.service import create_app
from chatbot.settings import ChatSettings
from chatbot.upstream import ServiceIdentity, identity_for
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.settings import Settings
from tests.live import serve
from tools.registry import run_tool


def test_both_identities_reach_the_control_plane(settings: Settings) -> None:
    seen: list[dict[str, str]] = []

    async def sites(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        return JSONResponse([])

    fetched: list[str] = []

    def source(audience: str) -> str:
        fetched.append(audience)
        return "chatbot-id-token"

    fake = Starlette(routes=[Route("/v1/tenants/acme/sites", sites)])
    with serve(fake) as url:
        chat_settings = ChatSettings(**settings.shared(), chat_control_plane_url=url)
        identity = ServiceIdentity(url, source)
        token = LocalTokenIssuer(settings).issue("alice", Role.TENANT, ["acme"])
        with TestClient(create_app(chat_settings, identity=identity)) as client:
            engine = client.app.state.engine  # type: ignore[attr-defined]
            ctx = engine.context(LocalTokenIssuer(settings).verify(token), token)
            assert run_tool("list_sites", {}, ctx, lambda _e: None, engine.http).status == "ok"
            proxied = client.get(
                "/api/v1/tenants/acme/sites", headers={"Authorization": f"Bearer {token}"}
            )
            assert proxied.status_code == 200
    assert len(seen) == 2
    for headers in seen:
        assert headers["x-serverless-authorization"] == "Bearer chatbot-id-token"
        assert headers["authorization"] == f"Bearer {token}"
    assert fetched == [url]  # fetched once, then cached


def test_the_embedded_default_sends_no_service_identity(settings: Settings) -> None:
    assert identity_for(ChatSettings(**settings.shared())) is None
