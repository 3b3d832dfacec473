"""The sign-in page as the MCP authorization server's login and consent, in Chromium: an
OAuth client's request signs in a demo user, shows what it asks for, and sends the browser
back with a code (Allow) or access_denied (Deny)."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, Route, expect

from chatbot.service import create_app
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import load_sign_in_key
from tests.e2e.conftest import watch
from tests.live import free_port, serve
from tests.mcp_oauth import (
    TEST_CLIENT_ID,
    TEST_REDIRECT_URI,
    Authorization,
    query_of,
    with_test_client,
)


def test_consent_on_the_sign_in_page_returns_a_code_or_a_refusal(
    browser: Browser, chat_settings: ChatSettings, admin_api: httpx.Client
) -> None:
    assert admin_api.put("/v1/users/alice", json={"role": "tenant", "tenants": ["acme"]}).is_success
    port = free_port()
    settings = with_test_client(chat_settings, port)
    with serve(create_app(settings), port) as url:
        context = browser.new_context()
        page = context.new_page()
        errors = watch(page)
        returned: list[str] = []

        def client_callback(route: Route) -> None:  # the OAuth client's redirect URI
            returned.append(route.request.url)
            route.fulfill(status=200, body="done", content_type="text/plain")

        context.route(TEST_REDIRECT_URI + "*", client_callback)
        page.goto(f"{url}/signin#key={load_sign_in_key(settings)}")  # the key, kept once
        expect(page.get_by_role("listitem").filter(has_text="alice")).to_be_visible()
        for approve in (True, False):
            run = Authorization.fresh()
            query = httpx.QueryParams(run.params(url + "/mcp", "sites:read sites:write admin"))
            page.goto(f"{url}/oauth/authorize?{query}")
            page.wait_for_url("**/signin?oauth=*")
            page.get_by_role("listitem").filter(has_text="alice").click()
            expect(page.locator("#mode")).to_contain_text(f"{TEST_CLIENT_ID} ({TEST_CLIENT_ID})")
            expect(page.locator("#mode")).to_contain_text("sites:read, sites:write, admin")
            # What the tenant's role grants of it and what it drops, before Allow.
            expect(page.locator("#mode")).to_contain_text("It will get sites:read, sites:write.")
            expect(page.locator("#mode")).to_contain_text(
                "Not granted, because your role (tenant) lacks them: admin."
            )
            expect(page.locator("#mode")).to_contain_text("127.0.0.1:9")
            page.get_by_role("listitem").filter(has_text="Allow" if approve else "Deny").click()
            page.wait_for_url(TEST_REDIRECT_URI + "*")
            back = query_of(returned[-1])
            assert back["state"] == run.state and back["iss"] == url
            if not approve:
                assert back["error"] == "access_denied" and "code" not in back
                continue
            token = httpx.post(f"{url}/oauth/token", data={
                "grant_type": "authorization_code", "code": back["code"],
                "client_id": TEST_CLIENT_ID, "redirect_uri": TEST_REDIRECT_URI,
                "code_verifier": run.verifier, "resource": url + "/mcp",
            })  # fmt: skip
            assert token.status_code == 200, token.text
            assert token.json()["scope"] == "sites:read sites:write"  # a tenant: no admin
        assert errors == []
        context.close()
