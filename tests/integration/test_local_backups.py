"""The local provider's backups on the real stack: restic, a streamed dump, staged restores
swapped in and out, maintenance mode; the provider called the way the engine calls it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controlplane.engine.context import ContextBuilder
from controlplane.engine.provider import BackupInvalid, BackupRecord, SiteContext, Staging
from controlplane.kernel.secret_record import note_secret
from controlplane.models import Site
from controlplane.providers.local import LocalProvider
from controlplane.providers.local.backups import BackupStep as LocalBackups
from controlplane.providers.local.backups import parse_location
from controlplane.providers.local.runtime import RuntimeStep as LocalRuntime
from tests.conftest import LOG_FILE, record_files
from tests.dns_server import TxtServer
from tests.integration.test_local_sites import LocalEnv, _local_env
from tests.live import local_stack_home
from tests.secret_scan import find_leaks, log_files

pytestmark = pytest.mark.integration
PASSWORD = "backup-key-" + secrets.token_urlsafe(24)
note_secret(PASSWORD, "test backup password")
TITLE = "Crumbs Restored"
POST = "A post that must come back"
PLUGIN = "aipress-test/aipress-test.php"
PLUGIN_SOURCE = """<?php
/* Plugin Name: AIPress test plugin */
add_action('wp_footer', function () { echo '<!-- aipress test plugin -->'; });
"""


@pytest.fixture(scope="module")
def local() -> Iterator[LocalEnv]:
    dns = TxtServer()
    # No platform cron: its runs write to the site's database at any time, and these tests
    # compare the database before and after.
    with local_stack_home("bk", dns_nameservers=dns.address, cron_schedule=False) as settings:
        env_iter = _local_env(settings, dns)
        env = next(env_iter)
        yield env
        _remove_sites(env)
        next(env_iter, None)


def _remove_sites(env: LocalEnv) -> None:
    """Take the test's sites down step by step (the delete kind's own backup step is the
    engine's and changes with this issue): no system user or firewall entry is left."""
    platform = env.client.app.state.platform  # type: ignore[attr-defined]
    provider: LocalProvider = platform.provider
    with platform.sessions() as session:
        for site in session.query(Site).all():
            ctx = ContextBuilder(platform.keyring).change(session, site, None)
            for step in (provider.wordpress, provider.dns, provider.runtime, provider.storage,
                         provider.secrets, provider.database):  # fmt: skip
                step.remove(ctx)


@dataclass
class Bound:
    """A site's context (with the test's backup key) and its provider."""

    ctx: SiteContext
    provider: LocalProvider

    @property
    def backups(self) -> LocalBackups:
        assert isinstance(self.provider.backups, LocalBackups)
        return self.provider.backups

    @property
    def runtime(self) -> LocalRuntime:
        assert isinstance(self.provider.runtime, LocalRuntime)
        return self.provider.runtime


@contextmanager
def bound(local: LocalEnv, name: str) -> Iterator[Bound]:
    """The site's context as the engine builds one for a change, kept while in use."""
    platform = local.client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        site = session.query(Site).filter_by(tenant_id="acme", name=name).one()
        ctx = ContextBuilder(platform.keyring).change(session, site, None)
        ctx.backup_password = PASSWORD
        yield Bound(ctx, platform.provider)
        site.resources = dict(ctx.resources)
        session.commit()


def _host(name: str) -> str:
    return f"{name}.acme.localhost"


