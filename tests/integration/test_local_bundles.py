"""Bundles on the real local stack (MariaDB, PHP-FPM, nginx, WordPress): a tenant's bundle of
the `demo` plugin is installed and active on its new site; a bundle whose plugin fatals on
load fails the create, which rolls back leaving nothing of the site behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controlplane.engine.context import ContextBuilder
from controlplane.engine.provider import SiteContext
from controlplane.kernel.vocabulary import PackageKind
from controlplane.models import Operation, Site
from controlplane.providers.local.naming import site_names
from tests.conftest import wait_for_operation
from tests.dns_server import TxtServer
from tests.integration.test_local_crash import _leftovers, _NoVault, _site_uid
from tests.integration.test_local_sites import EMAIL, LocalEnv, _local_env
from tests.live import local_stack_home
from tests.package_zips import DEMO, plugin_zip, write

pytestmark = pytest.mark.integration
TENANT = "acme"
SITES = f"/v1/tenants/{TENANT}/sites"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnv]:
    dns = TxtServer()
    zips = tmp_path_factory.mktemp("zips")
    with local_stack_home("bd", dns_nameservers=dns.address) as settings:
        for env in _local_env(settings, dns):
            for version in ("1.1", "1.2"):
                added = _add_to_catalogue(
                    env, write(zips / f"{DEMO}-{version}.zip", plugin_zip(version))
                )
                assert added.status_code == 201, added.text
            yield env


def _add_to_catalogue(local: LocalEnv, path: Path) -> Any:
    with path.open("rb") as zip_file:
        return local.client.post(
            "/v1/catalogue",
            params={"kind": "plugin"},
            files={"file": (path.name, zip_file, "application/zip")},
            headers=local.admin,
        )


def _set_bundle(local: LocalEnv, version: str) -> None:
    body = {"plugins": [{"slug": "demo", "version": version}], "themes": []}
    put = local.client.put(f"/v1/tenants/{TENANT}/bundle", json=body, headers=local.admin)
    assert put.status_code == 200, put.text


def _context(local: LocalEnv, name: str) -> SiteContext:
    platform = local.client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        site = session.scalar(select(Site).where(Site.tenant_id == TENANT, Site.name == name))
        assert site is not None
        return ContextBuilder(platform.keyring).read(session, site)


def _create(local: LocalEnv, name: str) -> dict[str, Any]:
    response = local.client.post(
        SITES, json={"name": name, "admin_email": EMAIL, "title": name.title()},
        headers=local.admin,
    )  # fmt: skip
    assert response.status_code == 202, response.text
    final = wait_for_operation(
        local.client, response.json()["operation"]["id"], local.admin, timeout=300
    )
    # A rolled-back create no longer names its (gone) site: the id from the answer.
    return {**final, "site_id": response.json()["site"]["id"]}


def test_a_new_site_of_a_tenant_with_a_bundle_has_its_plugin_active(local: LocalEnv) -> None:
    _set_bundle(local, "1.1")

    final = _create(local, "bundled")

    assert final["status"] == "succeeded", final
    assert [s["name"] for s in final["steps"]][-1] == "bundle", final["steps"]
    platform = local.client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        op = session.get(Operation, final["id"])
        assert op is not None
        assert op.params["bundle"] == {"plugins": [{"slug": "demo", "version": "1.1"}],
                                       "themes": []}  # fmt: skip
    installed = platform.provider.packages.installed(_context(local, "bundled"))
    demo = [p for p in installed if p.kind == PackageKind.PLUGIN and p.slug == "demo"]
    assert [(p.version, p.active) for p in demo] == [("1.1", True)], installed
    home = local.site_get("bundled.acme.localhost")
    assert home.status_code == 200 and "demo 1.1" in home.text, home.text[-500:]


def test_a_bundle_plugin_that_fatals_rolls_the_create_back_leaving_nothing(
    local: LocalEnv,
) -> None:
    _set_bundle(local, "1.2")

    final = _create(local, "broken")

    assert final["status"] == "rolled_back", final
    assert "bundle plugin demo 1.2 " in final["error"], final["error"]
    gone = local.client.get(f"{SITES}/broken", headers=local.admin)
    assert gone.status_code == 404, gone.text
    ctx = SiteContext(
        tenant_id=TENANT, site_id=final["site_id"], site_name="broken", title="",
        admin_email="", admin_user="", domains=[], credentials=_NoVault(),
    )  # fmt: skip
    stack = local.stack
    names = site_names(ctx, stack.sites_dir, local.settings.platform_domain)
    assert _leftovers(local.settings, names, final["site_id"], _site_uid(names)) == []
