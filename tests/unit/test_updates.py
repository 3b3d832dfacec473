"""The catalogue (archive checks, the API), a site's packages, and update_site on the memory
provider: planning, the update, the automatic rollback, dry runs and bad requests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controlplane.api.app import create_app
from controlplane.engine.packages import CORE_SLUG, InstalledPackage, PackageArchive
from controlplane.engine.provider import SiteContext
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.kernel.vocabulary import PackageKind
from controlplane.packages.archives import ArchiveRefused, ArchiveTooLarge, inspect_archive
from controlplane.packages.versions import ascending, compare
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests import package_zips as zips
from tests.cli_harness import served_cli
from tests.conftest import AuthHeaders, wait_for_operation
from tests.live import serve

SITES = "/v1/tenants/acme/sites"
PLUGIN = PackageKind.PLUGIN

# ---------------------------------------------------------------- versions and archives


def test_versions_compare_as_wordpress_does() -> None:
    assert compare("6.4.10", "6.4.9") == 1
    assert compare("1.0", "1.0.0") == 0
    assert compare("1.0-beta2", "1.0") == -1
    assert compare("1.0-RC1", "1.0-beta3") == 1
    assert ascending(["1.10", "1.2", "1.1-beta", "1.1", "1.0"]) == [
        "1.0", "1.1-beta", "1.1", "1.2", "1.10",
    ]  # fmt: skip


def _zip(tmp_path: Path, data: bytes, name: str = "p.zip") -> Path:
    return zips.write(tmp_path / name, data)


def test_good_archives_are_read(tmp_path: Path) -> None:
    plugin = inspect_archive(_zip(tmp_path, zips.plugin_zip("1.1")), PLUGIN, max_bytes=10**6)
    assert (plugin.slug, plugin.version, plugin.name) == ("demo", "1.1", "Demo demo")
    theme = inspect_archive(_zip(tmp_path, zips.theme_zip("2.0")), PackageKind.THEME,
                            max_bytes=10**6)  # fmt: skip
    assert (theme.slug, theme.version, theme.name) == ("demo-theme", "2.0", "Demo Theme")
    core = inspect_archive(_zip(tmp_path, zips.core_zip("6.8.1")), PackageKind.CORE,
                           max_bytes=10**6)  # fmt: skip
    assert (core.slug, core.version) == (CORE_SLUG, "6.8.1")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (zips.zip_slip(), "zip-slip"),
        (zips.absolute_path(), "absolute path"),
        (zips.symlink_member(), "symbolic link"),
        (zips.no_header(), "no plugin header"),
        (zips.two_tops(), "2 top directories"),
        (b"not a zip at all", "not a zip"),
    ],
)
def test_bad_archives_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(ArchiveRefused, match=message):
        inspect_archive(_zip(tmp_path, data), PLUGIN, max_bytes=10**6)


def test_huge_archives_are_refused(tmp_path: Path) -> None:
    bomb = _zip(tmp_path, zips.huge(6 * 10**5))  # a few KB zipped, 600 KB unpacked
    assert bomb.stat().st_size < 10**5
    with pytest.raises(ArchiveTooLarge, match="unpacks to more than"):
        inspect_archive(bomb, PLUGIN, max_bytes=10**5)
    with pytest.raises(ArchiveTooLarge, match="more than the 100 allowed"):
        inspect_archive(_zip(tmp_path, zips.plugin_zip("1.0")), PLUGIN, max_bytes=100)


def test_a_theme_zip_is_not_a_core_zip(tmp_path: Path) -> None:
    with pytest.raises(ArchiveRefused, match="wordpress/ at the top"):
        inspect_archive(_zip(tmp_path, zips.theme_zip("1.0")), PackageKind.CORE, max_bytes=10**6)


# ---------------------------------------------------------------- the API


@pytest.fixture
def admin(auth: AuthHeaders) -> dict[str, str]:
    return auth("admin")


@pytest.fixture
def owner(client: TestClient, auth: AuthHeaders, admin: dict[str, str]) -> dict[str, str]:
    """The tenant acme's user, with a ready site crumbs."""
    created = client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin)
    assert created.status_code == 201, created.text
    headers = auth("tenant", "acme")
    answer = client.post(SITES, json={"name": "crumbs", "admin_email": "o@example.com"},
                         headers=headers)  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert wait_for_operation(client, answer.json()["operation"]["id"], headers)["status"] == (
        "succeeded"
    )
    return headers


def _add(client: TestClient, admin: dict[str, str], data: bytes, kind: str = "plugin") -> Any:
    return client.post(f"/v1/catalogue?kind={kind}", files={"file": ("p.zip", data)},
                       headers=admin)  # fmt: skip


