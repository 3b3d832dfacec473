"""The tenant image's database connection over TLS, as Cloud SQL's private IP requires it.

Cloud SQL (ssl_mode ENCRYPTED_ONLY) refuses unencrypted connections, and its server
certificate names the instance, not the private IP WordPress dials. The image's
aipress-config.php must give WordPress client flags that encrypt and still connect: checked
here with real PHP mysqli against a real MariaDB that requires secure transport and presents
a certificate for another name.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.stack.mariadb import MariaDB
from tests.tls_certificate import self_signed

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).parents[2] / "runtime" / "wordpress" / "aipress-config.php"
CONNECT = """
require getenv('CONFIG');
$flags = defined('MYSQL_CLIENT_FLAGS') ? MYSQL_CLIENT_FLAGS : 0;
mysqli_report(MYSQLI_REPORT_OFF);
$db = mysqli_init();
if (!@mysqli_real_connect($db, '127.0.0.1', 'site', getenv('PASS'), null, (int) getenv('PORT'),
                          null, $flags)) {
    echo json_encode(['error' => mysqli_connect_error()]);
    exit;
}
$row = $db->query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")->fetch_row();
echo json_encode(['cipher' => $row[1]]);
"""


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed server certificate naming a Cloud SQL instance, not 127.0.0.1."""
    cert_path, key_path = self_signed(directory, "aipress-test:us-central1:shared")
    for path in (cert_path, key_path):
        shutil.chown(path, "mysql", "mysql")
        path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_mariadb() -> Iterator[tuple[MariaDB, str]]:
    """A MariaDB that takes encrypted connections only, with one password user."""
    base = Path(tempfile.mkdtemp(prefix="aipress-test-tls-", dir="/tmp"))
    base.chmod(0o755)
    certs = base / "certs"
    certs.mkdir()
    shutil.chown(certs, "mysql", "mysql")
    cert, key = _certificate(certs)
    server = MariaDB(base / "mariadb", port=3600 + secrets.randbelow(200), options=(
        f"--ssl-cert={cert}", f"--ssl-key={key}", "--require-secure-transport=ON"))  # fmt: skip
    server.start()
    password = secrets.token_urlsafe(16)
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER 'site'@'127.0.0.1' IDENTIFIED BY %s", (password,))
    yield server, password
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


def _connect(server: MariaDB, password: str, **env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    result = subprocess.run(
        ["php", "-r", CONNECT], capture_output=True, text=True, check=True, timeout=30,
        env={**base, "CONFIG": str(CONFIG), "PASS": password, "PORT": str(server.port), **env},
    )  # fmt: skip
    answer: dict[str, str] = json.loads(result.stdout)
    return answer


def test_the_image_connects_encrypted_when_the_server_requires_it(
    tls_mariadb: tuple[MariaDB, str],
) -> None:
    server, password = tls_mariadb
    answer = _connect(server, password, WORDPRESS_DB_TLS="on")
    assert answer.get("cipher"), answer  # encrypted, although the certificate names another host


def test_without_tls_the_server_refuses_the_site(tls_mariadb: tuple[MariaDB, str]) -> None:
    server, password = tls_mariadb
    answer = _connect(server, password)  # the same password that connects over TLS
    assert "error" in answer and "cipher" not in answer, answer


SEARCH_REPLACE = (
    Path(__file__).parents[2] / "controlplane" / "providers" / "local" / "search_replace.php"
)


def test_the_search_replace_job_connects_encrypted_too(tls_mariadb: tuple[MariaDB, str]) -> None:
    """The gcp search-replace job runs the script with the image's env against the private IP."""
    server, password = tls_mariadb
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS tls_site")
        cur.execute("CREATE TABLE IF NOT EXISTS tls_site.wp_options "
                    "(option_id INT PRIMARY KEY, option_value TEXT)")  # fmt: skip
        cur.execute("REPLACE INTO tls_site.wp_options VALUES (1, 'https://old.example/x')")
        cur.execute("GRANT ALL ON tls_site.* TO 'site'@'127.0.0.1'")
    job = {"database": "tls_site", "from": "https://old.example", "to": "https://new.example"}
    env = {"PATH": os.environ["PATH"], "AIPRESS_SEARCH_REPLACE": json.dumps(job),
           "WORDPRESS_DB_HOST": f"127.0.0.1:{server.port}", "WORDPRESS_DB_USER": "site",
           "WORDPRESS_DB_PASSWORD": password}  # fmt: skip
    plain = subprocess.run(["php", str(SEARCH_REPLACE)], env=env, capture_output=True,
                           text=True, timeout=60, check=False)  # fmt: skip
    assert plain.returncode != 0  # refused: the server takes encrypted connections only
    done = subprocess.run(["php", str(SEARCH_REPLACE)], env={**env, "WORDPRESS_DB_TLS": "on"},
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["cells"] == 1
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT option_value FROM tls_site.wp_options")
        assert cur.fetchall() == (("https://new.example/x",),)
