"""Bundles through the API with the memory provider: who may read and set them (every role,
own and other tenant), what the catalogue lacks refused with nothing changed, a tenant
inheriting the platform default, and what a create records and installs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from typer.testing import CliRunner

from controlplane.api.app import create_app
from controlplane.cli import app as cli_app
from controlplane.engine.bundle_steps import _culprit
from controlplane.engine.provider import SiteContext
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Principal, Role
from controlplane.kernel.vocabulary import PackageKind
from controlplane.models import AuditEvent, CataloguePackage, Operation
from controlplane.packages.catalogue import add_package
from controlplane.packages.store import catalogue_store
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.conftest import AuthHeaders, wait_for_operation
from tests.live import serve
from tests.package_zips import DEMO, plugin_zip, theme_zip, write

BUNDLE = "/v1/tenants/acme/bundle"
DEMO_11 = {"plugins": [{"slug": DEMO, "version": "1.1"}], "themes": []}


def _platform(client: Any) -> Any:
    """The platform of a TestClient or of an app."""
    app = getattr(client, "app", client)
    return app.state.platform


def _catalogue(client: Any, settings: Settings, tmp_path: Path) -> None:
    """demo 1.0 and 1.1, and demo-theme 2.0, in the catalogue."""
    admin = Principal(sub="seed", role=Role.ADMIN, tenants=frozenset())
    zips = [(PackageKind.PLUGIN, f"demo-{v}.zip", plugin_zip(v)) for v in ("1.0", "1.1")]
    zips.append((PackageKind.THEME, "theme.zip", theme_zip("2.0")))
    with _platform(client).sessions() as session:
        for kind, name, data in zips:
            add_package(session, principal=admin, store=catalogue_store(settings), kind=kind,
                        zip_path=write(tmp_path / name, data), max_bytes=10**7)  # fmt: skip


@pytest.fixture
def acme(client: TestClient, auth: AuthHeaders, settings: Settings, tmp_path: Path) -> TestClient:
    """Tenants acme and globex, and a catalogue to make bundles of."""
    for tenant in ("acme", "globex"):
        made = client.post(
            "/v1/tenants", json={"id": tenant, "name": tenant.title()}, headers=auth("admin")
        )
        assert made.status_code == 201, made.text
    _catalogue(client, settings, tmp_path)
    return client


ROLES = ("admin", "operator", "viewer", "tenant")
# Written out from the design table: read as READ_SITES (every role), write as CHANGE_SITES
# (not viewers); another tenant's bundle is not even seen (404) but by admins.
EXPECTED = {
    ("GET", "own"): (200, 200, 200, 200),
    ("PUT", "own"): (200, 200, 403, 200),
    ("GET", "other"): (200, 404, 404, 404),
    ("PUT", "other"): (200, 404, 404, 404),
}


@pytest.mark.parametrize(("method", "relation"), sorted(EXPECTED))
def test_who_may_read_and_set_a_tenant_bundle(
    acme: TestClient, auth: AuthHeaders, method: str, relation: str
) -> None:
    tenant = "acme" if relation == "own" else "globex"
    answers = []
    for role in ROLES:
        headers = auth(role) if role == "admin" else auth(role, "acme")
        url = f"/v1/tenants/{tenant}/bundle"
        response = acme.request(method, url, json=DEMO_11 if method == "PUT" else None,
                                headers=headers)  # fmt: skip
        answers.append(response.status_code)
        if response.status_code == 200:
            assert response.json()["tenant_id"] == tenant, response.json()
    assert tuple(answers) == EXPECTED[(method, relation)]
    # A refused PUT stored nothing: globex still has no bundle of its own.
    if method == "PUT" and relation == "other":
        globex = acme.get("/v1/tenants/globex/bundle", headers=auth("admin")).json()
        assert globex["plugins"] == DEMO_11["plugins"]  # the admin's, the one allowed
    audit_count = _audits(acme)
    assert audit_count == (answers.count(200) if method == "PUT" else 0)


def _audits(client: TestClient) -> int:
    with _platform(client).sessions() as session:
        return len(list(session.scalars(
            select(AuditEvent).where(AuditEvent.action == "bundle.put")
        )))  # fmt: skip


def test_only_admins_set_the_platform_default_and_everyone_reads_it(
    acme: TestClient, auth: AuthHeaders
) -> None:
    for role in ("operator", "viewer", "tenant"):
        refused = acme.put("/v1/bundle", json=DEMO_11, headers=auth(role, "acme"))
        assert refused.status_code == 403, refused.text
    assert acme.get("/v1/bundle", headers=auth("admin")).json()["plugins"] == []
    assert acme.put("/v1/bundle", json=DEMO_11, headers=auth("admin")).status_code == 200
    for role in ROLES:
        read = acme.get("/v1/bundle", headers=auth(role, "acme")).json()
        assert read["tenant_id"] is None and read["plugins"] == DEMO_11["plugins"], read


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"plugins": [{"slug": "nosuch", "version": "1.0"}]}, 400, "'nosuch'"),
        ({"plugins": [{"slug": DEMO, "version": "9.9"}]}, 400, "version 9.9"),
        ({"plugins": [{"slug": "nosuch"}]}, 400, "'nosuch'"),  # latest of nothing
        ({"themes": [{"slug": DEMO, "version": "1.1"}]}, 400, "theme 'demo'"),  # a plugin
        ({"plugins": [{"slug": DEMO}, {"slug": DEMO, "version": "1.0"}]}, 422, "twice"),
        ({"themes": [{"slug": "demo-theme"}, {"slug": "other"}]}, 422, "at most 1"),
        ({"plugins": [{"slug": "../etc", "version": "1.0"}]}, 422, "slug"),
        ({"plugins": [], "extra": 1}, 422, "extra"),
    ],
)
def test_a_bundle_the_catalogue_cannot_supply_is_refused_and_changes_nothing(
    acme: TestClient, auth: AuthHeaders, body: dict[str, Any], status: int, named: str
) -> None:
    before = acme.put(BUNDLE, json=DEMO_11, headers=auth("tenant", "acme"))
    assert before.status_code == 200, before.text

    refused = acme.put(BUNDLE, json=body, headers=auth("tenant", "acme"))

    assert refused.status_code == status, refused.text
    assert named in refused.text, refused.text
    after = acme.get(BUNDLE, headers=auth("tenant", "acme")).json()
    assert after == before.json()
    assert _audits(acme) == 1


def test_latest_is_kept_as_asked_and_a_theme_is_checked_as_a_theme(
    acme: TestClient, auth: AuthHeaders
) -> None:
    body = {"plugins": [{"slug": DEMO}], "themes": [{"slug": "demo-theme", "version": "2.0"}]}
    saved = acme.put(BUNDLE, json=body, headers=auth("operator", "acme"))
    assert saved.status_code == 200, saved.text
    read = saved.json()
    assert read["plugins"] == [{"slug": DEMO, "version": "latest"}]
    assert read["themes"] == [{"slug": "demo-theme", "version": "2.0"}]
    assert read["inherited"] is False and read["updated_by"] == "operator-user"


def test_a_tenant_without_its_own_bundle_inherits_the_platform_default(
    acme: TestClient, auth: AuthHeaders
) -> None:
    tenant = auth("tenant", "acme")
    empty = acme.get(BUNDLE, headers=tenant).json()
    assert empty == {"tenant_id": "acme", "plugins": [], "themes": [], "inherited": True,
                     "updated_by": None, "updated_at": None}  # fmt: skip
    default = {"plugins": [{"slug": DEMO, "version": "1.0"}], "themes": []}
    assert acme.put("/v1/bundle", json=default, headers=auth("admin")).status_code == 200

    inherited = acme.get(BUNDLE, headers=tenant).json()
    assert inherited["inherited"] is True and inherited["plugins"] == default["plugins"]

    own = acme.put(BUNDLE, json={"plugins": []}, headers=tenant).json()
    assert own["inherited"] is False and own["plugins"] == []  # its own: nothing at all
    assert acme.get("/v1/bundle", headers=tenant).json()["plugins"] == default["plugins"]
    globex = acme.get("/v1/tenants/globex/bundle", headers=auth("admin")).json()
    assert globex["inherited"] is True and globex["plugins"] == default["plugins"]

    back = acme.delete(BUNDLE, headers=tenant).json()
    assert back["inherited"] is True and back["plugins"] == default["plugins"]


# --- the create: the bundle recorded with its versions, installed, and all or nothing ------


def _create(client: TestClient, headers: dict[str, str], name: str, **extra: Any) -> Any:
    body = {"name": name, "admin_email": "owner@example.com", **extra}
    accepted = client.post("/v1/tenants/acme/sites", json=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    return wait_for_operation(client, accepted.json()["operation"]["id"], headers)


class _NoVault:
    """Reading what a memory site has needs no credentials."""

    def get_or_create(self, kind: str, username: str) -> tuple[str, str]:
        raise AssertionError("no credentials needed")

    def get(self, kind: str) -> tuple[str, str] | None:
        return None


def _params(client: TestClient, operation_id: str) -> dict[str, Any]:
    with _platform(client).sessions() as session:
        op = session.get(Operation, operation_id)
        assert op is not None
        return dict(op.params)


def test_a_create_installs_the_bundle_with_its_versions_resolved_and_records_them(
    acme: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    body = {"plugins": [{"slug": DEMO}], "themes": [{"slug": "demo-theme", "version": "2.0"}]}
    assert acme.put(BUNDLE, json=body, headers=auth("tenant", "acme")).status_code == 200

    final = _create(acme, auth("tenant", "acme"), "bundled")

    assert final["status"] == "succeeded", final
    steps = [s["name"] for s in final["steps"]]
    assert steps[steps.index("wordpress") + 1] == "bundle", steps
    resolved = {"plugins": [{"slug": DEMO, "version": "1.1"}],  # "latest" when it was made
                "themes": [{"slug": "demo-theme", "version": "2.0"}]}  # fmt: skip
    assert _params(acme, final["id"])["bundle"] == resolved
    ctx = SiteContext(tenant_id="acme", site_id=final["site_id"], site_name="bundled", title="",
                      admin_email="", admin_user="", domains=[], credentials=_NoVault())  # fmt: skip
    have = {(p.kind, p.slug): (p.version, p.active)
            for p in memory_provider.packages.installed(ctx)}  # fmt: skip
    assert have[(PackageKind.PLUGIN, DEMO)] == ("1.1", True), have
    assert have[(PackageKind.THEME, "demo-theme")] == ("2.0", True), have
    assert memory_provider.package_state.aside() == {}  # nothing kept aside on a new site
    with _platform(acme).sessions() as session:
        (created,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "site.create"))
        assert created.detail["bundle"] == resolved


def test_a_bundle_plugin_that_breaks_the_site_rolls_the_create_back_naming_it(
    acme: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    default = {"plugins": [{"slug": DEMO, "version": "1.0"}]}
    assert acme.put("/v1/bundle", json=default, headers=auth("admin")).status_code == 200
    memory_provider.package_state.broken.add(f"plugin:{DEMO}:1.0")

    final = _create(acme, auth("tenant", "acme"), "broken")  # inherits the default

    assert final["status"] == "rolled_back", final
    assert "bundle plugin demo 1.0 broke the site: php_fatal" in final["error"], final["error"]
    assert acme.get("/v1/tenants/acme/sites/broken", headers=auth("admin")).status_code == 404
    assert final["site_id"] not in memory_provider.resources, memory_provider.resources
    assert memory_provider.package_state.aside() == {}


def test_a_tenant_with_no_bundle_gets_no_bundle_step(acme: TestClient, auth: AuthHeaders) -> None:
    final = _create(acme, auth("tenant", "acme"), "plain")

    assert final["status"] == "succeeded", final
    assert "bundle" not in [s["name"] for s in final["steps"]]
    assert "bundle" not in _params(acme, final["id"])


def test_a_site_made_from_a_backup_gets_no_bundle(acme: TestClient, auth: AuthHeaders) -> None:
    admin = auth("admin")
    assert _create(acme, admin, "crumbs")["status"] == "succeeded"
    taken = acme.post("/v1/tenants/acme/sites/crumbs/backups", headers=admin).json()
    assert wait_for_operation(acme, taken["operation"]["id"], admin)["status"] == "succeeded"
    assert acme.put(BUNDLE, json=DEMO_11, headers=admin).status_code == 200

    final = _create(acme, admin, "crumbs-copy",
                    from_backup={"site": "crumbs", "backup": taken["backup"]["id"]})  # fmt: skip

    assert final["status"] == "succeeded", final
    assert "bundle" not in [s["name"] for s in final["steps"]], final["steps"]
    assert "bundle" not in _params(acme, final["id"])


def test_a_bundle_the_catalogue_no_longer_holds_refuses_the_create(
    acme: TestClient, auth: AuthHeaders
) -> None:
    assert acme.put(BUNDLE, json=DEMO_11, headers=auth("admin")).status_code == 200
    with _platform(acme).sessions() as session:
        session.execute(delete(CataloguePackage).where(CataloguePackage.version == "1.1"))
        session.commit()

    refused = acme.post("/v1/tenants/acme/sites",
                        json={"name": "late", "admin_email": "o@example.com"},
                        headers=auth("admin"))  # fmt: skip

    assert refused.status_code == 400, refused.text
    assert "bundle" in refused.text and "version 1.1" in refused.text, refused.text
    assert acme.get("/v1/tenants/acme/sites/late", headers=auth("admin")).status_code == 404


def test_a_failed_probe_names_the_bundle_package_it_points_at_or_the_whole_bundle() -> None:
    bundle = {"plugins": [{"slug": "demo", "version": "1.2"}, {"slug": "shop", "version": "3.0"}],
              "themes": [{"slug": "demo-theme", "version": "2.0"}]}  # fmt: skip
    fatal = "PHP Fatal error: Uncaught Error in /srv/wp-content/plugins/shop/shop.php:3"
    assert _culprit(bundle, fatal) == "plugin shop 3.0"
    assert _culprit(bundle, "the homepage answers HTTP 500") == (
        "plugin demo 1.2, plugin shop 3.0, theme demo-theme 2.0"
    )


def test_the_cli_sets_and_shows_a_tenant_bundle_and_the_platform_default(
    settings: Settings, memory_provider: MemoryProvider, issuer: LocalTokenIssuer, tmp_path: Path
) -> None:
    app = create_app(
        settings, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )
    with serve(app) as url:
        token = issuer.issue("root", Role.ADMIN)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as admin:
            assert admin.post("/v1/tenants", json={"id": "acme", "name": "Acme"}).status_code == 201
        _catalogue(app, settings, tmp_path)
        runner = CliRunner()

        def cli(*args: str) -> Any:
            return runner.invoke(cli_app, ["bundle", *args, "--url", url, "--token", token])

        default = cli("set", "--platform", "--plugin", "demo@1.0")
        assert default.exit_code == 0, default.output
        inherited = cli("show", "--tenant", "acme")
        assert "inherited" in inherited.output and "1.0" in inherited.output, inherited.output
        own = cli("set", "--tenant", "acme", "--plugin", "demo", "--theme", "demo-theme@2.0")
        assert own.exit_code == 0, own.output
        shown = cli("show", "--tenant", "acme").output
        assert "latest" in shown and "demo-theme" in shown and "inherited" not in shown, shown
        refused = cli("set", "--tenant", "acme", "--plugin", "demo@9.9")
        assert refused.exit_code == 1 and "9.9" in refused.output, refused.output
        assert cli("set", "--plugin", "demo").exit_code == 2  # neither --tenant nor --platform
        assert "1.0" in cli("show").output  # the platform default kept
