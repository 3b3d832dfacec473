"""Installed once, cloned per site: a site copied from the template is its own (salts, admin,
e-mail, title, URLs; nothing of the template or of the site that built it), a changed theme
makes a new template, and the plain install stays a working fallback."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from controlplane.providers.local.site_template import PLACEHOLDERS, SCHEMA_PREFIX, TEMPLATE_URL
from controlplane.providers.local.wordpress import SALT_NAMES
from tests.integration.test_local_sites import LocalEnv, _login, _title, local_env_on

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def core() -> Iterator[Path]:
    """A hard-linked copy of Debian's WordPress whose theme a test may add a file to."""
    base = Path(tempfile.mkdtemp(prefix="aipress-tpl-core-", dir="/tmp"))
    base.chmod(0o755)
    target = base / "wordpress"
    subprocess.run(["cp", "-rlL", "/usr/share/wordpress", str(target)], check=True)
    yield target
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def local(core: Path) -> Iterator[LocalEnv]:
    yield from local_env_on("tpl", wordpress_core=core)


def _dump(local: LocalEnv, database: str) -> str:
    return subprocess.run(
        ["mariadb-dump", f"--socket={local.stack.mariadb.socket}", "--user=root",
         "--skip-comments", "--skip-extended-insert", database],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def _templates(local: LocalEnv) -> list[str]:
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (SCHEMA_PREFIX.replace("_", "\\_") + "%",))
        return [str(row[0]) for row in cur.fetchall()]


def _salts(config: Path) -> set[str]:
    text = config.read_text()
    return {m.group(1) for n in SALT_NAMES for m in re.finditer(rf"'{n}', '([^']+)'", text)}