def _php(local: LocalEnv, name: str, code: str) -> str:
    """Run PHP with WordPress loaded, as the site's user (as a plugin would)."""
    res = local.resources(name)
    htdocs = Path(res["storage"]["root"]) / "htdocs"
    script = (
        f"<?php $_SERVER['HTTP_HOST'] = '{_host(name)}:{local.settings.site_port}';"
        f"$_SERVER['REQUEST_URI'] = '/'; require '{htdocs}/wp-load.php';\n{code}"
    )
    done = subprocess.run(
        ["runuser", "-u", res["storage"]["user"], "--", "php", "--"],
        input=script, capture_output=True, text=True, check=False, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def _write_as_site(local: LocalEnv, name: str, rel: str, data: bytes) -> Path:
    res = local.resources(name)
    path = Path(res["storage"]["root"]) / "htdocs" / "wp-content" / rel
    subprocess.run(
        ["runuser", "-u", res["storage"]["user"], "--", "mkdir", "-p", str(path.parent)],
        check=True,
    )
    path.write_bytes(data)
    shutil.chown(path, res["storage"]["user"], "www-data")
    path.chmod(0o640)
    return path


def _db_state(local: LocalEnv, db: str) -> dict[str, Any]:
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (db,)
        )
        tables = sorted(r[0] for r in cur.fetchall())
        state: dict[str, Any] = {}
        for table in tables:
            cur.execute(f"CHECKSUM TABLE `{db}`.`{table}`")
            state[table] = cur.fetchone()[1]
        return state


