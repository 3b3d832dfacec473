"""The dashboard acts and follows live, in Chromium against the real control plane and chat
services (memory provider, so that a step can be held open): a site made from the New site
form shows its steps as they run, stops, starts and is deleted through the confirm dialog;
a site made elsewhere (as the chat does) appears while it is built; a viewer gets no action
buttons and the API refuses the actions anyway; a bad name shows the API's message next to
the field and makes nothing. Uncaught errors, console errors and failed requests fail."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from playwright.sync_api import Browser, Page, expect

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.kernel.identity import Role
from controlplane.providers.memory import MemoryProvider
from tests.e2e.conftest import BrowserProblems, acme_token, open_dashboard, screenshot
from tests.live import serve

CREATE_STEPS = ["database", "secrets", "storage", "runtime", "dns", "wordpress"]


@dataclass
class Watched:
    """What went wrong in the page: uncaught errors, console errors, failed requests."""

    problems: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # answers of 400 and above

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda msg: msg.type == "error" and self.problems.append(f"console: {msg.text}"),
        )
        page.on(
            "requestfailed",
            lambda req: self.problems.append(f"failed: {req.method} {req.url} {req.failure}"),
        )
        page.on(
            "response",
            lambda r: (
                r.status >= 400 and self.refused.append(f"{r.status} {r.request.method} {r.url}")
            ),
        )


@contextmanager
def dashboard(browser: Browser, url: str, token: str) -> Iterator[tuple[Page, Watched]]:
    """The dashboard, its page's errors and refused requests watched."""
    watched = Watched()
    with open_dashboard(
        browser, url, token, before=watched.attach, viewport={"width": 1280, "height": 900}
    ) as page:
        yield page, watched


def test_the_dashboard_creates_stops_starts_and_deletes_a_site_live(
    browser: Browser,
    chat_settings: ChatSettings,
    admin_api: httpx.Client,
    memory_provider: MemoryProvider,
) -> None:
    wordpress = memory_provider.gates["ensure:wordpress"] = threading.Event()
    with (
        serve(create_chat_app(chat_settings)) as url,
        dashboard(browser, url, acme_token(chat_settings, "alice", Role.TENANT)) as (page, watched),
    ):
        sites = page.locator("#sites")
        expect(sites).to_contain_text("No sites yet")
        form = page.get_by_role("form", name="New site")
        form.get_by_label("Name").fill("crumbs")
        form.get_by_label("Title").fill("Crumbs Bakery")
        form.get_by_label("Admin e-mail").fill("owner@acme.example")
        form.get_by_role("button", name="Create site").click()

        # Held at its last step: the steps before it are done, and shown so, without a reload.
        row = sites.locator("tr[data-site=crumbs]")
        steps = row.get_by_role("list", name="Steps of create site crumbs")
        expect(steps.locator("li.running")).to_have_text(re.compile("^wordpress"))
        expect(steps.locator("li.done")).to_have_count(5)
        expect(row.locator("td").nth(1)).to_contain_text("provisioning")
        assert [t.split()[0] for t in steps.locator("li").all_inner_texts()] == CREATE_STEPS
        expect(row.get_by_role("button")).to_have_text(["History"])  # nothing to do while it builds
        screenshot(page, "dashboard-live-create")
        row.get_by_role("button", name="History").click()
        wordpress.set()
        expect(steps.locator("li.done")).to_have_count(6)
        expect(row.locator(".badge").first).to_have_text("ready")
        expect(page.locator("#live")).to_have_text("create_site crumbs succeeded")
        expect(row.get_by_role("button", name="Stop crumbs")).to_be_visible()

        # A site made elsewhere (the chat's tool makes this very call) shows while it is built.
        memory_provider.gates["ensure:dns"] = dns = threading.Event()
        made = admin_api.post(
            "/v1/tenants/acme/sites", json={"name": "bakery", "admin_email": "o@acme.example"}
        )
        assert made.status_code == 202, made.text
        other = sites.locator("tr[data-site=bakery]")
        expect(
            other.get_by_role("list", name="Steps of create site bakery").locator("li.running")
        ).to_have_text(re.compile("^dns"))
        dns.set()
        expect(other.locator(".badge").first).to_have_text("ready")

        row.get_by_role("button", name="Stop crumbs").click()
        expect(row.locator(".badge").first).to_have_text("stopped")
        expect(row.get_by_role("button", name="Start crumbs")).to_be_visible()
        expect(row.get_by_role("button", name="Stop crumbs")).to_have_count(0)
        expect(row.get_by_role("button", name="Open wp-admin of crumbs")).to_have_count(0)
        history = row.get_by_role("list", name="Deployment history of crumbs")
        expect(history.locator("li").first).to_contain_text("stop_site succeeded")  # followed live
        row.get_by_role("button", name="Start crumbs").click()
        expect(row.locator(".badge").first).to_have_text("ready")
        expect(history.locator("li")).to_have_count(3)
        assert admin_api.get("/v1/tenants/acme/sites/crumbs").json()["status"] == "ready"

        # The dialog names the site; Cancel (focused) keeps it, the dialog's Delete deletes it.
        row.get_by_role("button", name="Delete crumbs").click()
        dialog = page.get_by_role("dialog", name="Delete site crumbs?")
        expect(dialog).to_contain_text("Site crumbs of tenant acme")
        expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_have_count(0)
        expect(row.get_by_role("button", name="Delete crumbs")).to_be_focused()
        assert admin_api.get("/v1/tenants/acme/sites/crumbs").status_code == 200
        row.get_by_role("button", name="Delete crumbs").click()
        screenshot(page, "dashboard-confirm-delete")
        dialog.get_by_role("button", name="Delete crumbs").click()
        expect(row).to_have_count(0)
        expect(sites.locator("tr[data-site]")).to_have_count(1)
        assert admin_api.get("/v1/tenants/acme/sites/crumbs").status_code == 404
        assert watched.problems == [] and watched.refused == []


