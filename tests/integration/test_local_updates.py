"""Updates on the real local stack (MariaDB, PHP-FPM, nginx, WordPress): the demo plugin
1.0 -> 1.1 is served with its version; 1.2 (a fatal on load) fails the health probe and is
rolled back to 1.1 by itself with the reason; no `.maintenance`, no leftovers, a 200 after."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.settings import get_settings
from tests import package_zips as zips
from tests.conftest import wait_for_operation
from tests.dns_server import TxtServer
from tests.integration.test_local_sites import LocalEnv, _local_env
from tests.live import local_stack_home

pytestmark = pytest.mark.integration
SITES = "/v1/tenants/acme/sites"
TITLE = "Shop Being Updated"


@pytest.fixture(scope="module")
def local() -> Iterator[LocalEnv]:
    os.environ["AIPRESS_UPDATE_PROBE_SECONDS"] = "8"  # retries, then decides (default 20 s)
    get_settings.cache_clear()
    dns = TxtServer()
    try:
        with local_stack_home("up", dns_nameservers=dns.address) as settings:
            yield from _local_env(settings, dns)
    finally:
        os.environ.pop("AIPRESS_UPDATE_PROBE_SECONDS", None)
        get_settings.cache_clear()


def _footer(local: LocalEnv) -> str:
    """The demo plugin's footer line of an uncached homepage ("" when there is none)."""
    home = local.site_get("shop.acme.localhost", f"/?fresh={time.time_ns()}")
    if home.status_code != 200:
        root = Path(local.resources("shop")["storage"]["root"])
        log = (root / "logs" / "php-error.log").read_text()[-1500:]
        raise AssertionError(f"{home.status_code}: {home.text[-800:]}\n{log}")
    start = home.text.find('<p id="demo-version">')
    return home.text[start:].split("</p>")[0].split(">")[-1] if start >= 0 else ""


def _packages(local: LocalEnv) -> dict[str, Any]:
    answer = local.client.get(f"{SITES}/shop/packages", headers=local.admin)
    assert answer.status_code == 200, answer.text
    demo = [p for p in answer.json()["plugins"] if p["slug"] == "demo"]
    return demo[0] if demo else {}


def _install_active(local: LocalEnv, version: str) -> None:
    """demo at `version`, installed and activated by the provider (as a bundle would)."""
    platform = local.client.app.state.platform  # type: ignore[attr-defined]
    zips.install_demo(platform, "acme", "shop", version, key="setup")


def _update(local: LocalEnv, version: str) -> dict[str, Any]:
    body = {"plugins": [{"slug": "demo", "version": version}]}
    answer = local.client.post(f"{SITES}/shop/updates", json=body, headers=local.admin)
    assert answer.status_code == 202, answer.text
    return wait_for_operation(local.client, answer.json()["operation"]["id"], local.admin,
                              timeout=300)  # fmt: skip


def test_an_update_is_served_and_a_broken_one_rolls_back_by_itself(
    local: LocalEnv, tmp_path: Path
) -> None:
    local.create("shop", title=TITLE)
    root = Path(local.resources("shop")["storage"]["root"])
    for version in ("1.0", "1.1", "1.2"):
        added = local.client.post(
            "/v1/catalogue?kind=plugin",
            files={"file": ("demo.zip", zips.plugin_zip(version))},
            headers=local.admin,
        )
        assert added.status_code == 201, added.text
    _install_active(local, "1.0")
    assert _footer(local) == "demo 1.0"
    assert _packages(local)["available"] == ["1.1", "1.2"]

    done = _update(local, "1.1")
    assert done["status"] == "succeeded", done
    assert _footer(local) == "demo 1.1"
    demo = _packages(local)
    assert (demo["version"], demo["active"], demo["latest"]) == ("1.1", True, "1.2")
    plugin_dir = root / "htdocs" / "wp-content" / "plugins" / "demo"
    assert plugin_dir.stat().st_uid == (root / "htdocs" / "wp-content").stat().st_uid

    failed = _update(local, "latest")
    assert failed["status"] == "rolled_back", failed
    assert failed["error"].startswith("update rolled back: homepage: the homepage answers HTTP 5")
    assert "PHP Fatal error" in failed["error"], failed["error"]
    probe = next(s for s in failed["steps"] if s["name"] == "probe")
    assert probe["status"] == "failed"
    assert _footer(local) == "demo 1.1"  # visitors get 200 and the version it had
    demo = _packages(local)
    assert (demo["version"], demo["active"]) == ("1.1", True)
    assert not (root / "htdocs" / ".maintenance").exists()
    assert list((root / ".packages").iterdir()) == []  # nothing kept aside, nothing staged
    # Out of maintenance: a visitor without the platform's probe header gets the site.
    assert local.site_get("shop.acme.localhost", "/wp-login.php").status_code == 200