def _files_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry of a tree: owner, group, mode, and content hash or link target."""
    state: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            path = Path(dirpath) / entry
            info = path.lstat()
            if path.is_symlink():
                content: str = os.readlink(path)
            elif path.is_file():
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = ""
            state[str(path.relative_to(root))] = (info.st_uid, info.st_gid, info.st_mode, content)
    top = root.lstat()
    state["."] = (top.st_uid, top.st_gid, top.st_mode, "")
    return state


def _schemas(local: LocalEnv, db: str) -> list[str]:
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (db.replace("_", "\\_") + "%",))
        return sorted(r[0] for r in cur.fetchall())


@pytest.fixture(scope="module")
def crumbs_built(local: LocalEnv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A site with a post, an upload and an active plugin, and a copy of its database and
    wp-content as built (root-only) that every test starts from."""
    local.create("crumbs", title=TITLE)
    _php(
        local, "crumbs", f"wp_insert_post(['post_title' => '{POST}', 'post_status' => 'publish']);"
    )
    _php(
        local,
        "crumbs",
        "update_option('aipress_links', ['home' => home_url('/'), 'n' => [home_url('/a')]]);",
    )
    _write_as_site(local, "crumbs", "plugins/" + PLUGIN, PLUGIN_SOURCE.encode())
    _php(
        local, "crumbs",
        f"require_once ABSPATH . 'wp-admin/includes/plugin.php'; activate_plugin('{PLUGIN}');",
    )  # fmt: skip
    photo = secrets.token_bytes(50_000)
    _write_as_site(local, "crumbs", "uploads/2026/12/photo.png", photo)
    res = local.resources("crumbs")
    content = Path(res["storage"]["root"]) / "htdocs" / "wp-content"
    # Older than opcache's file_update_protection (2 s): PHP-FPM caches the plugin at once.
    an_hour_ago = time.time() - 3600
    os.utime(content / "plugins" / PLUGIN, (an_hour_ago, an_hour_ago))
    kept = tmp_path_factory.mktemp("crumbs-built")
    kept.chmod(0o700)
    subprocess.run(["cp", "-a", str(content), str(kept / "wp-content")], check=True)
    db = res["database"]["name"]
    dump = subprocess.run(
        ["mariadb-dump", f"--socket={local.stack.mariadb.socket}", "--user=root",
         "--skip-dump-date", "--", db],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    built = {"photo": photo, "dump": dump, "content": kept / "wp-content", **res}
    built["db_state"], built["files_state"] = _db_state(local, db), _files_state(content)
    return built


@pytest.fixture
def crumbs(local: LocalEnv, crumbs_built: dict[str, Any]) -> dict[str, Any]:
    """The site as built, whatever an earlier test left: out of maintenance, nothing staged or
    kept, its database and wp-content as built, its page cache empty, no cached script."""
    root = Path(crumbs_built["storage"]["root"])
    content = root / "htdocs" / "wp-content"
    db = crumbs_built["database"]["name"]
    with bound(local, "crumbs") as site:
        if site.runtime.in_maintenance(site.ctx):
            site.runtime.maintenance(site.ctx, False)
        site.runtime.purge_page_cache(site.ctx)
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        for side in (f"{db}__restore", f"{db}__previous"):
            cur.execute(f"DROP DATABASE IF EXISTS `{side}`")
        if _db_state(local, db) != crumbs_built["db_state"]:
            cur.execute(f"DROP DATABASE `{db}`")
            cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            subprocess.run(
                ["mariadb", f"--socket={local.stack.mariadb.socket}", "--user=root", db],
                input=crumbs_built["dump"], check=True,
            )  # fmt: skip
    for side in ("wp-content.restore", "wp-content.previous", ".wp-content.restore.partial"):
        shutil.rmtree(root / side, ignore_errors=True)
    if _files_state(content) != crumbs_built["files_state"]:
        shutil.rmtree(content, ignore_errors=True)
        subprocess.run(["cp", "-a", str(crumbs_built["content"]), str(content)], check=True)
    local.stack.phpfpm.reload()  # an earlier test's scripts are not served from the cache
    assert _db_state(local, db) == crumbs_built["db_state"]
    assert _files_state(content) == crumbs_built["files_state"]
    return crumbs_built


def _homepage(
    local: LocalEnv, name: str, headers: dict[str, str] | None = None, *, fresh: bool = False
) -> Any:
    """The homepage as a visitor gets it (page cache included); `fresh`: past the cache, what
    PHP renders now."""
    return local.site_get(_host(name), "/?fresh=1" if fresh else "/", headers=headers)


def _places(site: dict[str, Any]) -> tuple[Path, Path, str]:
    """A site's storage root, its wp-content directory and its database's name."""
    root = Path(site["storage"]["root"])
    return root, root / "htdocs" / "wp-content", site["database"]["name"]


def _backup_id() -> str:
    return secrets.token_hex(16)


def test_backup_break_restore_and_put_the_broken_state_back(
    local: LocalEnv, crumbs: dict[str, Any]
) -> None:
    root, content, db = _places(crumbs)
    good_files = _files_state(content)
    with bound(local, "crumbs") as site:
        record = site.backups.backup(site.ctx, _backup_id())
    assert record.location.startswith("restic:") and set(record.checksums) == {"database", "files"}
    assert record.size_bytes > 50_000 and record.added_bytes > 0

    # Break it: a table dropped, the upload deleted, a fatal error in the active plugin.
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE `{db}`.`wp_postmeta`")
    (content / "uploads" / "2026" / "12" / "photo.png").unlink()
    (content / "plugins" / PLUGIN).write_text("<?php undefined_function_for_this_test();\n")
    assert _homepage(local, "crumbs", fresh=True).status_code == 500
    broken_db, broken_files = _db_state(local, db), _files_state(content)

    with bound(local, "crumbs") as site:
        site.runtime.maintenance(site.ctx, True)
        visitor = local.site_get(_host("crumbs"))
        assert visitor.status_code == 503 and visitor.headers["retry-after"] == "30"
        assert visitor.headers["cache-control"] == "no-store"
        assert "being restored" in visitor.text
        site.backups.verify(site.ctx, record)
        site.backups.check_space(site.ctx, record)
        site.backups.stage(site.ctx, record)
        assert _homepage(local, "crumbs").status_code == 503  # staging touches nothing live
        site.backups.swap(site.ctx)
        probe = _homepage(local, "crumbs", site.runtime.probe_headers(site.ctx))
        assert probe.status_code == 200 and TITLE in probe.text and POST in probe.text
        assert local.site_get(_host("crumbs")).status_code == 503  # visitors wait for the probe
        site.runtime.maintenance(site.ctx, False)
    home = _homepage(local, "crumbs")
    assert home.status_code == 200 and TITLE in home.text and POST in home.text
    assert "aipress test plugin" in home.text
    photo = local.site_get(_host("crumbs"), "/wp-content/uploads/2026/12/photo.png")
    assert photo.status_code == 200 and photo.content == crumbs["photo"]
    # Owners, groups and modes as the site had them (the site's user owns its files).
    assert _files_state(content) == good_files

    with bound(local, "crumbs") as site:
        site.backups.unswap(site.ctx)
    assert _db_state(local, db) == broken_db and _files_state(content) == broken_files
    assert _homepage(local, "crumbs").status_code == 500

    with bound(local, "crumbs") as site:
        site.backups.swap(site.ctx)  # the staged copy is there again: swap it back in
        site.backups.swap(site.ctx)  # a re-run (a resumed operation) changes nothing
        site.backups.discard_previous(site.ctx)
        site.backups.unstage(site.ctx)
    assert _homepage(local, "crumbs").status_code == 200
    assert _schemas(local, db) == [db]
    assert not (root / "wp-content.previous").exists()
    assert not (root / "wp-content.restore").exists()


def test_a_swap_cut_between_the_database_and_the_files_is_finished_by_a_rerun(
    local: LocalEnv, crumbs: dict[str, Any]
) -> None:
    root, content, db = _places(crumbs)
    with bound(local, "crumbs") as site:
        record = site.backups.backup(site.ctx, _backup_id())
        marker = _write_as_site(local, "crumbs", "uploads/after-backup.txt", b"later")
        site.backups.stage(site.ctx, record)
        site.backups.swap(site.ctx)
        # As if killed after the RENAME TABLE, before the directory renames.
        content.rename(root / "wp-content.restore")
        (root / "wp-content.previous").rename(content)
        assert marker.exists()
        site.backups.swap(site.ctx)
        assert not marker.exists() and (root / "wp-content.previous" / "uploads").is_dir()
        assert _schemas(local, db) == sorted([db, f"{db}__previous", f"{db}__restore"])
        # And an unswap cut the same way (database back, files not yet).
        site.backups.unswap(site.ctx)
        content.rename(root / "wp-content.previous")
        (root / "wp-content.restore").rename(content)
        site.backups.unswap(site.ctx)
        assert marker.exists()
        site.backups.unstage(site.ctx)
        marker.unlink()
    assert _schemas(local, db) == [db] and _homepage(local, "crumbs").status_code == 200


def _views_of(local: LocalEnv, db: str) -> dict[str, str]:
    """The schema's views and their definers."""
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s",
            (db,),
        )
        return {str(name): str(definer) for name, definer in cur.fetchall()}


