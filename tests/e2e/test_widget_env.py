"""A secret set by chat is typed into the confirmation card's password field, in a real
browser: it leaves the page only in the resume frame and never shows up in the thread."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from playwright.sync_api import Browser, WebSocket, expect

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from tests.agent.scripted import ScriptedModel
from tests.agent_fixtures import make_site
from tests.e2e.conftest import screenshot, signed_in_page, watch
from tests.live import serve

SECRET = "sk_live_" + "browser7Hq2mV9xK4pLw"


def test_a_secret_is_typed_into_the_confirmation_card_and_never_into_the_thread(
    browser: Browser, chat_settings: ChatSettings, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    token = LocalTokenIssuer(chat_settings).issue("alice", Role.TENANT, ["acme"])
    model = ScriptedModel(script=[[("set_env", {"name": "STRIPE_KEY", "secret": True})]])
    with serve(create_chat_app(chat_settings, model=model)) as url:
        context, page = signed_in_page(browser, token, viewport={"width": 360, "height": 740})
        errors = watch(page)
        sent: list[str] = []

        def frames(socket: WebSocket) -> None:
            socket.on("framesent", lambda payload: sent.append(str(payload)))

        page.on("websocket", frames)
        page.goto(f"{url}/dashboard")
        box = page.locator("aipress-chat textarea")
        box.fill("store my stripe key as a secret")
        box.press("Enter")
        card = page.get_by_role("alertdialog", name="Confirmation needed")
        expect(card).to_contain_text("Set secret STRIPE_KEY for tenant acme?")
        expect(card).to_contain_text("Every running site of acme (crumbs) restarts its PHP workers")
        field = card.get_by_label("Value of STRIPE_KEY")
        expect(field).to_have_attribute("type", "password")
        expect(field).to_be_focused()
        card.get_by_role("button", name="Confirm").click()  # empty: nothing is sent
        expect(card).to_contain_text("Type the value first.")
        field.fill("$" + SECRET)  # the control plane refuses it: the card opens again
        card.get_by_role("button", name="Confirm").click()
        expect(page.locator("aipress-chat .msg.error")).to_contain_text("must not start with '$'")
        expect(card).to_contain_text("Nothing changed")
        expect(field).to_be_enabled()
        expect(field).to_have_value("")  # never left in the page
        field.fill(SECRET)
        screenshot(page, "widget-secret-card")
        card.get_by_role("button", name="Confirm").click()
        expect(page.locator("aipress-chat .step.done")).to_contain_text("Setting STRIPE_KEY")
        expect(field).to_have_value("")
        assert SECRET not in page.locator("aipress-chat").inner_text()
        context.close()
        assert errors == []
    with_secret = [json.loads(f) for f in sent if SECRET in f]
    assert [f["type"] for f in with_secret] == ["resume", "resume"]  # only the answers
    assert all(not f.get("text") for f in with_secret)
    (saved,) = admin_api.get("/v1/tenants/acme/env").json()
    assert saved["name"] == "STRIPE_KEY" and saved["secret"] is True
    database = Path(chat_settings.chat_checkpoint_url.removeprefix("sqlite:///"))
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert SECRET.encode() not in stored
