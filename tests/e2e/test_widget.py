"""The widget and dashboard in a real browser, against the real services on the embedded
default: MariaDB, PHP-FPM, nginx and WordPress behind the control plane and the chatbot."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, Page, expect

from controlplane.billing.aggregate import run_aggregation
from controlplane.billing.jobs import aggregate, meter
from controlplane.billing.warehouse import DuckDBWarehouse
from controlplane.kernel import clock
from controlplane.kernel.auth import LocalTokenIssuer, load_sign_in_key
from controlplane.kernel.identity import Role
from controlplane.settings import Settings
from tests.billing_data import export_row, insert
from tests.e2e.conftest import GRAVATAR, BrowserProblems, keep, local_stack, screenshot

pytestmark = pytest.mark.integration
USERS = {
    "admin": ("admin", [], "admin@aipress.example"),
    "alice": ("tenant", ["acme"], "alice@acme.example"),
    "bob": ("tenant", ["globex"], "bob@globex.example"),
}


@dataclass
class Stack:
    """The control plane and the chatbot on loopback ports, on the local provider."""

    settings: Settings
    chat_url: str
    control_plane: FastAPI

    def token(self, uid: str) -> str:
        role, tenants, email = USERS[uid]
        return LocalTokenIssuer(self.settings).issue(uid, Role(role), tenants, email=email)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with local_stack("e2e", mariadb_port=4200, site_port=20000) as served:
        for uid, (role, tenants, email) in USERS.items():
            served.admin.put(
                f"/v1/users/{uid}", json={"role": role, "tenants": tenants, "email": email}
            )
        yield Stack(served.settings, served.chat_url, served.control_plane)


def sign_in(
    browser: Browser, stack: Stack, uid: str, **options: Any
) -> tuple[BrowserContext, Page]:
    context = browser.new_context(**options)
    page = context.new_page()
    page.goto(f"{stack.chat_url}/signin#key={load_sign_in_key(stack.settings)}")
    page.get_by_role("listitem").filter(has_text=uid).click()
    page.wait_for_url("**/dashboard")
    expect(page.locator("aipress-chat .status")).to_have_text(re.compile(f"{uid} · "))
    return context, page


def ask(page: Page, text: str) -> None:
    box = page.locator("aipress-chat textarea")
    box.fill(text)
    box.press("Enter")


def last_reply(page: Page) -> str:
    expect(page.locator("aipress-chat .send")).to_be_enabled(timeout=120_000)  # the turn ended
    return page.locator("aipress-chat .msg.assistant").last.inner_text()


def api_get(stack: Stack, uid: str, path: str) -> Any:
    """GET through the chatbot's control-plane proxy, as `uid` (what the browser calls)."""
    headers = {"Authorization": f"Bearer {stack.token(uid)}"}
    response = httpx.get(f"{stack.chat_url}/api{path}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def site_get(url: str, port: int, path: str = "/") -> httpx.Response:
    """What the local stack's nginx answers for a path of a site address."""
    host = url.split("//")[1].split(":")[0]
    return httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}, timeout=30)


