"""Drift in words from two fingerprints; the local fingerprint of a hostile wp-content tree;
copy scopes; the staging site's htpasswd line."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path

from controlplane.engine.drift import compare
from controlplane.engine.provider import ALL, CopyScope, Fingerprint, TablePrint
from controlplane.providers.local.backups import file_hashes
from controlplane.providers.local.runtime import htpasswd_line, htpasswd_matches


def _print(**tables: tuple[int, int]) -> dict[str, TablePrint]:
    return {name: TablePrint(rows=r, checksum=c) for name, (r, c) in tables.items()}


def test_changes_are_said_in_nouns_and_meta_tables_follow_their_main_one() -> None:
    then = Fingerprint(
        tables=_print(wp_comments=(2, 1), wp_commentmeta=(0, 0), wp_options=(90, 1),
                      wp_users=(3, 1), wp_usermeta=(30, 1), wp_wc_orders=(5, 1),
                      wp_postmeta=(10, 1), wp_posts=(8, 1), wp_terms=(4, 1)),
        files={"uploads/a.jpg": "1", "plugins/p.php": "2"},
    )  # fmt: skip
    now = Fingerprint(
        tables=_print(wp_comments=(5, 2), wp_commentmeta=(3, 2), wp_options=(90, 2),
                      wp_users=(2, 2), wp_usermeta=(20, 2), wp_wc_orders=(6, 2),
                      wp_postmeta=(10, 2), wp_posts=(8, 1), wp_terms=(4, 1),
                      wp_new_plugin_table=(1, 1)),
        files={"uploads/a.jpg": "9", "uploads/b.jpg": "3"},
    )  # fmt: skip
    drift = compare(then, now)
    assert drift.summary == [
        "3 new comments",  # wp_commentmeta goes with it
        "new table wp_new_plugin_table",
        "wp_options changed",
        "wp_postmeta changed",  # wp_posts itself did not change: said on its own
        "1 user removed",
        "1 new order",
        "1 file changed in plugins",
        "2 files changed in uploads",
    ]
    assert drift.added == ["uploads/b.jpg"] and drift.removed == ["plugins/p.php"]
    assert drift.changed == ["uploads/a.jpg"]
    assert [t.table for t in drift.tables if t.changed] == [
        "wp_commentmeta", "wp_comments", "wp_new_plugin_table", "wp_options", "wp_postmeta",
        "wp_usermeta", "wp_users", "wp_wc_orders",
    ]  # fmt: skip
    posts = CopyScope(tables=("wp_posts", "wp_terms"), files=False)
    assert drift.conflicts(posts) == []
    assert drift.conflicts(CopyScope(tables=("wp_posts", "wp_postmeta"), files=False)) == [
        "wp_postmeta"
    ]
    assert drift.conflicts(CopyScope(tables=(), files=True)) == ["files"]
    assert "wp_comments" in drift.conflicts(ALL) and "files" in drift.conflicts(ALL)


def test_no_change_is_no_drift() -> None:
    same = Fingerprint(tables=_print(wp_posts=(1, 7)), files={"uploads/x": "1"})
    drift = compare(same, same)
    assert not drift.any and drift.summary == [] and drift.conflicts(ALL) == []


def test_a_scope_covers_its_tables_only() -> None:
    assert ALL.covers("wp_anything") and ALL.files
    scoped = CopyScope(tables=("wp_posts",), files=False)
    assert scoped.covers("wp_posts") and not scoped.covers("wp_comments")


def test_wp_content_is_hashed_without_following_links_or_reading_caches(tmp_path: Path) -> None:
    root = tmp_path / "wp-content"
    (root / "uploads" / "2026").mkdir(parents=True)
    (root / "uploads" / "2026" / "cake.jpg").write_bytes(b"cake")
    (root / "cache" / "page").mkdir(parents=True)
    (root / "cache" / "page" / "index.html").write_bytes(b"regenerated")
    (root / "themes" / "t" / "cache").mkdir(parents=True)
    (root / "themes" / "t" / "cache" / "kept.css").write_bytes(b"a theme's own dir")
    secret = tmp_path / "root-only.txt"
    secret.write_bytes(b"not the tenant's")
    (root / "uploads" / "link.txt").symlink_to(secret)
    (root / "uploads" / "linked-dir").symlink_to(tmp_path)
    os.mkfifo(root / "uploads" / "pipe")
    hashes = file_hashes(root)
    assert hashes == {
        "uploads/2026/cake.jpg": hashlib.sha256(b"cake").hexdigest(),
        "themes/t/cache/kept.css": hashlib.sha256(b"a theme's own dir").hexdigest(),
    }
    assert file_hashes(tmp_path / "missing") == {}
    link = tmp_path / "content-link"
    link.symlink_to(root)
    assert file_hashes(link) == {}  # wp-content itself turned into a link: nothing read


def test_the_htpasswd_line_is_salted_sha1_that_nginx_reads() -> None:
    line = htpasswd_line("staging", "correct horse", salt=b"12345678")
    digest = hashlib.sha1(b"correct horse" + b"12345678").digest()  # noqa: S324
    assert line == f"staging:{{SSHA}}{base64.b64encode(digest + b'12345678').decode()}\n"
    assert htpasswd_matches(htpasswd_line("staging", "pw"), "staging", "pw")
    assert not htpasswd_matches(htpasswd_line("staging", "pw"), "staging", "other")
    assert not htpasswd_matches(htpasswd_line("staging", "pw"), "someone", "pw")
    assert htpasswd_line("staging", "pw") != htpasswd_line("staging", "pw")  # fresh salts


def test_a_huge_sparse_file_is_compared_by_size_and_time_not_read(tmp_path: Path) -> None:
    """A site's PHP can make a 1 TiB file of no blocks: drift must not read it (it runs in
    the API request), yet still see it change."""
    big = tmp_path / "uploads" / "big.bin"
    big.parent.mkdir()
    with big.open("wb") as handle:
        handle.truncate(1 << 40)
    os.utime(big, ns=(1_000_000_000, 2_000_000_000))
    started = time.monotonic()
    first = file_hashes(tmp_path)
    assert time.monotonic() - started < 5
    assert first == {"uploads/big.bin": f"size:{1 << 40}:mtime:2000000000"}
    os.utime(big, ns=(1_000_000_000, 3_000_000_000))
    assert file_hashes(tmp_path) != first
