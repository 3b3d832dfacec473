"""The tenant image's files (the image itself is built by Cloud Build, not here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

IMAGE = Path(__file__).resolve().parents[2] / "runtime" / "wordpress"


def test_the_base_image_is_pinned_and_the_port_is_cloud_runs() -> None:
    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert re.search(r"^FROM wordpress:\d+\.\d+\.\d+-php\d+\.\d+-apache$", dockerfile, re.M)
    assert "Listen 8080" in dockerfile and "EXPOSE 8080" in dockerfile
    for name in ("opcache.ini", "aipress-config.php", "aipress-probe.php", "aipress-entrypoint.sh",
                 "aipress-install.sh", "aipress-apache.conf", "aipress-php.ini", "aipress-salts.sh"):  # fmt: skip
        assert f"COPY runtime/wordpress/{name} " in dockerfile


def test_wordpress_is_configured_for_the_platform() -> None:
    config = (IMAGE / "aipress-config.php").read_text()
    assert "define('DISALLOW_FILE_EDIT', true);" in config
    assert "HTTP_X_FORWARDED_PROTO" in config
    assert "opcache.validate_timestamps=0" in (IMAGE / "opcache.ini").read_text()
    install = (IMAGE / "aipress-install.sh").read_text()
    assert "--prompt=admin_password" in install and "--admin_password=" not in install
    for script in ("aipress-entrypoint.sh", "aipress-install.sh", "aipress-salts.sh"):
        assert subprocess.run(["bash", "-n", str(IMAGE / script)]).returncode == 0


def test_core_is_copied_at_build_time_and_the_service_never_installs() -> None:
    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert "cp -a /usr/src/wordpress/. /var/www/html/" in dockerfile
    assert "cp /var/www/html/wp-config-docker.php /var/www/html/wp-config.php" in dockerfile
    # The official entrypoint (which copies core when /var/www/html is empty) never runs.
    entrypoint = (IMAGE / "aipress-entrypoint.sh").read_text()
    assert "docker-entrypoint.sh" not in entrypoint and "wp core install" not in entrypoint
    assert "define('DISALLOW_FILE_MODS', true);" in (IMAGE / "aipress-config.php").read_text()


@pytest.mark.skipif(shutil.which("php") is None, reason="php is installed by `make test`")
def test_upload_and_memory_limits_come_from_the_env(tmp_path: Path) -> None:
    ini = IMAGE / "aipress-php.ini"
    code = "echo ini_get('upload_max_filesize'), ' ', ini_get('post_max_size'), ' ', ini_get('memory_limit');"
    env = {"PHP_UPLOAD_LIMIT": "24M", "PHP_MEMORY_LIMIT": "96M", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(["php", "-n", "-c", str(ini), "-r", code], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert result.stdout == "24M 24M 96M", result.stderr


def test_cron_is_the_platforms_and_one_click_sign_in_is_installed() -> None:
    config = (IMAGE / "aipress-config.php").read_text()
    assert "define('DISABLE_WP_CRON', true);" in config
    assert "getenv('AIPRESS_LOGIN_KEY')" in config and "getenv('AIPRESS_SITE_ID')" in config
    assert "mu_plugins/aipress-login.php" in (IMAGE / "Dockerfile").read_text()


def test_the_image_holds_the_one_search_replace_script_where_the_job_runs_it() -> None:
    # Copied from the local provider's file itself (no second copy to drift), to the path
    # the gcp search-replace job's command names.
    from controlplane.providers.search_replace import IMAGE_SCRIPT, SCRIPT

    dockerfile = (IMAGE / "Dockerfile").read_text()
    source = SCRIPT.relative_to(IMAGE.parents[1])
    assert re.search(
        rf"^COPY {re.escape(str(source))} {re.escape(IMAGE_SCRIPT)}$", dockerfile, re.M
    )
    assert not list(IMAGE.rglob("*search*replace*"))


@pytest.mark.skipif(shutil.which("php") is None, reason="php is installed by `make test`")
def test_php_files_parse() -> None:
    for name in (
        "aipress-config.php",
        "aipress-probe.php",
        "aipress-packages.php",
    ):
        result = subprocess.run(["php", "-l", str(IMAGE / name)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_the_image_carries_the_platforms_must_use_plugins_that_apply() -> None:
    # The Dockerfile copies the embedded default's own files (the build context is the
    # repository's root): each one it names exists, and no copy of them can drift.
    local = Path(__file__).resolve().parents[2] / "controlplane" / "providers" / "local"
    dockerfile = (IMAGE / "Dockerfile").read_text()
    copied = re.findall(r"controlplane/providers/local/mu_plugins/([\w.-]+\.php)", dockerfile)
    assert set(copied) == {"aipress-login.php", "aipress-updates-off.php"}
    assert all((local / "mu_plugins" / name).is_file() for name in copied)
    assert not (IMAGE / "mu-plugins").exists()
    for source in re.findall(r"^COPY (\S+)", dockerfile, flags=re.M):
        assert (IMAGE.parents[1] / source).exists(), source
    config = (IMAGE / "aipress-config.php").read_text()
    assert "define('WP_HTTP_BLOCK_EXTERNAL', true);" in config
    assert "WORDPRESS_OUTBOUND_ALLOW" in config and "WORDPRESS_THEME" in config
    assert 'wp theme activate --allow-root "$theme"' in (IMAGE / "aipress-install.sh").read_text()


def test_the_image_holds_the_packages_script_where_the_job_runs_it() -> None:
    from controlplane.providers.gcp.packages import PACKAGES_SCRIPT

    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert re.search(
        rf"^COPY runtime/wordpress/aipress-packages.php {re.escape(PACKAGES_SCRIPT)}$",
        dockerfile, re.M,
    )  # fmt: skip
    # The install job seeds the site's code volumes from the image's plugins and themes.
    install = (IMAGE / "aipress-install.sh").read_text()
    assert 'cp -r "/usr/src/wordpress/wp-content/$dir/." "wp-content/$dir/"' in install
