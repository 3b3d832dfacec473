"""The dashboard's updates, in Chromium against the real control plane and chat services
(memory provider): the Updates column shows a site's count ("—" before its packages were
read), and the Update button asks first in a dialog listing the dry run's changes; Cancel
changes nothing, confirming runs the update live."""

from __future__ import annotations

import threading

import httpx
from playwright.sync_api import Browser, expect

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.kernel.identity import Role
from controlplane.providers.memory import MEMORY_CORE_VERSION, MEMORY_THEME, MemoryProvider
from tests import package_zips as zips
from tests.e2e.conftest import acme_token, screenshot
from tests.e2e.test_dashboard_live import dashboard
from tests.live import serve

SITES = "/v1/tenants/acme/sites"
BACKUP_GATE = "backup:backup"  # the memory provider's backup call


def _make(api: httpx.Client, name: str) -> None:
    made = api.post(SITES, json={"name": name, "admin_email": "o@acme.example"})
    assert made.status_code == 202, made.text
    for _ in range(500):
        if api.get(f"{SITES}/{name}").json()["status"] == "ready":
            return
        import time

        time.sleep(0.01)
    raise AssertionError(f"{name} did not become ready")


def _demo(api: httpx.Client, site: str) -> str:
    listing = api.get(f"{SITES}/{site}/packages").json()
    return str(next(p["version"] for p in listing["plugins"] if p["slug"] == zips.DEMO))


def test_the_updates_column_and_a_confirmed_update(
    browser: Browser,
    chat_settings: ChatSettings,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    for name in ("bakery", "crumbs"):
        _make(admin_api, name)
    site_id = admin_api.get(f"{SITES}/crumbs").json()["id"]
    memory_provider.backup_state["packages"][site_id] = {
        "core": MEMORY_CORE_VERSION, "db_version": MEMORY_CORE_VERSION,
        "plugin": {zips.DEMO: {"version": "1.0", "name": "Demo demo", "active": True}},
        "theme": {MEMORY_THEME: {"version": "1.0", "name": "Twenty Twenty-Four"}},
        "stylesheet": MEMORY_THEME,
    }  # fmt: skip
    added = admin_api.post("/v1/catalogue?kind=plugin",
                           files={"file": ("demo.zip", zips.plugin_zip("1.1"))})  # fmt: skip
    assert added.status_code == 201, added.text
    assert _demo(admin_api, "crumbs") == "1.0"  # the listing is read once: crumbs has a count
    with (
        serve(create_chat_app(chat_settings)) as url,
        dashboard(browser, url, acme_token(chat_settings, "alice", Role.TENANT)) as (page, watched),
    ):
        sites = page.locator("#sites")
        row = sites.locator("tr[data-site=crumbs]")
        expect(row.locator("td[data-key=updates]")).to_have_text("1")
        expect(sites.locator("tr[data-site=bakery] td[data-key=updates]")).to_have_text("—")

        row.get_by_role("button", name="Update crumbs").click()
        dialog = page.get_by_role("dialog", name="Update site crumbs?")
        expect(dialog).to_contain_text("demo 1.0 -> 1.1")
        expect(dialog).to_contain_text("A backup is taken first")
        expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_have_count(0)
        ops = admin_api.get("/v1/tenants/acme/operations").json()
        assert [op for op in ops if op["kind"] == "update_site"] == []

        row.get_by_role("button", name="Update crumbs").click()
        screenshot(page, "dashboard-confirm-update")
        dialog.get_by_role("button", name="Update crumbs").click()
        steps = row.get_by_role("list", name="Steps of update site crumbs")
        expect(steps.locator("li.done")).to_have_count(7, timeout=20_000)
        assert _demo(admin_api, "crumbs") == "1.1"
        assert watched.problems == [] and watched.refused == []


def test_checked_sites_are_backed_up_at_once_with_live_progress(
    browser: Browser, chat_settings: ChatSettings, admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:  # fmt: skip
    for name in ("bakery", "crumbs", "dough"):
        _make(admin_api, name)
    held = threading.Event()
    with (
        serve(create_chat_app(chat_settings)) as url,
        dashboard(browser, url, acme_token(chat_settings, "alice", Role.TENANT)) as (page, watched),
    ):
        bar = page.get_by_role("group", name="Selected sites")
        expect(bar.get_by_role("button", name="Back up selected")).to_be_disabled()
        page.get_by_label("Select crumbs").check()
        page.get_by_label("Select dough").check()
        memory_provider.gates[BACKUP_GATE] = held  # the backups wait until it opens
        bar.get_by_role("button", name="Back up selected").click()
        status = bar.get_by_role("status")
        expect(status).to_have_text("0 of 2 done, 0 failed")
        held.set()
        expect(status).to_have_text("succeeded: 2 of 2 done, 0 failed")  # the parent's events
        ops = admin_api.get("/v1/tenants/acme/operations").json()
        backed_up = sorted(op["site_name"] for op in ops if op["kind"] == "backup_site")
        assert backed_up == ["crumbs", "dough"]  # bakery was not checked
        assert watched.problems == [] and watched.refused == []