def _view_rows(local: LocalEnv, name: str) -> Any:
    """What the site's views answer, read by the site's own PHP (its database user)."""
    return json.loads(
        _php(
            local,
            name,
            "global $wpdb; echo json_encode(['titles' => $wpdb->get_col("
            "\"SELECT post_title FROM aipress_titles ORDER BY post_title\"), 'count' => "
            "$wpdb->get_var('SELECT n FROM aipress_count'), 'error' => $wpdb->last_error]);",
        )
    )


def test_a_database_with_views_is_restored_with_its_views(local: LocalEnv) -> None:
    local.create("vista", title="Vista")
    db, user = (
        local.resources("vista")["database"]["name"],
        local.resources("vista")["database"]["user"],
    )
    # Made by the site's own code; aipress_count is built on aipress_titles and sorts first.
    _php(
        local, "vista",
        f"wp_insert_post(['post_title' => '{POST}', 'post_status' => 'publish']);"
        "global $wpdb; $wpdb->query(\"CREATE VIEW aipress_titles AS SELECT post_title FROM "
        "{$wpdb->posts} WHERE post_status = 'publish'\");"
        "$wpdb->query('CREATE VIEW aipress_count AS SELECT COUNT(*) AS n FROM aipress_titles');",
    )  # fmt: skip
    good = _view_rows(local, "vista")
    assert POST in good["titles"] and int(good["count"]) >= 1 and not good["error"]
    with bound(local, "vista") as site:
        record = site.backups.backup(site.ctx, "v" * 32)
    # Break it: the posts gone, a view answering something else.
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DELETE FROM `{db}`.`wp_posts`")
    _php(
        local, "vista",
        "global $wpdb; $wpdb->query(\"CREATE OR REPLACE VIEW aipress_titles AS "
        "SELECT 'broken' AS post_title\");",
    )  # fmt: skip
    broken = _view_rows(local, "vista")
    assert broken["titles"] == ["broken"] and broken["count"] == "1"

    with bound(local, "vista") as site:
        site.backups.stage(site.ctx, record)
        site.backups.swap(site.ctx)
        assert _view_rows(local, "vista") == good
        # The definer is the site's database user (root's rights are never lent to a view).
        assert set(_views_of(local, db).values()) == {f"{user}@127.0.0.1"}
        assert set(_views_of(local, f"{db}__previous")) == {"aipress_count", "aipress_titles"}
        site.backups.unswap(site.ctx)
        assert _view_rows(local, "vista") == broken
        # A swap killed right after its RENAME TABLE: the re-run brings the views over.
        with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE "
                "TABLE_SCHEMA IN (%s, %s) AND TABLE_TYPE = 'BASE TABLE'",
                (db, f"{db}__restore"),
            )
            rows = cur.fetchall()
            cur.execute(f"CREATE DATABASE `{db}__previous`")
            moves = [f"`{s}`.`{t}` TO `{db}__previous`.`{t}`" for s, t in rows if s == db]
            moves += [f"`{s}`.`{t}` TO `{db}`.`{t}`" for s, t in rows if s != db]
            cur.execute("RENAME TABLE " + ", ".join(moves))
        site.backups.swap(site.ctx)
        assert _view_rows(local, "vista") == good
        site.backups.swap(site.ctx)  # and once more: nothing changes
        assert _view_rows(local, "vista") == good
        site.backups.discard_previous(site.ctx)
        site.backups.unstage(site.ctx)
    assert _schemas(local, db) == [db] and set(_views_of(local, db)) == {
        "aipress_count",
        "aipress_titles",
    }
    assert _view_rows(local, "vista") == good


