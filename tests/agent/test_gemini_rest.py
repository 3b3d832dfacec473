"""The Gemini path through the real client library (langchain-google-genai over google-genai's
REST transport, Vertex AI URLs) against a local fake of the Vertex AI endpoint that checks
what it receives. No network: what is not exercised is Google's own model and auth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.oauth2.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from chatbot.models import make_model
from chatbot.settings import ChatSettings
from tests.agent_fixtures import ChatFactory, EngineFactory, make_site
from tests.live import serve
from tools.registry import toolset

MODEL_PATH = "/v1beta1/projects/aipress-test/locations/europe-west1/publishers/google/models/"


class FakeVertex:
    """Answers generateContent like Gemini: a function call first, then text from the
    function's response. Records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((request.url.path, dict(request.headers), body))
        parts = body["contents"][-1]["parts"]
        answered = [p["functionResponse"] for p in parts if "functionResponse" in p]
        if answered:
            result = answered[0]["response"]
            sites = result["data"]["sites"]
            text = "Your sites: " + ", ".join(s["name"] for s in sites)
            part: dict[str, Any] = {"text": text}
        else:
            part = {"functionCall": {"name": "list_sites", "args": {}}}
        payload = {
            "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 5,
                "totalTokenCount": 15,
            },
        }
        if ":streamGenerateContent" in request.url.path:
            return Response(f"data: {json.dumps(payload)}\r\n\r\n", media_type="text/event-stream")
        return JSONResponse(payload)


@pytest.fixture
def vertex() -> Iterator[tuple[FakeVertex, str]]:
    fake = FakeVertex()
    app = Starlette(routes=[Route("/{path:path}", fake.handle, methods=["POST"])])
    with serve(app) as url:
        yield fake, url


def test_a_turn_on_gemini_through_the_real_client(
    vertex: tuple[FakeVertex, str],
    chat_settings: ChatSettings,
    engine_factory: EngineFactory,
    chat: ChatFactory,
    admin_api: httpx.Client,
) -> None:
    fake, url = vertex
    make_site(admin_api, "acme", "crumbs")
    settings = chat_settings.model_copy(
        update={"chat_model": "gemini", "gcp_project": "aipress-test",
                "gcp_location": "europe-west1", "gemini_endpoint": url}
    )  # fmt: skip
    model = make_model(settings, credentials=Credentials(token="vertex-access-token"))
    alice = chat("tenant", "acme", sub="alice", engine_=engine_factory(model))
    turn = alice.say("which sites do I have?")

    assert [c["name"] for c in turn.proposed] == ["list_sites"]
    assert [e["status"] for e in turn.executed] == ["ok"]
    assert turn.reply == "Your sites: crumbs"
    assert len(fake.requests) == 2
    path, headers, first = fake.requests[0]
    assert path.startswith(MODEL_PATH + "gemini-2.5-flash:")
    assert headers["authorization"] == "Bearer vertex-access-token"
    system = " ".join(p["text"] for p in first["systemInstruction"]["parts"])
    assert "tenant acme" in system and "alice" in system
    declared = {f["name"]: f for t in first["tools"] for f in t["functionDeclarations"]}
    assert list(declared) == list(toolset(admin=False))  # every tenant tool, in order
    assert {"list_sites", "set_env", "restore_site", "undelete_site"} <= set(declared)
    for function in declared.values():  # the tenant variant offers no tenant argument
        assert "tenant_id" not in (function.get("parameters") or {}).get("properties", {})
    assert alice.token not in json.dumps(fake.requests)  # the user's token never reaches Gemini
    _, _, second = fake.requests[1]
    response = second["contents"][-1]["parts"][0]["functionResponse"]
    assert response["name"] == "list_sites"
