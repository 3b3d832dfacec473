"""Custom domains: a claim proves nothing and blocks nobody; a TXT record proves control;
only verified domains are served."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controlplane.api.app import create_app
from controlplane.cli import app as cli_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.agent_fixtures import make_site
from tests.conftest import AuthHeaders, wait_for_operation
from tests.dns_server import TxtServer
from tests.live import serve

EMAIL = "owner@example.com"
SHOP = "shop.globex-corp.com"


@pytest.fixture
def dns_server() -> Iterator[TxtServer]:
    with TxtServer().running() as server:
        yield server


@pytest.fixture
def api(
    settings: Settings, memory_provider: MemoryProvider, dns_server: TxtServer
) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"dns_nameservers": dns_server.address})
    app = create_app(
        configured, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )
    with TestClient(app) as client:
        yield client


def _site(client: TestClient, auth: AuthHeaders, tenant: str, name: str, **body: Any) -> Any:
    admin = auth("admin")
    if client.get(f"/v1/tenants/{tenant}", headers=admin).status_code == 404:
        assert client.post("/v1/tenants", json={"id": tenant, "name": tenant},
                           headers=admin).status_code == 201  # fmt: skip
    created = client.post(f"/v1/tenants/{tenant}/sites",
                          json={"name": name, "admin_email": EMAIL, **body}, headers=admin)  # fmt: skip
    assert created.status_code == 202, created.text
    assert wait_for_operation(client, created.json()["operation"]["id"], admin)["status"] == (
        "succeeded"
    )
    return created.json()


def _claimed_shop(api: TestClient, auth: AuthHeaders) -> tuple[Any, dict[str, str], str]:
    """Site shop of globex with a claim on SHOP: the site, its owner's headers, the token."""
    site = _site(api, auth, "globex", "shop")["site"]
    owner = auth("tenant", "globex")
    claim = api.post("/v1/tenants/globex/sites/shop/domains", json={"domain": SHOP}, headers=owner)
    return site, owner, claim.json()["verification"]["value"]


def _served(memory: MemoryProvider, site_id: str) -> list[str]:
    return list(memory.site_resources(site_id)["dns"]["domains"])


def _audit(client: TestClient, auth: AuthHeaders, action: str) -> list[dict[str, Any]]:
    events = client.get("/v1/audit?limit=1000", headers=auth("admin")).json()
    return [e for e in events if e["action"] == action]


