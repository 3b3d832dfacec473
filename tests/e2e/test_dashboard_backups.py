"""The dashboard's Backups tab in Chromium against the real control plane and chat services
(memory provider, so that a backup can be held open): "Back up now" shows the backup pending
then written without a reload, the owner downloads it, "Restore" asks in a dialog naming the
backup's time and puts the site back, the policy is saved, a deleted site comes back as a new
site; a viewer sees no action buttons (and the API refuses the actions), an operator no
Download. Uncaught errors, console errors and failed requests fail."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
from playwright.sync_api import Browser, Locator, Page, Route, expect

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.kernel.identity import Role
from controlplane.providers.memory import MemoryProvider
from tests.agent_fixtures import make_site
from tests.e2e.conftest import acme_token, open_dashboard, screenshot
from tests.live import serve

SITES = "/v1/tenants/acme/sites"
RESTORE_STEPS = ["pre_restore", "check", "maintenance", "stage", "swap", "probe", "fingerprint",
                 "finish"]  # fmt: skip


@contextmanager
def backups_tab(browser: Browser, url: str, token: str) -> Iterator[tuple[Page, Locator]]:
    """The dashboard on its Backups tab, with the clock's words fixed: British English, UTC."""
    with open_dashboard(browser, url, token, tab="Backups", viewport={"width": 1280, "height": 900},
                        locale="en-GB", timezone_id="UTC") as page:  # fmt: skip
        yield page, page.locator("#backups")


def _in_words(iso: str) -> str:
    """How Chromium (en-GB, UTC) writes a backup's time: dateStyle full, timeStyle short."""
    at = datetime.fromisoformat(iso)
    return f"{at:%A}, {at.day} {at:%B %Y} at {at:%H:%M}"


def _backups(api: httpx.Client, site: str = "crumbs") -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api.get(f"{SITES}/{site}/backups").json()
    return result


def _finish(api: httpx.Client, response: httpx.Response) -> None:
    assert response.status_code == 202, response.text
    op_id = response.json()["operation"]["id"]
    for _ in range(1000):
        if api.get(f"/v1/operations/{op_id}").json()["status"] == "succeeded":
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"operation {op_id} did not succeed")


def _crumbs(admin_api: httpx.Client, memory_provider: MemoryProvider, posts: str) -> str:
    """Make acme's site crumbs with `posts` as its database's content; its id."""
    make_site(admin_api, "acme", "crumbs")
    site_id: str = admin_api.get(f"{SITES}/crumbs").json()["id"]
    memory_provider.write_content(site_id, "database", posts)
    return site_id


