"""Import on the real local stack (MariaDB, PHP-FPM, nginx, WordPress): a site exported with
another address and table prefix (`blog_`) is imported into a site at a new address and
serves there (title, a post, a serialized option, an upload, the admin); a dump that reaches
for another database fails in its load (the uploaded SQL runs as a user with rights on the
side schema only) and leaves both sites as they were; a PHP file in uploads is refused."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from controlplane.providers.local.backups import _ident
from tests.conftest import wait_for_operation
from tests.integration.scratch_database import dumped_and_dropped
from tests.integration.test_local_backups import _host, _php, _write_as_site
from tests.integration.test_local_sites import SITES, LocalEnv, local_env_fixture

pytestmark = pytest.mark.integration
TITLE = "Old Origin Bakery"
POST = "A post that moved house"
UPLOAD = "uploads/2026/12/bread.txt"


local = local_env_fixture("im")


def _dump_with_prefix(local: LocalEnv, database: str, prefix: str) -> bytes:
    """The site's database as a site with table prefix `prefix` would dump it: every table
    copied to a scratch schema under the new prefix, the prefix-bearing keys renamed, then
    mariadb-dump of that schema (a real dump: serialized options and all)."""
    scratch = f"{database[:40]}_export"
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {_ident(scratch)}")
        cur.execute(f"CREATE DATABASE {_ident(scratch)}")
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (database,),
        )
        for (table,) in cur.fetchall():
            new = prefix + str(table).removeprefix("wp_")
            cur.execute(f"CREATE TABLE {_ident(scratch)}.{_ident(new)} LIKE "
                        f"{_ident(database)}.{_ident(table)}")  # fmt: skip
            cur.execute(f"INSERT INTO {_ident(scratch)}.{_ident(new)} SELECT * FROM "
                        f"{_ident(database)}.{_ident(table)}")  # fmt: skip
        cur.execute(f"UPDATE {_ident(scratch)}.{prefix}options SET option_name = %s "
                    "WHERE option_name = 'wp_user_roles'", (f"{prefix}user_roles",))  # fmt: skip
        cur.execute(f"UPDATE {_ident(scratch)}.{prefix}usermeta SET meta_key = "
                    "CONCAT(%s, SUBSTRING(meta_key, 4)) WHERE meta_key LIKE 'wp\\_%%'",
                    (prefix,))  # fmt: skip
    return dumped_and_dropped(local.stack.mariadb, scratch)


def _archive(dump: bytes, wp_content: Path | None, extra: dict[str, bytes] | None = None) -> bytes:
    """database.sql + wp-content/ (its links and the platform's must-use plugins left out)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("database.sql")
        info.size = len(dump)
        tar.addfile(info, io.BytesIO(dump))
        if wp_content is not None:
            for dirpath, dirnames, filenames in os.walk(wp_content):
                dirnames[:] = [d for d in dirnames if d != "mu-plugins"]
                for name in sorted(dirnames + filenames):
                    path = Path(dirpath) / name
                    if path.is_symlink():
                        continue
                    arc = "wp-content/" + str(path.relative_to(wp_content))
                    member = tar.gettarinfo(str(path), arc)
                    member.mode &= 0o777
                    if member.isreg():
                        with path.open("rb") as handle:
                            tar.addfile(member, handle)
                    elif member.isdir():
                        tar.addfile(member)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _import(
    local: LocalEnv, site: str, archive: bytes, old_url: str, admin: str, field: str = "archive"
) -> Any:
    return local.client.post(
        f"{SITES}/{site}/import",
        files={field: ("upload.bin", archive)},
        data={"old_url": old_url, "admin": admin},
        headers=local.admin,
    )


def _schemas(local: LocalEnv) -> list[str]:
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        return sorted(str(row[0]) for row in cur.fetchall())


def _import_users(local: LocalEnv) -> list[str]:
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT User FROM mysql.user WHERE User LIKE 'imp\\_%%'")
        return [str(row[0]) for row in cur.fetchall()]


def _leftovers(local: LocalEnv) -> list[str]:
    root = local.settings.home / "imports"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _origin(local: LocalEnv) -> tuple[dict[str, Any], bytes, Path]:
    """The site exported: a post linking to itself, a serialized option holding its
    address, an upload; dumped as a `blog_` site."""
    origin = local.create("origin", title=TITLE)
    url = origin["preview_url"].rstrip("/")
    _php(local, "origin", f"wp_insert_post(['post_title' => '{POST}', 'post_status' => "
                          f"'publish', 'post_content' => 'see {url}/about/']);"
                          f"update_option('aipress_probe', ['home' => '{url}/shop/', 'n' => 1]);")  # fmt: skip
    _write_as_site(local, "origin", UPLOAD, b"sourdough")
    resources = local.resources("origin")
    dump = _dump_with_prefix(local, resources["database"]["name"], "blog_")
    assert b"CREATE TABLE `blog_options`" in dump and b"blog_user_roles" in dump
    return origin, dump, Path(resources["storage"]["root"]) / "htdocs" / "wp-content"


def test_a_site_from_elsewhere_serves_at_its_new_address(local: LocalEnv) -> None:
    origin, dump, wp_content = _origin(local)
    old_url = origin["preview_url"].rstrip("/")
    target = local.create("moved", title="Before the import")
    schemas_before = _schemas(local)

    answer = _import(local, "moved", _archive(dump, wp_content), old_url, "reset")
    assert answer.status_code == 202, answer.text
    final = wait_for_operation(local.client, answer.json()["operation"]["id"], local.admin,
                               timeout=300)  # fmt: skip
    assert final["status"] == "succeeded", (final["error"], final["steps"])

    new_url = target["preview_url"].rstrip("/")
    home = local.site_get(_host("moved"))
    assert home.status_code == 200 and TITLE in home.text, home.text[:500]
    assert _host("origin") not in home.text
    content = _php(local, "moved", "foreach (get_posts() as $p) echo $p->post_title, '|', "
                                   "$p->post_content, \"\\n\";")  # fmt: skip
    assert f"{POST}|see {new_url}/about/" in content, content
    probe = _php(local, "moved", "echo json_encode(get_option('aipress_probe'));")
    assert json.loads(probe) == {"home": f"{new_url}/shop/", "n": 1}, probe
    served = local.site_get(_host("moved"), f"/wp-content/{UPLOAD}")
    assert served.status_code == 200 and served.text == "sourdough"
    # The imported users keep their roles under the site's prefix; the platform's admin is one.
    roles = _php(local, "moved", "echo implode(',', array_keys(wp_roles()->roles)), '|', "
                                 "user_can(get_user_by('login', 'admin'), 'manage_options') "
                                 "? 'admin' : 'not-admin';")  # fmt: skip
    assert roles.startswith("administrator,") and roles.endswith("|admin"), roles
    renamed = _php(local, "moved", "global $wpdb; echo $wpdb->get_var(\"SELECT COUNT(*) FROM "
                                   "$wpdb->usermeta WHERE meta_key LIKE 'blog\\\\_%'\");")  # fmt: skip
    assert renamed == "0", renamed
    tables = _php(local, "moved", "global $wpdb; echo implode(',', $wpdb->get_col('SHOW TABLES'));")
    assert "wp_options" in tables and "blog_" not in tables, tables
    # Nothing beside the site is left: schemas, the import's database user, the upload.
    assert _schemas(local) == schemas_before
    assert _import_users(local) == [] and _leftovers(local) == []
    # The origin is untouched.
    assert TITLE in local.site_get(_host("origin")).text


def test_a_dump_that_reaches_for_another_database_fails_and_changes_nothing(
    local: LocalEnv,
) -> None:
    victim = local.resources("origin")["database"]["name"]
    local.create("reacher", title="Reacher Before")
    dump = _dump_with_prefix(local, local.resources("reacher")["database"]["name"], "x_")
    hostile = dump + f"DROP TABLE {_ident(victim)}.`wp_posts`;\n".encode()
    answer = _import(local, "reacher", hostile, "http://old.example", "keep", field="dump")
    assert answer.status_code == 202, answer.text
    final = wait_for_operation(local.client, answer.json()["operation"]["id"], local.admin,
                               timeout=300)  # fmt: skip
    assert final["status"] == "rolled_back", final
    assert "denied" in (final["error"] or ""), final
    assert POST in _php(local, "origin", "foreach (get_posts() as $p) echo $p->post_title;")
    home = local.site_get(_host("reacher"))
    assert home.status_code == 200 and "Reacher Before" in home.text
    assert _import_users(local) == [] and _leftovers(local) == []
    assert not [s for s in _schemas(local) if s.endswith(("__restore", "__previous"))]


def test_php_in_uploads_is_refused_on_the_real_stack(local: LocalEnv) -> None:
    local.create("guarded", title="Guarded")
    dump = _dump_with_prefix(local, local.resources("guarded")["database"]["name"], "g_")
    archive = _archive(
        dump, None, {"wp-content/uploads/2026/shell.pHp": b"<?php system($_GET[1]);"}
    )
    answer = _import(local, "guarded", archive, "http://old.example", "keep")
    assert answer.status_code == 422 and "PHP file" in answer.json()["detail"], answer.text
    assert _leftovers(local) == []
    assert "Guarded" in local.site_get(_host("guarded")).text


def test_admin_keep_leaves_an_imported_admins_own_password(local: LocalEnv) -> None:
    """The origin's own `admin` (the platform's admin name) comes along with admin=keep: its
    password hash stays the origin's, never replaced by the vault's."""
    hash_php = "echo get_user_by('login', 'admin')->user_pass;"
    origin_hash = _php(local, "origin", hash_php)
    assert origin_hash.startswith("$"), origin_hash
    dump = _dump_with_prefix(local, local.resources("origin")["database"]["name"], "k_")
    local.create("keeper", title="Keeper Before")
    vault_hash = _php(local, "keeper", hash_php)
    old_url = local.client.get(f"{SITES}/origin", headers=local.admin).json()["preview_url"]
    answer = _import(local, "keeper", dump, old_url, "keep", field="dump")
    assert answer.status_code == 202, answer.text
    final = wait_for_operation(local.client, answer.json()["operation"]["id"], local.admin,
                               timeout=300)  # fmt: skip
    assert final["status"] == "succeeded", (final["error"], final["steps"])
    # The import's probe ran the WordPress step, which sets the vault's password on the
    # platform's admin: not on this imported one.
    kept = _php(local, "keeper", hash_php)
    assert kept == origin_hash and kept != vault_hash
