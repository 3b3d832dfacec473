"""What restic reads of a site and what a restore gives back: no link leads a root process
out of the tenant's wp-content, and no restored file is set-gid to the web server's group."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

import pytest

from controlplane.providers.local.backups import BackupStep, mirror_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
SECRET = b"root-only secret"


def _files(tree: Path) -> dict[str, bytes]:
    found = {}
    for dirpath, _dirs, names in os.walk(tree):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(tree))] = path.read_bytes()
    return found


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    place = tmp_path / "secret"
    place.mkdir(mode=0o700)
    (place / "shadow").write_bytes(SECRET)
    return place


def test_links_are_mirrored_as_links_and_files_as_the_same_inodes(
    tmp_path: Path, secret: Path
) -> None:
    source = tmp_path / "wp-content"
    (source / "uploads").mkdir(parents=True)
    (source / "uploads" / "a.txt").write_bytes(b"tenant file")
    (source / "uploads" / "a.txt").chmod(0o640)
    (source / "out").symlink_to(secret)
    (source / "shadow").symlink_to(secret / "shadow")
    target = tmp_path / "stage" / "wp-content"
    target.parent.mkdir()
    mirror_tree(source, target)
    assert _files(target) == {"uploads/a.txt": b"tenant file"}
    assert os.readlink(target / "out") == str(secret)
    assert os.readlink(target / "shadow") == str(secret / "shadow")
    copied, original = (target / "uploads" / "a.txt").stat(), (source / "uploads/a.txt").stat()
    assert (copied.st_ino, stat.S_IMODE(copied.st_mode)) == (original.st_ino, 0o640)


def test_a_directory_turned_into_a_link_mid_walk_is_not_entered(
    tmp_path: Path, secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "wp-content"
    (source / "a").mkdir(parents=True)
    (source / "a" / "shadow").write_bytes(b"decoy")
    real_stat = os.stat
    flipped: list[bool] = []

    def stat_then_flip(path: object, *args: object, **kwargs: object) -> os.stat_result:
        result = real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
        if path == "a" and not flipped:  # the tenant wins the race right after the look
            flipped.append(True)
            (source / "a").rename(source / "gone")
            (source / "a").symlink_to(secret)
        return result

    monkeypatch.setattr(os, "stat", stat_then_flip)
    target = tmp_path / "stage" / "wp-content"
    target.parent.mkdir()
    mirror_tree(source, target)
    monkeypatch.undo()
    assert flipped
    assert SECRET not in _files(target).values()


def test_a_missing_or_linked_wp_content_mirrors_to_an_empty_directory(
    tmp_path: Path, secret: Path
) -> None:
    (tmp_path / "linked").symlink_to(secret)
    for source in (tmp_path / "missing", tmp_path / "linked"):
        target = tmp_path / f"stage-{source.name}"
        mirror_tree(source, target)
        assert list(target.iterdir()) == []


def test_a_restore_gives_no_file_set_gid_to_the_web_servers_group(tmp_path: Path) -> None:
    tree = tmp_path / "wp-content"
    tree.mkdir()
    tool = tree / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    other = pwd.getpwnam("nobody")
    for path in (tree, tool):
        os.chown(path, other.pw_uid, other.pw_gid)
    tree.chmod(0o2750)
    tool.chmod(0o6755)
    BackupStep._own(tree, "daemon")
    www = grp.getgrnam("www-data").gr_gid
    assert (tool.stat().st_uid, tool.stat().st_gid) == (pwd.getpwnam("daemon").pw_uid, www)
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755
    assert stat.S_IMODE(tree.stat().st_mode) == 0o2750
