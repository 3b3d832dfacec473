"""Import on gcp through the engine (`POST .../import` -> import_site), against a real MariaDB
standing in for Cloud SQL, the GCS emulator and the Cloud Run fake (whose search-replace job
really runs the platform's PHP script against MariaDB): a mariadb-dump of a `blog_` site at
another address, with its uploads, serves at the new address; a dump that reaches for another
site's database fails in its load and leaves nothing; malicious archives are refused with a
4xx before anything changes. Not exercised: real Cloud SQL (the one-off user logs in through
cloud-sql-python-connector there) and real GCS."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest

from controlplane.providers.gcp.imports import upload_statements
from controlplane.providers.site_import import ADMIN_KEPT
from tests.integration.scratch_database import dumped_and_dropped
from tests.integration.test_gcp_provider import Cloud, _create, _databases, cloud
from tests.integration.test_gcp_staging import _finished, _sql

pytestmark = pytest.mark.integration
__all__ = ["cloud"]
OLD = "https://old-bakery.example.org"
NEW = "https://moved.acme.sites.example.com"
TITLE = "Old Origin Bakery"
ADMIN_HASH = "$P$BimportedAdminHashStaysAsItWas0"
IMPORTS = "/v1/tenants/acme/sites/{}/import"


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _wordpress_dump(cloud: Cloud, prefix: str) -> bytes:
    """A WordPress site at OLD with table prefix `prefix`, as mariadb-dump writes it (a
    serialized option, JSON-escaped and plain links, a `;` inside a value), plus a
    DELIMITER block as dumps with routines carry."""
    scratch = f"scratch_{prefix}export"
    serialized = f'a:2:{{s:4:"home";s:{len(OLD) + 6}:"{OLD}/shop/";s:1:"n";i:1;}}'
    statements = [
        f"DROP DATABASE IF EXISTS {_q(scratch)}",
        f"CREATE DATABASE {_q(scratch)}",
        f"CREATE TABLE {_q(scratch)}.{prefix}options (option_id BIGINT AUTO_INCREMENT PRIMARY "
        "KEY, option_name VARCHAR(191) UNIQUE, option_value LONGTEXT, autoload VARCHAR(20) "
        "NOT NULL DEFAULT 'yes')",
        f"CREATE TABLE {_q(scratch)}.{prefix}users (ID BIGINT AUTO_INCREMENT PRIMARY KEY, "
        "user_login VARCHAR(60), user_pass VARCHAR(255), user_nicename VARCHAR(50), "
        "user_email VARCHAR(100), user_registered DATETIME, display_name VARCHAR(250))",
        f"CREATE TABLE {_q(scratch)}.{prefix}usermeta (umeta_id BIGINT AUTO_INCREMENT PRIMARY "
        "KEY, user_id BIGINT, meta_key VARCHAR(255), meta_value LONGTEXT)",
        f"CREATE TABLE {_q(scratch)}.{prefix}posts (ID BIGINT PRIMARY KEY, post_content "
        "LONGTEXT, guid VARCHAR(255))",
    ]
    with cloud.mariadb.connect() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        cur.execute(
            f"INSERT INTO {_q(scratch)}.{prefix}options (option_name, option_value) VALUES "
            "('siteurl', %s), ('home', %s), ('blogname', %s), ('blog_public', '1'), "
            "(%s, 'a:1:{s:13:\"administrator\";a:0:{}}'), ('aipress_probe', %s)",
            (OLD, OLD, TITLE, f"{prefix}user_roles", serialized),
        )
        cur.execute(f"INSERT INTO {_q(scratch)}.{prefix}users VALUES (1, 'admin', %s, 'admin', "
                    "'a@old.example.org', '2020-01-01 00:00:00', 'admin')", (ADMIN_HASH,))  # fmt: skip
        cur.execute(f"INSERT INTO {_q(scratch)}.{prefix}usermeta VALUES (1, 1, %s, %s)",
                    (f"{prefix}capabilities", 'a:1:{s:13:"administrator";b:1;}'))  # fmt: skip
        cur.execute(
            f"INSERT INTO {_q(scratch)}.{prefix}posts VALUES (1, %s, %s)",
            (f'<a href="{OLD}/about/">About</a>; {{"u":"{OLD.replace("/", chr(92) + "/")}"}}',
             f"{OLD}/?p=1"),
        )  # fmt: skip
        conn.commit()
    dump = dumped_and_dropped(cloud.mariadb, scratch)
    return dump + b"DELIMITER ;;\n/*!40101 SET @aipress_x = 'a;\nb' */;;\nDELIMITER ;\n"


def _tar(members: dict[str, bytes | None], *, link: tuple[str, str] | None = None) -> bytes:
    """A .tar.gz of `members` (None: a directory), and a symbolic link when asked."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        if link is not None:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            tar.addfile(info)
    return buffer.getvalue()


