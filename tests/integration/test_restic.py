"""The restic wrapper against the real restic: stale locks, interrupted streams, errors."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.backups.restic import Restic, ResticError

pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path: Path) -> Restic:
    restic = Restic(tmp_path / "repo", "pw-" + secrets.token_urlsafe(16), tmp_path / "cache")
    restic.init_if_missing()
    restic.init_if_missing()  # a second call finds it
    return restic


def _readable(repo: Restic, lock: str) -> bool:
    """Whether the lock file decrypts (restic writes it in place, not by a rename)."""
    command = repo._command(["cat", "lock", lock, "--no-lock"])
    return subprocess.run(command, env=repo._env(), capture_output=True).returncode == 0


def _lock_holder(repo: Restic) -> subprocess.Popen[bytes]:
    """A `restic tag` (of the latest snapshot) frozen (SIGSTOP) while it holds the
    repository's exclusive lock: the lock stays until the test kills it. Not `check`: its lock
    does not stop a `dump` (restic 0.14)."""
    for _ in range(20):  # a quick tag can finish between two looks at `locks`
        holder = subprocess.Popen(
            repo._command(["tag", "--add", "held", "latest"]), env=repo._env(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not any((repo.repository / "locks").iterdir()) and holder.poll() is None:
            assert time.monotonic() < deadline, "restic tag took no lock"
            time.sleep(0.002)
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGSTOP)
        # Frozen with its lock written whole (caught mid-write, a lock is unreadable, and
        # other commands pass it by): the lock is held.
        locks = [lock.name for lock in (repo.repository / "locks").iterdir()]
        if holder.poll() is None and locks and all(_readable(repo, lock) for lock in locks):
            return holder
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        for stale in (repo.repository / "locks").iterdir():
            stale.unlink()
    raise AssertionError("restic tag never held its lock long enough to be seen")


def test_a_stale_lock_is_removed_and_the_command_retried(repo: Restic) -> None:
    repo.backup_stdin([b"one"], "a.txt", ["t=1"])
    # An exclusive lock left by a restic killed while it held it (a SIGKILLed worker).
    holder = _lock_holder(repo)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert any((repo.repository / "locks").iterdir())
    snapshot = repo.snapshots(["t=1"])[0]
    repo.tag([snapshot.id], add=["t=2"])  # needs the lock: waits, unlocks the stale one
    assert [s.tags for s in repo.snapshots(["t=2"])] == [["t=1", "t=2"]]


def test_a_stream_that_fails_saves_no_snapshot(repo: Restic) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"partial dump"
        raise RuntimeError("mariadb-dump failed")

    with pytest.raises(RuntimeError, match="mariadb-dump failed"):
        repo.backup_stdin(chunks(), "database.sql", ["part=database"])
    assert repo.snapshots() == []


def test_backup_dump_stats_and_forget(repo: Restic, tmp_path: Path) -> None:
    content = tmp_path / "wp-content"
    (content / "uploads").mkdir(parents=True)
    (content / "uploads" / "a.bin").write_bytes(b"x" * 5000)
    summary = repo.backup_dir(content, ["part=files"])
    assert summary.total_bytes_processed == 5000 and summary.data_added > 0
    snap = repo.snapshots(["part=files"])[0]
    assert snap.id.startswith(summary.snapshot_id) and snap.tag_value("part") == "files"
    assert repo.stats([snap.id]).total_size == 5000
    with repo.dump(snap.id, "/wp-content/uploads/a.bin") as stream:
        assert stream.read() == b"x" * 5000
    repo.check(read_data_subset="100%")
    repo.forget([snap.id, "0" * 64])  # an id not there is skipped
    assert repo.snapshots() == []


def test_a_wrong_password_is_a_clear_error(repo: Restic, tmp_path: Path) -> None:
    wrong = Restic(repo.repository, "not-the-password", tmp_path / "cache2")
    with pytest.raises(ResticError, match="wrong password") as caught:
        wrong.snapshots()
    assert "not-the-password" not in str(caught.value)
    assert "not-the-password" not in repr(wrong)


def test_a_dump_read_only_to_its_tar_end_is_not_cut(repo: Restic, tmp_path: Path) -> None:
    # A tar reader stops at the end-of-archive block; whatever restic still has to write must
    # not meet a closed pipe (SIGPIPE: exit -13). 1 MB of a file after the first 512 bytes
    # keeps restic writing well past the pipe's buffer when the reader stops early.
    content = tmp_path / "wp-content"
    content.mkdir()
    (content / "big.bin").write_bytes(secrets.token_bytes(1 << 20))
    summary = repo.backup_dir(content, ["part=files"])
    with repo.dump(summary.snapshot_id, "/wp-content") as stream:
        assert len(stream.read(512)) == 512  # the reader is done: the block ends normally


def test_a_dump_waits_while_another_process_holds_the_lock(repo: Restic) -> None:
    """A bulk backs up a tenant's sites at once: one site's read-back `dump` runs while a
    sibling's `tag` holds the repository's exclusive lock, and must wait, not fail."""
    repo.backup_stdin([b"held"], "a.txt", ["t=1"])
    snapshot = repo.snapshots(["t=1"])[0]
    holder = _lock_holder(repo)  # alive, frozen, holding its exclusive lock
    released = threading.Event()

    def release() -> None:
        released.set()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()  # reaped: a zombie's pid still exists, and restic's lock would not be stale

    releaser = threading.Timer(1.5, release)
    releaser.start()
    try:
        with repo.dump(snapshot.id, "/a.txt") as stream:
            assert stream.read() == b"held"
        assert released.is_set()  # it waited for the lock to go, and did not fail meanwhile
    finally:
        releaser.cancel()
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