def _triggers_of(local: LocalEnv, db: str) -> dict[str, tuple[str, str]]:
    """The schema's triggers: name -> (their table, definer)."""
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, DEFINER FROM "
                    "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (db,))  # fmt: skip
        return {str(n): (str(t), str(d)) for n, t, d in cur.fetchall()}


def test_a_table_with_a_trigger_the_sites_php_made_swaps_with_its_trigger(
    local: LocalEnv,
) -> None:
    """RENAME TABLE refuses to move a table with a trigger to another schema (ERROR 1435):
    the swap carries the triggers over, both ways, and they keep firing."""
    local.create("trig", title="Trig")
    db, user = (local.resources("trig")["database"][k] for k in ("name", "user"))
    stamp = (
        'global $wpdb; $wpdb->query("CREATE TRIGGER aipress_stamp BEFORE INSERT ON '
        "{$wpdb->posts} FOR EACH ROW SET NEW.post_excerpt = '%s'\");"
    )
    count = ("echo count(get_posts(['post_status' => 'any', 's' => '%s', "
             "'numberposts' => -1]));")  # fmt: skip
    new_post = (
        "wp_insert_post(['post_title' => '%s', 'post_status' => 'publish']); echo get_post("
        "$GLOBALS['wpdb']->get_var(\"SELECT MAX(ID) FROM {$GLOBALS['wpdb']->posts}\"))->post_excerpt;"
    )
    _php(local, "trig", stamp % "from the backup")
    assert _php(local, "trig", new_post % "first") == "from the backup"
    with bound(local, "trig") as site:
        record = site.backups.backup(site.ctx, "t" * 32)
    # Changed after the backup: the trigger stamps something else.
    _php(local, "trig", "global $wpdb; $wpdb->query('DROP TRIGGER aipress_stamp');"
                        + stamp % "after the backup")  # fmt: skip
    assert _php(local, "trig", new_post % "second") == "after the backup"
    with bound(local, "trig") as site:
        site.backups.stage(site.ctx, record)
        site.backups.swap(site.ctx)
        assert _triggers_of(local, db) == {"aipress_stamp": ("wp_posts", f"{user}@127.0.0.1")}
        assert set(_triggers_of(local, f"{db}__previous")) == {"aipress_stamp"}
        assert _php(local, "trig", new_post % "third") == "from the backup"
        assert _php(local, "trig", count % "second") == "0"  # the backup's rows
        site.backups.unswap(site.ctx)
        assert _php(local, "trig", new_post % "fourth") == "after the backup"
        assert _php(local, "trig", count % "second") == "1"
        assert set(_triggers_of(local, f"{db}__restore")) == {"aipress_stamp"}
        site.backups.swap(site.ctx)
        site.backups.discard_previous(site.ctx)
        site.backups.unstage(site.ctx)
    assert _schemas(local, db) == [db]
    assert _php(local, "trig", new_post % "fifth") == "from the backup"


