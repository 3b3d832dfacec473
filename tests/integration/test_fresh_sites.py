"""A new site on the embedded default is a site a WordPress professional would accept: it is
ready only when it serves, nothing of the build is shown or cached, WordPress's own Site
Health is clean, and no page waits on the internet. Real MariaDB, PHP-FPM, nginx, WordPress."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.providers.readiness import generator_version, page_title
from tests.conftest import wait_for_operation
from tests.integration.test_local_sites import EMAIL, LocalEnv, _inventory, _login, local

pytestmark = pytest.mark.integration
__all__ = ["local"]  # the module-scoped stack fixture


def _root(env: LocalEnv, site: str, tenant: str = "acme") -> Path:
    return Path(env.resources(site, tenant)["storage"]["root"])


def _drop(env: LocalEnv, site: str, name: str, php: str) -> None:
    """A PHP file in the site's wp-content, owned by the site's user (as a plugin could)."""
    res = env.resources(site)
    path = Path(res["storage"]["root"]) / "htdocs" / "wp-content" / name
    path.write_text(php)
    shutil.chown(path, res["storage"]["user"], "www-data")


def _start(env: LocalEnv, name: str, **body: Any) -> str:
    response = env.client.post(
        "/v1/tenants/acme/sites",
        json={"name": name, "admin_email": EMAIL, **body},
        headers=env.admin,
    )
    assert response.status_code == 202, response.text
    operation_id: str = response.json()["operation"]["id"]
    return operation_id


def test_a_missing_theme_fails_the_create_clearly_and_leaves_nothing(local: LocalEnv) -> None:
    local.stack.ensure_running()
    before = _inventory(local)
    sites_before = sorted(os.listdir(local.stack.sites_dir))
    local.settings.default_theme = "aipress-no-such-theme"
    try:
        operation_id = _start(local, "themeless", title="No Theme")
        final = wait_for_operation(local.client, operation_id, local.admin, timeout=120)
    finally:
        local.settings.default_theme = "twentytwentythree"
    assert final["status"] == "rolled_back", final
    assert "the site renders an empty page: no theme is installed" in final["error"]
    assert "aipress-no-such-theme" in final["error"]
    wordpress = next(s for s in final["steps"] if s["name"] == "wordpress")
    assert "no theme is installed" in (wordpress["error"] or "")
    gone = local.client.get("/v1/tenants/acme/sites/themeless", headers=local.admin)
    assert gone.status_code == 404
    assert _inventory(local) == before  # users, pools, vhosts, databases, database users
    assert sorted(os.listdir(local.stack.sites_dir)) == sites_before
    assert not (local.stack.sites_dir / "acme" / "themeless").exists()
    assert local.site_get("themeless.acme.localhost").status_code == 404  # nginx's default


def test_a_site_is_503_until_ready_and_the_cache_starts_with_the_right_page(
    local: LocalEnv,
) -> None:
    host, port = "polled.acme.localhost", local.settings.site_port
    seen: list[tuple[int, str, str | None, str, str, float]] = []
    stop = threading.Event()

    def poll() -> None:
        # A fresh connection each time, as a new visitor: nginx's reload closes idle
        # keep-alive connections, which a reused one would see as an error.
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=10, limits=no_reuse) as client:
            while not stop.is_set():
                sent = time.monotonic()  # a request in flight at the 202 was sent before it
                try:
                    r = client.get(f"http://127.0.0.1:{port}/", headers={"Host": f"{host}:{port}"})
                    seen.append(
                        (r.status_code, r.text, page_title(r.text),
                         r.headers.get("x-cache", ""), r.headers.get("cache-control", ""),
                         sent)
                    )  # fmt: skip
                except httpx.HTTPError as exc:
                    seen.append((0, type(exc).__name__, None, "", "", sent))
                time.sleep(0.05)

    local.stack.ensure_running()  # as after `make up`
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    time.sleep(0.2)
    operation_id = _start(local, "polled", title="Polled Bakery")
    answered = time.monotonic()
    final = wait_for_operation(local.client, operation_id, local.admin, timeout=120)
    time.sleep(0.5)
    stop.set()
    poller.join(5)
    assert final["status"] == "succeeded", final

    statuses = [s[0] for s in seen]
    first_503, first_ok = statuses.index(503), statuses.index(200)
    assert first_ok - first_503 > 10  # the poller really watched the build
    # Before the POST the name is unknown to nginx; every request sent after the 202 finds
    # it "being built".
    unknown = seen[:first_503]
    assert all(s[0] == 404 and "No AIPress site" in s[1] for s in unknown)
    assert all(s[5] < answered for s in unknown), [s[5] - answered for s in unknown]
    building = seen[first_503:first_ok]
    assert {s[0] for s in building} == {503}, sorted({s[0] for s in building})
    assert all("being built" in s[1] and "no-store" in s[4] for s in building)
    served = seen[first_ok:]
    assert {s[0] for s in served} == {200}
    assert {s[2] for s in served} == {"Polled Bakery"}
    cached = local.site_get(host)
    assert cached.headers["x-cache"] == "HIT" and page_title(cached.text) == "Polled Bakery"
    site = local.client.get("/v1/tenants/acme/sites/polled", headers=local.admin).json()
    # Read from WordPress, and the same as the site's own core says.
    version_php = (_root(local, "polled") / "htdocs" / "wp-includes" / "version.php").read_text()
    assert site["wordpress_version"] and f"$wp_version = '{site['wordpress_version']}'" in (
        version_php
    )
    assert generator_version(cached.text) == site["wordpress_version"]
    listed = local.client.get("/v1/tenants/acme/sites", headers=local.admin).json()
    assert {s["name"]: s["wordpress_version"] for s in listed}["polled"] == site[
        "wordpress_version"
    ]
    local.delete("polled")


SITE_HEALTH = """<?php
// Runs WordPress's own Site Health tests as the signed-in user; prints each test's result.
require dirname(__DIR__) . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/admin.php';
require_once ABSPATH . 'wp-admin/includes/class-wp-site-health.php';
header('Content-Type: application/json');
if (!current_user_can('view_site_health_checks')) { http_response_code(403); exit; }
$health = WP_Site_Health::get_instance();
$tests = WP_Site_Health::get_tests();
$out = ['direct' => [], 'async' => [], 'nonce' => wp_create_nonce('wp_rest')];
$run = function ($callback) {
    $r = apply_filters('site_status_test_result', call_user_func($callback));
    return ['status' => $r['status'], 'label' => wp_strip_all_tags($r['label'])];
};
foreach ($tests['direct'] as $name => $test) {
    $callback = is_string($test['test']) ? [$health, 'get_test_' . $test['test']] : $test['test'];
    $out['direct'][$name] = $run($callback);
}
foreach ($tests['async'] as $name => $test) {
    $entry = ['rest' => $test['test'], 'headers' => $test['headers'] ?? new stdClass()];
    if (!empty($test['async_direct_test']) && is_callable($test['async_direct_test'])) {
        $entry['callback'] = $run($test['async_direct_test']);
    }
    $out['async'][$name] = $entry;
}
echo json_encode($out);
"""

# Site Health tests a new site cannot pass here, each with why. Everything else must be good.
NOT_GOOD_BY_DESIGN = {
    "wordpress_version": "needs api.wordpress.org to learn the newest release (no internet; "
    "the platform checks for updates, a later issue)",
    "dotorg_communication": "tests reaching api.wordpress.org: no internet, and WordPress's "
    "outbound HTTP is blocked so that no page waits on it",
    "http_requests": "reports WP_HTTP_BLOCK_EXTERNAL itself: outbound HTTP is refused but for "
    "AIPRESS_SITE_OUTBOUND_ALLOW (critical when the list is empty, recommended otherwise)",
    "background_updates": "updates are the platform's job: automatic updates are off and core "
    "is hard-linked, root-owned; they would also need wordpress.org",
    "https_status": "the embedded default serves http://*.localhost on loopback (browsers "
    "treat it as a secure context); TLS is the gcp provider's",
}


def test_site_health_direct_and_async_tests_are_good(local: LocalEnv) -> None:
    site = local.create("healthy", title="Healthy Bakery")
    host, port = "healthy.acme.localhost", local.settings.site_port
    creds = local.client.post(
        "/v1/tenants/acme/sites/healthy/admin-credentials/reveal", headers=local.admin
    ).json()
    _drop(local, "healthy", "site-health.php", SITE_HEALTH)
    results: dict[str, str] = {}
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Host": f"{host}:{port}"}, timeout=60
    ) as browser:
        # A visitor's first uncached request spawns WP-Cron (a loopback), as on a live site;
        # here the due events run once, as the platform's cron runner would.
        assert browser.get("/wp-cron.php").status_code == 200
        browser.cookies.set("wordpress_test_cookie", "WP Cookie check")
        login = browser.post(
            "/wp-login.php",
            data={"log": creds["username"], "pwd": creds["password"], "testcookie": "1",
                  "redirect_to": f"{site['preview_url']}wp-admin/"},
        )  # fmt: skip
        assert login.status_code == 302
        report = browser.get("/wp-content/site-health.php")
        assert report.status_code == 200, report.text[:300]
        out = report.json()
        for name, result in out["direct"].items():
            results[name] = result["status"]
        for name, test in out["async"].items():
            # Each async test as the Site Health screen runs it: its REST route, signed in.
            path = test["rest"].split(f":{port}", 1)[1]
            answer = browser.get(path, headers={"X-WP-Nonce": out["nonce"], **test["headers"]})
            assert answer.status_code == 200, (name, answer.text[:300])
            results[name] = answer.json()["status"]
            if "callback" in test:  # and its direct callback, which WP-Cron's weekly check runs
                assert test["callback"]["status"] == results[name], (name, test["callback"])
    print("\nSite Health on a new site:", json.dumps(results, indent=1))
    expected = {"rest_availability", "loopback_requests", "page_cache", "scheduled_events",
                "php_extensions", "theme_version", "plugin_version", "authorization_header"}  # fmt: skip
    assert expected <= set(results)  # the checks this issue is about did run
    not_good = {name for name, status in results.items() if status != "good"}
    assert not_good <= set(NOT_GOOD_BY_DESIGN), {n: results[n] for n in not_good}
    local.delete("healthy")


RECORDER = """<?php
// Test only: records every HTTP request WordPress is asked to make, and every one that
// reaches the transport (a socket), to the site's tmp/http.log.
defined('ABSPATH') || exit;
function aipress_test_record($kind, $url) {
    file_put_contents(dirname(ABSPATH) . '/tmp/http.log',
        json_encode([$kind, $url, $_SERVER['REQUEST_URI'] ?? 'cli']) . "\\n", FILE_APPEND);
}
add_filter('pre_http_request', function ($pre, $args, $url) {
    aipress_test_record('asked', $url);
    return $pre;
}, PHP_INT_MIN, 3);
add_action('http_api_curl', function ($handle, $args, $url) {
    aipress_test_record('socket', $url);
}, PHP_INT_MIN, 3);
"""

OUTBOUND = """<?php
require dirname(__DIR__) . '/wp-load.php';
header('Content-Type: application/json');
$out = [];
$urls = ['http://allowed.example/', 'http://api.wordpress.org/', 'http://blocked.example/',
         'http://quiet.example.net/', 'http://other.acme.localhost:' . $_GET['port'] . '/'];
