"""An import asked for in the chat dock, in Chromium against the real control plane and chat
services (memory provider): the planner asks for the site and its old address, the card
asks for the export, the widget uploads it itself (multipart, the user's token, progress
shown) straight to the import endpoint, and the thread learns the operation, never the
file. A file the control plane refuses leaves the card open and nothing started."""

from __future__ import annotations

import json

import httpx
from playwright.sync_api import Browser, expect

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from tests.agent_fixtures import make_site
from tests.e2e.conftest import BrowserProblems, screenshot, signed_in_page
from tests.import_fixtures import DUMP, good_archive
from tests.live import serve

SITES = "/v1/tenants/acme/sites"
MARKER = "MARKER-INSIDE-THE-EXPORT"


def _export() -> bytes:
    """A small site export (database.sql and wp-content/, one .tar.gz) with a marker."""
    return good_archive(DUMP + f"-- {MARKER}\n")


def _imports(api: httpx.Client) -> list[dict[str, object]]:
    operations = api.get("/v1/tenants/acme/operations").json()
    return [op for op in operations if op["kind"] == "import_site"]


def test_the_widget_uploads_the_export_from_the_card_and_the_chat_learns_only_the_operation(
    browser: Browser,
    browser_problems: BrowserProblems,
    chat_settings: ChatSettings,
    admin_api: httpx.Client,
) -> None:
    make_site(admin_api, "acme", "crumbs")
    browser_problems.expect(r"/api/v1/tenants/acme/sites/crumbs/import$", 422)
    token = LocalTokenIssuer(chat_settings).issue("alice", Role.TENANT, ["acme"],
                                                  email="alice@acme.example")  # fmt: skip
    with serve(create_chat_app(chat_settings)) as url:
        context, page = signed_in_page(browser, token, viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/dashboard")
        box = page.locator("aipress-chat textarea")
        for text, asked in (("import my site", "Which of your sites"),
                            ("crumbs", "old address")):  # fmt: skip
            box.fill(text)
            box.press("Enter")
            expect(page.locator("aipress-chat .msg.assistant").last).to_contain_text(asked)
        box.fill("https://old.example.com")
        box.press("Enter")
        card = page.get_by_role("alertdialog", name="Confirmation needed")
        expect(card).to_contain_text("Import a WordPress site into crumbs of tenant acme?")
        expect(card).to_contain_text("rewritten from https://old.example.com")

        card.get_by_role("button", name="Confirm").click()  # no file chosen yet
        expect(card.get_by_role("status")).to_have_text("Choose the export file first.")
        chooser = card.get_by_label("Export: a .tar.gz")
        chooser.set_input_files(
            {"name": "broken.tar.gz", "mimeType": "application/gzip", "buffer": b"not a tar"}
        )
        card.get_by_role("button", name="Confirm").click()
        expect(card.get_by_role("status")).to_contain_text("Nothing changed:")
        assert _imports(admin_api) == []
        expect(card.get_by_role("button", name="Confirm")).to_be_enabled()

        chooser.set_input_files(
            {"name": "old-site.tar.gz", "mimeType": "application/gzip", "buffer": _export()}
        )
        card.get_by_role("button", name="Confirm").click()
        step = page.get_by_role("group", name="Importing into crumbs")
        expect(step.locator(".spinner")).not_to_have_text("", timeout=30_000)
        expect(card.locator("progress")).to_have_attribute("value", "100")
        screenshot(page, "widget-import")
        thread = page.evaluate("Object.entries(sessionStorage).find(([k]) => "
                               "k.startsWith('aipress.thread.'))[1]")  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        history = httpx.get(f"{url}/v1/chat/{thread}", headers=headers, timeout=10).json()
        context.close()
    (operation,) = _imports(admin_api)
    assert operation["site_name"] == "crumbs"
    told = json.dumps(history)
    assert operation["id"] in told  # the tool followed the operation the upload started
    assert MARKER not in told and "old-site.tar.gz" not in told