def test_the_same_backup_id_takes_one_backup(local: LocalEnv, crumbs: dict[str, Any]) -> None:
    with bound(local, "crumbs") as site:
        first = site.backups.backup(site.ctx, "c" * 32)
        again = site.backups.backup(site.ctx, "c" * 32)
        repo = site.backups.repository("acme", PASSWORD)
        tagged = repo.snapshots([f"aipress-backup={'c' * 32}"])
    assert again == first
    assert sorted(s.tag_value("aipress-part") or "" for s in tagged) == ["database", "files"]
    assert {s.id for s in tagged} == set(parse_location(first.location))


def test_a_second_backup_after_a_1_mb_change_adds_about_1_mb(
    local: LocalEnv, crumbs: dict[str, Any]
) -> None:
    with bound(local, "crumbs") as site:
        site.backups.backup(site.ctx, "d" * 32)
        _write_as_site(local, "crumbs", "uploads/2026/12/new.bin", secrets.token_bytes(1 << 20))
        second = site.backups.backup(site.ctx, "e" * 32)
    assert (1 << 20) <= second.added_bytes < (1 << 20) + 400_000, second.added_bytes


def test_archive_streams_the_database_and_wp_content(
    local: LocalEnv, crumbs: dict[str, Any]
) -> None:
    with bound(local, "crumbs") as site:
        record = site.backups.backup(site.ctx, _backup_id())
        chunks = list(site.backups.archive("acme", PASSWORD, record))
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as archive:
        names = archive.getnames()
        dump = archive.extractfile("database.sql")
        assert dump is not None and b"CREATE TABLE `wp_posts`" in dump.read()
        photo = archive.extractfile("wp-content/uploads/2026/12/photo.png")
        assert photo is not None and photo.read() == crumbs["photo"]
    assert names[:2] == ["database.sql", "wp-content"]


def test_a_site_made_from_another_sites_backup_gets_its_own_address(
    local: LocalEnv, crumbs: dict[str, Any]
) -> None:
    local.create("copy", title="Second Bakery")
    with bound(local, "crumbs") as source:
        record = source.backups.backup(source.ctx, _backup_id())
        old_url = source.backups.preview_url(source.ctx)
    with bound(local, "copy") as site:
        site.backups.stage(site.ctx, record, Staging(old_url))
        site.backups.swap(site.ctx)
        site.backups.discard_previous(site.ctx)
        site.backups.unstage(site.ctx)
    home = _homepage(local, "copy")
    assert home.status_code == 200 and TITLE in home.text and POST in home.text
    port = local.settings.site_port
    assert f"http://{_host('copy')}:{port}" in home.text
    assert _host("crumbs") not in home.text
    # Serialized options keep their lengths: WordPress reads them back (no false/notice).
    links = _php(local, "copy", "echo json_encode(get_option('aipress_links'));")
    new_url = f"http://{_host('copy')}:{port}"
    assert json.loads(links) == {"home": f"{new_url}/", "n": [f"{new_url}/a"]}
    user = local.resources("copy")["storage"]["user"]
    content = Path(local.resources("copy")["storage"]["root"]) / "htdocs" / "wp-content"
    own = pwd.getpwnam(user).pw_uid
    owners = {p.lstat().st_uid for p in [content, *content.rglob("*")]}
    assert owners <= {own, 0}, owners  # the new site's user (root: the linked theme)