def test_back_up_now_shows_it_live_then_download_restore_and_policy(
    browser: Browser,
    chat_settings: ChatSettings,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    site_id = _crumbs(admin_api, memory_provider, "the good posts")
    writing = memory_provider.gates["backup:backup"] = threading.Event()
    with (
        serve(create_chat_app(chat_settings)) as url,
        backups_tab(browser, url, acme_token(chat_settings, "alice", Role.TENANT)) as (page, panel),
    ):
        expect(panel).to_contain_text("No backups of crumbs yet.")
        expect(panel).to_contain_text("No deleted sites with kept backups.")
        panel.get_by_role("button", name="Back up crumbs now").click()

        # Held while it writes: listed as pending, its step running, both without a reload.
        rows = panel.get_by_role("table", name="Backups of crumbs").locator("tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first.locator(".badge")).to_have_text("pending")
        steps = panel.get_by_role("list", name="Steps of backup site crumbs")
        expect(steps.locator("li.running")).to_have_text(re.compile("^backup"))
        writing.set()
        expect(rows.first.locator(".badge")).to_have_text("succeeded")
        expect(steps.locator("li.done")).to_have_count(2)
        (backup,) = _backups(admin_api)
        taken = _in_words(backup["created_at"])
        expect(rows.first.locator("td")).to_have_text(
            [taken, "manual", re.compile(r"^\d+ B$"), "succeeded", re.compile(r"\d"),
             "RestoreDownload"]
        )  # fmt: skip

        # The owner's download: a signed link, then the archive itself.
        with page.expect_download() as downloading:
            rows.first.get_by_role("button", name=f"Download the backup of {taken}").click()
        assert re.fullmatch(r"crumbs-\d{8}T\d{6}Z-[0-9a-f]{8}\.tar\.gz",
                            downloading.value.suggested_filename)  # fmt: skip

        # Restore asks first, naming the time; Cancel (focused) changes nothing.
        memory_provider.write_content(site_id, "database", "a broken database")
        restore = rows.first.get_by_role("button", name=f"Restore crumbs to the backup of {taken}")
        restore.click()
        dialog = page.get_by_role("dialog", name=f"Restore crumbs to the backup of {taken}?")
        expect(dialog).to_contain_text(
            "The database and wp-content of site crumbs are replaced with this manual "
            f"backup's: every change since {taken} is lost. A backup of the site as it is now "
            "is taken first"
        )
        expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        screenshot(page, "dashboard-confirm-restore")
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_have_count(0)
        kinds = [op["kind"] for op in admin_api.get("/v1/tenants/acme/operations").json()]
        assert "restore_site" not in kinds
        assert memory_provider.content(site_id)["database"] == "a broken database"

        restore.click()
        dialog.get_by_role("button", name="Restore crumbs").click()
        restoring = panel.get_by_role("list", name="Steps of restore site crumbs")
        expect(restoring.locator("li.done")).to_have_count(len(RESTORE_STEPS))
        assert [t.split()[0] for t in restoring.locator("li").all_inner_texts()] == RESTORE_STEPS
        expect(rows).to_have_count(2)  # the backup of the site as it was, taken first
        expect(rows.first.locator("td").nth(1)).to_have_text("pre-restore")
        assert memory_provider.content(site_id)["database"] == "the good posts"

        # The policy: on/off, hour and keep counts, saved through the API.
        form = panel.get_by_role("form", name="Backup policy")
        form.get_by_label("Hour (UTC)").fill("5")
        form.get_by_label("Keep daily").fill("10")
        # A backup made elsewhere meanwhile redraws the list, not what is being typed.
        _finish(admin_api, admin_api.post(f"{SITES}/crumbs/backups"))
        expect(rows).to_have_count(3)
        expect(form.get_by_label("Keep daily")).to_have_value("10")
        form.get_by_role("button", name="Save policy").click()
        expect(panel.locator("section.policy")).to_contain_text(
            "Daily at 05:00 UTC; keeps 10 daily, 4 weekly and 3 monthly backups."
        )
        screenshot(page, "dashboard-backups")
    policy = admin_api.get(f"{SITES}/crumbs/backup-policy").json()
    assert (policy["hour"], policy["keep_daily"], policy["customized"]) == (5, 10, True)


def test_a_deleted_site_is_restored_as_a_new_site(
    browser: Browser,
    chat_settings: ChatSettings,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    make_site(admin_api, "acme", "bakery")
    _crumbs(admin_api, memory_provider, "crumbs's posts")
    _finish(admin_api, admin_api.delete(f"{SITES}/crumbs"))
    (kept,) = admin_api.get("/v1/tenants/acme/backups", params={"deleted": "true"}).json()
    taken = _in_words(kept["created_at"])
    with (
        serve(create_chat_app(chat_settings)) as url,
        backups_tab(browser, url, acme_token(chat_settings, "alice", Role.TENANT)) as (page, panel),
    ):
        deleted = panel.get_by_role("table", name="Backups of deleted sites")
        row = deleted.locator(f"tr[data-backup='{kept['id']}']")
        expect(row.locator("td").first).to_have_text("crumbs")
        row.get_by_role(
            "button", name=f"Restore crumbs as a new site from the backup of {taken}"
        ).click()
        dialog = page.get_by_role("dialog", name="Restore crumbs as a new site?")
        expect(dialog).to_contain_text(f"pre-delete backup of {taken}")
        expect(dialog.get_by_label("New site's name")).to_have_value("crumbs")
        dialog.get_by_role("button", name="Restore as new site").click()
        expect(panel.get_by_role("combobox", name="Site")).to_have_value("crumbs")
        page.get_by_role("tab", name="Sites").click()
        expect(page.locator("#sites tr[data-site=crumbs] .badge").first).to_have_text("ready")
    restored = admin_api.get(f"{SITES}/crumbs").json()
    assert restored["id"] != kept["site_id"]  # a new site, made from the deleted one's backup
    assert memory_provider.content(restored["id"])["database"] == "crumbs's posts"


def test_a_viewer_sees_no_backup_actions_and_an_operator_no_download(
    browser: Browser, chat_settings: ChatSettings, admin_api: httpx.Client
) -> None:
    make_site(admin_api, "acme", "crumbs")
    make_site(admin_api, "acme", "bakery")
    _finish(admin_api, admin_api.post(f"{SITES}/crumbs/backups"))
    _finish(admin_api, admin_api.delete(f"{SITES}/bakery"))
    (backup,) = _backups(admin_api)
    viewer = acme_token(chat_settings, "vera", Role.VIEWER)
    with serve(create_chat_app(chat_settings)) as url:
        with backups_tab(browser, url, viewer) as (_, panel):
            rows = panel.get_by_role("table", name="Backups of crumbs").locator("tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first.locator(".badge")).to_have_text("succeeded")
            expect(panel.get_by_role("table", name="Backups of deleted sites")).to_contain_text(
                "bakery"
            )
            expect(panel.locator("section.policy")).to_contain_text("Daily at")
            expect(panel.get_by_role("button")).to_have_count(0)
            expect(panel.get_by_role("form")).to_have_count(0)
        operator = acme_token(chat_settings, "otto", Role.OPERATOR)
        with backups_tab(browser, url, operator) as (_, panel):
            row = panel.get_by_role("table", name="Backups of crumbs").locator("tbody tr")
            expect(row.get_by_role("button")).to_have_text(["Restore"])
            expect(panel.get_by_role("button", name="Back up crumbs now")).to_be_visible()
    headers = {"Authorization": f"Bearer {viewer}"}
    for method, path, body in (
        ("POST", f"{SITES}/crumbs/backups", None),
        ("POST", f"{SITES}/crumbs/backups/{backup['id']}/restore", None),
        ("POST", f"{SITES}/crumbs/backups/{backup['id']}/download-link", None),
        ("PUT", f"{SITES}/crumbs/backup-policy", {"hour": 4}),
    ):
        refused = admin_api.request(method, path, headers=headers, json=body)
        assert refused.status_code == 403, (path, refused.text)
    assert len(_backups(admin_api)) == 1
    assert admin_api.get(f"{SITES}/crumbs/backup-policy").json()["customized"] is False


def test_a_restore_asked_in_the_chat_dock_is_confirmed_on_its_card_and_shows_live(
    browser: Browser,
    chat_settings: ChatSettings,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    site_id = _crumbs(admin_api, memory_provider, "the good posts")
    _finish(admin_api, admin_api.post(f"{SITES}/crumbs/backups"))
    (backup,) = _backups(admin_api)
    memory_provider.write_content(site_id, "database", "a broken database")
    at = datetime.fromisoformat(backup["created_at"])
    with (
        serve(create_chat_app(chat_settings)) as url,
        backups_tab(browser, url, acme_token(chat_settings, "alice", Role.TENANT)) as (page, panel),
    ):
        rows = panel.get_by_role("table", name="Backups of crumbs").locator("tbody tr")
        expect(rows).to_have_count(1)
        box = page.locator("aipress-chat textarea")
        box.fill("restore crumbs to today's backup")
        box.press("Enter")
        card = page.get_by_role("alertdialog", name="Confirmation needed")
        expect(card).to_contain_text(
            f"Restore site crumbs of tenant acme to its manual backup of {at:%A} {at.day} "
            f"{at:%B %Y at %H:%M} UTC ("
        )
        expect(card).to_contain_text("The site's database and wp-content are replaced")
        expect(card.get_by_role("button", name="Cancel")).to_be_focused()
        assert memory_provider.content(site_id)["database"] == "a broken database"
        card.get_by_role("button", name="Confirm").click()
        step = page.get_by_role("group", name="Restoring crumbs")
        expect(step.locator(".spinner")).to_have_text("✓", timeout=30_000)
        expect(step.get_by_role("list", name="Progress").locator("li")).to_have_count(
            len(RESTORE_STEPS)
        )
        # The Backups tab follows the chat's restore: the backup of the site as it was.
        expect(rows).to_have_count(2)
        expect(rows.first.locator("td").nth(1)).to_have_text("pre-restore")
        screenshot(page, "widget-confirm-restore")
    assert memory_provider.content(site_id)["database"] == "the good posts"


def test_a_tab_chosen_while_the_dashboard_signs_in_is_kept(
    browser: Browser, chat_settings: ChatSettings, admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:  # fmt: skip
    """Backups clicked while /v1/me is still on its way: the dashboard opens on Backups, not
    on the Sites tab it would start with (the click was lost, or undone, before)."""
    _crumbs(admin_api, memory_provider, "the good posts")
    held: list[Route] = []

    def hold_me(page: Page) -> None:
        page.route("**/v1/me", lambda route: held.append(route))

    with (
        serve(create_chat_app(chat_settings)) as url,
        open_dashboard(browser, url, acme_token(chat_settings, "alice", Role.TENANT),
                       before=hold_me) as page,
    ):  # fmt: skip
        page.get_by_role("tab", name="Backups").click()
        assert len(held) == 1  # the click came before the dashboard knew who signed in
        held[0].continue_()
        expect(page.locator("#backups")).to_contain_text("No backups of crumbs yet.")
        expect(page.get_by_role("tab", name="Backups")).to_have_attribute("aria-selected", "true")
        expect(page.locator("#sites")).to_be_hidden()