def test_a_claim_names_its_txt_record_and_serves_nothing(
    api: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    site = _site(api, auth, "globex", "shop")["site"]
    owner = auth("tenant", "globex")
    claimed = api.post("/v1/tenants/globex/sites/shop/domains", json={"domain": "Shop.Globex-Corp.com."},
                       headers=owner)  # fmt: skip
    assert claimed.status_code == 201, claimed.text
    body = claimed.json()
    assert body["domain"] == SHOP and body["status"] == "pending"
    record = body["verification"]
    assert record["type"] == "TXT" and record["name"] == f"_aipress-challenge.{SHOP}"
    assert len(record["value"]) == 32
    assert (
        f'TXT record _aipress-challenge.{SHOP} with the value "{record["value"]}"'
        in (body["instructions"])
    )
    again = api.post("/v1/tenants/globex/sites/shop/domains", json={"domain": SHOP}, headers=owner)
    assert again.status_code == 200 and again.json()["verification"] == record
    read = api.get("/v1/tenants/globex/sites/shop", headers=owner).json()
    assert read["domains"] == [] and read["pending_domains"] == [SHOP]
    listed = api.get("/v1/tenants/globex/sites", headers=owner).json()[0]
    assert listed["domains"] == [] and listed["pending_domains"] == [SHOP]
    assert [d["domain"] for d in api.get("/v1/tenants/globex/sites/shop/domains",
                                         headers=owner).json()] == [SHOP]  # fmt: skip
    assert _served(memory_provider, site["id"]) == []
    assert [e["detail"]["domain"] for e in _audit(api, auth, "domain.claim")] == [SHOP]


def test_a_failed_verification_attaches_nothing_and_says_what_to_create(
    api: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider, dns_server: TxtServer
) -> None:
    site, owner, token = _claimed_shop(api, auth)
    missing = api.post(f"/v1/tenants/globex/sites/shop/domains/{SHOP}/verify", headers=owner)
    assert missing.status_code == 400
    assert "does not exist" in missing.json()["detail"]
    assert (
        f'create a TXT record _aipress-challenge.{SHOP} with the value "{token}"'
        in (missing.json()["detail"])
    )
    dns_server.records[f"_aipress-challenge.{SHOP}"] = ["someone-elses-token"]
    wrong = api.post(f"/v1/tenants/globex/sites/shop/domains/{SHOP}/verify", headers=owner)
    assert wrong.status_code == 400
    assert "do not hold this claim's token" in wrong.json()["detail"]
    assert f"_aipress-challenge.{SHOP}" in dns_server.queries
    claim = api.get("/v1/tenants/globex/sites/shop/domains", headers=owner).json()[0]
    assert claim["status"] == "pending" and "do not hold" in claim["last_error"]
    assert api.get("/v1/tenants/globex/sites/shop", headers=owner).json()["domains"] == []
    kinds = [o["kind"] for o in api.get("/v1/tenants/globex/sites/shop/operations",
                                        headers=owner).json()]  # fmt: skip
    assert kinds == ["create_site"]
    assert _served(memory_provider, site["id"]) == []
    assert [e["outcome"] for e in _audit(api, auth, "domain.verify")] == ["failed", "failed"]


def test_verified_domains_are_served_and_removed(
    api: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider, dns_server: TxtServer
) -> None:
    site, owner, token = _claimed_shop(api, auth)
    dns_server.records[f"_aipress-challenge.{SHOP}"] = ["v=other", token]
    verified = api.post(f"/v1/tenants/globex/sites/shop/domains/{SHOP}/verify", headers=owner)
    assert verified.status_code == 202, verified.text
    assert verified.json()["domain"]["status"] == "verified"
    op = wait_for_operation(api, verified.json()["operation"]["id"], owner)
    assert op["kind"] == "update_domains" and op["status"] == "succeeded"
    assert [s["name"] for s in op["steps"]] == ["runtime", "dns", "wordpress"]
    assert _served(memory_provider, site["id"]) == [SHOP]
    read = api.get("/v1/tenants/globex/sites/shop", headers=owner).json()
    assert read["domains"] == [SHOP] and read["pending_domains"] == []
    removed = api.delete(f"/v1/tenants/globex/sites/shop/domains/{SHOP}", headers=owner)
    assert removed.status_code == 200
    assert wait_for_operation(api, removed.json()["operation"]["id"], owner)["status"] == (
        "succeeded"
    )
    assert _served(memory_provider, site["id"]) == []
    assert api.get("/v1/tenants/globex/sites/shop/domains", headers=owner).json() == []
    assert [e["outcome"] for e in _audit(api, auth, "domain.verify")] == ["ok"]
    assert [e["detail"]["was"] for e in _audit(api, auth, "domain.remove")] == ["verified"]


def test_another_tenants_pending_claim_neither_blocks_nor_is_revealed(
    api: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider, dns_server: TxtServer
) -> None:
    squatter = auth("tenant", "acme")
    _site(api, auth, "acme", "blog", domain=SHOP)  # the create body's domain: a pending claim
    assert api.post("/v1/tenants/acme/sites/blog/domains", json={"domain": "www.google.com"},
                    headers=squatter).status_code == 201  # fmt: skip
    _site(api, auth, "globex", "home")
    owner = auth("tenant", "globex")
    plan = api.post("/v1/tenants/globex/sites?dry_run=true", headers=owner,
                    json={"name": "shop", "admin_email": EMAIL, "domain": SHOP})  # fmt: skip
    assert plan.status_code == 200 and "acme" not in plan.text and "already" not in plan.text
    created = api.post("/v1/tenants/globex/sites", headers=owner,
                       json={"name": "shop", "admin_email": EMAIL, "domain": SHOP})  # fmt: skip
    assert created.status_code == 202, created.text
    wait_for_operation(api, created.json()["operation"]["id"], owner)
    claim = api.get("/v1/tenants/globex/sites/shop/domains", headers=owner).json()[0]
    squatters = api.get("/v1/tenants/acme/sites/blog/domains", headers=squatter).json()
    assert claim["verification"]["value"] != squatters[0]["verification"]["value"]
    dns_server.records[claim["verification"]["name"]] = [claim["verification"]["value"]]
    # The squatter cannot verify with the real owner's record...
    refused = api.post(f"/v1/tenants/acme/sites/blog/domains/{SHOP}/verify", headers=squatter)
    assert refused.status_code == 400 and "do not hold this claim's token" in refused.text
    assert claim["verification"]["value"] not in refused.text and "another" not in refused.text
    # ...and the real owner can.
    verified = api.post(f"/v1/tenants/globex/sites/shop/domains/{SHOP}/verify", headers=owner)
    assert verified.status_code == 202, verified.text
    wait_for_operation(api, verified.json()["operation"]["id"], owner)
    site_id = created.json()["site"]["id"]
    assert _served(memory_provider, site_id) == [SHOP]
    blog = api.get("/v1/tenants/acme/sites/blog", headers=squatter).json()
    assert blog["domains"] == [] and sorted(blog["pending_domains"]) == [SHOP, "www.google.com"]
    assert _served(memory_provider, blog["id"]) == []
    # A second site of the owner proving the same name finds it taken (it proved control).
    _site(api, auth, "globex", "mirror")
    api.post("/v1/tenants/globex/sites/mirror/domains", json={"domain": SHOP}, headers=owner)
    mirror = api.get("/v1/tenants/globex/sites/mirror/domains", headers=owner).json()[0]
    dns_server.records[claim["verification"]["name"]].append(mirror["verification"]["value"])
    taken = api.post(f"/v1/tenants/globex/sites/mirror/domains/{SHOP}/verify", headers=owner)
    assert taken.status_code == 400 and "verified for another site" in taken.json()["detail"]


@pytest.mark.parametrize(
    "domain",
    ["metadata.google.internal", "crumbs.acme.localhost", "localhost", "10.0.0.1", "db.local",
     "intranet", "router.home.arpa"],
)  # fmt: skip
def test_reserved_names_are_refused_and_change_nothing(
    api: TestClient, auth: AuthHeaders, domain: str
) -> None:
    _site(api, auth, "globex", "shop")
    owner = auth("tenant", "globex")
    refused = api.post("/v1/tenants/globex/sites/shop/domains", json={"domain": domain},
                       headers=owner)  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    create = api.post("/v1/tenants/globex/sites", headers=owner,
                      json={"name": "other", "admin_email": EMAIL, "domain": domain})  # fmt: skip
    assert create.status_code == 422
    assert api.get("/v1/tenants/globex/sites/shop/domains", headers=owner).json() == []
    assert _audit(api, auth, "domain.claim") == []


def test_the_platform_domain_is_refused(
    settings: Settings, memory_provider: MemoryProvider, auth: AuthHeaders
) -> None:
    configured = settings.model_copy(update={"platform_domain": "sites.example.com"})
    app = create_app(
        configured, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )
    with TestClient(app) as api:
        _site(api, auth, "globex", "shop")
        for domain in ("sites.example.com", "shop.globex.sites.example.com"):
            refused = api.post("/v1/tenants/globex/sites/shop/domains", json={"domain": domain},
                               headers=auth("tenant", "globex"))  # fmt: skip
            assert refused.status_code == 422 and "preview names" in refused.json()["detail"]


def test_viewers_read_and_others_see_nothing(api: TestClient, auth: AuthHeaders) -> None:
    _site(api, auth, "globex", "shop")
    owner = auth("tenant", "globex")
    api.post("/v1/tenants/globex/sites/shop/domains", json={"domain": SHOP}, headers=owner)
    viewer = auth("viewer", "globex")
    assert api.get("/v1/tenants/globex/sites/shop/domains", headers=viewer).status_code == 200
    path = f"/v1/tenants/globex/sites/shop/domains/{SHOP}"
    assert api.post(f"{path}/verify", headers=viewer).status_code == 403
    assert api.delete(path, headers=viewer).status_code == 403
    stranger = auth("tenant", "acme")
    assert api.get("/v1/tenants/globex/sites/shop/domains", headers=stranger).status_code == 404
    assert api.post(f"{path}/verify", headers=stranger).status_code == 404
    assert api.delete(path, headers=stranger).status_code == 404
    assert len(api.get("/v1/tenants/globex/sites/shop/domains", headers=owner).json()) == 1


def test_the_cli_claims_verifies_lists_and_removes(
    settings: Settings,
    memory_provider: MemoryProvider,
    dns_server: TxtServer,
    issuer: LocalTokenIssuer,
) -> None:
    configured = settings.model_copy(update={"dns_nameservers": dns_server.address})
    app = create_app(
        configured, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )
    with serve(app) as url:
        with httpx.Client(base_url=url, headers={
            "Authorization": f"Bearer {issuer.issue('root', Role.ADMIN)}"}) as admin:  # fmt: skip
            admin.post("/v1/tenants", json={"id": "globex", "name": "Globex"})
            make_site(admin, "globex", "shop")
        token = issuer.issue("gina", Role.TENANT, ["globex"])
        runner = CliRunner()

        def cli(*args: str) -> Result:
            return runner.invoke(cli_app, [*args, "--url", url, "--token", token])

        added = cli("domains", "add", "globex", "shop", SHOP)
        assert added.exit_code == 0, added.output
        assert f"_aipress-challenge.{SHOP}" in added.output
        claimed = cli("domains", "list", "globex", "shop")
        assert "pending" in claimed.output
        listed = cli("sites", "list", "globex")
        assert "(pending)" in listed.output
        failed = cli("domains", "verify", "globex", "shop", SHOP)
        assert failed.exit_code == 1 and "does not exist" in failed.output
        token_value = added.output.split(f"_aipress-challenge.{SHOP}")[1].split('"')[1]
        dns_server.records[f"_aipress-challenge.{SHOP}"] = [token_value]
        verified = cli("domains", "verify", "globex", "shop", SHOP)
        assert verified.exit_code == 0, verified.output
        assert "verified and served" in verified.output
        removed = cli("domains", "remove", "globex", "shop", SHOP)
        assert removed.exit_code == 0, removed.output
        assert "has no custom domains" in cli("domains", "list", "globex", "shop").output