def test_the_sites_php_cannot_read_the_repository(local: LocalEnv, crumbs: dict[str, Any]) -> None:
    repo = local.stack.backups_dir / "acme" / "repo"
    assert (repo / "config").is_file()
    user = crumbs["storage"]["user"]
    for target in (repo / "config", local.stack.backups_dir):
        attempt = subprocess.run(
            ["runuser", "-u", user, "--", "ls", "-la", str(target)], capture_output=True, text=True
        )
        assert attempt.returncode != 0 and "Permission denied" in attempt.stderr
    probe = _write_as_site(
        local, "crumbs", "repo-probe.php",
        f"<?php echo json_encode([@file_get_contents('{repo}/config') !== false,"
        f" @scandir('{local.stack.backups_dir}') !== false]);".encode(),
    )  # fmt: skip
    try:
        assert local.site_get(_host("crumbs"), "/wp-content/repo-probe.php").json() == [
            False,
            False,
        ]
    finally:
        probe.unlink()
    assert oct(local.stack.backups_dir.stat().st_mode & 0o777) == "0o700"


def _command_lines() -> list[bytes]:
    lines = []
    for proc in Path("/proc").iterdir():
        try:
            lines.append((proc / "cmdline").read_bytes())
        except OSError:
            continue
    return lines


def test_the_backup_password_is_on_no_command_line(local: LocalEnv, crumbs: dict[str, Any]) -> None:
    seen: list[bytes] = []
    leaked: list[bytes] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            lines = _command_lines()
            seen.extend(line for line in lines if b"restic" in line)
            leaked.extend(line for line in lines if PASSWORD.encode() in line)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with bound(local, "crumbs") as site:
            site.backups.backup(site.ctx, "7" * 32)
    finally:
        done.set()
        watcher.join()
    assert any(b"backup" in line for line in seen)  # the watcher saw restic run
    assert leaked == []


def test_the_backup_password_is_in_no_log(local: LocalEnv, crumbs: dict[str, Any]) -> None:
    with bound(local, "crumbs") as site:
        record = site.backups.backup(site.ctx, "8" * 32)
        site.backups.verify(site.ctx, record)
        site.backups.stage(site.ctx, record)
        site.backups.unstage(site.ctx)
        site.backups.forget("acme", PASSWORD, [record])
    logs = log_files([local.settings.home, LOG_FILE.parent], exclude=record_files())
    assert logs, "no logs found to scan"
    assert find_leaks({PASSWORD: "backup password"}, logs) == []


def test_forget_removes_the_snapshots(local: LocalEnv, crumbs: dict[str, Any]) -> None:
    with bound(local, "crumbs") as site:
        record = site.backups.backup(site.ctx, "a" * 32)
        site.backups.forget("acme", PASSWORD, [record, record])
        site.backups.forget("acme", PASSWORD, [record])  # already gone: no-op
        ids = {s.id for s in site.backups.repository("acme", PASSWORD).snapshots()}
        with pytest.raises(BackupInvalid):
            site.backups.verify(site.ctx, record)
    assert ids.isdisjoint(parse_location(record.location))


def test_a_record_with_a_wrong_checksum_fails_verification(
    local: LocalEnv, crumbs: dict[str, Any]
) -> None:
    with bound(local, "crumbs") as site:
        record = site.backups.backup(site.ctx, _backup_id())
        wrong = BackupRecord(
            record.location, record.size_bytes, record.added_bytes,
            {**record.checksums, "database": "0" * 64},
        )  # fmt: skip
        with pytest.raises(BackupInvalid, match="database"):
            site.backups.verify(site.ctx, wrong)


