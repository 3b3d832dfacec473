"""Real WordPress sites on the embedded default: MariaDB, PHP-FPM, nginx, WordPress."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest
from fastapi.testclient import TestClient

from controlplane.api.app import create_app
from controlplane.kernel import clock
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.settings import Settings
from controlplane.stack.local import LocalStack
from tests.conftest import LOG_FILE, wait_for_operation
from tests.dns_server import TxtServer
from tests.live import local_stack_home

pytestmark = pytest.mark.integration
SITES = "/v1/tenants/acme/sites"  # the tenant the LocalEnv tests make their sites in
EMAIL = "owner@example.com"


@dataclass
class LocalEnv:
    """A running control plane on the local provider, with its own ports and home."""

    settings: Settings
    client: TestClient
    stack: LocalStack
    admin: dict[str, str]
    dns: TxtServer  # the nameserver custom-domain proofs are looked up on

    def site_get(
        self, host: str, path: str = "/", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """GET a site through nginx (Python's resolver does not map *.localhost)."""
        port = self.settings.site_port
        return httpx.get(
            f"http://127.0.0.1:{port}{path}",
            headers={"Host": f"{host}:{port}", **(headers or {})},
            timeout=30,
        )

    def run(self, response: httpx.Response, timeout: float = 300) -> dict[str, Any]:
        """The 202 body of `response`, once its operation has succeeded (it must)."""
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        final = wait_for_operation(self.client, body["operation"]["id"], self.admin, timeout)
        assert final["status"] == "succeeded", final
        return body

    def create(self, name: str, tenant: str = "acme", **body: Any) -> dict[str, Any]:
        """Create a site and wait for it; return the site."""
        response = self.client.post(
            f"/v1/tenants/{tenant}/sites",
            json={"name": name, "admin_email": EMAIL, **body},
            headers=self.admin,
        )
        assert response.status_code == 202, response.text
        final = wait_for_operation(
            self.client, response.json()["operation"]["id"], self.admin, timeout=120
        )
        assert final["status"] == "succeeded", final
        site: dict[str, Any] = self.client.get(
            f"/v1/tenants/{tenant}/sites/{name}", headers=self.admin
        ).json()
        return site

    def delete(self, name: str, tenant: str = "acme") -> dict[str, Any]:
        """Delete a site and wait; return the final operation."""
        response = self.client.delete(f"/v1/tenants/{tenant}/sites/{name}", headers=self.admin)
        assert response.status_code == 202, response.text
        return wait_for_operation(
            self.client, response.json()["operation"]["id"], self.admin, timeout=120
        )

    def change_env(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Change env vars; once accepted (202), wait until the sites have the change."""
        response = self.client.request(method, url, headers=self.admin, **kwargs)
        if response.status_code == 202:
            final = wait_for_operation(
                self.client, response.json()["operation"]["id"], self.admin, timeout=120
            )
            assert final["status"] == "succeeded", final
        return response

    def db_login(self, name: str, tenant: str = "acme") -> tuple[str, str]:
        """The site's database user and password, from the vault."""
        from controlplane.credentials import DatabaseVault
        from controlplane.models import Site

        platform = self.client.app.state.platform  # type: ignore[attr-defined]
        with platform.sessions() as session:
            site = session.query(Site).filter_by(tenant_id=tenant, name=name).one()
            login = DatabaseVault(session, platform.keyring, site.id).get("database")
        return login or ("", "")

    def resources(self, name: str, tenant: str = "acme") -> dict[str, Any]:
        """The provider resource ids recorded for a site."""
        with self.client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
            from controlplane.models import Site

            site = session.query(Site).filter_by(tenant_id=tenant, name=name).one()
            return dict(site.resources)


def local_env_fixture(prefix: str) -> Callable[[], Iterator[LocalEnv]]:
    """A module's `local` fixture: a LocalEnv from `local_env_on(prefix)`."""

    @pytest.fixture(scope="module", name="local")
    def local() -> Iterator[LocalEnv]:
        yield from local_env_on(prefix)

    return local


local = local_env_fixture("it")


def local_env_on(prefix: str, **overrides: Any) -> Iterator[LocalEnv]:
    """A LocalEnv on a fresh local stack home (local_stack_home's prefix and overrides) with
    its own nameserver; the sites it made are deleted afterwards."""
    dns = TxtServer()
    with local_stack_home(prefix, dns_nameservers=dns.address, **overrides) as settings:
        yield from _local_env(settings, dns)


def _local_env(settings: Settings, dns: TxtServer) -> Iterator[LocalEnv]:
    app = create_app(settings)
    with dns.running(), TestClient(app) as client:
        admin = {"Authorization": f"Bearer {LocalTokenIssuer(settings).issue('root', Role.ADMIN)}"}
        for tenant in ("acme", "globex"):
            client.post("/v1/tenants", json={"id": tenant, "name": tenant}, headers=admin)
        env = LocalEnv(settings, client, app.state.platform.provider.stack, admin, dns)
        yield env
        for tenant in ("acme", "globex"):
            listed = client.get(f"/v1/tenants/{tenant}/sites", headers=admin).json()
            # Staging copies first: a site with copies is not deleted.
            for site in sorted(listed, key=lambda s: s.get("role") != "staging"):
                env.delete(site["name"], tenant)


def _title(html: str) -> str:
    match = re.search(r"<title>([^<]*)</title>", html)
    return match.group(1) if match else ""


def _login(env: LocalEnv, host: str, username: str, password: str) -> httpx.Response:
    port = env.settings.site_port
    base = f"http://127.0.0.1:{port}"
    headers = {"Host": f"{host}:{port}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as browser:
        browser.cookies.set("wordpress_test_cookie", "WP Cookie check")
        response = browser.post(
            "/wp-login.php",
            data={"log": username, "pwd": password, "wp-submit": "Log In", "testcookie": "1",
                  "redirect_to": f"http://{host}:{port}/wp-admin/"},
        )  # fmt: skip
        assert response.status_code == 302, response.text[:500]
        return browser.get("/wp-admin/")


def test_create_serve_login_delete_leaves_nothing(local: LocalEnv) -> None:
    site = local.create("crumbs", title="Crumbs Bakery")
    host = "crumbs.acme.localhost"
    assert site["preview_url"] == f"http://{host}:{local.settings.site_port}/"
    home = local.site_get(host)
    assert home.status_code == 200 and _title(home.text) == "Crumbs Bakery"
    assert local.site_get(host).headers["x-cache"] == "HIT"  # nginx page cache
    gz = local.site_get(host, headers={"Accept-Encoding": "gzip"})
    assert gz.headers.get("content-encoding") == "gzip"

    creds = local.client.post(
        "/v1/tenants/acme/sites/crumbs/admin-credentials/reveal", headers=local.admin
    ).json()
    dashboard = _login(local, host, creds["username"], creds["password"])
    assert dashboard.status_code == 200 and "Dashboard" in dashboard.text
    assert dashboard.headers.get("x-cache") in ("BYPASS", None)
    wrong = httpx.post(
        f"http://127.0.0.1:{local.settings.site_port}/wp-login.php",
        headers={"Host": f"{host}:{local.settings.site_port}"},
        data={"log": "admin", "pwd": "wrong-password"},
    )
    assert wrong.status_code == 200 and "incorrect" in wrong.text

    res = local.resources("crumbs")
    user, db, db_user = res["storage"]["user"], res["database"]["name"], res["database"]["user"]
    root = Path(res["storage"]["root"])
    config = root / "htdocs" / "wp-config.php"
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    assert config.stat().st_gid == pwd.getpwnam(user).pw_gid and config.stat().st_uid == 0
    core_file = root / "htdocs" / "wp-includes" / "version.php"
    assert core_file.stat().st_nlink > 1  # hard-linked from the Debian package, not copied

    final = local.delete("crumbs")
    assert final["status"] == "succeeded"
    kept = local.client.get("/v1/tenants/acme/backups?deleted=true", headers=local.admin).json()
    [backup] = [b for b in kept if b["id"] == final["backup"]]  # the delete kept one backup
    assert backup["kind"] == "pre-delete" and backup["status"] == "succeeded", backup
    assert backup["size_bytes"] > 1_000_000  # the dump and wp-content, WordPress's themes too

    with pytest.raises(KeyError):
        pwd.getpwnam(user)
    assert not root.exists()
    assert not local.stack.phpfpm.pool_file(user).exists()
    assert not local.stack.phpfpm.socket(user).exists()
    assert not local.stack.nginx.site_file("acme--crumbs").exists()
    assert not (local.stack.nginx.cache_dir / "acme--crumbs").exists()
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (db,))
        assert cur.fetchall() == ()
        cur.execute("SELECT User FROM mysql.user WHERE User = %s", (db_user,))
        assert cur.fetchall() == ()
        cur.execute("SELECT * FROM mysql.db WHERE Db = %s OR User = %s", (db, db_user))
        assert cur.fetchall() == ()
    ps = subprocess.run(["ps", "-o", "pid=", "-u", str(user)], capture_output=True, text=True)
    assert ps.stdout.strip() == ""
    assert local.site_get(host).status_code == 404  # nginx's default server


def _probe(local: LocalEnv, site: str, name: str, php: str) -> None:
    """Drop a PHP file into a site's wp-content as that site's user (as a plugin could)."""
    res = local.resources(site)
    path = Path(res["storage"]["root"]) / "htdocs" / "wp-content" / name
    path.write_text(php)
    shutil.chown(path, res["storage"]["user"], "www-data")


def test_sites_are_isolated(local: LocalEnv) -> None:
    local.create("alpha")
    local.create("beta")
    a, b = local.resources("alpha"), local.resources("beta")
    b_root = b["storage"]["root"]
    upload = Path(b_root) / "htdocs" / "wp-content" / "uploads" / "private.txt"
    upload.write_text("beta's upload")
    shutil.chown(upload, b["storage"]["user"], "www-data")
    _probe(
        local,
        "alpha",
        "probe.php",
        f"""<?php
header('Content-Type: application/json');
echo json_encode([
  'own_config' => @file_get_contents(__DIR__ . '/../wp-config.php') !== false,
  'other_config' => @file_get_contents('{b_root}/htdocs/wp-config.php') !== false,
  'other_upload' => @file_get_contents('{upload}') !== false,
  'other_listing' => @scandir('{b_root}') !== false,
  'exec' => function_exists('exec') && @exec('id') !== null,
  'passwd' => @file_get_contents('/etc/passwd') !== false,
  'opcache' => function_exists('opcache_get_status') && @opcache_get_status(false) !== false,
]);
""",
    )
    seen = local.site_get("alpha.acme.localhost", "/wp-content/probe.php").json()
    assert seen == {
        "own_config": True, "other_config": False, "other_upload": False,
        "other_listing": False, "exec": False, "passwd": False, "opcache": False,
    }  # fmt: skip
    # Without open_basedir too: file permissions alone keep alpha's user out of beta's files.
    as_alpha = subprocess.run(
        ["runuser", "-u", a["storage"]["user"], "--", "cat", f"{b_root}/htdocs/wp-config.php"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert as_alpha.returncode != 0 and "Permission denied" in as_alpha.stderr

    # alpha's database user cannot read beta's database.
    db_user, db_password = local.db_login("alpha")
    conn = pymysql.connect(host="127.0.0.1", port=local.settings.mariadb_port, user=db_user,
                           password=db_password, database=a["database"]["name"])  # fmt: skip
    with conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        assert {row[0] for row in cur.fetchall()} == {"information_schema", a["database"]["name"]}
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            cur.execute(f"SELECT * FROM `{b['database']['name']}`.wp_options LIMIT 1")

    # A fatal error in alpha's PHP leaves beta (and alpha's other pages) serving.
    _probe(local, "alpha", "fatal.php", "<?php undefined_function_for_test();\n")
    assert local.site_get("alpha.acme.localhost", "/wp-content/fatal.php").status_code == 500
    assert local.site_get("beta.acme.localhost").status_code == 200
    assert local.site_get("alpha.acme.localhost").status_code == 200
    php_log = Path(a["storage"]["root"]) / "logs" / "php-error.log"
    assert "undefined_function_for_test" in php_log.read_text()
    local.delete("alpha")
    local.delete("beta")


def test_env_vars_reach_php_and_follow_changes(local: LocalEnv) -> None:
    local.create("envy", tenant="globex")
    _probe_path = "/wp-content/env.php"
    res = local.client.get("/v1/tenants/globex/sites/envy", headers=local.admin).json()
    assert res["status"] == "ready"
    with local.client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        from controlplane.models import Site

        site = session.query(Site).filter_by(name="envy").one()
        root = Path(site.resources["storage"]["root"])
        user = site.resources["storage"]["user"]
    probe = root / "htdocs" / "wp-content" / "env.php"
    probe.write_text("<?php header('Content-Type: application/json'); "
                     "echo json_encode([getenv('STRIPE_KEY'), getenv('REGION')]);")  # fmt: skip
    shutil.chown(probe, user, "www-data")
    tricky = 'sk_"live"$HOME${x}\\end'
    put = local.change_env(
        "PUT",
        "/v1/tenants/globex/env",
        json={"vars": {"STRIPE_KEY": {"value": tricky, "secret": True}, "REGION": {"value": "eu"}}},
    )
    assert put.status_code == 202, put.text
    assert local.site_get("envy.globex.localhost", _probe_path).json() == [tricky, "eu"]
    pool = local.stack.phpfpm.pool_file(user)
    assert oct(pool.stat().st_mode & 0o777) == "0o600"  # secrets: root only
    assert local.change_env("DELETE", "/v1/tenants/globex/env/REGION").status_code == 202
    assert local.site_get("envy.globex.localhost", _probe_path).json() == [tricky, False]
    assert tricky not in LOG_FILE.read_text()
    local.delete("envy", tenant="globex")


def test_stop_and_start(local: LocalEnv) -> None:
    local.create("pausable")
    host = "pausable.acme.localhost"
    stop = local.client.post("/v1/tenants/acme/sites/pausable/stop", headers=local.admin)
    assert stop.status_code == 202
    wait_for_operation(local.client, stop.json()["operation"]["id"], local.admin)
    assert (
        local.client.get("/v1/tenants/acme/sites/pausable", headers=local.admin).json()["status"]
        == "stopped"
    )
    assert local.site_get(host).status_code == 503
    start = local.client.post("/v1/tenants/acme/sites/pausable/start", headers=local.admin)
    wait_for_operation(local.client, start.json()["operation"]["id"], local.admin)
    assert local.site_get(host).status_code == 200
    local.delete("pausable")


def _inventory(local: LocalEnv) -> tuple[Any, ...]:
    # This stack's site users only (their home is the site root): other test workers'
    # stacks make and remove theirs on the same machine meanwhile.
    sites = f"{local.stack.sites_dir}/"
    users = sorted(p.pw_name for p in pwd.getpwall()
                   if p.pw_name.startswith("wp-") and p.pw_dir.startswith(sites))  # fmt: skip
    pools = sorted(os.listdir(local.stack.phpfpm.pool_dir))
    vhosts = sorted(os.listdir(local.stack.nginx.sites_dir))
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        dbs = sorted(r[0] for r in cur.fetchall())
        cur.execute("SELECT User FROM mysql.user")
        db_users = sorted(r[0] for r in cur.fetchall())
    return users, pools, vhosts, dbs, db_users


def test_bad_input_creates_nothing(local: LocalEnv) -> None:
    local.create("taken", domain="taken.example.com")
    before = _inventory(local)
    bad = [
        ({"name": "x'; DROP DATABASE mysql; --"}, 422),
        ({"name": "a/../../etc"}, 422),
        ({"name": "$(touch /tmp/pwned)"}, 422),
        ({"name": "ok", "admin_email": "nobody"}, 422),
        ({"name": "taken"}, 409),
        ({"name": "other", "domain": "metadata.google.internal"}, 422),
        ({"name": "other", "domain": "127.0.0.1"}, 422),
    ]
    for body, status in bad:
        response = local.client.post(
            "/v1/tenants/acme/sites", json={"admin_email": EMAIL, **body}, headers=local.admin
        )
        assert response.status_code == status, (body, response.text)
        assert response.json()["detail"]
    assert _inventory(local) == before
    assert not Path("/tmp/pwned").exists()
    local.delete("taken")


def test_custom_domain_is_served_once_verified(local: LocalEnv) -> None:
    local.create("shop", domain="shop.example.net")  # a pending claim: not served
    assert "No AIPress site" in local.site_get("shop.example.net").text
    path = "/v1/tenants/acme/sites/shop/domains"
    [claim] = local.client.get(path, headers=local.admin).json()
    refused = local.client.post(f"{path}/shop.example.net/verify", headers=local.admin)
    assert refused.status_code == 400 and "does not exist" in refused.json()["detail"]
    assert "No AIPress site" in local.site_get("shop.example.net").text
    local.dns.records[claim["verification"]["name"]] = [claim["verification"]["value"]]
    verified = local.client.post(f"{path}/shop.example.net/verify", headers=local.admin)
    assert verified.status_code == 202, verified.text
    final = wait_for_operation(
        local.client, verified.json()["operation"]["id"], local.admin, timeout=60
    )
    assert final["status"] == "succeeded", final
    # Each name the site serves answers for itself: WordPress's canonical redirect only swaps
    # www/no-www, and nginx sends no name elsewhere. A redirect here would be a change.
    response = local.site_get("shop.example.net")
    assert response.status_code == 200, response.headers
    assert "No AIPress site" not in response.text
    removed = local.client.delete(f"{path}/shop.example.net", headers=local.admin)
    wait_for_operation(local.client, removed.json()["operation"]["id"], local.admin, timeout=60)
    assert "No AIPress site" in local.site_get("shop.example.net").text
    preview = local.site_get("shop.acme.localhost")
    assert preview.status_code == 200, preview.headers
    local.delete("shop")


def test_logs_and_metrics_api_read_the_real_logs(local: LocalEnv) -> None:
    local.create("loggy")
    host = "loggy.acme.localhost"
    for _ in range(3):
        assert local.site_get(host).status_code == 200
    assert local.site_get(host, "/missing-page-for-log").status_code == 404
    _probe(local, "loggy", "boom.php", "<?php undefined_function_in_loggy();\n")
    assert local.site_get(host, "/wp-content/boom.php").status_code == 500
    base = "/v1/tenants/acme/sites/loggy"
    missing = local.client.get(f"{base}/logs?status=404", headers=local.admin).json()
    assert [e["path"] for e in missing["entries"]] == ["/missing-page-for-log"]
    fatal = local.client.get(f"{base}/logs?severity=critical", headers=local.admin).json()
    assert any(
        e["source"] == "php" and "undefined_function_in_loggy" in e["message"]
        for e in fatal["entries"]
    )
    errors = local.client.get(f"{base}/logs?status=5xx&since=10m", headers=local.admin).json()
    assert [e["path"] for e in errors["entries"]] == ["/wp-content/boom.php"]
    metrics = local.client.get(f"{base}/metrics?since=10m", headers=local.admin).json()
    assert metrics["requests"] >= 5 and metrics["errors"] == 1 and metrics["client_errors"] >= 1
    assert metrics["latency_ms"]["p95"] is not None and metrics["cache_hit_ratio"] is not None
    local.delete("loggy")


def test_logs_api_refuses_links_and_fifos_planted_by_a_site(local: LocalEnv) -> None:
    local.create("planter")
    root = Path(local.resources("planter")["storage"]["root"])
    secret_dir = Path(tempfile.mkdtemp(prefix="aipress-not-the-sites-", dir="/tmp"))
    (secret_dir / "php-error.log").write_text(
        "[22-Nov-2026 10:00:00 UTC] PHP Fatal error:  root-only text\n"
    )
    logs = root / "logs"
    shutil.rmtree(logs)
    logs.symlink_to(secret_dir)  # the site's user owns its root and could do this
    url = "/v1/tenants/acme/sites/planter/logs?since=3650d"
    entries = local.client.get(url, headers=local.admin).json()["entries"]
    assert all("root-only text" not in e["message"] for e in entries)
    logs.unlink()
    logs.mkdir()
    os.mkfifo(logs / "php-error.log")  # a FIFO would block a naive open() forever
    assert local.client.get(url, headers=local.admin).status_code == 200
    shutil.rmtree(secret_dir)
    local.delete("planter")


def test_metering_reads_what_a_real_site_uses(local: LocalEnv) -> None:
    """Local metering on the real stack: requests and busy time from nginx's access log,
    wp-content bytes from disk, the site's database size from information_schema."""

    from controlplane.billing.metering import meter_hour
    from controlplane.billing.warehouse import DuckDBWarehouse

    site = local.create("meter")
    host = site["preview_url"].split("//")[1].split(":")[0]
    for _ in range(5):
        assert local.site_get(host, "/?nocache=1").status_code == 200
    platform = local.client.app.state.platform  # type: ignore[attr-defined]
    usage = platform.provider.usage
    database = local.resources("meter")["database"]["name"]
    sizes = usage.database_bytes()
    assert sizes[database] > 100_000  # a WordPress install's tables
    hour = clock.now().replace(minute=0, second=0, microsecond=0)
    warehouse = DuckDBWarehouse(":memory:")
    meter_hour(platform, usage, warehouse, hour)
    rows = warehouse.connection.execute(
        "SELECT sku.id, usage.amount, cost FROM billing_export "
        "WHERE list_contains(labels, {'key': 'aipress-site', 'value': 'meter'})"
    ).fetchall()
    amounts = {sku: amount for sku, amount, _cost in rows}
    assert amounts["CR-REQ"] >= 5
    assert amounts["CR-CPU-T1"] > 0  # the requests' latencies, summed
    assert amounts["NET-EGRESS-PREMIUM"] > 0
    assert amounts["GCS-STD-US-CENTRAL1"] > 0.0001  # GiB of wp-content (themes, plugins)
    shared = dict(warehouse.connection.execute(
        "SELECT sku.id, usage.amount FROM billing_export WHERE len(labels) = 0").fetchall())  # fmt: skip
    assert shared["SQL-MYSQL-SSD"] >= sizes[database] / 1024**3
    warehouse.close()
    local.delete("meter")