def _post(cloud: Cloud, site: str, field: str, body: bytes, admin: str = "keep") -> Any:
    return cloud.client.post(IMPORTS.format(site), headers=cloud.admin,
                             files={field: ("upload.bin", body)},
                             data={"old_url": OLD, "admin": admin})  # fmt: skip


def _bucket(cloud: Cloud, site: str) -> Any:
    [bucket] = [b for b in cloud.storage.list_buckets() if site in b.name]
    return bucket


def _objects(cloud: Cloud, bucket: Any) -> dict[str, bytes]:
    return {b.name: b.download_as_bytes() for b in cloud.storage.list_blobs(bucket.name)
            if not b.name.startswith(".aipress-code/")}  # fmt: skip


def _import_users(cloud: Cloud) -> list[tuple[Any, ...]]:
    return _sql(cloud, "SELECT User FROM mysql.user WHERE User LIKE 'imp\\_%%'")


def _state(cloud: Cloud, db: str, bucket: Any) -> tuple[Any, ...]:
    tables = [r[0] for r in _sql(cloud, "SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = %s ORDER BY 1", (db,))]  # fmt: skip
    rows = {t: _sql(cloud, f"SELECT * FROM {_q(db)}.{_q(t)} ORDER BY 1") for t in tables}
    return rows, _objects(cloud, bucket)


def test_the_dump_splits_as_the_client_would() -> None:
    dump = (b"-- MariaDB dump, it's a comment\n/*!40101 SET NAMES utf8mb4 */;\n\n"
            b"INSERT INTO `t` VALUES ('a;\n-- not a comment','it''s',\"q;\");\n"
            b"DELIMITER ;;\nCREATE PROCEDURE p() BEGIN SELECT 1; END;;\nDELIMITER ;\n"
            b"INSERT INTO `t` VALUES ('\xff\xfe');\n")  # fmt: skip
    assert list(upload_statements(io.BytesIO(dump))) == [
        b"/*!40101 SET NAMES utf8mb4 */",
        b"INSERT INTO `t` VALUES ('a;\n-- not a comment','it''s',\"q;\")",
        b"CREATE PROCEDURE p() BEGIN SELECT 1; END",
        b"INSERT INTO `t` VALUES ('\xff\xfe')",
    ]
    with pytest.raises(Exception, match="ends inside a statement"):
        list(upload_statements(io.BytesIO(b"INSERT INTO `t` VALUES ('cut;\n")))


