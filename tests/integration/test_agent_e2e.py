"""End to end on the embedded default: a chat creates a real WordPress site (MariaDB, PHP-FPM,
nginx), the answer carries its URL, the URL serves WordPress, and a confirmed delete
removes it, database included."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.api.app import create_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.models import Site
from controlplane.settings import Settings
from tests.live import local_stack_home, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedded() -> Iterator[tuple[Settings, object]]:
    with local_stack_home("agent") as settings:
        app = create_app(settings)
        with serve(app) as url:
            admin = LocalTokenIssuer(settings).issue("root", Role.ADMIN)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as api:
                assert api.post("/v1/tenants", json={"id": "acme", "name": "Acme"}).is_success
            yield ChatSettings(**settings.shared(), chat_control_plane_url=url), app


def test_chat_creates_a_wordpress_site_and_deletes_it_after_confirmation(
    embedded: tuple[Settings, object],
) -> None:
    settings, api_app = embedded
    token = LocalTokenIssuer(settings).issue(
        "alice", Role.TENANT, ["acme"], email="alice@acme.example"
    )
    alice = {"Authorization": f"Bearer {token}"}
    with TestClient(create_chat_app(settings)) as chat:
        first = chat.post(
            "/v1/chat", json={"message": "I need a site for my bakery, call it crumbs"},
            headers=alice,
        ).json()  # fmt: skip
        assert "e-mail" in first["messages"][-1]["content"]
        thread = first["thread_id"]
        made = chat.post(
            "/v1/chat", json={"thread_id": thread, "message": "use mine"}, headers=alice
        ).json()
        answer = made["messages"][-1]["content"]
        match = re.search(r"http://crumbs\.acme\.localhost:(\d+)/", answer)
        assert match, answer
        port = int(match.group(1))
        assert port == api_app.state.platform.settings.site_port  # type: ignore[attr-defined]
        page = httpx.get(
            f"http://127.0.0.1:{port}/", headers={"Host": f"crumbs.acme.localhost:{port}"},
            timeout=30,
        )  # fmt: skip
        assert page.status_code == 200
        assert "wp-content" in page.text or 'name="generator" content="WordPress' in page.text
        with api_app.state.platform.sessions() as session:  # type: ignore[attr-defined]
            site = session.query(Site).filter_by(tenant_id="acme", name="crumbs").one()
            database = site.resources["database"]["name"]

        asked = chat.post(
            "/v1/chat", json={"thread_id": thread, "message": "now delete crumbs"}, headers=alice
        ).json()
        assert asked["interrupt"]["actions"][0]["site"] == "crumbs"
        still = httpx.get(
            f"http://127.0.0.1:{port}/", headers={"Host": f"crumbs.acme.localhost:{port}"}
        )
        assert still.status_code == 200  # nothing happens before the answer
        done = chat.post(f"/v1/chat/{thread}/resume", json={"approve": True}, headers=alice)
        assert "Deleted **crumbs**" in done.json()["messages"][-1]["content"]

    gone = httpx.get(f"http://127.0.0.1:{port}/", headers={"Host": f"crumbs.acme.localhost:{port}"})
    assert gone.status_code != 200 or "crumbs" not in gone.text.lower()
    stack = api_app.state.platform.provider.stack  # type: ignore[attr-defined]
    with stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (database,))
        assert cur.fetchall() == ()
