"""Staging on the dashboard's Sites tab in Chromium against the real control plane and chat
services (memory provider): "Clone to staging" makes a staging site drawn under its parent
with a badge; "Drift" lists what changed on production in sentences; "Promote" asks for the
scope, is refused when production changed where it would write (then, and only then,
offers to overwrite), and promotes the tables picked; "Roll back" on the parent puts
production back. A viewer sees Drift and no button that changes anything. Uncaught errors,
console errors and unexpected failed requests fail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from playwright.sync_api import Browser, Locator, Page, expect

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.kernel.identity import Role
from controlplane.providers.memory import MemoryProvider
from tests.agent_fixtures import make_site
from tests.e2e.conftest import BrowserProblems, acme_token, open_dashboard, screenshot
from tests.live import serve

SITES = "/v1/tenants/acme/sites"


@contextmanager
def sites_tab(browser: Browser, url: str, token: str) -> Iterator[tuple[Page, Locator]]:
    """The dashboard on its Sites tab."""
    with open_dashboard(browser, url, token, viewport={"width": 1400, "height": 900},
                        locale="en-GB", timezone_id="UTC") as page:  # fmt: skip
        yield page, page.locator("#sites")


def _status(row: Locator) -> Locator:
    """A row's status badge (a staging site's name carries a badge too)."""
    return row.locator("td").nth(1).locator(".badge").first


def _id(api: httpx.Client, name: str) -> str:
    return str(api.get(f"{SITES}/{name}").json()["id"])


def _shop(api: httpx.Client, memory: MemoryProvider) -> str:
    """Production shop with a page and no comments, and tea beside it; shop's id."""
    make_site(api, "acme", "shop")
    make_site(api, "acme", "tea")
    shop = _id(api, "shop")
    memory.write_content(shop, "table:wp_posts", "home")
    memory.write_content(shop, "table:wp_postmeta", "home:layout")
    memory.write_content(shop, "table:wp_comments", "")
    return shop


def test_clone_drift_promote_refused_then_pages_only_and_roll_back(
    browser: Browser,
    browser_problems: BrowserProblems,
    chat_settings: ChatSettings,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    shop = _shop(admin_api, memory_provider)
    browser_problems.expect(r"/api/v1/tenants/acme/sites/preview/promote$", 409)
    with (
        serve(create_chat_app(chat_settings)) as url,
        sites_tab(browser, url, acme_token(chat_settings, "alice", Role.TENANT)) as (page, panel),
    ):
        rows = panel.locator("tbody tr")
        expect(rows).to_have_count(2)
        shop_row = panel.locator("tr[data-site=shop]")
        shop_row.get_by_role("button", name="Clone shop to a staging site").click()
        dialog = page.get_by_role("dialog", name="Clone shop to staging?")
        expect(dialog.get_by_label("Staging site's name")).to_have_value("shop-staging")
        dialog.get_by_label("Staging site's name").fill("preview")
        dialog.get_by_role("button", name="Clone").click()

        # Drawn under its parent (tea, made before it, comes after), badged, once ready.
        staging = panel.locator("tr[data-site=preview]")
        expect(_status(staging)).to_have_text("ready", timeout=20_000)
        expect(rows).to_have_count(3)
        assert [r.get_attribute("data-site") for r in rows.all()] == ["shop", "preview", "tea"]
        expect(staging.locator(".badge.staging")).to_have_text("staging of shop")
        expect(staging).to_have_class("staging")
        expect(shop_row.get_by_role("button", name=re.compile("^Promote"))).to_have_count(0)

        memory_provider.write_content(shop, "table:wp_comments", "first!")
        memory_provider.write_content(_id(admin_api, "preview"), "table:wp_posts", "home, new")
        staging.get_by_role("button", name="Drift of shop since preview was cloned").click()
        drift = staging.get_by_role("region", name="Drift of shop")
        expect(drift.locator("li")).to_have_text(["1 new comment"])

        staging.get_by_role("button", name="Promote preview to shop").click()
        dialog = page.get_by_role("dialog", name="Promote preview to shop?")
        expect(dialog.get_by_label(re.compile("Overwrite"))).to_have_count(0)  # not yet offered
        expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        expect(dialog.locator("fieldset.tables")).to_be_hidden()
        dialog.get_by_role("button", name="Promote").click()  # everything: refused (409)

        dialog = page.get_by_role("dialog", name="Promote preview to shop?")
        expect(dialog.get_by_role("alert")).to_contain_text("wp_comments")
        expect(dialog.locator(".drift li")).to_have_text(["1 new comment"])
        expect(dialog.get_by_label("Overwrite what changed on shop")).not_to_be_checked()
        dialog.get_by_label("The database").check()
        tables = dialog.locator("fieldset.tables")
        expect(tables).to_be_visible()
        expect(tables.get_by_label("wp_comments")).not_to_be_checked()  # it changed on shop
        tables.get_by_label("wp_options").uncheck()
        screenshot(page, "dashboard-promote")
        dialog.get_by_role("button", name="Promote").click()
        steps = shop_row.get_by_role("list", name="Steps of promote site shop")
        expect(steps.locator("li.failed")).to_have_count(0)
        expect(shop_row.locator(".op .badge")).to_have_text("succeeded", timeout=20_000)
        live = memory_provider.content(shop)
        assert (live["table:wp_posts"], live["table:wp_comments"]) == ("home, new", "first!")

        shop_row.get_by_role("button", name="Roll back the last promotion of shop").click()
        dialog = page.get_by_role("dialog", name="Roll back shop?")
        expect(dialog).to_contain_text("replaced with its pre-promote backup")
        dialog.get_by_role("button", name="Roll back shop").click()
        expect(shop_row.get_by_role("list", name="Steps of restore site shop")).to_be_visible()
        expect(shop_row.locator(".op .badge")).to_have_text("succeeded", timeout=20_000)
    assert memory_provider.content(shop)["table:wp_posts"] == "home"
    kinds = [op["kind"] for op in admin_api.get("/v1/tenants/acme/operations").json()]
    assert kinds.count("promote_site") == 1 and "restore_site" in kinds


def test_a_viewer_reads_the_drift_and_sees_no_staging_action(
    browser: Browser,
    chat_settings: ChatSettings,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    shop = _shop(admin_api, memory_provider)
    cloned = admin_api.post(f"{SITES}/shop/clone", json={"name": "shop-staging"})
    assert cloned.status_code == 202, cloned.text
    viewer = acme_token(chat_settings, "vera", Role.VIEWER)
    with (
        serve(create_chat_app(chat_settings)) as url,
        sites_tab(browser, url, viewer) as (_page, panel),
    ):
        staging = panel.locator("tr[data-site=shop-staging]")
        expect(_status(staging)).to_have_text("ready", timeout=20_000)
        memory_provider.write_content(shop, "table:wp_comments", "a\nb")
        staging.get_by_role("button", name="Drift of shop since shop-staging was cloned").click()
        expect(staging.get_by_role("region", name="Drift of shop").locator("li")).to_have_text(
            ["2 new comments"]
        )
        for name in ("Clone", "Promote", "Roll back"):
            expect(panel.get_by_role("button", name=re.compile(f"^{name}"))).to_have_count(0)
