"""Browser fixtures: Debian's Chromium driven by Playwright (headless, no outside network)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    WebError,
    sync_playwright,
)

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.api.app import create_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.settings import Settings
from tests.conftest import ARTIFACTS, LOG_FILE, remove_after_scan
from tests.live import serve

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
SCREENSHOTS = ARTIFACTS / "screenshots"
# wp-admin shows avatars from Gravatar; this machine has no outside network to fetch them.
GRAVATAR = r"^https://(\d+|secure)\.gravatar\.com/avatar/"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """One Chromium for the session (tests use `browser`, which watches what it opens)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: `make test` installs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        launched.close()


@dataclass
class BrowserProblems:
    """What went wrong in the pages a test opened: console errors, uncaught errors, requests
    that failed, and 4xx/5xx answers the test did not declare with `expect`."""

    seen: list[str] = field(default_factory=list)
    expected: list[tuple[re.Pattern[str], int]] = field(default_factory=list)
    unreachable: list[re.Pattern[str]] = field(default_factory=list)

    def expect(self, url: str, status: int) -> None:
        """Allow answers `status` from URLs matching the regex `url` (provoked on purpose)."""
        self.expected.append((re.compile(url), status))

    def expect_unreachable(self, url: str) -> None:
        """Allow requests to URLs matching the regex `url` to fail (hosts outside this machine)."""
        self.unreachable.append(re.compile(url))

    def attach(self, context: BrowserContext) -> None:
        """Watch every page of `context`, popups included."""
        context.on("console", self._console)
        context.on("weberror", self._uncaught)
        context.on("requestfailed", self._failed)
        context.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium logs every 4xx/5xx load as "Failed to load resource"; `_response` and
        # `_failed` judge those (with the expected list), so only other errors count here.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.seen.append(f"console error: {message.text} ({message.location.get('url')})")

    def _uncaught(self, error: WebError) -> None:
        self.seen.append(f"uncaught error: {error.error}")

    def _failed(self, request: Request) -> None:
        if any(p.search(request.url) for p in self.unreachable):
            return
        if request.failure == "net::ERR_ABORTED":
            # Cancelled by the page itself (it closed or navigated, or an AbortController
            # stopped a fetch it no longer needs, such as a stream it leaves): not a failure.
            return
        self.seen.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response: Response) -> None:
        if response.status < 400:
            return
        if any(p.search(response.url) and s == response.status for p, s in self.expected):
            return
        self.seen.append(f"HTTP {response.status}: {response.request.method} {response.url}")


@pytest.fixture
def browser_problems() -> BrowserProblems:
    """The current test's browser problems (declare provoked errors with `expect`)."""
    return BrowserProblems()


@pytest.fixture
def browser(
    chromium: Browser, browser_problems: BrowserProblems, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Browser]:
    """The session's Chromium; every context the test opens is watched, and any problem it
    saw that the test did not expect fails the test at teardown."""
    opened = chromium.new_context

    def new_context(**options: Any) -> BrowserContext:
        context = opened(**options)
        browser_problems.attach(context)
        return context

    def new_page(**_options: Any) -> Page:
        raise AssertionError("open pages through browser.new_context() so they are watched")

    monkeypatch.setattr(chromium, "new_context", new_context)
    monkeypatch.setattr(chromium, "new_page", new_page)
    yield chromium
    if browser_problems.seen:
        pytest.fail("the browser saw problems:\n" + "\n".join(browser_problems.seen))


def watch(page: Page) -> list[str]:
    """Collect the page's uncaught errors (a test asserts there are none)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def signed_in_page(browser: Browser, token: str, **options: Any) -> tuple[BrowserContext, Page]:
    """A new context whose served pages hold `token` as the sign-in page leaves it, and its
    first page."""
    context = browser.new_context(**options)
    # about:blank has no sessionStorage (reading it there throws): only the served pages.
    context.add_init_script(
        f"if (location.protocol === 'http:') sessionStorage.setItem('aipress.token', {token!r})"
    )
    return context, context.new_page()


def acme_token(settings: ChatSettings, uid: str, role: Role) -> str:
    """A token for `uid` with `role` in tenant acme (e-mail `uid`@acme.example)."""
    return LocalTokenIssuer(settings).issue(uid, role, ["acme"], email=f"{uid}@acme.example")


@contextmanager
def open_dashboard(
    browser: Browser,
    url: str,
    token: str,
    *,
    tab: str | None = None,
    before: Callable[[Page], None] | None = None,
    **options: Any,
) -> Iterator[Page]:
    """The dashboard signed in with `token` (context `options`), on `tab` if named; `before`
    sees the page first. Anything that reloads the page while the caller holds it fails."""
    context, page = signed_in_page(browser, token, **options)
    if before is not None:
        before(page)
    page.goto(f"{url}/dashboard")
    page.evaluate("window.notReloaded = true")  # gone if anything reloads the page
    try:
        if tab is not None:
            page.get_by_role("tab", name=tab).click()
        yield page
        assert page.evaluate("window.notReloaded") is True
    finally:
        context.close()


@contextmanager
def watched_dashboard(browser: Browser, url: str, token: str) -> Iterator[tuple[Page, list[str]]]:
    """open_dashboard with the page's uncaught errors collected from before it loads."""
    watching: list[list[str]] = []  # watch's list, made when the page is
    with open_dashboard(browser, url, token, before=lambda p: watching.append(watch(p))) as page:
        yield page, watching[0]


def screenshot(page: Page, name: str) -> Path:
    """Save a screenshot under test-artifacts/screenshots."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def keep(path: Path, docs_name: str) -> None:
    """Copy a screenshot to docs/screenshots (the README shows them) when asked to with
    AIPRESS_UPDATE_SCREENSHOTS=1: a test run leaves the working tree as it was."""
    if os.environ.get("AIPRESS_UPDATE_SCREENSHOTS") != "1":
        return
    target = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / docs_name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)


@dataclass
class LocalStack:
    """A control plane on the local provider and a chatbot in front of it, on loopback ports;
    `admin` is a client of the control plane as the platform admin."""

    settings: Settings
    url: str
    chat_url: str
    control_plane: FastAPI
    admin: httpx.Client


@contextmanager
def local_stack(
    prefix: str, mariadb_port: int, site_port: int, **options: Any
) -> Iterator[LocalStack]:
    """Serve a fresh local-provider control plane (home under /tmp, random ports from the
    given bases) with tenants acme and globex, and a chatbot; stop the stack and remove its
    home after."""
    base = Path(tempfile.mkdtemp(prefix=f"aipress-{prefix}-", dir="/tmp"))
    base.chmod(0o755)
    settings = Settings(
        provider="local", home=base / "home", log_file=LOG_FILE, billing_schedule=False,
        mariadb_port=mariadb_port + secrets.randbelow(300),
        site_port=site_port + secrets.randbelow(1000), **options,
    )  # fmt: skip
    control_plane = create_app(settings)
    with serve(control_plane) as url:
        token = LocalTokenIssuer(settings).issue("root", Role.ADMIN)
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as admin:
            for tenant in ("acme", "globex"):
                admin.post("/v1/tenants", json={"id": tenant, "name": tenant.title()})
            chat_settings = ChatSettings(**settings.shared(), chat_control_plane_url=url)
            with serve(create_chat_app(chat_settings)) as chat_url:
                yield LocalStack(settings, url, chat_url, control_plane, admin)
    control_plane.state.platform.provider.stack.stop()
    remove_after_scan(base)
