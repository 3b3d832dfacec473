"""What the agent tests ask the control plane about tenant acme, and a chat on a scripted model."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.agent.scripted import ScriptedModel
from tests.agent_fixtures import ChatFactory, Chatter, EngineFactory

SITES = "/v1/tenants/acme/sites"


def wait_succeeded(api: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    """The 202 body of `response`, once its operation has succeeded (it must)."""
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    op_id = accepted["operation"]["id"]
    for _ in range(1000):
        operation: dict[str, Any] = api.get(f"/v1/operations/{op_id}").json()
        if operation["status"] in ("succeeded", "failed", "rolled_back"):
            assert operation["status"] == "succeeded", operation
            return accepted
        time.sleep(0.01)
    raise AssertionError(f"operation {op_id} did not finish")


def site_id_of(api: httpx.Client, name: str) -> str:
    """The id of acme's site `name`."""
    return str(api.get(f"{SITES}/{name}").json()["id"])


def scripted_chat(
    engine_factory: EngineFactory, chat: ChatFactory, *calls: Any, **who: Any
) -> Chatter:
    """A chat of acme's user (role=, sub=) whose model makes `calls`, one a turn."""
    model = ScriptedModel(script=[[call] for call in calls])
    role, sub = who.pop("role", "tenant"), who.pop("sub", "alice")
    return chat(role, "acme", sub=sub, email=f"{sub}@acme.example", engine_=engine_factory(model))


def operations_of(api: httpx.Client, kind: str) -> list[dict[str, Any]]:
    """Acme's operations of `kind`."""
    return [op for op in api.get("/v1/tenants/acme/operations").json() if op["kind"] == kind]
