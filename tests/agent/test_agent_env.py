"""The agent's env tools: list_env shows names and secret flags, set_env/unset_env wait for
the user's confirmation, and a secret's value goes from the confirmation card to the control
plane without entering the model's context, the thread or its checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from chatbot.conversation import SecretRefused
from chatbot.service import _status_of, create_app
from chatbot.settings import ChatSettings
from chatbot.terminal import TerminalChat
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.providers.memory import MemoryProvider
from tests.agent.scripted import ScriptedModel
from tests.agent_fixtures import ChatFactory, Chatter, EngineFactory, make_site
from tests.conftest import SECRET_RECORD
from tests.live import serve
from tests.secret_scan import read_record

SECRET = "sk_live_" + "Zq8wX3vT9pLmN2rK7yB4"  # built, so no one greps it out of this file
PASTED = "sk_test_" + "pasted8wX3vT9pLmN2rK"  # one the model tries to pass on (never sealed)


def _env(admin_api: httpx.Client, tenant: str = "acme") -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in admin_api.get(f"/v1/tenants/{tenant}/env").json()}


def _scripted(engine_factory: EngineFactory, chat: ChatFactory, *calls: Any, **who: Any) -> Chatter:
    model = ScriptedModel(script=[[call] for call in calls])
    role, tenants = who.pop("role", "tenant"), who.pop("tenants", ("acme",))
    return chat(role, *tenants, sub=who.pop("sub", "alice"), engine_=engine_factory(model))


def _stored(chat_settings: ChatSettings) -> bytes:
    database = Path(chat_settings.chat_checkpoint_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))


def test_list_env_shows_names_and_whether_secret_never_a_secrets_value(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client
) -> None:
    body = {"vars": {"STRIPE_KEY": {"value": SECRET, "secret": True},
                     "SHOP_MODE": {"value": "staging"}}}  # fmt: skip
    assert admin_api.put("/v1/tenants/acme/env", json=body).status_code == 202
    alice = _scripted(engine_factory, chat, ("list_env", {}))
    turn = alice.say("which env vars do my sites get?")
    (result,) = turn.executed
    assert result["status"] == "ok"
    listed = {v["name"]: v for v in result["data"]["variables"]}
    assert listed["STRIPE_KEY"]["secret"] is True and "value" not in listed["STRIPE_KEY"]
    assert listed["SHOP_MODE"] == {**listed["SHOP_MODE"], "secret": False,
                                        "value": "staging"}  # fmt: skip
    assert SECRET not in json.dumps(turn.events)


def test_a_secret_goes_from_the_card_to_the_control_plane_and_nowhere_else(
    engine_factory: EngineFactory,
    chat: ChatFactory,
    admin_api: httpx.Client,
    chat_settings: ChatSettings,
    memory_provider: MemoryProvider,
) -> None:
    make_site(admin_api, "acme", "crumbs")
    alice = _scripted(engine_factory, chat, ("set_env", {"name": "STRIPE_KEY", "secret": True}))
    asked = alice.say("store my stripe key as a secret")
    assert asked.interrupt is not None and asked.executed == []
    (action,) = asked.interrupt["actions"]
    assert action["input"] == "secret" and action["variable"] == "STRIPE_KEY"
    assert action["question"] == (
        "Set secret STRIPE_KEY for tenant acme? Every running site of acme (crumbs) restarts "
        "its PHP workers to read it."
    )
    with pytest.raises(SecretRefused, match="type the value of STRIPE_KEY"):
        alice.resume(True)  # a confirmation without the value changes nothing, still waits
    assert "STRIPE_KEY" not in _env(admin_api)
    done = alice.resume(True, {action["tool_call_id"]: SECRET})
    (result,) = done.executed
    assert result["status"] == "ok", result
    assert result["data"]["operation"]["kind"] == "apply_env"
    assert result["data"]["operation"]["status"] == "succeeded"
    assert _env(admin_api)["STRIPE_KEY"]["secret"] is True
    operations = admin_api.get("/v1/tenants/acme/operations").json()
    applied = [op["id"] for op in operations if op["kind"] == "apply_env"]
    assert applied == [result["data"]["operation"]["id"]]  # the card's change, made once
    assert "set:env:crumbs" in memory_provider.calls  # the running site got it
    assert SECRET in read_record(SECRET_RECORD)  # the control plane sealed this very value
    # ...and it is nowhere on the chat side: not in any event, message, thread or checkpoint.
    assert SECRET not in json.dumps([t.events for t in alice.turns])
    assert SECRET not in json.dumps(alice.engine.history(str(alice.thread_id)))
    assert SECRET.encode() not in _stored(chat_settings)


def test_the_model_cannot_pass_a_secrets_value_and_a_plain_one_needs_a_value(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client
) -> None:
    alice = _scripted(
        engine_factory, chat,
        ("set_env", {"name": "STRIPE_KEY", "secret": True, "value": PASTED}),
        ("set_env", {"name": "SHOP_MODE"}),
    )  # fmt: skip
    first = alice.say("set STRIPE_KEY")
    second = alice.say("set SHOP_MODE")
    assert first.interrupt is None and second.interrupt is None
    assert "never goes through chat" in first.reply and "typed" not in first.reply
    assert "a plain variable needs a value" in second.reply
    assert _env(admin_api) == {}
    assert PASTED not in read_record(SECRET_RECORD)  # it never reached the control plane


def test_a_plain_variable_is_set_after_confirmation_and_cancel_changes_nothing(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client
) -> None:
    call = ("set_env", {"name": "SHOP_MODE", "value": "staging"})
    alice = _scripted(engine_factory, chat, call, call)
    asked = alice.say("set SHOP_MODE to staging")
    assert asked.interrupt is not None
    (action,) = asked.interrupt["actions"]
    assert "input" not in action  # nothing to type: the value is not a secret
    assert action["question"] == (
        "Set SHOP_MODE = staging for tenant acme? No site of acme is running; sites "
        "read it when they start."
    )
    cancelled = alice.resume(False)
    assert [r["status"] for r in cancelled.executed] == []
    assert _env(admin_api) == {}
    alice.say("set it after all")
    done = alice.resume(True)
    assert [r["status"] for r in done.executed] == ["ok"]
    assert _env(admin_api)["SHOP_MODE"]["value"] == "staging"


def test_unset_env_asks_naming_the_variable_then_removes_it(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client
) -> None:
    admin_api.put("/v1/tenants/acme/env/MAILER_HOST", json={"value": "1"})
    alice = _scripted(
        engine_factory,
        chat,
        ("unset_env", {"name": "NOT_THERE"}),
        ("unset_env", {"name": "MAILER_HOST"}),
    )
    missing = alice.say("remove NOT_THERE")
    assert missing.interrupt is None
    assert "env var 'NOT_THERE' not found in tenant 'acme'" in missing.reply
    asked = alice.say("remove MAILER_HOST")
    assert asked.interrupt is not None
    assert asked.interrupt["actions"][0]["question"].startswith(
        "Remove MAILER_HOST from tenant acme?"
    )
    assert "MAILER_HOST" in _env(admin_api)  # nothing before the answer
    done = alice.resume(True)
    assert [r["status"] for r in done.executed] == ["ok"]
    assert done.executed[0]["data"]["change"] == "unset"
    assert "MAILER_HOST" not in _env(admin_api)


def test_a_viewer_is_never_asked_and_an_admin_names_the_tenant(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client
) -> None:
    call = ("set_env", {"name": "SHOP_MODE", "value": "staging"})
    viewer = _scripted(engine_factory, chat, call, role="viewer", sub="vera")
    refused = viewer.say("set SHOP_MODE to staging")
    assert refused.interrupt is None
    assert "does not allow your role (viewer) to change the env vars of tenant acme" in (
        refused.reply
    )
    root = _scripted(
        engine_factory, chat, ("set_env", {**call[1], "tenant_id": "globex"}),
        role="admin", tenants=(), sub="root",
    )  # fmt: skip
    asked = root.say("set SHOP_MODE for globex")
    assert asked.interrupt is not None
    assert asked.interrupt["actions"][0]["tenant_id"] == "globex"
    root.resume(True)
    assert _env(admin_api, "globex")["SHOP_MODE"]["value"] == "staging"
    assert _env(admin_api) == {}


def test_a_refused_secret_changes_nothing_and_the_card_can_be_answered_again(
    engine_factory: EngineFactory, chat: ChatFactory, admin_api: httpx.Client
) -> None:
    alice = _scripted(engine_factory, chat, ("set_env", {"name": "STRIPE_KEY", "secret": True}))
    asked = alice.say("store my stripe key")
    assert asked.interrupt is not None
    call_id = asked.interrupt["actions"][0]["tool_call_id"]
    with pytest.raises(SecretRefused, match="must not start with '\\$'") as refused:
        alice.resume(True, {call_id: "$" + SECRET})  # the control plane's own 422
    assert refused.value.status == 422
    assert "STRIPE_KEY" not in _env(admin_api)
    done = alice.resume(True, {call_id: SECRET})
    assert [r["status"] for r in done.executed] == ["ok"]


def test_the_secret_travels_in_the_resume_frame_or_body_only(
    chat_settings: ChatSettings, issuer: LocalTokenIssuer, admin_api: httpx.Client
) -> None:
    call = ("set_env", {"name": "STRIPE_KEY", "secret": True})
    model = ScriptedModel(script=[[call], [call]])
    token = issuer.issue("alice", Role.TENANT, ["acme"])
    with TestClient(create_app(chat_settings, model=model)) as client:
        with client.websocket_connect("/v1/chat/ws") as ws:
            ws.send_json({"type": "auth", "token": token})
            assert ws.receive_json()["type"] == "ready"
            ws.send_json({"type": "message", "text": "store my stripe key"})
            frames = [ws.receive_json() for _ in range(4)]  # thread, message, interrupt, done
            (interrupt,) = [f for f in frames if f["type"] == "interrupt"]
            call_id = interrupt["actions"][0]["tool_call_id"]
            ws.send_json({"type": "resume", "thread_id": interrupt["thread_id"],
                          "approve": True, "secrets": {call_id: 42}})  # fmt: skip
            error = ws.receive_json()
            assert error["type"] == "error" and error["status"] == 422
            assert "'secrets' must map tool call ids" in error["detail"]
            ws.send_json({"type": "resume", "thread_id": interrupt["thread_id"],
                          "approve": True, "secrets": {call_id: SECRET}})  # fmt: skip
            ended = next(f for f in iter(ws.receive_json, None) if f["type"] == "tool_end")
            assert ended["status"] == "ok" and ended["data"]["variable"] == "STRIPE_KEY"
        headers = {"Authorization": f"Bearer {token}"}
        asked = client.post("/v1/chat", json={"message": "rotate it"}, headers=headers).json()
        call_id = asked["interrupt"]["actions"][0]["tool_call_id"]
        path = f"/v1/chat/{asked['thread_id']}/resume"
        missing = client.post(path, json={"approve": True}, headers=headers)
        assert missing.status_code == 422, missing.text
        assert missing.headers["content-type"] == "application/problem+json"
        done = client.post(path, json={"approve": True, "secrets": {call_id: SECRET + "2"}},
                           headers=headers)  # fmt: skip
        assert done.status_code == 200, done.text
        assert [m["status"] for m in done.json()["messages"] if m["role"] == "tool"] == ["ok"]
        assert SECRET not in done.text


def test_a_refusal_keeps_the_control_planes_status() -> None:
    assert _status_of(SecretRefused(403, "no")) == 403  # not every refusal is the value's fault


def test_the_offline_planner_lists_sets_and_removes_env_vars_and_keeps_secrets_out(
    chat: ChatFactory, admin_api: httpx.Client
) -> None:
    alice = chat("tenant", "acme", sub="alice")
    asked = alice.say("set SHOP_MODE to staging")
    assert asked.interrupt is not None
    assert alice.resume(True).reply == "Set SHOP_MODE for tenant acme; the running sites have it."
    pasted = alice.say(f"store STRIPE_KEY as a secret: {PASTED}")
    assert pasted.interrupt is not None and pasted.interrupt["actions"][0]["input"] == "secret"
    assert "I won't use the value you wrote in chat" in pasted.reply
    assert PASTED not in json.dumps(pasted.proposed)  # the model's call carries no value
    call_id = pasted.interrupt["actions"][0]["tool_call_id"]
    alice.resume(True, {call_id: SECRET})
    listed = alice.say("which env vars do my sites get?").reply
    assert "**SHOP_MODE** (= staging)" in listed
    assert "**STRIPE_KEY** (secret, write-only)" in listed and SECRET not in listed
    alice.say("remove SHOP_MODE")
    assert alice.resume(False).reply == "Cancelled: SHOP_MODE was not changed."
    alice.say("unset SHOP_MODE")
    assert "Removed SHOP_MODE" in alice.resume(True).reply
    assert sorted(_env(admin_api)) == ["STRIPE_KEY"]
    assert "What should SHOP_MODE be?" in alice.say("set SHOP_MODE").reply
    again = alice.say("store STRIPE_KEY as a secret")  # no value typed: no warning either
    assert again.interrupt is not None and "I won't use" not in again.reply


def test_the_terminal_reads_the_secret_unechoed_and_asks_again_after_a_refusal(
    chat_settings: ChatSettings, issuer: LocalTokenIssuer, admin_api: httpx.Client
) -> None:
    typed = iter(["$" + SECRET, SECRET])  # the first is refused by the control plane
    prompts: list[str] = []

    def ask_secret(prompt: str) -> str:
        prompts.append(prompt)
        return next(typed)

    console = Console(record=True, width=120)
    with serve(create_app(chat_settings)) as url:
        token = issuer.issue("alice", Role.TENANT, ["acme"])
        session = TerminalChat(url, token, console, lambda _q: "yes", ask_secret)
        try:
            session.send("store STRIPE_KEY as a secret")
        finally:
            session.close()
    assert prompts == ["Value of STRIPE_KEY (not shown): "] * 2
    shown = console.export_text()
    assert "must not start with '$'" in shown and "Set STRIPE_KEY for tenant acme" in shown
    assert SECRET not in shown
    assert _env(admin_api)["STRIPE_KEY"]["secret"] is True