def test_a_site_from_elsewhere_is_imported_on_gcp_and_bad_uploads_change_nothing(
    cloud: Cloud,
) -> None:
    others = _databases(cloud.mariadb)  # other tests' sites on the shared instance
    assert _create(cloud, "victim")["status"] == "succeeded"
    [victim] = _databases(cloud.mariadb) - others
    _sql(cloud, f"CREATE TABLE {_q(victim)}.wp_options (option_id BIGINT PRIMARY KEY)")
    others |= {victim}
    assert _create(cloud, "moved")["status"] == "succeeded"
    [db] = _databases(cloud.mariadb) - others
    bucket = _bucket(cloud, "moved")
    bucket.blob("2026/01/old-live.jpg").upload_from_string(b"replaced by the import")
    _sql(cloud, f"CREATE TABLE {_q(db)}.wp_options (option_id BIGINT AUTO_INCREMENT PRIMARY "
                "KEY, option_name VARCHAR(191) UNIQUE, option_value LONGTEXT, autoload "
                "VARCHAR(20) NOT NULL DEFAULT 'yes')")  # fmt: skip
    _sql(cloud, f"INSERT INTO {_q(db)}.wp_options (option_name, option_value) VALUES "
                "('blogname', 'Before the import')")  # fmt: skip
    dump = _wordpress_dump(cloud, "blog_")
    before = _state(cloud, db, bucket)

    # Refused before anything is recorded: links, `..`, absolute paths, PHP in uploads, a
    # dump that is not WordPress. Nothing changed, no operation.
    good_content = {"wp-content/": None, "wp-content/uploads/2026/12/bread.txt": b"sourdough"}
    bad = {
        "a link": _tar({"database.sql": dump, **good_content},
                       link=("wp-content/uploads/x", "/etc/passwd")),
        "climbs out": _tar({"database.sql": dump, "wp-content/../../evil.txt": b"x"}),
        "absolute path": _tar({"database.sql": dump, "/wp-content/uploads/a.txt": b"x"}),
        "PHP file": _tar({"database.sql": dump, **good_content,
                          "wp-content/uploads/shell.php.jpg": b"<?php system($_GET[1]);"}),
        "not of a WordPress site": _tar({"database.sql": b"CREATE TABLE `x` (a INT);\n",
                                         **good_content}),
    }  # fmt: skip
    for said, archive in bad.items():
        refused = _post(cloud, "moved", "archive", archive)
        assert refused.status_code == 422, (said, refused.text)
        assert said in refused.json()["detail"], (said, refused.json()["detail"])
    assert _state(cloud, db, bucket) == before
    operations = cloud.client.get("/v1/tenants/acme/operations", headers=cloud.admin)
    assert "import_site" not in {o["kind"] for o in operations.json()}

    # A dump that reaches for another site's database: its load fails (the one-off user has
    # the side schema only), the import is undone, nothing is left anywhere.
    hostile = dump + f"DROP TABLE {_q(victim)}.{_q('wp_options')};\n".encode()
    undone = _finished(cloud, _post(cloud, "moved", "dump", hostile))
    assert undone["status"] == "rolled_back", undone
    assert "denied" in (undone["error"] or ""), undone["error"]
    assert _sql(cloud, "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "%s", (victim,)) == [("wp_options",)]  # fmt: skip
    assert _state(cloud, db, bucket) == before
    assert _databases(cloud.mariadb) - others == {db} and _import_users(cloud) == []
    assert not [n for n in _objects(cloud, bucket) if n.startswith(".aipress-")]

    # The real import: tables renamed to wp_, the address rewritten by the job (serialized
    # lengths, JSON-escaped links; guid kept), the uploads replaced, the title taken.
    content = {**good_content, "wp-content/plugins/hello/hello.php": b"<?php // code"}
    done = _finished(cloud, _post(cloud, "moved", "archive", _tar({"database.sql": dump,
                                                                    **content})))  # fmt: skip
    assert done["status"] == "succeeded", (done.get("error"), done["steps"])
    # The job's report, per table and column, on the operation.
    rewrite = done["rewrite"]
    assert rewrite["tables"]["wp_posts"] == {"post_content": 1}, rewrite
    assert rewrite["tables"]["wp_options"]["option_value"] == 3  # siteurl, home, the probe
    tables = {r[0] for r in _sql(cloud, "SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = %s", (db,))}  # fmt: skip
    assert tables == {"wp_options", "wp_users", "wp_usermeta", "wp_posts"}
    options = dict(_sql(cloud, f"SELECT option_name, option_value FROM {_q(db)}.wp_options"))
    assert (options["siteurl"], options["home"], options["blogname"]) == (NEW, NEW, TITLE)
    assert options["aipress_probe"] == (
        f'a:2:{{s:4:"home";s:{len(NEW) + 6}:"{NEW}/shop/";s:1:"n";i:1;}}')  # fmt: skip
    assert "wp_user_roles" in options and "blog_user_roles" not in options
    assert options[ADMIN_KEPT] == "1"  # admin=keep: the imported admin keeps its password
    assert _sql(cloud, f"SELECT user_login, user_pass FROM {_q(db)}.wp_users") == [
        ("admin", ADMIN_HASH)]  # fmt: skip
    assert _sql(cloud, f"SELECT meta_key FROM {_q(db)}.wp_usermeta") == [("wp_capabilities",)]
    escaped = NEW.replace("/", "\\/")
    assert _sql(cloud, f"SELECT post_content, guid FROM {_q(db)}.wp_posts") == [
        (f'<a href="{NEW}/about/">About</a>; {{"u":"{escaped}"}}', f"{OLD}/?p=1")]  # fmt: skip
    # The uploads replaced the live ones; plugins are the site's code, not imported on gcp.
    assert _objects(cloud, bucket) == {"2026/12/bread.txt": b"sourdough"}
    site = cloud.client.get("/v1/tenants/acme/sites/moved", headers=cloud.admin).json()
    assert (site["title"], site["status"]) == (TITLE, "ready")
    assert _databases(cloud.mariadb) - others == {db} and _import_users(cloud) == []
    for name in ("moved", "victim"):
        assert _finished(cloud, cloud.client.delete(f"/v1/tenants/acme/sites/{name}",
                                                    headers=cloud.admin))["status"] == "succeeded"  # fmt: skip