def test_a_tenant_builds_inspects_and_deletes_a_site_in_the_browser(
    browser: Browser, stack: Stack, browser_problems: BrowserProblems
) -> None:
    browser_problems.expect_unreachable(GRAVATAR)  # wp-admin's avatars
    alice_context, alice = sign_in(browser, stack, "alice", viewport={"width": 1280, "height": 860})
    bob_context, bob = sign_in(browser, stack, "bob", viewport={"width": 1280, "height": 860})
    expect(alice.locator("#sites")).to_contain_text("No sites yet")

    # Create by chat: each tool is a step, each provisioning step appears as it happens.
    ask(alice, "I need a site for my bakery, call it crumbs")
    assert "e-mail" in last_reply(alice)
    ask(alice, "use mine")
    step = alice.locator("aipress-chat .step").filter(has_text="Creating site crumbs")
    expect(step).to_have_class(re.compile("done"), timeout=120_000)
    expect(step.locator(".substeps li.done")).to_have_count(6)
    # The steps shown are the ones the engine ran, in its order (read from the operation).
    [created] = [o for o in api_get(stack, "alice", "/v1/tenants/acme/operations")
                 if o["kind"] == "create_site"]  # fmt: skip
    assert [s["status"] for s in created["steps"]] == ["done"] * 6
    assert [t.strip() for t in step.locator(".substeps li").all_inner_texts()] == [
        s["name"] for s in created["steps"]
    ]
    reply = last_reply(alice)
    url = re.search(r"http://crumbs\.acme\.localhost:\d+/", reply)
    assert url, reply
    link = step.get_by_role("link", name=url.group(0))
    expect(link).to_have_attribute("href", url.group(0))

    # The URL serves WordPress (Chromium sends *.localhost to loopback).
    # The title is the one WordPress renders from its own options, and the control plane's.
    site = alice_context.new_page()
    response = site.goto(url.group(0))
    assert response is not None and response.status == 200
    described = api_get(stack, "alice", "/v1/tenants/acme/sites/crumbs")
    wordpress = site_get(url.group(0), stack.settings.site_port, "/wp-json/").json()
    assert described["title"] == wordpress["name"] == "Crumbs"  # the user typed "crumbs"
    assert site.title().startswith(wordpress["name"])
    expect(site.locator("meta[name=generator]")).to_have_attribute(
        "content", re.compile(r"^WordPress \d+\.\d+")
    )

    # The admin password comes from the control plane, once, never through the model.
    step.get_by_role("button", name="Reveal admin password").click()
    password = step.locator(".password")
    expect(password).to_be_visible()
    secret = password.inner_text()
    expect(step.get_by_role("button", name="Reveal admin password")).to_have_count(0)
    transcript = " ".join(alice.locator("aipress-chat .msg").all_inner_texts())
    assert secret not in transcript
    step.get_by_role("button", name="Hide").click()
    expect(step.locator(".password")).to_have_count(0)

    # The revealed password is the site's: WordPress signs admin in with it, and not with
    # another one.
    login = url.group(0) + "wp-login.php"
    site.goto(login)
    site.locator("#user_login").fill("admin")
    site.locator("#user_pass").fill(secret[::-1])
    site.locator("#wp-submit").click()
    expect(site.locator("#login_error")).to_contain_text("password")
    # A fresh form: after a failed attempt wp-login.php's own script empties the password
    # field 200 ms after load, which would race with the fill below.
    site.goto(login)
    site.locator("#user_login").fill("admin")
    site.locator("#user_pass").fill(secret)
    site.locator("#wp-submit").click()
    site.wait_for_url(re.compile(r"/wp-admin/"), timeout=60_000)  # a cold wp-admin, busy cores
    expect(site.locator("#wp-admin-bar-my-account")).to_contain_text("admin")
    site.close()

    ask(alice, "any errors on crumbs in the last hour?")
    assert re.search(r"^(No|\d+) errors on crumbs in the last hour", last_reply(alice))

    platform = stack.control_plane.state.platform
    # The hour in progress holds this test's requests, and it is in this month on any date.
    meter(platform, 1, now=clock.now() + timedelta(hours=1))
    aggregate(platform)
    ask(alice, "what did I spend this month by day?")
    assert "USD" in last_reply(alice)
    expect(alice.locator("aipress-chat svg.aipress-chart").last).to_be_visible()

    alice.reload()
    expect(alice.locator("#sites")).to_contain_text("crumbs")
    # The WordPress version the site reported (read from it, not assumed).
    expect(alice.locator("#sites tr", has_text="crumbs")).to_contain_text(
        re.compile(r"\b\d+\.\d+(\.\d+)?\b")
    )
    alice.get_by_role("tab", name="Costs").click()
    expect(alice.locator("#costs svg.aipress-chart")).to_be_visible()
    alice.get_by_role("tab", name="Sites").click()
    keep(screenshot(alice, "alice-dashboard-desktop"), "dashboard.png")

    # A second tenant, signed in at the same time, sees none of it.
    expect(bob.locator("#sites")).to_contain_text("No sites yet")
    ask(bob, "list my sites")
    assert "no sites" in last_reply(bob).lower() and "crumbs" not in last_reply(bob)
    bob_threads = httpx.get(f"{stack.chat_url}/v1/chat/threads",
                            headers={"Authorization": f"Bearer {stack.token('bob')}"}).json()  # fmt: skip
    alice_threads = httpx.get(f"{stack.chat_url}/v1/chat/threads",
                              headers={"Authorization": f"Bearer {stack.token('alice')}"}).json()  # fmt: skip
    assert {t["id"] for t in bob_threads}.isdisjoint({t["id"] for t in alice_threads})
    assert "crumbs" not in bob.locator("#content").inner_text()

    # An admin sees both tenants.
    admin_context, admin = sign_in(browser, stack, "admin", viewport={"width": 1280, "height": 860})
    expect(admin.locator("#tenant option")).to_have_count(2)
    admin.locator("#tenant").select_option("acme")
    expect(admin.locator("#sites")).to_contain_text("crumbs")
    admin.get_by_role("tab", name="All tenants").click()
    expect(admin.locator("#overview")).to_contain_text("globex")
    expect(admin.locator("#overview")).to_contain_text("acme")
    admin_context.close()

    # On a phone, and after the socket dropped: the widget reconnects and resumes the thread.
    phone = alice  # sessionStorage (the token, the thread) belongs to the tab
    phone.set_viewport_size({"width": 360, "height": 740})
    phone.reload()
    expect(phone.locator("aipress-chat .msg.user").first).to_be_visible()  # the thread, restored
    expect(phone.locator("#sites")).to_contain_text("crumbs")  # the README shows the list
    keep(screenshot(phone, "alice-dashboard-phone"), "dashboard-phone.png")
    phone.locator("aipress-chat").evaluate("chat => chat.ws.close()")
    expect(phone.locator("aipress-chat .status")).to_have_text(re.compile("reconnecting"))

    # Delete through the Confirm button; typed while offline, it is sent on reconnect.
    ask(phone, "delete crumbs")
    expect(phone.locator("aipress-chat .status")).to_have_text(
        re.compile("alice · "), timeout=15_000
    )
    confirm = phone.get_by_role("alertdialog", name="Confirmation needed")
    expect(confirm).to_contain_text("Delete site crumbs of tenant acme?")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    keep(screenshot(phone, "alice-confirm-phone"), "widget-confirm.png")
    confirm.get_by_role("button", name="Confirm").click()
    assert "Deleted **crumbs**" not in last_reply(phone)  # markdown is rendered, not shown
    assert "Deleted crumbs" in last_reply(phone)
    phone.reload()
    expect(phone.locator("#sites")).to_contain_text("No sites yet")
    # Its address is gone: nginx answers exactly "not found", not an error or another site.
    assert site_get(url.group(0), stack.settings.site_port).status_code == 404
    alice_context.close()
    bob_context.close()