def _ctx(client: TestClient, site: str = "crumbs") -> SiteContext:
    platform = client.app.state.platform  # type: ignore[attr-defined]
    from controlplane.kernel.identity import Principal, Role
    from controlplane.services.sites import get_site

    with platform.sessions() as session:
        row = get_site(session, principal=Principal("t", Role.ADMIN), tenant_id="acme", name=site)
        ctx: SiteContext = platform.engine.read_context(session, row)
        return ctx


def _give_demo(client: TestClient, memory_provider: MemoryProvider, version: str) -> None:
    """The site has demo at `version`, active (as a bundle would leave it)."""
    archive = PackageArchive(PLUGIN, "demo", version, "0" * 64, 1, "memory")
    ctx = _ctx(client)
    memory_provider.packages.install(ctx, [archive], key="setup", activate=True)
    memory_provider.packages.discard_previous(ctx, key="setup")


def _demo(listing: dict[str, Any]) -> dict[str, Any]:
    (demo,) = [p for p in listing["plugins"] if p["slug"] == "demo"]
    return demo


def test_the_catalogue_takes_checked_zips_from_admins_only(
    client: TestClient, admin: dict[str, str], auth: AuthHeaders, settings: Any
) -> None:
    added = _add(client, admin, zips.plugin_zip("1.1"))
    assert added.status_code == 201, added.text
    assert added.json()["slug"] == "demo" and added.json()["version"] == "1.1"
    assert len(added.json()["sha256"]) == 64 and "location" not in added.json()
    assert _add(client, admin, zips.plugin_zip("1.1")).status_code == 409
    refused = _add(client, auth("tenant", "acme"), zips.plugin_zip("1.2"))
    assert refused.status_code == 403
    listed = client.get("/v1/catalogue", headers=auth("viewer", "acme")).json()
    assert [(e["slug"], e["version"]) for e in listed] == [("demo", "1.1")]
    assert sorted(p.name for p in (settings.home / "catalogue").rglob("*.zip")) == ["1.1.zip"]


def _answer_to_a_partial_upload(url: str, headers: dict[str, str]) -> bytes:
    """The status line the server sends for a 200 MB upload of which 1 KiB was sent: it must
    answer without waiting for (or storing) the rest."""
    host, port = url.removeprefix("http://").split(":")
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = (f"POST /v1/catalogue?kind=plugin HTTP/1.1\r\nHost: {host}\r\n{extra}"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {200 * 1024**2}\r\n\r\n")  # fmt: skip
    part = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="p.zip"\r\n\r\n'
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + part + b"\0" * 1024)
        return sock.recv(4096).split(b"\r\n", 1)[0]


def test_who_may_add_to_the_catalogue_is_checked_before_the_body_is_read(
    settings: Settings, memory_provider: MemoryProvider, auth: AuthHeaders
) -> None:
    app = create_app(
        settings, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )
    with serve(app) as url:
        assert b" 401 " in _answer_to_a_partial_upload(url, {})
        assert b" 403 " in _answer_to_a_partial_upload(url, auth("tenant", "acme"))
        # An admin's upload declared past the limit is refused before it is read, too.
        assert b" 413 " in _answer_to_a_partial_upload(url, auth("admin"))
    incoming = settings.home / "catalogue-incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == []


def test_an_upload_past_the_catalogue_limit_without_a_length_is_cut_at_413(
    tmp_path: Path, memory_provider: MemoryProvider, auth: AuthHeaders
) -> None:
    small = Settings(provider="memory", home=tmp_path / "home", catalogue_max_bytes=64 * 1024)
    app = create_app(small, platform_factory=lambda s: build_platform(s, provider=memory_provider))
    issuer = LocalTokenIssuer(small)
    token = issuer.issue("root", Role.ADMIN)

    def body() -> Iterator[bytes]:
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="p.zip"\r\n\r\n'
        for _ in range(200):
            yield b"\0" * 1024
        yield b"\r\n--xyz--\r\n"

    with TestClient(app) as client:
        answer = client.post(
            "/v1/catalogue?kind=plugin", content=body(),
            headers={"Authorization": f"Bearer {token}",
                     "Content-Type": "multipart/form-data; boundary=xyz"},
        )  # fmt: skip
        assert answer.status_code == 413, answer.text
        assert "AIPRESS_CATALOGUE_MAX_BYTES" in answer.json()["detail"]
        wrong = client.post("/v1/catalogue", files={"zip": ("p.zip", b"x")},
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert wrong.status_code == 422 and "file" in wrong.json()["detail"]
    assert list((small.home / "catalogue-incoming").iterdir()) == []


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        (zips.zip_slip(), 400, "zip-slip"),
        (zips.symlink_member(), 400, "symbolic link"),
        (zips.no_header(), 400, "no plugin header"),
        (zips.huge(600 * 1024**2), 413, "unpacks to more than"),
    ],
)
def test_malicious_zips_get_a_clear_4xx_and_nothing_is_kept(
    client: TestClient, admin: dict[str, str], settings: Any, data: bytes, status: int, says: str
) -> None:
    answer = _add(client, admin, data)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"]
    assert client.get("/v1/catalogue", headers=admin).json() == []
    kept = (
        list((settings.home / "catalogue").rglob("*"))
        if (settings.home / "catalogue").exists()
        else []
    )
    leftovers = list((settings.home / "catalogue-incoming").iterdir())
    assert kept == [] and leftovers == []


