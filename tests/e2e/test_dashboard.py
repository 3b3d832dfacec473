"""Dashboard pages beyond the chat: tenant settings (write-only secrets), users and roles,
the sign-in page's absence in gcp mode."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import LocalTokenIssuer, load_sign_in_key
from controlplane.kernel.identity import Principal, Role
from tests.e2e.conftest import BrowserProblems, screenshot, watch, watched_dashboard
from tests.live import serve

SECRET_VALUE = "sk_live_do_not_show_4242"


def _seed_users(api: httpx.Client) -> None:
    for uid, role, tenants in (("alice", "tenant", ["acme"]), ("admin", "admin", [])):
        assert api.put(f"/v1/users/{uid}", json={"role": role, "tenants": tenants}).is_success


def test_settings_keep_secrets_write_only_and_admins_manage_users(
    browser: Browser, chat_settings: ChatSettings, admin_api: httpx.Client,
    browser_problems: BrowserProblems,
) -> None:  # fmt: skip
    browser_problems.expect(r"/auth/local/users$", 401)  # the sign-in page without the key
    _seed_users(admin_api)
    with serve(create_chat_app(chat_settings)) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="dark")
        page = context.new_page()
        errors = watch(page)
        page.goto(f"{url}/signin")  # without the machine's key: no users, and how to get it
        expect(page.locator("#error")).to_contain_text("aipress signin-url")
        expect(page.get_by_role("listitem")).to_have_count(0)
        page.goto("about:blank")  # a new document, not a fragment change of the same one
        page.goto(f"{url}/signin#key={load_sign_in_key(chat_settings)}")
        expect(page).to_have_url(f"{url}/signin")  # the key leaves the address bar
        page.get_by_role("listitem").filter(has_text="alice").click()
        page.wait_for_url("**/dashboard")
        # Keyboard only: into the tab list, arrows to Settings (Sites, Backups, Costs, Errors,
        # Settings).
        page.get_by_role("tab", name="Sites").focus()
        for _ in range(4):
            page.keyboard.press("ArrowRight")
        expect(page.get_by_role("tab", name="Settings")).to_be_focused()
        expect(page.get_by_role("tab", name="Settings")).to_have_attribute("aria-selected", "true")
        page.keyboard.press("ArrowRight")  # wraps to the first tab
        expect(page.get_by_role("tab", name="Sites")).to_be_focused()
        page.keyboard.press("ArrowLeft")
        panel = page.locator("#settings")
        expect(panel).to_contain_text("No env vars yet")
        panel.get_by_label("Name").fill("STRIPE_KEY")
        panel.get_by_label("Value").fill(SECRET_VALUE)
        panel.get_by_role("button", name="Save").click()
        expect(panel).to_contain_text("STRIPE_KEY")
        expect(panel).to_contain_text("•••••••• (secret)")
        assert SECRET_VALUE not in page.content()
        stored = admin_api.get("/v1/tenants/acme/env/STRIPE_KEY").json()
        assert stored["secret"] is True and SECRET_VALUE not in stored["value"]
        screenshot(page, "alice-settings-dark")
        assert page.get_by_role("tab", name="Users").is_hidden()  # not an admin

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/signin")
        page.get_by_role("listitem").filter(has_text="admin").click()
        page.wait_for_url("**/dashboard")
        page.get_by_role("tab", name="Users").click()
        users = page.locator("#users")
        users.get_by_label("User id").fill("carol")
        users.get_by_label("Role").select_option("operator")
        users.get_by_label("Tenants (comma-separated)").fill("acme, globex")
        users.get_by_role("button", name="Save").click()
        expect(users).to_contain_text("carol")
        assert admin_api.get("/v1/users/carol").json()["tenants"] == ["acme", "globex"]
        assert errors == []
        context.close()


def test_local_sign_in_does_not_exist_in_gcp_mode(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from chatbot.offline.planner import OfflinePlanner

    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    home = Path(str(tmp_path))
    settings = ChatSettings(
        provider="gcp", home=home, firebase_project_id="aipress-prod",
        chat_database_url=f"sqlite:///{home / 'chat.db'}", firebase_web_api_key="web-key",
        firebase_auth_domain="aipress-prod.firebaseapp.com", firebase_sign_in_providers=("google", "apple"),
        chat_control_plane_url="https://control-plane.internal.example",
        mcp_signing_key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )  # fmt: skip

    class Refuse:
        def verify(self, token: str) -> Principal:
            raise AssertionError("not called")

    with TestClient(create_chat_app(settings, model=OfflinePlanner(), verifier=Refuse())) as client:
        assert client.get("/auth/local/users").status_code == 404
        assert client.post("/auth/local/token", json={"uid": "admin"}).status_code == 404
        assert client.get("/auth/config").json() == {
            "mode": "firebase", "providers": ["google", "apple"],
            "firebase": {"apiKey": "web-key", "authDomain": "aipress-prod.firebaseapp.com",
                         "projectId": "aipress-prod"},
        }  # fmt: skip


def test_the_site_list_shows_pending_domains_and_their_txt_record(
    browser: Browser, chat_settings: ChatSettings, admin_api: httpx.Client
) -> None:
    created = admin_api.post("/v1/tenants/acme/sites", json={
        "name": "crumbs", "admin_email": "a@acme.example", "domain": "crumbs-bakery.example.net"})  # fmt: skip
    assert created.status_code == 202, created.text
    claim = admin_api.get("/v1/tenants/acme/sites/crumbs/domains").json()[0]
    token = LocalTokenIssuer(chat_settings).issue("alice", Role.TENANT, ["acme"])
    with (
        serve(create_chat_app(chat_settings)) as url,
        watched_dashboard(browser, url, token) as (page, errors),
    ):
        sites = page.locator("#sites")
        sites.get_by_role("button", name="1 pending: how to verify").click()
        pending = sites.get_by_role("list", name="Pending domains of crumbs")
        expect(pending).to_contain_text("crumbs-bakery.example.net")
        expect(pending).to_contain_text(
            f'Create TXT _aipress-challenge.crumbs-bakery.example.net = "{claim["verification"]["value"]}"'
        )
        assert errors == []
