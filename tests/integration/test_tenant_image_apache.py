"""The tenant image's Apache and probe, run for real with this machine's Apache and mod_php
(the image itself cannot be built here: no Docker daemon, no registry). A docroot stands in
for WordPress: its .htaccess is WordPress's own rewrite block and its index.php answers as an
uninstalled WordPress does, with a 302 to install.php."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.providers.gcp.runtime import PROBE_PATH

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path("/usr/lib/apache2/modules/libphp8.2.so").exists() or not shutil.which("apache2"),
        reason="needs apache2 with mod_php",
    ),
]
IMAGE = Path(__file__).resolve().parents[2] / "runtime" / "wordpress"
MODULES = Path("/usr/lib/apache2/modules")
HTACCESS = """# BEGIN WordPress
<IfModule mod_rewrite.c>
RewriteEngine On
RewriteBase /
RewriteRule ^index\\.php$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule . /index.php [L]
</IfModule>
# END WordPress
"""
# Uninstalled WordPress redirects every page to the installer.
INDEX = "<?php header('Location: /wp-admin/install.php', true, 302);"
# wp-load.php with SHORTINIT: a $wpdb whose options table has a siteurl once installed.
WP_LOAD = """<?php
class AipressStubDb {
    public $options = 'wp_options';
    public function suppress_errors($on) {}
    public function get_var($sql) {
        if (is_file(__DIR__ . '/db-down')) { throw new RuntimeException('no database'); }
        return is_file(__DIR__ . '/installed') ? 'https://site.example' : null;
    }
}
$GLOBALS['wpdb'] = new AipressStubDb();
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def apache(request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    # Not pytest's tmp_path: Apache's workers run as nobody and must traverse every parent.
    tmp_path = Path(tempfile.mkdtemp(prefix="aipress-apache-"))
    docroot, share = tmp_path / "html", tmp_path / "share"
    docroot.mkdir()
    share.mkdir()
    (docroot / ".htaccess").write_text(HTACCESS)
    (docroot / "index.php").write_text(INDEX)
    (docroot / "wp-load.php").write_text(WP_LOAD)
    shutil.copy(IMAGE / "aipress-probe.php", share / "aipress-probe.php")
    # The image's own Apache additions, with the probe's directory moved to this test's.
    conf = (
        (IMAGE / "aipress-apache.conf").read_text().replace("/usr/local/share/aipress", str(share))
    )
    (tmp_path / "aipress.conf").write_text(conf)
    for path in (tmp_path, docroot, share):
        path.chmod(0o755)
    port = _free_port()
    (tmp_path / "httpd.conf").write_text(f"""
ServerRoot {tmp_path}
PidFile {tmp_path}/httpd.pid
ErrorLog {tmp_path}/error.log
Listen 127.0.0.1:{port}
ServerName localhost
User nobody
Group nogroup
LoadModule mpm_prefork_module {MODULES}/mod_mpm_prefork.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule alias_module {MODULES}/mod_alias.so
LoadModule headers_module {MODULES}/mod_headers.so
LoadModule rewrite_module {MODULES}/mod_rewrite.so
LoadModule dir_module {MODULES}/mod_dir.so
LoadModule mime_module {MODULES}/mod_mime.so
LoadModule php_module {MODULES}/libphp8.2.so
TypesConfig /etc/mime.types
DocumentRoot {docroot}
DirectoryIndex index.php
# As the official image's apache2.conf has it for /var/www/ (rewrites need FollowSymLinks).
<Directory />
    AllowOverride None
</Directory>
<Directory {docroot}>
    Options FollowSymLinks
    AllowOverride All
    Require all granted
</Directory>
<FilesMatch "\\.php$">
    SetHandler application/x-httpd-php
</FilesMatch>
Include {tmp_path}/aipress.conf
""")
    env = {**os.environ, "APACHE_MAX_WORKERS": "3", **getattr(request, "param", {})}
    check = subprocess.run(["apache2", "-t", "-f", str(tmp_path / "httpd.conf")], env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stderr
    subprocess.run(["apache2", "-f", str(tmp_path / "httpd.conf"), "-k", "start"], env=env,
                   check=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(base + "/index.php", timeout=2)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        yield base, docroot
    finally:
        pid = int((tmp_path / "httpd.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not (tmp_path / "httpd.pid").exists():
                break
            time.sleep(0.05)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_probe_is_the_probe_script_and_never_a_redirect(apache: tuple[str, Path]) -> None:
    base, docroot = apache
    # /healthz would go to WordPress's index.php (and its 302 passes a startup probe).
    assert httpx.get(base + "/healthz").status_code == 302
    assert not PROBE_PATH.endswith("z") and not PROBE_PATH.startswith("/_ah/")
    before = httpx.get(base + PROBE_PATH)
    assert (before.status_code, before.text) == (503, "not installed\n")
    (docroot / "installed").touch()
    after = httpx.get(base + PROBE_PATH)
    assert (after.status_code, after.text) == (200, "ok\n")
    assert after.headers["cache-control"] == "no-store"
    (docroot / "db-down").touch()
    assert httpx.get(base + PROBE_PATH).status_code == 503


MAINTENANCE = {"AIPRESS_MAINTENANCE": "on", "AIPRESS_PROBE_TOKEN": "t0ken-of-the-site"}


@pytest.mark.parametrize("apache", [MAINTENANCE], indirect=True)
def test_maintenance_answers_503_but_lets_the_platforms_probes_through(
    apache: tuple[str, Path],
) -> None:
    base, docroot = apache
    (docroot / "installed").touch()
    (docroot / "style.css").write_text("body {}")
    for path in ("/", "/style.css", "/wp-login.php", "/wp-content/uploads/2026/11/a.jpg"):
        for headers in ({}, {"X-AIPress-Probe": "wrong"}, {"X-AIPress-Probe": ""}):
            answer = httpx.get(base + path, headers=headers)
            assert answer.status_code == 503, (path, headers)
            assert answer.headers["retry-after"] == "30"
            assert answer.headers["cache-control"] == "no-store"
            assert "This site is being restored" in answer.text
    # Cloud Run's startup probe (its own path) and the platform's probe (the token) pass.
    assert httpx.get(base + PROBE_PATH).status_code == 200
    probe = {"X-AIPress-Probe": MAINTENANCE["AIPRESS_PROBE_TOKEN"]}
    assert httpx.get(base + "/", headers=probe).status_code == 302  # WordPress's own answer
    assert httpx.get(base + "/style.css", headers=probe).text == "body {}"


@pytest.mark.parametrize("apache", [{"AIPRESS_MAINTENANCE": "on"}], indirect=True)
def test_maintenance_without_a_token_lets_no_request_through(apache: tuple[str, Path]) -> None:
    base, _docroot = apache
    assert httpx.get(base + "/", headers={"X-AIPress-Probe": ""}).status_code == 503


def test_out_of_maintenance_the_site_serves_and_restore_copies_never_do(
    apache: tuple[str, Path],
) -> None:
    base, docroot = apache
    (docroot / "style.css").write_text("body {}")
    answer = httpx.get(base + "/style.css")
    assert (answer.status_code, "retry-after" in answer.headers) == (200, False)
    staged = docroot / "wp-content" / "uploads" / ".aipress-previous"
    staged.mkdir(parents=True)
    (staged / "a.jpg").write_text("old")
    (docroot / "wp-content" / "uploads" / "b.jpg").write_text("live")
    for path in (staged, staged.parent, staged.parents[1]):
        path.chmod(0o755)
    assert httpx.get(base + "/wp-content/uploads/b.jpg").text == "live"
    assert httpx.get(base + "/wp-content/uploads/.aipress-previous/a.jpg").status_code == 403