def test_a_corrupted_backup_fails_verify_and_stage_and_the_site_is_untouched(
    local: LocalEnv, crumbs: dict[str, Any]
) -> None:
    repo = local.stack.backups_dir / "acme" / "repo"
    before = {p for p in (repo / "data").rglob("*") if p.is_file()}
    _write_as_site(local, "crumbs", "uploads/2026/12/unique.bin", secrets.token_bytes(3 << 20))
    with bound(local, "crumbs") as site:
        record = site.backups.backup(site.ctx, "9" * 32)
    new_packs = sorted(
        (p for p in (repo / "data").rglob("*") if p.is_file() and p not in before),
        key=lambda p: p.stat().st_size,
    )
    pack = new_packs[-1]  # the largest new pack holds the new file's data
    mode, intact = pack.stat().st_mode, pack.read_bytes()
    pack.chmod(0o600)
    with pack.open("r+b") as handle:
        handle.seek(pack.stat().st_size // 2)
        handle.write(secrets.token_bytes(64))
    db = crumbs["database"]["name"]
    content = Path(crumbs["storage"]["root"]) / "htdocs" / "wp-content"
    live_db, live_files = _db_state(local, db), _files_state(content)
    try:
        with bound(local, "crumbs") as site:
            with pytest.raises(BackupInvalid):
                site.backups.verify(site.ctx, record)
            with pytest.raises(BackupInvalid):
                site.backups.stage(site.ctx, record)
            site.backups.swap(site.ctx)  # nothing staged: nothing swapped
    finally:
        pack.write_bytes(intact)  # the repository the next test backs up into is whole
        pack.chmod(stat.S_IMODE(mode))
    assert _db_state(local, db) == live_db and _files_state(content) == live_files
    assert _schemas(local, db) == [db]
    assert _homepage(local, "crumbs").status_code == 200


def test_a_swapped_in_script_is_served_at_once_even_with_the_mtime_of_the_cached_one(
    local: LocalEnv, crumbs: dict[str, Any]
) -> None:
    plugin = Path(crumbs["storage"]["root"]) / "htdocs" / "wp-content" / "plugins" / PLUGIN
    with bound(local, "crumbs") as site:
        record = site.backups.backup(site.ctx, _backup_id())
    # A broken plugin with the backed-up one's mtime: opcache's timestamp check (whole
    # seconds) cannot tell the two apart, however long one waits.
    mtime = plugin.stat().st_mtime
    plugin.write_text("<?php undefined_function_for_this_test();\n")
    os.utime(plugin, (mtime, mtime))
    local.stack.phpfpm.reload()  # the broken plugin is what gets cached next
    assert _homepage(local, "crumbs", fresh=True).status_code == 500
    assert _homepage(local, "crumbs", fresh=True).status_code == 500  # served from opcache
    with bound(local, "crumbs") as site:
        site.backups.stage(site.ctx, record)
        site.backups.swap(site.ctx)
        home = _homepage(local, "crumbs")  # at once, no wait, as a visitor gets it
        assert home.status_code == 200 and "aipress test plugin" in home.text
        site.backups.unswap(site.ctx)
        assert _homepage(local, "crumbs").status_code == 500
        site.backups.swap(site.ctx)
        assert _homepage(local, "crumbs").status_code == 200
        site.backups.discard_previous(site.ctx)
        site.backups.unstage(site.ctx)


def test_removing_a_site_after_an_interrupted_restore_leaves_no_side_copy(
    local: LocalEnv, crumbs: dict[str, Any]
) -> None:
    local.create("gone", title="Gone")
    res = local.resources("gone")
    db, root = res["database"]["name"], Path(res["storage"]["root"])
    with bound(local, "gone") as site:
        record = site.backups.backup(site.ctx, _backup_id())
        site.backups.stage(site.ctx, record)
        site.backups.swap(site.ctx)  # the replaced copy kept: <db>__previous, wp-content.previous
        site.backups.stage(site.ctx, record)  # and one staged again
    assert _schemas(local, db) == sorted([db, f"{db}__previous", f"{db}__restore"])
    assert (root / "wp-content.previous").is_dir() and (root / "wp-content.restore").is_dir()
    platform = local.client.app.state.platform  # type: ignore[attr-defined]
    provider: LocalProvider = platform.provider
    with platform.sessions() as session:
        site_row = session.query(Site).filter_by(tenant_id="acme", name="gone").one()
        ctx = ContextBuilder(platform.keyring).change(session, site_row, None)
        for step in (provider.wordpress, provider.dns, provider.runtime, provider.storage,
                     provider.secrets, provider.database):  # fmt: skip
            step.remove(ctx)
    assert _schemas(local, db) == []
    assert not root.exists()
