"""The gcp provider's packages step with the real client libraries and no network: the
packages job's PHP (runtime/wordpress/aipress-packages.php) really runs against a real
WordPress on MariaDB (standing in for Cloud SQL), its GCS volumes directories copied from and
back to gcp-storage-emulator; Cloud Run, Secret Manager, IAM and Cloud Logging are the
request-checking fakes. Plugin zips are built here: `demo` 1.0 and 1.1."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging, storage

from controlplane.engine.packages import CORE_SLUG, InstalledPackage, PackageArchive
from controlplane.engine.provider import SiteContext
from controlplane.errors import ApplyFailed
from controlplane.kernel.vocabulary import PackageKind
from controlplane.providers.gcp import GcpProvider
from controlplane.providers.gcp.catalogue import GcsCatalogueStore
from controlplane.providers.gcp.dns import CloudflareRecords
from controlplane.providers.gcp.identity import tenant_account
from controlplane.providers.gcp.logs import CloudLoggingLogs
from controlplane.providers.gcp.packages import GcpPackages
from controlplane.settings import Settings
from controlplane.stack.mariadb import MariaDB
from tests.conftest import LOG_FILE
from tests.integration.gcp_clients import rest_clients
from tests.integration.gcp_fakes import (
    PACKAGES_COMMAND,
    SITES_SUBNET,
    SQL_PRIVATE_IP,
    FakeCloudRun,
    FakeIam,
    FakeLogging,
    FakeSecretManager,
)
from tests.integration.test_gcp_backups import Vault
from tests.integration.test_gcp_provider import IMAGE, PROJECT, ZONE, cloudsql_admin
from tests.live import serve

pytestmark = pytest.mark.integration
CORE = Path("/usr/share/wordpress")  # Debian's WordPress (installed by `make test`)
IMAGE_CONFIG = Path(__file__).resolve().parents[2] / "runtime/wordpress/aipress-config.php"
# The official image's wp-config-docker.php, reduced to what a job reads: the env.
WP_CONFIG = """<?php
define('DB_NAME', getenv('WORDPRESS_DB_NAME'));
define('DB_USER', getenv('WORDPRESS_DB_USER'));
define('DB_PASSWORD', getenv('WORDPRESS_DB_PASSWORD'));
define('DB_HOST', getenv('WORDPRESS_DB_HOST'));
$table_prefix = 'wp_';
require_once __DIR__ . '/aipress-config.php';
if (!defined('ABSPATH')) { define('ABSPATH', __DIR__ . '/'); }
require_once ABSPATH . 'wp-settings.php';
"""
INSTALL = """define('WP_INSTALLING', true);
require getenv('AIPRESS_WP_ROOT') . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
wp_install('Crumbs', 'owner', 'o@acme.example', true, '', 'not-a-secret-here');
update_option('template', 'plain');
update_option('stylesheet', 'plain');
"""


@pytest.fixture(scope="module")
def wordpress_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of WordPress core standing for the image's /var/www/html."""
    root = tmp_path_factory.mktemp("html") / "html"
    root.mkdir()
    for entry in CORE.iterdir():
        if entry.name not in ("wp-content", "wp-config.php"):
            subprocess.run(["cp", "-rL", str(entry), str(root)], check=True)
    (root / "wp-content").mkdir()
    (root / "wp-config.php").write_text(WP_CONFIG)
    shutil.copy(IMAGE_CONFIG, root / "aipress-config.php")
    return root