foreach ($urls as $url) {
    $r = wp_remote_get($url, ['timeout' => 3, 'redirection' => 0]);
    $out[$url] = is_wp_error($r) ? $r->get_error_code() : wp_remote_retrieve_response_code($r);
}
echo json_encode($out);
"""


def test_no_page_calls_out_and_the_allow_list_is_let_through(local: LocalEnv) -> None:
    local.settings.site_outbound_allow = ("allowed.example",)
    try:
        local.create("quiet", title="Quiet Bakery", domain="quiet.example.net")
        # The custom domain is the site's own once verified (its config is rewritten then).
        path = "/v1/tenants/acme/sites/quiet/domains"
        [claim] = local.client.get(path, headers=local.admin).json()
        local.dns.records[claim["verification"]["name"]] = [claim["verification"]["value"]]
        verified = local.client.post(f"{path}/quiet.example.net/verify", headers=local.admin)
        assert verified.status_code == 202, verified.text
        final = wait_for_operation(local.client, verified.json()["operation"]["id"], local.admin)
        assert final["status"] == "succeeded", final
    finally:
        local.settings.site_outbound_allow = ()
    host = "quiet.acme.localhost"
    root = _root(local, "quiet")
    mu = root / "htdocs" / "wp-content" / "mu-plugins"
    assert mu.stat().st_uid == 0 and oct(mu.stat().st_mode & 0o777) == "0o755"
    assert {p.name for p in mu.iterdir()} >= {"aipress-loopback.php", "aipress-updates-off.php"}
    assert all(p.stat().st_uid == 0 and not p.stat().st_mode & 0o022 for p in mu.iterdir())
    (mu / "zz-test-recorder.php").write_text(RECORDER)
    log = root / "tmp" / "http.log"
    log.unlink(missing_ok=True)
    creds = local.client.post(
        "/v1/tenants/acme/sites/quiet/admin-credentials/reveal", headers=local.admin
    ).json()

    home = local.site_get(host, "/?uncached=1")
    post = local.site_get(host, "/hello-world/?uncached=1")
    assert home.status_code == 200 and post.status_code == 200 and "Hello world" in post.text
    dashboard = _login(local, host, creds["username"], creds["password"])
    assert dashboard.status_code == 200 and "Dashboard" in dashboard.text
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    external = [r for r in records if f"//{host}" not in r[1]]
    # Nothing left the machine: no page opened a socket to anything but the site itself.
    assert [r for r in external if r[0] == "socket"] == []
    # The front end does not even ask; the dashboard's browser/PHP nags ask wordpress.org and
    # are refused in PHP (WP_HTTP_BLOCK_EXTERNAL) before any socket opens.
    assert [r for r in external if not r[2].startswith("/wp-admin/")] == []
    assert all("//api.wordpress.org/core/" in r[1] for r in external), external
    assert not any("version-check" in r[1] or "update-check" in r[1] for r in records)

    _drop(local, "quiet", "outbound.php", OUTBOUND)
    port = local.settings.site_port
    answers = local.site_get(host, f"/wp-content/outbound.php?port={port}").json()
    # The site's own custom domain has no DNS here: the loopback plugin pins it to nginx,
    # which answers for it (a redirect to the preview URL, as custom domains do locally).
    assert answers["http://quiet.example.net/"] in (200, 301, 302)
    # Another site's name is neither the site's own nor allow-listed: refused in PHP.
    assert answers[f"http://other.acme.localhost:{port}/"] == "http_request_not_executed"
    assert answers["http://api.wordpress.org/"] == "http_request_not_executed"
    assert answers["http://blocked.example/"] == "http_request_not_executed"
    # The allow-listed host got through to the transport (no DNS here, so curl fails there).
    assert answers["http://allowed.example/"] == "http_request_failed"
    sockets = [r[1] for r in map(json.loads, log.read_text().splitlines()) if r[0] == "socket"]
    assert "http://allowed.example/" in sockets and "http://blocked.example/" not in sockets
    local.delete("quiet")
