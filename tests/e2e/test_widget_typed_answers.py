"""While a confirmation waits, the widget's message box stays usable: something typed that
does not answer it is reminded of what waits, and a typed "no" or "yes" answers the card as its
buttons do, in a real browser."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, expect

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from tests.agent_fixtures import make_site, site_names
from tests.e2e.conftest import watched_dashboard
from tests.live import serve


def test_typed_answers_to_a_waiting_confirmation(
    browser: Browser, chat_settings: ChatSettings, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    token = LocalTokenIssuer(chat_settings).issue("alice", Role.TENANT, ["acme"])
    with (
        serve(create_chat_app(chat_settings)) as url,
        watched_dashboard(browser, url, token) as (page, errors),
    ):
        box = page.locator("aipress-chat textarea")
        send = page.locator("aipress-chat .send")
        box.fill("delete crumbs")
        box.press("Enter")
        card = page.get_by_role("alertdialog", name="Confirmation needed")
        expect(card).to_contain_text("Delete site crumbs of tenant acme?")
        expect(box).to_be_enabled()
        box.fill("what happens to my files?")
        box.press("Enter")
        expect(page.locator("aipress-chat .msg.assistant").last).to_contain_text(
            "Still waiting for your answer"
        )
        expect(card).to_have_count(1)  # the reminder repeats no card
        expect(card.get_by_role("button", name="Confirm")).to_be_enabled()
        expect(send).to_be_enabled()
        assert site_names(admin_api, "acme") == ["crumbs"]
        box.fill("no, keep it")
        box.press("Enter")
        expect(page.locator("aipress-chat .msg.assistant").last).to_contain_text(
            "Cancelled: crumbs was not deleted"
        )
        expect(card).to_contain_text("Cancelled.")
        expect(card.get_by_role("button", name="Confirm")).to_be_disabled()
        assert site_names(admin_api, "acme") == ["crumbs"]
        box.fill("delete crumbs")
        box.press("Enter")
        second = page.get_by_role("alertdialog", name="Confirmation needed").last
        expect(second.get_by_role("button", name="Confirm")).to_be_enabled()
        box.fill("yes, go ahead")
        box.press("Enter")
        expect(page.locator("aipress-chat .msg.assistant").last).to_contain_text("Deleted")
        expect(second).to_contain_text("Confirmed.")
        expect(second.get_by_role("button", name="Cancel")).to_be_disabled()
        assert errors == []
    assert site_names(admin_api, "acme") == []
