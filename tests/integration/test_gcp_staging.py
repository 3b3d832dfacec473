"""The gcp provider's side of staging (issue 16): the fingerprint drift compares against,
and scoped stage/swap/unswap (a promotion of some tables, files or not), against a real
MariaDB standing in for Cloud SQL and the GCS emulator behind the CSEK proxy (the `gcp`
fixture of test_gcp_backups.py). Not exercised: real Cloud SQL (MySQL 8's CHECKSUM TABLE
values) and real GCS (its md5Hash/crc32c of composite objects)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from controlplane.engine.provider import ALL, CopyScope, Staging
from controlplane.providers.gcp.fingerprint import object_hash
from tests.conftest import wait_for_operation
from tests.integration.test_gcp_backups import (
    HOSTILE,
    Crash,
    Gcp,
    _backup_id,
    _crash_after,
    _fill,
    _state,
    gcp,
)
from tests.integration.test_gcp_provider import IMAGE, Cloud, _create, _databases, cloud

pytestmark = pytest.mark.integration
__all__ = ["cloud", "gcp"]  # fixtures shared with the backups' contract tests
POSTS = CopyScope(tables=("wp_posts",), files=False)


def _comments(gcp: Gcp, *rows: tuple[int, str]) -> None:
    gcp.query(f"CREATE TABLE IF NOT EXISTS `{gcp.db}`.wp_comments (comment_ID BIGINT "
              "PRIMARY KEY, comment_content TEXT)")  # fmt: skip
    for row in rows:
        gcp.query(f"INSERT INTO `{gcp.db}`.wp_comments VALUES (%s, %s)", row)


def _table(gcp: Gcp, table: str, db: str | None = None) -> list[tuple[Any, ...]]:
    name = (db or gcp.db).replace("`", "``")
    return gcp.query(f"SELECT * FROM `{name}`.`{table.replace('`', '``')}` ORDER BY 1")


def _schemas(gcp: Gcp) -> set[str]:
    return {r[0] for r in gcp.query("SHOW DATABASES")} & {gcp.db + "__restore",
                                                          gcp.db + "__previous"}  # fmt: skip


def test_the_fingerprint_changes_with_a_row_or_an_object_and_not_otherwise(gcp: Gcp) -> None:
    _fill(gcp)
    gcp.query(f"CREATE TABLE `{gcp.db}`.wp_empty (id INT PRIMARY KEY)")
    first = gcp.backups.fingerprint(gcp.ctx)
    assert set(first.tables) == {"wp_posts", "wp_options", HOSTILE, "wp_empty"}
    assert first.tables["wp_posts"].rows == 1500 and first.tables[HOSTILE].rows == 1
    assert first.tables["wp_empty"].rows == 0 and first.tables["wp_empty"].checksum == 0
    assert first.tables["wp_posts"].checksum != 0
    assert set(first.files) == {"2026/11/cake.jpg", "2026/11/pie.png", "fonts/a b+c.woff2"}
    pie = gcp.uploads.get_blob("2026/11/pie.png")
    assert first.files["2026/11/pie.png"] == f"md5:{pie.md5_hash}"
    # The platform's own objects (a restore's copies, a swap marker) are not the site's.
    gcp.uploads.blob(".aipress-restore/2026/11/pie.png").upload_from_string(b"staged")
    gcp.uploads.blob(".aipress-swap.json").upload_from_string(b"{}")
    assert gcp.backups.fingerprint(gcp.ctx) == first
    # One row edited (same count): that table's checksum only.
    gcp.query(f"UPDATE `{gcp.db}`.wp_posts SET post_title = 'edited' WHERE ID = 7")
    edited = gcp.backups.fingerprint(gcp.ctx)
    assert edited.tables["wp_posts"].rows == 1500
    assert edited.tables["wp_posts"].checksum != first.tables["wp_posts"].checksum
    assert {t: p for t, p in edited.tables.items() if t != "wp_posts"} == {
        t: p for t, p in first.tables.items() if t != "wp_posts"}  # fmt: skip
    assert edited.files == first.files
    # A row added to the hostile table: its count and checksum.
    hostile = HOSTILE.replace("`", "``")
    gcp.query(f"INSERT INTO `{gcp.db}`.`{hostile}` VALUES (2, 'y')")
    added = gcp.backups.fingerprint(gcp.ctx)
    assert added.tables[HOSTILE].rows == 2
    assert added.tables[HOSTILE].checksum != first.tables[HOSTILE].checksum
    # One object rewritten: its hash only; one added, one deleted.
    gcp.uploads.blob("2026/11/pie.png").upload_from_string(b"PNG")
    gcp.uploads.blob("2026/12/new.jpg").upload_from_string(b"new")
    gcp.uploads.blob("2026/11/cake.jpg").delete()
    files = gcp.backups.fingerprint(gcp.ctx).files
    assert set(files) == {"2026/11/pie.png", "fonts/a b+c.woff2", "2026/12/new.jpg"}
    assert files["2026/11/pie.png"] != first.files["2026/11/pie.png"]
    assert files["fonts/a b+c.woff2"] == first.files["fonts/a b+c.woff2"]


def test_a_composite_object_without_md5_is_fingerprinted_by_its_crc32c() -> None:
    assert object_hash(SimpleNamespace(md5_hash=None, crc32c="AAAAAA==")) == "crc32c:AAAAAA=="
    assert object_hash(SimpleNamespace(md5_hash="bWQ1", crc32c="AAAAAA==")) == "md5:bWQ1"


def test_a_promotion_of_wp_posts_only_leaves_the_live_comments_alone(gcp: Gcp) -> None:
    _fill(gcp)
    _comments(gcp, (1, "from before the clone"))
    record = gcp.backups.backup(gcp.ctx, _backup_id())  # the staging site's content
    staged_posts = _table(gcp, "wp_posts")
    # Production moves on: a post edited and a comment added after the copy was taken.
    gcp.query(f"UPDATE `{gcp.db}`.wp_posts SET post_title = 'live edit' WHERE ID = 3")
    gcp.query(f"UPDATE `{gcp.db}`.wp_options SET option_value = 'live' WHERE option_id = 1")
    _comments(gcp, (2, "a visitor's comment on production"))
    live_before, files_before = _state(gcp), gcp.live_files()
    comments, options = _table(gcp, "wp_comments"), _table(gcp, "wp_options")
    gcp.query(f"INSERT INTO `{gcp.db}`.`{HOSTILE.replace('`', '``')}` VALUES (2, 'live')")
    hostile = _table(gcp, HOSTILE)
    gcp.uploads.blob("2026/12/live.jpg").upload_from_string(b"uploaded on production")

    with pytest.raises(ValueError, match="the copy has no table wp_nope"):
        gcp.backups.stage(gcp.ctx, record, Staging(scope=CopyScope(tables=("wp_posts", "wp_nope"))))
    assert _schemas(gcp) == set()  # nothing half-made
    gcp.backups.stage(gcp.ctx, record, Staging(scope=POSTS))
    assert [r[0] for r in gcp.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        (gcp.db + "__restore",))] == ["wp_posts"]  # fmt: skip
    assert list(gcp.storage.list_blobs(gcp.uploads.name, prefix=".aipress-restore/")) == []
    gcp.backups.swap(gcp.ctx, POSTS)
    gcp.backups.swap(gcp.ctx, POSTS)  # a re-run changes nothing
    assert _table(gcp, "wp_posts") == staged_posts
    assert _table(gcp, "wp_comments") == comments  # the visitor's comment is still there
    assert _table(gcp, "wp_options") == options
    assert _table(gcp, HOSTILE) == hostile  # the hostile name is not swapped either
    assert {**files_before, "2026/12/live.jpg": b"uploaded on production"} == gcp.live_files()
    previous = gcp.query("SELECT table_name FROM information_schema.tables "
                         "WHERE table_schema = %s", (gcp.db + "__previous",))  # fmt: skip
    assert [r[0] for r in previous] == ["wp_posts"]
    gcp.backups.unswap(gcp.ctx, POSTS)
    gcp.backups.unswap(gcp.ctx, POSTS)  # no-op now
    gcp.uploads.blob("2026/12/live.jpg").delete()
    gcp.query(f"DELETE FROM `{gcp.db}`.`{HOSTILE.replace('`', '``')}` WHERE id = 2")
    assert _state(gcp) == live_before and gcp.live_files() == files_before
    gcp.backups.swap(gcp.ctx, POSTS)
    gcp.backups.discard_previous(gcp.ctx)
    gcp.backups.unstage(gcp.ctx)
    gcp.backups.unswap(gcp.ctx, POSTS)  # after the end: nothing left to undo, nothing undone
    assert _table(gcp, "wp_posts") == staged_posts and _table(gcp, "wp_comments") == comments
    assert _schemas(gcp) == set()


def test_a_scoped_swap_brings_a_table_production_lacks_and_takes_it_back(gcp: Gcp) -> None:
    _fill(gcp)
    record = gcp.backups.backup(gcp.ctx, _backup_id())
    hostile = HOSTILE.replace("`", "``")
    gcp.query(f"DROP TABLE `{gcp.db}`.`{hostile}`")
    gcp.query(f"UPDATE `{gcp.db}`.wp_options SET option_value = 'live' WHERE option_id = 1")
    before = _state(gcp)
    scope = CopyScope(tables=(HOSTILE, "wp_options"), files=False)
    gcp.backups.stage(gcp.ctx, record, Staging(scope=scope))
    gcp.backups.swap(gcp.ctx, scope)
    assert _table(gcp, HOSTILE) == [(1, "x';DROP TABLE wp_posts;--")]
    assert dict((r[1], r[2]) for r in _table(gcp, "wp_options"))["siteurl"] == (
        "https://old.example")  # fmt: skip
    gcp.backups.unswap(gcp.ctx, scope)
    assert _state(gcp) == before  # the table production lacked is gone again


def test_a_files_only_swap_leaves_every_table_alone(gcp: Gcp) -> None:
    _fill(gcp)
    files = gcp.live_files()
    record = gcp.backups.backup(gcp.ctx, _backup_id())
    gcp.uploads.blob("2026/11/pie.png").upload_from_string(b"changed on production")
    gcp.query(f"DELETE FROM `{gcp.db}`.wp_posts WHERE ID > 10")
    live, changed = _state(gcp), gcp.live_files()
    scope = CopyScope(tables=(), files=True)
    gcp.backups.stage(gcp.ctx, record, Staging(scope=scope))
    assert _schemas(gcp) == set()  # no table staged
    gcp.backups.swap(gcp.ctx, scope)
    assert gcp.live_files() == files and _state(gcp) == live
    gcp.backups.unswap(gcp.ctx, scope)
    assert gcp.live_files() == changed and _state(gcp) == live


@pytest.mark.parametrize("moves", [0, 2, 3, 5])
def test_a_scoped_swap_killed_between_object_moves_is_finished_or_undone_in_its_scope(
    gcp: Gcp, monkeypatch: pytest.MonkeyPatch, moves: int
) -> None:
    _fill(gcp)
    _comments(gcp, (1, "before"))
    files_copy = gcp.live_files()
    record = gcp.backups.backup(gcp.ctx, _backup_id())
    posts_copy = _table(gcp, "wp_posts")
    gcp.query(f"DELETE FROM `{gcp.db}`.wp_posts WHERE ID > 10")
    _comments(gcp, (2, "after"))
    gcp.uploads.blob("2026/11/cake.jpg").delete()
    gcp.uploads.blob("2026/12/new.jpg").upload_from_string(b"after the copy")
    live, files_live = _state(gcp), gcp.live_files()
    comments = _table(gcp, "wp_comments")
    scope = CopyScope(tables=("wp_posts",), files=True)
    gcp.backups.stage(gcp.ctx, record, Staging(scope=scope))
    with monkeypatch.context() as patch:
        _crash_after(patch, moves)
        with pytest.raises(Crash):
            gcp.backups.swap(gcp.ctx, scope)
    marker = json.loads(gcp.uploads.blob(".aipress-swap.json").download_as_bytes())
    assert (marker["tables"], marker["files"]) == (["wp_posts"], True)
    # The half-done swap is finished or undone in its own scope, never in another.
    with pytest.raises(RuntimeError, match="under way with another scope"):
        gcp.backups.unswap(gcp.ctx, ALL)
    with pytest.raises(RuntimeError, match="under way with another scope"):
        gcp.backups.swap(gcp.ctx, CopyScope(tables=("wp_posts",), files=False))
    gcp.backups.unswap(gcp.ctx, scope)
    assert _state(gcp) == live and gcp.live_files() == files_live
    with monkeypatch.context() as patch:
        _crash_after(patch, moves)
        with pytest.raises(Crash):
            gcp.backups.swap(gcp.ctx, scope)
    gcp.backups.swap(gcp.ctx, scope)
    assert _table(gcp, "wp_posts") == posts_copy and gcp.live_files() == files_copy
    assert _table(gcp, "wp_comments") == comments  # out of scope: production's, both rows


def _finished(cloud: Cloud, response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    return wait_for_operation(cloud.client, response.json()["operation"]["id"], cloud.admin, 60)


def _service(cloud: Cloud, db: str) -> dict[str, Any]:
    [service] = [s for s in cloud.run.services.values() if db in str(s["template"])]
    return service


def _sql(cloud: Cloud, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with cloud.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        rows = list(cur.fetchall())
        conn.commit()
        return rows


def test_clone_drift_promote_and_rollback_through_the_engine(cloud: Cloud) -> None:
    """Clone on gcp: a backup of the parent and a second site made from it (its own
    database, user, bucket and Cloud Run service, with the platform's image and the tenant's
    env, not indexed); drift from the gcp fingerprint; a promotion of wp_posts only."""
    env = {"vars": {"REGION": {"value": "eu"}, "STRIPE_KEY": {"value": "sk_1", "secret": True}}}
    assert _finished(cloud, cloud.client.put("/v1/tenants/acme/env", headers=cloud.admin,
                                             json=env))["status"] == "succeeded"  # fmt: skip
    others = _databases(cloud.mariadb)  # other tests' sites on the shared instance
    assert _create(cloud, "crumbs")["status"] == "succeeded"
    [parent_db] = _databases(cloud.mariadb) - others
    old = "https://crumbs.acme.sites.example.com"
    _sql(cloud, f"CREATE TABLE `{parent_db}`.wp_options (option_id INT AUTO_INCREMENT "
                "PRIMARY KEY, option_name VARCHAR(191) UNIQUE, option_value LONGTEXT)")  # fmt: skip
    _sql(cloud, f"INSERT INTO `{parent_db}`.wp_options VALUES (1, 'siteurl', %s), "
                "(2, 'home', %s), (3, 'blog_public', '1')", (old, old))  # fmt: skip
    _sql(cloud, f"CREATE TABLE `{parent_db}`.wp_posts (ID BIGINT PRIMARY KEY, "
                "post_content LONGTEXT)")  # fmt: skip
    _sql(cloud, f"INSERT INTO `{parent_db}`.wp_posts VALUES (1, %s)",
         (f'<a href="{old}/about/">About</a>',))  # fmt: skip
    _sql(cloud, f"CREATE TABLE `{parent_db}`.wp_comments (comment_ID BIGINT PRIMARY KEY, "
                "comment_content TEXT)")  # fmt: skip
    [parent_bucket] = [b for b in cloud.storage.list_buckets() if "crumbs" in b.name]
    parent_bucket.blob("2026/11/cake.jpg").upload_from_string(b"jpeg bytes")
    clone = "/v1/tenants/acme/sites/crumbs/clone"

    # An HTTP login is the local provider's only: refused, and nothing is made.
    refused = cloud.client.post(clone, headers=cloud.admin,
                                json={"name": "crumbs-staging", "basic_auth": True})  # fmt: skip
    assert refused.status_code == 400
    assert "basic auth for staging sites is local-only for now" in refused.text
    assert [s["name"] for s in cloud.client.get("/v1/tenants/acme/sites",
                                                headers=cloud.admin).json()] == ["crumbs"]  # fmt: skip

    made = cloud.client.post(clone, headers=cloud.admin, json={"name": "crumbs-staging"})
    assert (made.json()["site"]["role"], made.json()["site"]["parent"]) == ("staging", "crumbs")
    final = _finished(cloud, made)
    assert final["status"] == "succeeded", final.get("error")
    [staging_db] = _databases(cloud.mariadb) - others - {parent_db}  # no side schema left
    new = "https://crumbs-staging.acme.sites.example.com"
    options = dict(_sql(cloud, f"SELECT option_name, option_value FROM `{staging_db}`.wp_options"))
    assert (options["siteurl"], options["blog_public"]) == (new, "0")  # not indexed
    assert _sql(cloud, f"SELECT post_content FROM `{staging_db}`.wp_posts") == [
        (f'<a href="{new}/about/">About</a>',)]  # fmt: skip
    assert dict(_sql(cloud, f"SELECT option_name, option_value FROM `{parent_db}`.wp_options"))[
        "blog_public"] == "1"  # fmt: skip
    users = dict(_sql(cloud, "SELECT db, user FROM mysql.db WHERE db IN (%s, %s)",
                      (parent_db.replace("_", "\\_"), staging_db.replace("_", "\\_"))))  # fmt: skip
    assert len(set(users.values())) == 2  # its own database user
    [staging_bucket] = [b for b in cloud.storage.list_buckets()
                        if "crumbs" in b.name and b.name != parent_bucket.name]  # fmt: skip
    assert [b.name for b in cloud.storage.list_blobs(staging_bucket.name)] == ["2026/11/cake.jpg"]
    assert staging_bucket.blob("2026/11/cake.jpg").download_as_bytes() == b"jpeg bytes"
    # Its own service: the same image as the parent's, the tenant's env by reference.
    parent, staging = _service(cloud, parent_db), _service(cloud, staging_db)
    assert parent is not staging
    for service in (parent, staging):
        [container] = service["template"]["containers"]
        assert container["image"] == IMAGE
        refs = {e["name"]: e["valueSource"]["secretKeyRef"]["secret"]
                for e in container["env"] if "valueSource" in e}  # fmt: skip
        assert refs["REGION"].endswith("aipress-acme--env--REGION")
        assert refs["STRIPE_KEY"].endswith("aipress-acme--env--STRIPE_KEY")
    [container] = staging["template"]["containers"]
    plain = {e["name"]: e.get("value") for e in container["env"]}
    assert plain["WORDPRESS_DB_NAME"] == staging_db and plain["WORDPRESS_SITE_URL"] == new
    volumes = {v["name"]: v for v in staging["template"]["volumes"]}
    assert volumes["uploads"]["gcs"]["bucket"] == staging_bucket.name

    # Drift, from the gcp fingerprint: nothing yet, then a comment on production.
    drift = "/v1/tenants/acme/sites/crumbs-staging/drift"
    assert cloud.client.get(drift, headers=cloud.admin).json()["changed"] is False
    _sql(cloud, f"INSERT INTO `{parent_db}`.wp_comments VALUES (1, 'a visitor')")
    report = cloud.client.get(drift, headers=cloud.admin).json()
    assert report["changed"] is True
    assert [t["table"] for t in report["tables"] if t["changed"]] == ["wp_comments"]
    # Staging edits its post; promoting everything would overwrite the comment: refused.
    _sql(cloud, f"UPDATE `{staging_db}`.wp_posts SET post_content = %s",
         (f'<a href="{new}/menu/">Menu</a>',))  # fmt: skip
    promote = "/v1/tenants/acme/sites/crumbs-staging/promote"
    assert cloud.client.post(promote, headers=cloud.admin, json={}).status_code == 409
    promoted = cloud.client.post(promote, headers=cloud.admin, json={"tables": ["wp_posts"],
                                                                      "scope": "database"})  # fmt: skip
    final = _finished(cloud, promoted)
    assert final["status"] == "succeeded", final.get("error")
    assert _sql(cloud, f"SELECT post_content FROM `{parent_db}`.wp_posts") == [
        (f'<a href="{old}/menu/">Menu</a>',)]  # staging's edit, at production's address  # fmt: skip
    assert _sql(cloud, f"SELECT * FROM `{parent_db}`.wp_comments") == [(1, "a visitor")]
    assert dict(_sql(cloud, f"SELECT option_name, option_value FROM `{parent_db}`.wp_options"))[
        "blog_public"] == "1"  # fmt: skip
    assert _databases(cloud.mariadb) - others == {parent_db, staging_db}  # no side schema
    rollback = cloud.client.post("/v1/tenants/acme/sites/crumbs/rollback", headers=cloud.admin)
    assert _finished(cloud, rollback)["status"] == "succeeded"
    assert _sql(cloud, f"SELECT post_content FROM `{parent_db}`.wp_posts") == [
        (f'<a href="{old}/about/">About</a>',)]  # fmt: skip
    for site in ("crumbs-staging", "crumbs"):
        assert _finished(cloud, cloud.client.delete(f"/v1/tenants/acme/sites/{site}",
                                                    headers=cloud.admin))["status"] == "succeeded"  # fmt: skip


def test_an_owners_discourage_search_engines_stays_and_staging_is_hidden(gcp: Gcp) -> None:
    """The platform turns indexing off on staging and back on only where it turned it off
    (options promoted from staging), never over the owner's own choice."""
    gcp.query(f"CREATE TABLE `{gcp.db}`.wp_options (option_id BIGINT AUTO_INCREMENT PRIMARY "
              "KEY, option_name VARCHAR(191) UNIQUE, option_value LONGTEXT)")  # fmt: skip
    gcp.query(f"INSERT INTO `{gcp.db}`.wp_options (option_name, option_value) "
              "VALUES ('blog_public', '0')")  # fmt: skip

    def options() -> dict[str, str]:
        rows = gcp.query(f"SELECT option_name, option_value FROM `{gcp.db}`.wp_options")
        return {str(k): str(v) for k, v in rows}

    wordpress = gcp.provider.wordpress
    gcp.ctx.public = True
    wordpress.set_public(gcp.ctx)  # type: ignore[attr-defined]
    assert options() == {"blog_public": "0"}  # the owner's choice
    gcp.ctx.public = False
    wordpress.set_public(gcp.ctx)  # type: ignore[attr-defined]
    wordpress.set_public(gcp.ctx)  # type: ignore[attr-defined]
    assert options() == {"blog_public": "0", "aipress_hidden_by_platform": "1"}
    gcp.ctx.public = True  # these options promoted into production
    wordpress.set_public(gcp.ctx)  # type: ignore[attr-defined]
    assert options() == {"blog_public": "1"}