def test_a_viewer_sees_no_actions_and_the_api_refuses_them(
    browser: Browser, chat_settings: ChatSettings, admin_api: httpx.Client
) -> None:
    made = admin_api.post(
        "/v1/tenants/acme/sites", json={"name": "crumbs", "admin_email": "o@acme.example"}
    )
    assert made.status_code == 202, made.text
    token = acme_token(chat_settings, "vera", Role.VIEWER)
    with (
        serve(create_chat_app(chat_settings)) as url,
        dashboard(browser, url, token) as (page, watched),
    ):
        row = page.locator("#sites tr[data-site=crumbs]")
        expect(row.locator(".badge").first).to_have_text("ready")
        expect(row.locator("td.actions")).to_be_empty()
        expect(row.get_by_role("button")).to_have_text(["History"])
        expect(page.get_by_role("form", name="New site")).to_have_count(0)
        assert watched.problems == [] and watched.refused == []
    viewer = {"Authorization": f"Bearer {token}"}
    base = "/v1/tenants/acme/sites"
    for method, path in (("POST", f"{base}/crumbs/stop"), ("POST", f"{base}/crumbs/start"),
                         ("DELETE", f"{base}/crumbs"), ("POST", f"{base}/crumbs/admin-login")):  # fmt: skip
        assert admin_api.request(method, path, headers=viewer).status_code == 403, path
    refused = admin_api.post(
        base, headers=viewer, json={"name": "more", "admin_email": "v@acme.example"}
    )
    assert refused.status_code == 403
    assert [s["name"] for s in admin_api.get(base).json()] == ["crumbs"]


def test_a_bad_name_shows_the_apis_message_next_to_the_field_and_makes_nothing(
    browser: Browser,
    chat_settings: ChatSettings,
    admin_api: httpx.Client,
    browser_problems: BrowserProblems,
) -> None:
    browser_problems.expect(r"/api/v1/tenants/acme/sites$", 422)  # provoked: the bad name
    said = admin_api.post(
        "/v1/tenants/acme/sites?dry_run=true",
        json={"name": "Bad_Name!", "admin_email": "o@acme.example"},
    )
    assert said.status_code == 422
    message = next(e["message"] for e in said.json()["errors"] if e["field"] == "body.name")
    with (
        serve(create_chat_app(chat_settings)) as url,
        dashboard(browser, url, acme_token(chat_settings, "alice", Role.TENANT)) as (page, watched),
    ):
        form = page.get_by_role("form", name="New site")
        form.get_by_label("Name").fill("Bad_Name!")
        form.get_by_label("Admin e-mail").fill("owner@acme.example")
        form.get_by_role("button", name="Create site").click()
        name = form.get_by_label("Name")
        expect(name).to_have_attribute("aria-invalid", "true")
        expect(name).to_have_accessible_description(message)
        expect(name).to_be_focused()
        expect(form.get_by_label("Admin e-mail")).not_to_have_attribute("aria-invalid", "true")
        expect(page.locator("#sites")).to_contain_text("No sites yet")
        screenshot(page, "dashboard-new-site-invalid")
        assert watched.refused == [f"422 POST {url}/api/v1/tenants/acme/sites"]
        assert [p for p in watched.problems if "status of 422" not in p] == []
    assert admin_api.get("/v1/tenants/acme/sites").json() == []
    assert admin_api.get("/v1/tenants/acme/operations").json() == []