def _grep(root: Path, needles: list[str]) -> list[str]:
    """Files under the site root (not its hard-linked core) holding any of `needles`."""
    found = subprocess.run(
        ["grep", "-rlIF", *[a for n in needles for a in ("-e", n)], str(root)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return [line for line in found.stdout.splitlines() if "/logs/" not in line]


def test_a_site_from_the_template_is_its_own(local: LocalEnv) -> None:
    first = local.create("first", title="First Bakery", admin_email="first@example.com")
    second = local.create(
        "second", tenant="globex", title="Second Shop", admin_email="second@example.org"
    )
    one, two = local.resources("first"), local.resources("second", tenant="globex")
    # The first site built the template; the second was copied from it.
    [schema] = _templates(local)
    assert one["wordpress"]["template"] and schema == SCHEMA_PREFIX + one["wordpress"]["template"]
    assert two["wordpress"]["template"] == one["wordpress"]["template"]

    for site, host, title in ((first, "first.acme.localhost", "First Bakery"),
                              (second, "second.globex.localhost", "Second Shop")):  # fmt: skip
        assert site["status"] == "ready"
        page = local.site_get(host)
        assert page.status_code == 200 and _title(page.text) == title

    url_two = f"http://second.globex.localhost:{local.settings.site_port}"
    template_host = TEMPLATE_URL.removeprefix("http://")
    for res, url, title, email, others in (
        (one, f"http://first.acme.localhost:{local.settings.site_port}", "First Bakery",
         "first@example.com", ["second.globex", "Second Shop", "second@example.org"]),
        (two, url_two, "Second Shop", "second@example.org",
         ["first.acme", "First Bakery", "first@example.com"]),
    ):  # fmt: skip
        dump = _dump(local, res["database"]["name"])
        for trace in [template_host, PLACEHOLDERS["admin_user"], PLACEHOLDERS["title"],
                      PLACEHOLDERS["admin_email"], "aipress_template", *others]:  # fmt: skip
            assert trace not in dump, (res["database"]["name"], trace)
        assert f"'siteurl','{url}'" in dump and f"'home','{url}'" in dump
        assert f"'blogname','{title}'" in dump and f"'admin_email','{email}'" in dump
        assert "rewrite_rules" in dump  # rebuilt, not dropped
        assert f"{url}/?p=1" in dump  # the first post's guid is the site's own
        with local.stack.mariadb.connect(res["database"]["name"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT user_login, user_email, user_nicename, display_name FROM wp_users")
            [(login, user_email, nicename, display)] = cur.fetchall()
        assert (login, user_email) == (res["wordpress"]["admin"], email)
        assert nicename == display == login
        root = Path(res["storage"]["root"])
        assert _grep(root, [template_host, PLACEHOLDERS["admin_user"], *others]) == []

    # The template itself holds nothing of the site it was installed in.
    template_dump = _dump(local, schema)
    assert PLACEHOLDERS["title"] in template_dump
    for trace in (
        "first.acme",
        "First Bakery",
        "first@example.com",
        *_salts(Path(one["storage"]["root"]) / "htdocs" / "wp-config.php"),
    ):
        assert trace not in template_dump, trace

    # Its own salts: none of them shared with the site the template was built in.
    config_one = Path(one["storage"]["root"]) / "htdocs" / "wp-config.php"
    config_two = Path(two["storage"]["root"]) / "htdocs" / "wp-config.php"
    salts_one, salts_two = _salts(config_one), _salts(config_two)
    assert len(salts_one) == len(salts_two) == len(SALT_NAMES)
    assert not salts_one & salts_two
    dump_two = _dump(local, two["database"]["name"])
    assert not any(salt in dump_two for salt in salts_one)

    # Its own admin password signs in; the template's schema is no site user's to read.
    creds = local.client.post(
        "/v1/tenants/globex/sites/second/admin-credentials/reveal", headers=local.admin
    ).json()
    dashboard = _login(local, "second.globex.localhost", creds["username"], creds["password"])
    assert dashboard.status_code == 200 and "Dashboard" in dashboard.text
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT User FROM mysql.db WHERE Db LIKE %s", ("aipress\\\\_tpl%",))
        assert cur.fetchall() == ()
    db_user, db_password = local.db_login("second", tenant="globex")
    conn = pymysql.connect(host="127.0.0.1", port=local.settings.mariadb_port, user=db_user,
                           password=db_password)  # fmt: skip
    with conn, conn.cursor() as cur, pytest.raises(pymysql.err.OperationalError, match="denied"):
        cur.execute(f"SELECT * FROM `{schema}`.wp_users")
    local.delete("second", tenant="globex")


def test_a_changed_theme_makes_a_new_template(local: LocalEnv, core: Path) -> None:
    local.create("before", title="Before")
    [old] = _templates(local)
    theme = core / "wp-content" / "themes" / local.settings.default_theme
    (theme / "aipress-test-change.txt").write_text("a new file in the theme\n")
    try:
        site = local.create("after", title="After Change")
        [new] = _templates(local)
        assert new != old  # rebuilt, and the stale one dropped
        assert SCHEMA_PREFIX + local.resources("after")["wordpress"]["template"] == new
        assert _title(local.site_get("after.acme.localhost").text) == "After Change"
        assert site["status"] == "ready"
        local.create("again", title="Again")
        assert local.resources("again")["wordpress"]["template"] == new.removeprefix(SCHEMA_PREFIX)
    finally:
        (theme / "aipress-test-change.txt").unlink()
    for name in ("before", "after", "again"):
        local.delete(name)


def test_without_templates_the_installer_makes_a_serving_site(local: LocalEnv) -> None:
    local.settings.site_templates = False
    try:
        local.create("plain", title="Plain Install", admin_email="plain@example.com")
    finally:
        local.settings.site_templates = True
    res = local.resources("plain")
    assert res["wordpress"]["template"] == ""
    page = local.site_get("plain.acme.localhost")
    assert page.status_code == 200 and _title(page.text) == "Plain Install"
    dump = _dump(local, res["database"]["name"])
    assert "'blogname','Plain Install'" in dump and "'admin_email','plain@example.com'" in dump
    local.delete("plain")