def test_packages_list_what_the_site_has_and_newer_versions(
    client: TestClient, admin: dict[str, str], owner: dict[str, str],
    memory_provider: MemoryProvider,
) -> None:  # fmt: skip
    _give_demo(client, memory_provider, "1.0")
    assert client.get(f"{SITES}/crumbs", headers=owner).json()["updates_available"] is None
    for version in ("1.1", "1.0", "1.2"):
        assert _add(client, admin, zips.plugin_zip(version)).status_code == 201
    listing = client.get(f"{SITES}/crumbs/packages", headers=owner).json()
    assert listing["core"]["slug"] == "wordpress" and listing["core"]["active"]
    demo = _demo(listing)
    assert (demo["version"], demo["active"]) == ("1.0", True)
    assert demo["available"] == ["1.1", "1.2"] and demo["latest"] == "1.2"
    assert [t["slug"] for t in listing["themes"]] == ["twentytwentyfour"]
    assert listing["updates_available"] == 1
    assert client.get(f"{SITES}/crumbs", headers=owner).json()["updates_available"] == 1
    assert client.get(SITES, headers=owner).json()[0]["updates_available"] == 1


def test_an_update_installs_and_a_failed_probe_rolls_back_by_itself(
    client: TestClient, admin: dict[str, str], owner: dict[str, str],
    memory_provider: MemoryProvider, fast_probe: None,
) -> None:  # fmt: skip
    _give_demo(client, memory_provider, "1.0")
    for version in ("1.1", "1.2"):
        assert _add(client, admin, zips.plugin_zip(version)).status_code == 201
    site_id = client.get(f"{SITES}/crumbs", headers=owner).json()["id"]

    answer = client.post(f"{SITES}/crumbs/updates",
                         json={"plugins": [{"slug": "demo", "version": "1.1"}]}, headers=owner)  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert answer.json()["changes"] == [
        {"kind": "plugin", "slug": "demo", "from_version": "1.0", "to_version": "1.1"}
    ]
    done = wait_for_operation(client, answer.json()["operation"]["id"], owner)
    assert done["status"] == "succeeded", done
    assert [s["name"] for s in done["steps"]] == [
        "pre_update", "maintenance", "install", "upgrade_db", "maintenance_off", "probe", "finish",
    ]  # fmt: skip
    assert _demo(client.get(f"{SITES}/crumbs/packages", headers=owner).json())["version"] == "1.1"
    assert (
        not memory_provider.in_maintenance(site_id) and memory_provider.package_state.aside() == {}
    )
    backups = client.get(f"{SITES}/crumbs/backups", headers=owner).json()
    assert [b["kind"] for b in backups] == ["pre-update"] and backups[0]["status"] == "succeeded"

    memory_provider.package_state.broken.add("plugin:demo:1.2")
    tried_before = sum(1 for c in memory_provider.calls if c.startswith("health:packages"))
    answer = client.post(f"{SITES}/crumbs/updates", json={}, headers=owner)  # everything
    assert answer.status_code == 202, answer.text
    assert answer.json()["changes"][0]["to_version"] == "1.2"
    failed = wait_for_operation(client, answer.json()["operation"]["id"], owner)
    assert failed["status"] == "rolled_back", failed
    assert failed["error"] == "update rolled back: php_fatal: PHP Fatal error in plugin demo 1.2"
    assert _demo(client.get(f"{SITES}/crumbs/packages", headers=owner).json())["version"] == "1.1"
    assert (
        not memory_provider.in_maintenance(site_id) and memory_provider.package_state.aside() == {}
    )
    tried = sum(1 for c in memory_provider.calls if c.startswith("health:packages"))
    assert tried - tried_before == 2  # the probe retried in its 1.5 s window, then decided
    site = client.get(f"{SITES}/crumbs", headers=owner).json()
    assert site["status"] == "ready" and site["current_operation_id"] is None
    assert "update" in site["allowed_actions"]


@pytest.fixture
def with_demo(
    client: TestClient, admin: dict[str, str], owner: dict[str, str],
    memory_provider: MemoryProvider,
) -> None:  # fmt: skip
    """crumbs has demo 1.0 (active); the catalogue holds 1.1."""
    _give_demo(client, memory_provider, "1.0")
    assert _add(client, admin, zips.plugin_zip("1.1")).status_code == 201


