"""One-click wp-admin in Chromium against the real stack: the dashboard's "Open wp-admin"
and the CLI's link sign in once; a second use, an expired link, a wrongly signed or
other-site link, and another tenant's caller all fail."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, expect
from typer.testing import CliRunner

from controlplane import admin_login
from controlplane.cli import app as cli
from controlplane.credentials import DatabaseVault
from controlplane.kernel.auth import LocalTokenIssuer, load_sign_in_key
from controlplane.kernel.identity import Role
from controlplane.settings import Settings
from tests.e2e.conftest import GRAVATAR, BrowserProblems, local_stack, screenshot

pytestmark = pytest.mark.integration


@dataclass
class Stack:
    settings: Settings
    url: str
    chat_url: str
    control_plane: FastAPI
    site: dict[str, str]

    def token(self, uid: str, tenant: str) -> str:
        return LocalTokenIssuer(self.settings).issue(uid, Role.TENANT, [tenant])

    def key(self) -> str:
        platform = self.control_plane.state.platform
        with platform.sessions() as session:
            stored = DatabaseVault(session, platform.keyring, self.site["id"]).get(
                admin_login.KEY_KIND
            )
        assert stored is not None
        return stored[1]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with local_stack("login", mariadb_port=4600, site_port=21000, cron_schedule=False) as served:
        api = served.admin
        api.put("/v1/users/alice", json={"role": "tenant", "tenants": ["acme"]})
        created = api.post(
            "/v1/tenants/acme/sites", json={"name": "crumbs", "admin_email": "a@acme.example"}
        ).json()
        deadline = time.monotonic() + 120
        while api.get(f"/v1/operations/{created['operation']['id']}").json()["status"] in (
            "pending", "running"
        ) and time.monotonic() < deadline:  # fmt: skip
            time.sleep(0.2)
        site = api.get("/v1/tenants/acme/sites/crumbs").json()
        assert site["status"] == "ready", site
        yield Stack(served.settings, served.url, served.chat_url, served.control_plane, site)


def _refused(browser: Browser, link: str, reason: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(link)
    expect(page.locator("body")).to_contain_text(f"Sign-in refused: {reason}")
    # Nothing signed in: wp-admin sends this browser to the login form.
    page.goto(link.split("/wp-login.php")[0] + "/wp-admin/")
    expect(page).to_have_url(re.compile(r"/wp-login\.php\?redirect_to="))
    context.close()


def test_the_dashboard_opens_wp_admin_signed_in(
    browser: Browser, stack: Stack, browser_problems: BrowserProblems
) -> None:
    browser_problems.expect_unreachable(GRAVATAR)  # wp-admin's avatars
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(f"{stack.chat_url}/signin#key={load_sign_in_key(stack.settings)}")
    page.get_by_role("listitem").filter(has_text="alice").click()
    page.wait_for_url("**/dashboard")
    button = page.get_by_role("button", name="Open wp-admin of crumbs")
    with page.expect_popup() as opened:
        button.click()
    admin = opened.value
    admin.wait_for_url(re.compile(r"crumbs\.acme\.localhost:\d+/wp-admin/"), timeout=30_000)
    expect(admin.locator("#wpadminbar")).to_be_visible()
    expect(admin.locator("#wp-admin-bar-my-account")).to_contain_text("admin")
    assert "aipress_login" not in admin.url and "#" not in admin.url  # the token is gone
    screenshot(admin, "wp-admin-one-click")
    context.close()


def test_a_link_signs_in_once_and_bad_links_fail(
    browser: Browser, stack: Stack, browser_problems: BrowserProblems
) -> None:
    # Each refused link is answered 403 by WordPress's login page, on purpose.
    browser_problems.expect(r"/wp-login\.php\?aipress_login=1$", 403)
    browser_problems.expect_unreachable(GRAVATAR)  # wp-admin's avatars
    result = CliRunner().invoke(
        cli, ["sites", "login", "acme", "crumbs", "--token", stack.token("alice", "acme"),
              "--url", stack.url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    link = result.stdout.strip().splitlines()[0]
    assert re.fullmatch(
        r"http://crumbs\.acme\.localhost:\d+/wp-login\.php\?aipress_login=1#\S+", link
    )

    context = browser.new_context()
    page = context.new_page()
    page.goto(link)
    page.wait_for_url(re.compile(r"/wp-admin/$"))
    expect(page.locator("#wpadminbar")).to_be_visible()
    context.close()

    _refused(browser, link, "the link was already used")

    site_url = stack.site["preview_url"].rstrip("/")
    key, site_id = stack.key(), stack.site["id"]
    now = int(time.time())
    expired = admin_login.sign_token(key=key, site_id=site_id, user="admin", expires_at=now - 5)
    _refused(browser, admin_login.login_url(site_url, expired), "the link has expired")
    forged = admin_login.sign_token(
        key="not-the-key", site_id=site_id, user="admin", expires_at=now + 60
    )
    _refused(browser, admin_login.login_url(site_url, forged), "the link is not signed")
    elsewhere = admin_login.sign_token(key=key, site_id="0" * 32, user="admin", expires_at=now + 60)
    _refused(browser, admin_login.login_url(site_url, elsewhere), "the link is for another site")

    # Another tenant's caller, through the browser's own path (the chatbot's proxy): 404.
    bob = {"Authorization": f"Bearer {stack.token('bob', 'globex')}"}
    stranger = httpx.post(f"{stack.chat_url}/api/v1/tenants/acme/sites/crumbs/admin-login",
                          headers=bob)  # fmt: skip
    assert stranger.status_code == 404
    assert "aipress_login" not in stranger.text


def test_racing_uses_of_one_link_sign_in_once_and_the_plugin_is_root_owned(
    stack: Stack,
) -> None:
    root = Path(stack.control_plane.state.platform.provider.stack.sites_dir) / "acme" / "crumbs"
    plugin = root / "htdocs" / "wp-content" / "mu-plugins" / "aipress-login.php"
    info = plugin.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, 0, 0o644)
    assert plugin.parent.stat().st_uid == 0 and plugin.parent.stat().st_mode & 0o777 == 0o755
    user = (root / "htdocs" / "wp-content").owner()  # the site root is root's
    tamper = subprocess.run(["runuser", "-u", user, "--", "sh", "-c", f"echo x >> {plugin}"],
                            capture_output=True, text=True)  # fmt: skip
    assert tamper.returncode != 0 and "Permission denied" in tamper.stderr

    token = admin_login.sign_token(
        key=stack.key(), site_id=stack.site["id"], user="admin", expires_at=int(time.time()) + 60
    )
    port = stack.settings.site_port
    host = stack.site["preview_url"].split("//")[1].rstrip("/")

    def use() -> int:
        return httpx.post(
            f"http://127.0.0.1:{port}/wp-login.php?aipress_login=1",
            headers={"Host": host}, data={"token": token}, timeout=30,
        ).status_code  # fmt: skip

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(lambda _i: use(), range(4)))
    assert statuses == [302, 403, 403, 403]