@dataclass
class Site:
    """The fakes, the provider's packages step and one site with WordPress installed."""

    provider: GcpProvider
    packages: GcpPackages
    run: FakeCloudRun
    logging: FakeLogging
    storage: Any
    ctx: SiteContext
    catalogue: GcsCatalogueStore
    zips: Path

    def objects(self) -> dict[str, bytes]:
        """Name -> content of every object of the site's bucket."""
        bucket = self.ctx.resources["storage"]["bucket"]
        return {b.name: b.download_as_bytes() for b in self.storage.list_blobs(bucket)}

    def plugins(self) -> dict[str, InstalledPackage]:
        """The site's plugins by slug, as the job reads them."""
        return {p.slug: p for p in self.packages.installed(self.ctx) if p.kind == "plugin"}

    def archive(self, version: str, *, body: str = "", sha256: str | None = None) -> PackageArchive:
        """`demo` <version> built as a zip, put in the catalogue."""
        path = self.zips / f"demo-{version}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("demo/demo.php", f"<?php\n/*\n * Plugin Name: Demo\n"
                                              f" * Version: {version}\n */\n{body}\n")  # fmt: skip
            archive.writestr("demo/readme.txt", f"Demo {version}\n")
        location = self.catalogue.put(f"plugin/demo/{version}", path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return PackageArchive(kind=PackageKind.PLUGIN, slug="demo", version=version,
                              sha256=sha256 or digest, size_bytes=path.stat().st_size,
                              location=location)  # fmt: skip

    def code_env(self) -> str | None:
        """The serving revision's AIPRESS_CODE (which code change it was rolled for)."""
        [service] = self.run.services.values()
        env = {e["name"]: e.get("value") for e in service["template"]["containers"][0]["env"]}
        return env.get("AIPRESS_CODE")


@pytest.fixture
def site(gcs: str, mariadb: MariaDB, tmp_path: Path, wordpress_root: Path) -> Iterator[Site]:
    iam = FakeIam()
    run, sm, logs = FakeCloudRun(IMAGE), FakeSecretManager(iam), FakeLogging()
    run.secrets, run.project = sm, PROJECT
    run.database = ("127.0.0.1", mariadb.port)
    anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
    with (serve(run.app()) as run_url, serve(sm.app()) as sm_url,
          serve(iam.app()) as iam_url, serve(logs.app()) as logs_url):  # fmt: skip
        run.base_url = run_url
        storage_client = storage.Client(project=PROJECT, credentials=anonymous,
                                        client_options={"api_endpoint": gcs})  # fmt: skip
        run.storage, run.wordpress_root = storage_client, wordpress_root
        clients = rest_clients(
            run_url, sm_url, iam_url, storage_client,
            logging=logging.Client(project=PROJECT, credentials=anonymous, _use_grpc=False,  # type: ignore[no-untyped-call]
                                   client_options={"api_endpoint": logs_url}),
            sql_connect=cloudsql_admin(mariadb),
        )  # fmt: skip
        catalogue = f"aipress-catalogue-{secrets.token_hex(4)}"
        storage_client.create_bucket(catalogue)
        settings = Settings(
            provider="memory", home=tmp_path / "home", log_file=LOG_FILE, gcp_project=PROJECT,
            database_url=f"sqlite:///{tmp_path / 'cp.db'}", gcp_location="us-central1",
            cloudsql_instance=f"{PROJECT}:us-central1:aipress-shared", tenant_image=IMAGE,
            cloudsql_private_ip=SQL_PRIVATE_IP, sites_subnetwork=SITES_SUBNET,
            catalogue_bucket=catalogue, platform_domain="sites.example.com",
            dns_provider="cloudflare", cloudflare_zone_id=ZONE,
            gcp_iam_retry_seconds=0.01, gcp_iam_propagation_seconds=10,
        )  # fmt: skip
        provider = GcpProvider(settings, clients, CloudflareRecords(None, ZONE))
        assert isinstance(provider.packages, GcpPackages)
        provider.packages.logs = CloudLoggingLogs(settings, clients)  # no shared budget here
        ctx = SiteContext(
            tenant_id="acme", site_id=secrets.token_hex(16),
            site_name=f"crumbs{secrets.token_hex(2)}", title="Crumbs",
            admin_email="o@acme.example", admin_user="owner", domains=[], credentials=Vault(),
        )  # fmt: skip
        for step in (provider.database, provider.secrets, provider.storage, provider.runtime):
            step.ensure(ctx)
        _install_wordpress(run, ctx, storage_client, wordpress_root)
        zips = tmp_path / "zips"
        zips.mkdir()
        yield Site(provider, provider.packages, run, logs, storage_client, ctx,
                   GcsCatalogueStore(storage_client, catalogue), zips)  # fmt: skip
        provider.runtime.remove(ctx)
        provider.database.remove(ctx)
        provider.storage.remove(ctx)
    for fake in (run, sm, iam, logs):
        fake.assert_clean()


def _install_wordpress(run: FakeCloudRun, ctx: SiteContext, client: Any, root: Path) -> None:
    """WordPress installed in the site's database, with a small theme in its bucket (what
    the install job does in the image)."""
    bucket = client.bucket(ctx.resources["storage"]["bucket"])
    bucket.blob(".aipress-code/themes/plain/style.css").upload_from_string(
        "/*\nTheme Name: Plain\nVersion: 2.0\n*/\n"
    )
    bucket.blob(".aipress-code/themes/plain/index.php").upload_from_string("<?php\n")
    [service] = run.services.values()
    env = run.container_env(service["template"]["containers"][0]["env"])
    content = root / "wp-content"
    for name in ("plugins", "themes", "uploads"):
        link = content / name
        if link.is_symlink():
            link.unlink()
        shutil.rmtree(link, ignore_errors=True)
        link.mkdir()
    done = subprocess.run(["php", "-r", INSTALL], env={**env, "AIPRESS_WP_ROOT": str(root)},
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_list_install_put_back_and_discard(site: Site) -> None:
    listed = site.packages.installed(site.ctx)
    core = listed[0]
    assert (core.kind, core.slug, core.active, core.name) == ("core", CORE_SLUG, True, "WordPress")
    assert core.version == _core_version()
    assert [(p.kind, p.slug, p.version, p.active) for p in listed[1:]] == [
        ("theme", "plain", "2.0", True)]  # fmt: skip

    site.packages.install(site.ctx, [site.archive("1.0")], key="op1", activate=True)
    assert site.plugins()["demo"].version == "1.0" and site.plugins()["demo"].active
    assert b"Version: 1.0" in site.objects()[".aipress-code/plugins/demo/demo.php"]
    assert site.code_env() == "install-op1"  # a new revision loads the new code
    site.packages.discard_previous(site.ctx, key="op1")

    newer = site.archive("1.1")
    site.packages.install(site.ctx, [newer], key="op2", activate=False)
    site.packages.install(site.ctx, [newer], key="op2", activate=False)  # a resumed step
    demo = site.plugins()["demo"]
    assert (demo.version, demo.active) == ("1.1", True)
    aside = [n for n in site.objects() if n.startswith(".aipress-code/previous/op2/")]
    assert ".aipress-code/previous/op2/plugin/demo/.done" in aside  # the 1.0 copy, kept once

    site.packages.restore_previous(site.ctx, key="op2")
    demo = site.plugins()["demo"]
    assert (demo.version, demo.active) == ("1.0", True)
    assert site.code_env() == "restore-op2"
    assert not [n for n in site.objects() if n.startswith(".aipress-code/previous/")]
    site.packages.restore_previous(site.ctx, key="op2")  # nothing set aside: no-op
    assert site.plugins()["demo"].version == "1.0"

    site.packages.install(site.ctx, [newer], key="op3", activate=False)
    site.packages.discard_previous(site.ctx, key="op3")
    site.packages.restore_previous(site.ctx, key="op3")  # discarded: nothing to put back
    assert site.plugins()["demo"].version == "1.1"
    assert not [n for n in site.objects() if n.startswith(".aipress-code/previous/")]
    assert not [n for n in site.objects() if n.startswith(".aipress-packages/")]  # reports read
    assert not [j for j in site.run.jobs if "/jobs/p-" in j]  # deleted after each run


def test_a_new_plugin_is_removed_when_put_back(site: Site) -> None:
    site.packages.install(site.ctx, [site.archive("1.0")], key="op1", activate=True)
    site.packages.restore_previous(site.ctx, key="op1")
    assert "demo" not in site.plugins()
    assert not [n for n in site.objects() if n.startswith(".aipress-code/plugins/demo/")]


def test_a_checksum_mismatch_is_refused_before_anything_changes(site: Site) -> None:
    site.packages.install(site.ctx, [site.archive("1.0")], key="op1", activate=True)
    site.packages.discard_previous(site.ctx, key="op1")
    before = site.objects()
    theme = _theme_archive(site)
    wrong = site.archive("1.1", sha256="0" * 64)
    with pytest.raises(ApplyFailed, match=r"sha256 is [0-9a-f]{64}, the catalogue says 0{64}"):
        # The theme comes first and is fine: nothing is unpacked until every zip is checked.
        site.packages.install(site.ctx, [theme, wrong], key="op2", activate=False)
    assert site.objects() == before
    assert site.plugins()["demo"].version == "1.0"
    with pytest.raises(ValueError, match="64 hex"):
        site.packages.install(site.ctx, [replace(wrong, sha256="abc")], key="op3", activate=False)


def test_the_jobs_requests_carry_their_input_in_overrides_and_no_secret(site: Site) -> None:
    site.packages.install(site.ctx, [site.archive("1.0")], key="op1", activate=True)
    runs = site.run.package_runs
    assert [r["action"] for r in runs] == ["install"]
    [run] = runs
    assert set(run) == {"run", "action", "key", "archives", "activate"}
    assert run["archives"][0]["file"] == "plugin/demo/1.0.zip"  # in the catalogue's mount
    password = site.ctx.credentials.get_or_create("database", "")[1]
    sent = [json.dumps(body) for method, path, body in site.run.requests if "/jobs" in path]
    assert sent and not any(password in body for body in sent)
    [container] = [c for m, p, b in site.run.requests if m == "POST" and p.endswith("/jobs")
                   for c in b["template"]["template"]["containers"]
                   if c["command"] == PACKAGES_COMMAND]  # fmt: skip
    assert "AIPRESS_PACKAGES" not in {e["name"] for e in container["env"]}
    assert all("value" not in e for e in container["env"] if e["name"] == "WORDPRESS_DB_PASSWORD")
    # The tenant's identity reads the catalogue through the bucket's own policy.
    catalogue = site.storage.bucket(site.catalogue.bucket)
    policy = catalogue.get_iam_policy(requested_policy_version=3)
    member = f"serviceAccount:{tenant_account(PROJECT, 'acme')}"
    assert any(b["role"] == "roles/storage.objectViewer" and member in b["members"]
               for b in policy.bindings)  # fmt: skip


def test_core_is_the_image_tag_of_its_version_and_goes_back(site: Site) -> None:
    core = PackageArchive(kind=PackageKind.CORE, slug=CORE_SLUG, version="7.2.0", sha256="1" * 64,
                          size_bytes=1, location="gs://c/catalogue/core/wordpress/7.2.0.zip")  # fmt: skip
    site.packages.install(site.ctx, [core], key="op1", activate=False)
    [service] = site.run.services.values()
    assert service["template"]["containers"][0]["image"] == f"{IMAGE.rsplit(':', 1)[0]}:7.2.0"
    site.packages.restore_previous(site.ctx, key="op1")
    [service] = site.run.services.values()
    assert service["template"]["containers"][0]["image"] == IMAGE


def test_health_checks_the_pages_and_fatals_since_the_mark(site: Site) -> None:
    service = site.ctx.resources["runtime"]["service"].rsplit("/", 1)[-1]
    mark = site.packages.log_mark(site.ctx)
    earlier = datetime.fromisoformat(mark) - timedelta(minutes=5)
    site.logging.entries = [_fatal(service, earlier, "PHP Fatal error: from before the update")]
    assert site.packages.health(site.ctx, mark).ok
    later = datetime.fromisoformat(mark) + timedelta(milliseconds=1)
    time.sleep(1.1)  # Cloud Logging's answers are cached per second of the window
    site.logging.entries.append(_fatal(service, later, "PHP Fatal error: Uncaught Error: boom()"))
    result = site.packages.health(site.ctx, mark)
    assert (result.failed_check, result.detail) == (
        "php_fatal", "PHP Fatal error: Uncaught Error: boom()")  # fmt: skip
    site.ctx.title = "Another title"
    assert site.packages.health(site.ctx, mark).failed_check == "homepage"


def _fatal(service: str, when: datetime, text: str) -> dict[str, Any]:
    return {"logName": f"projects/{PROJECT}/logs/run.googleapis.com%2Fstderr",
            "resource": {"type": "cloud_run_revision", "labels": {"service_name": service}},
            "severity": "ERROR", "textPayload": text,
            "timestamp": when.isoformat().replace("+00:00", "Z")}  # fmt: skip


def _theme_archive(site: Site) -> PackageArchive:
    path = site.zips / "plain-3.0.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("plain/style.css", "/*\nTheme Name: Plain\nVersion: 3.0\n*/\n")
    location = site.catalogue.put("theme/plain/3.0", path)
    return PackageArchive(kind=PackageKind.THEME, slug="plain", version="3.0",
                          sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                          size_bytes=path.stat().st_size, location=location)  # fmt: skip


def _core_version() -> str:
    text = (CORE / "wp-includes" / "version.php").read_text()
    return text.split("$wp_version = '", 1)[1].split("'", 1)[0]


def test_the_catalogue_store_writes_each_version_once(gcs: str, tmp_path: Path) -> None:
    anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
    client = storage.Client(project=PROJECT, credentials=anonymous,
                            client_options={"api_endpoint": gcs})  # fmt: skip
    bucket = f"aipress-catalogue-{secrets.token_hex(4)}"
    client.create_bucket(bucket)
    store = GcsCatalogueStore(client, bucket)
    first, other = tmp_path / "a.zip", tmp_path / "b.zip"
    first.write_bytes(b"PK first")
    other.write_bytes(b"PK other")
    location = store.put("plugin/demo/1.0", first)
    assert location == f"gs://{bucket}/catalogue/plugin/demo/1.0.zip"
    assert store.put("plugin/demo/1.0", first) == location  # the same bytes again: fine
    with pytest.raises(ValueError, match="already holds a different zip"):
        store.put("plugin/demo/1.0", other)
    assert client.bucket(bucket).blob("catalogue/plugin/demo/1.0.zip").download_as_bytes() == (
        b"PK first")  # fmt: skip
    for bad in ("plugin/../x/1.0", "widget/demo/1.0", "plugin/demo"):
        with pytest.raises(ValueError, match="is not <kind>/<slug>/<version>"):
            store.put(bad, first)
    with pytest.raises(ValueError, match="not in the catalogue's bucket"):
        store.remove("gs://another/catalogue/plugin/demo/1.0.zip")
    store.remove(location)
    store.remove(location)  # gone: no-op
    assert not list(client.list_blobs(bucket))