def test_a_failed_install_is_undone_and_maintenance_ends(
    client: TestClient, owner: dict[str, str], memory_provider: MemoryProvider, with_demo: None
) -> None:
    site_id = client.get(f"{SITES}/crumbs", headers=owner).json()["id"]
    memory_provider.fail_on.add("install:packages")
    answer = client.post(f"{SITES}/crumbs/updates", json={}, headers=owner)
    failed = wait_for_operation(client, answer.json()["operation"]["id"], owner)
    assert failed["status"] == "rolled_back", failed
    assert failed["error"].startswith("update rolled back: install failed: injected failure")
    assert not memory_provider.in_maintenance(site_id)


def test_dry_runs_and_bad_requests_change_nothing(
    client: TestClient, admin: dict[str, str], owner: dict[str, str], auth: AuthHeaders,
    with_demo: None,
) -> None:  # fmt: skip
    assert _add(client, admin, zips.core_zip("6.9"), kind="core").status_code == 201
    plan = client.post(f"{SITES}/crumbs/updates", json={"dry_run": True}, headers=owner)
    assert plan.status_code == 200, plan.text
    assert plan.json() == {"dry_run": True, "changes": [
        {"kind": "core", "slug": "wordpress", "from_version": "6.7.1", "to_version": "6.9"},
        {"kind": "plugin", "slug": "demo", "from_version": "1.0", "to_version": "1.1"},
    ]}  # fmt: skip
    for body, status, says in [
        ({"plugins": [{"slug": "nope"}]}, 400, "has no plugin 'nope'"),
        ({"plugins": [{"slug": "demo", "version": "9.9"}]}, 400, "(it has 1.1)"),
        ({"plugins": [{"slug": "demo", "version": "1.0"}]}, 409, "nothing to update"),
        ({"plugins": [{"slug": "demo"}, {"slug": "demo"}]}, 400, "named twice"),
        ({"plugins": [{"slug": "../etc"}]}, 422, "pattern"),
    ]:
        answer = client.post(f"{SITES}/crumbs/updates", json=body, headers=owner)
        assert answer.status_code == status, (body, answer.text)
        assert says in answer.text, answer.text
    operations = client.get(f"{SITES}/crumbs/operations", headers=owner).json()
    assert [o["kind"] for o in operations] == ["create_site"]
    viewer = auth("viewer", "acme")
    assert client.post(f"{SITES}/crumbs/updates", json={}, headers=viewer).status_code == 403


def test_planning_everything_picks_each_newest_version(
    client: TestClient, admin: dict[str, str], owner: dict[str, str]
) -> None:
    from controlplane.schemas import UpdateRequest
    from controlplane.services.updates import plan_update

    for version in ("1.1", "1.10", "1.2"):
        assert _add(client, admin, zips.plugin_zip(version)).status_code == 201
    installed = [
        InstalledPackage(PackageKind.CORE, CORE_SLUG, "6.7.1", True, "WordPress"),
        InstalledPackage(PLUGIN, "demo", "1.0", False, "Demo"),
        InstalledPackage(PLUGIN, "other", "3.0", True, "Other"),
    ]
    platform = client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        planned = plan_update(session, installed, UpdateRequest())
    assert [(c.slug, c.from_version, c.to_version) for c, _ in planned] == [("demo", "1.0", "1.10")]


def test_the_cli_adds_lists_and_updates(
    settings: Settings, memory_provider: MemoryProvider, issuer: LocalTokenIssuer, tmp_path: Path
) -> None:
    with served_cli(settings, memory_provider, issuer) as cli:
        for version in ("1.0", "1.1"):
            added = cli("catalogue", "add", str(_zip(tmp_path, zips.plugin_zip(version), version)))
            assert added.exit_code == 0 and f"demo {version}" in added.output, added.output
        refused = cli("catalogue", "add", str(_zip(tmp_path, zips.zip_slip())))
        assert refused.exit_code == 1 and "zip-slip" in refused.output
        listed = cli("catalogue", "list")
        assert "1.0" in listed.output and "1.1" in listed.output
        planned = cli("update", "globex", "shop", "--plugin", "demo@1.0", "--dry-run")
        assert planned.exit_code == 0, planned.output
        assert "plugin demo: - -> 1.0" in planned.output and "nothing changed" in planned.output
        done = cli("update", "globex", "shop", "--plugin", "demo")
        assert done.exit_code == 0 and "updated" in done.output, done.output
        shown = cli("packages", "globex", "shop")
        assert shown.exit_code == 0 and "demo" in shown.output and "1.1" in shown.output
        assert "0 update(s) available" in shown.output