def _seed_costs(stack: Stack, rows: list[tuple[date, float]], since: date, until: date) -> None:
    """Aggregate export rows (acme, Cloud Run) into the control plane's costs for [since, until)."""
    warehouse = DuckDBWarehouse(":memory:")
    for day, cost in rows:
        start = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        insert(warehouse, export_row(start=start, cost=cost, tenant="acme"))
    run_aggregation(stack.control_plane.state.platform.sessions, warehouse, since=since,
                    until=until, database_sizes={}, shared_services=("Cloud SQL",))  # fmt: skip
    warehouse.close()


@pytest.mark.parametrize(
    "moment",
    [datetime(2027, 3, 1, 0, 30, tzinfo=UTC), datetime(2027, 1, 31, 23, 30, tzinfo=UTC)],
    ids=["first-of-month", "last-of-month"],
)
def test_costs_by_day_on_the_first_and_the_last_day_of_a_month(
    browser: Browser, stack: Stack, moment: datetime
) -> None:
    today = moment.date()
    last_month_end = today.replace(day=1) - timedelta(days=1)
    since, until = last_month_end - timedelta(days=1), today + timedelta(days=1)
    _seed_costs(stack, [(today, 2.0), (last_month_end, 5.0)], since, until)
    try:
        with clock.travel(moment):
            context, page = sign_in(
                browser, stack, "alice", viewport={"width": 1280, "height": 860}
            )
            ask(page, "what did I spend this month by day?")
            reply = last_reply(page)
            assert f"{today.isoformat()}: 2.00 USD" in reply, reply
            assert last_month_end.isoformat() not in reply and "5.00" not in reply, reply
            chart = page.locator("aipress-chat svg.aipress-chart").last
            expect(chart).to_have_attribute("aria-label", re.compile(r"total 2\.00 USD"))
            page.get_by_role("tab", name="Costs").click()
            # The dashboard draws every day from the 1st to today: one bar on the 1st.
            expect(page.locator("#costs svg.aipress-chart")).to_have_attribute(
                "aria-label", f"Net cost per day: {today.day} bars, total 2.00 USD"
            )
            context.close()
    finally:
        _seed_costs(stack, [], since, until)  # the window, emptied again
