"""A thin typed wrapper of the restic CLI: one repository, its password only in the env.

restic prints JSON (`--json`) for what it reports; this module parses it into dataclasses and
raises ResticError with restic's own message (never the password: restic does not print it).
Commands that meet another restic's lock are retried (tenacity), stale locks removed first.
"""

from __future__ import annotations

import fcntl
import io
import json
import shutil
import subprocess
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

# Never our own environment (it holds the platform's keys): restic gets PATH, a locale and
# its repository settings only.
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
LOCKED = "repository is already locked"
# How long a command waits for another restic's lock (a tenant's other sites back up into
# the same repository; `check`, `tag`, `forget` and `prune` need it alone).
LOCK_WAIT_SECONDS = 600
CHUNK = 1 << 16  # bytes read at a time when draining a stream


class ResticError(Exception):
    """restic failed; the message is restic's (the tail of its stderr) and what was asked."""


class RepositoryLocked(ResticError):
    """Another restic holds the repository's lock (retried, then raised)."""


@dataclass(frozen=True)
class Snapshot:
    """One snapshot as `restic snapshots --json` lists it."""

    id: str
    short_id: str
    time: str
    paths: list[str]
    tags: list[str]

    def tag_value(self, key: str) -> str | None:
        """The value of the first `key=value` tag, if any."""
        prefix = f"{key}="
        return next((t[len(prefix) :] for t in self.tags if t.startswith(prefix)), None)


@dataclass(frozen=True)
class BackupSummary:
    """The summary line of `restic backup --json`."""

    snapshot_id: str
    data_added: int  # bytes this backup added to the repository (after dedup, compressed)
    total_bytes_processed: int  # bytes read from the source


@dataclass(frozen=True)
class Stats:
    """`restic stats --json` for some snapshots."""

    total_size: int
    total_file_count: int


def restic_binary() -> str:
    """The restic executable (Debian's package), or ResticError saying how to get it."""
    found = shutil.which("restic", path=BASE_ENV["PATH"])
    if found is None:
        raise ResticError("restic is not installed: run scripts/install-debs.sh (apt: restic)")
    return found


def _tag_args(tags: Iterable[str]) -> list[str]:
    args: list[str] = []
    for tag in tags:
        if "," in tag or not tag:
            raise ValueError(f"a restic tag cannot be empty or hold a comma: {tag!r}")
        args += ["--tag", tag]
    return args


def _drain(stream: IO[bytes], sink: list[bytes]) -> threading.Thread:
    """Read `stream` to its end into `sink` in a thread (so a full pipe never blocks restic)."""

    def read() -> None:
        sink.append(stream.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


class _Prefixed(io.RawIOBase):
    """A stream that gives `first`, then the rest of `rest`."""

    def __init__(self, first: bytes, rest: IO[bytes]) -> None:
        self._first = first
        self._rest = rest

    def readable(self) -> bool:
        """Always: it is read, never written."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` from what is left of `first`, else from `rest`."""
        view = memoryview(buffer).cast("B")
        if self._first:
            taken, self._first = self._first[: len(view)], self._first[len(view) :]
            view[: len(taken)] = taken
            return len(taken)
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def _text(parts: list[bytes]) -> str:
    return b"".join(parts).decode(errors="replace")


class Restic:
    """One restic repository (a local path), opened with its password."""

    def __init__(self, repository: Path, password: str, cache_dir: Path) -> None:
        if not password:
            raise ValueError("a restic repository needs a password (the tenant's backup key)")
        self.repository = repository
        self.cache_dir = cache_dir
        self._password = password

    def __repr__(self) -> str:
        return f"Restic({str(self.repository)!r})"  # never the password

    # ------------------------------------------------------------------ plumbing

    def _env(self) -> dict[str, str]:
        return {
            **BASE_ENV,
            "RESTIC_REPOSITORY": str(self.repository),
            "RESTIC_PASSWORD": self._password,
            "RESTIC_CACHE_DIR": str(self.cache_dir),
        }

    def _command(self, args: list[str]) -> list[str]:
        return [restic_binary(), "--quiet", *args]

    @staticmethod
    def _failure(what: str, returncode: int, stderr: str) -> ResticError:
        tail = stderr.strip()[-2000:]
        cls = RepositoryLocked if LOCKED in tail else ResticError
        return cls(f"restic {what} failed (exit {returncode}): {tail}")

    def _run(self, args: list[str], *, what: str, timeout: float = 3600) -> str:
        """Run restic once; its stdout on success."""
        try:
            done = subprocess.run(
                self._command(args), capture_output=True, text=True, timeout=timeout,
                check=False, env=self._env(), cwd="/",
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise ResticError(f"restic {what} timed out after {timeout:.0f} s") from exc
        if done.returncode != 0:
            raise self._failure(what, done.returncode, done.stderr)
        return done.stdout

    @retry(
        retry=retry_if_exception_type(RepositoryLocked),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(LOCK_WAIT_SECONDS),
        reraise=True,
    )
    def _run_retrying(self, args: list[str], *, what: str, timeout: float = 3600) -> str:
        """Run restic, retried while another process holds the lock (stale locks removed)."""
        try:
            return self._run(args, what=what, timeout=timeout)
        except RepositoryLocked:
            # `unlock` removes only stale locks (their process is gone): a killed run's.
            self._run(["unlock"], what="unlock")
            raise

    @staticmethod
    def _json_lines(output: str) -> list[dict[str, Any]]:
        lines = []
        for line in output.splitlines():
            line = line.strip()
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    # ------------------------------------------------------------------ commands

    def exists(self) -> bool:
        """Whether the repository has been initialised."""
        return (self.repository / "config").is_file()

    def init_if_missing(self) -> None:
        """Create the repository (root-only directories) unless it exists. Two first backups
        of a tenant's sites at once (a bulk) make it once: two `restic init`s of one directory
        leave a config that no key opens, so the second waits on a lock file and finds it."""
        if self.exists():
            return
        self.repository.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.repository.parent / f".{self.repository.name}.init-lock"
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not self.exists():
                self._run(["init"], what="init")

    def backup_dir(self, directory: Path, tags: Iterable[str]) -> BackupSummary:
        """Back up `directory` (stored as /<its name>) with `tags`."""
        return self._backup(
            ["backup", "--json", *_tag_args(tags), directory.name],
            cwd=directory.parent,
            what=f"backup of {directory.name}",
        )

    def _backup(self, args: list[str], *, cwd: Path, what: str) -> BackupSummary:
        @retry(
            retry=retry_if_exception_type(RepositoryLocked),
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=stop_after_delay(LOCK_WAIT_SECONDS),
            reraise=True,
        )
        def attempt() -> BackupSummary:
            done = subprocess.run(
                self._command(args), capture_output=True, text=True, check=False,
                env=self._env(), cwd=cwd,
            )  # fmt: skip
            # Exit 3: some files could not be read (a live site deletes a cache file while
            # it is read); the snapshot holds everything else and is complete otherwise.
            if done.returncode not in (0, 3):
                failure = self._failure(what, done.returncode, done.stderr)
                if isinstance(failure, RepositoryLocked):
                    self._run(["unlock"], what="unlock")
                raise failure
            return self._summary(done.stdout, what)

        return attempt()

    def _summary(self, output: str, what: str) -> BackupSummary:
        for entry in self._json_lines(output):
            if entry.get("message_type") == "summary":
                return BackupSummary(
                    snapshot_id=str(entry["snapshot_id"]),
                    data_added=int(entry.get("data_added", 0)),
                    total_bytes_processed=int(entry.get("total_bytes_processed", 0)),
                )
        raise ResticError(f"restic {what} printed no summary")

    def backup_stdin(
        self, chunks: Iterable[bytes], filename: str, tags: Iterable[str]
    ) -> BackupSummary:
        """Back up a stream (read a chunk at a time) as the file /<filename>.

        If `chunks` raises, restic is killed before it can save a snapshot of the partial
        stream, and the exception propagates."""
        args = ["backup", "--json", "--stdin", "--stdin-filename", filename, *_tag_args(tags)]
        proc = subprocess.Popen(
            self._command(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=self._env(), cwd="/",
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        out: list[bytes] = []
        err: list[bytes] = []
        readers = [_drain(proc.stdout, out), _drain(proc.stderr, err)]
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BaseException:
            proc.kill()  # before restic sees the end of its input: no snapshot of a partial dump
            proc.wait()
            for reader in readers:
                reader.join()
            raise
        returncode = proc.wait()
        for reader in readers:
            reader.join()
        if returncode != 0:
            raise self._failure(f"backup of {filename}", returncode, _text(err))
        return self._summary(_text(out), filename)

    def snapshots(self, tags: Iterable[str] = ()) -> list[Snapshot]:
        """Snapshots having all of `tags` (every snapshot when none), oldest first."""
        tag_filter = ",".join(tags)
        args = ["snapshots", "--json", *(["--tag", tag_filter] if tag_filter else [])]
        out = self._run_retrying(args, what="snapshots")
        return [
            Snapshot(
                id=str(s["id"]),
                short_id=str(s.get("short_id", s["id"][:8])),
                time=str(s["time"]),
                paths=list(s.get("paths") or []),
                tags=list(s.get("tags") or []),
            )
            for s in json.loads(out or "[]")
        ]

    def stats(self, snapshot_ids: Iterable[str], mode: str = "restore-size") -> Stats:
        """Size of the snapshots (`restore-size`: what a restore writes; `raw-data`: stored)."""
        out = self._run_retrying(["stats", "--json", "--mode", mode, *snapshot_ids], what="stats")
        data = json.loads(out)
        return Stats(int(data.get("total_size", 0)), int(data.get("total_file_count", 0)))

    @contextmanager
    def dump(self, snapshot_id: str, path: str) -> Iterator[IO[bytes]]:
        """A stream of the file at `path` in the snapshot (a directory comes as a tar).

        Waits (as the other commands do) while another process holds the repository's lock:
        a sibling site's `tag` or `forget` in a bulk. The exit status is checked when the
        block ends: read the stream to its end first."""
        proc, first, errors, reader = self._start_dump(snapshot_id, path)
        assert proc.stdout is not None
        finished = False
        try:
            yield io.BufferedReader(_Prefixed(first, proc.stdout))
            finished = True
            # A tar reader stops at the end-of-archive blocks; restic may still be writing
            # the record's padding and would die of SIGPIPE if the pipe closed first.
            while proc.stdout.read(CHUNK):
                pass
        finally:
            if not finished:
                proc.kill()
            proc.stdout.close()
            returncode = proc.wait()
            reader.join()
        if returncode != 0:
            raise self._failure(f"dump of {path}", returncode, _text(errors))

    @retry(
        retry=retry_if_exception_type(RepositoryLocked),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(LOCK_WAIT_SECONDS),
        reraise=True,
    )
    def _start_dump(
        self, snapshot_id: str, path: str
    ) -> tuple[subprocess.Popen[bytes], bytes, list[bytes], threading.Thread]:
        """A running `restic dump` and its first chunk; RepositoryLocked (retried) when restic
        ends at once because another process holds the lock (it writes nothing first)."""
        proc = subprocess.Popen(
            self._command(["dump", snapshot_id, path]), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=self._env(), cwd="/",
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        errors: list[bytes] = []
        reader = _drain(proc.stderr, errors)
        first = proc.stdout.read(CHUNK)
        if not first and proc.wait() != 0:
            proc.stdout.close()
            reader.join()
            failure = self._failure(f"dump of {path}", proc.returncode, _text(errors))
            if isinstance(failure, RepositoryLocked):
                self._run(["unlock"], what="unlock")  # only stale locks go
            raise failure
        return proc, first, errors, reader

    def restore(self, snapshot_id: str, target: Path, include: Iterable[str] = ()) -> None:
        """Restore the snapshot (or the `include`d paths of it) under `target`."""
        args = ["restore", snapshot_id, "--target", str(target)]
        for path in include:
            args += ["--include", path]
        self._run_retrying(args, what="restore")

    def check(self, read_data_subset: str | None = None, read_data: bool = False) -> None:
        """`restic check`: the repository's structure, and the data of some or all packs."""
        args = ["check"]
        if read_data:
            args.append("--read-data")
        elif read_data_subset:
            args += ["--read-data-subset", read_data_subset]
        self._run_retrying(args, what="check")

    def tag(
        self, snapshot_ids: Iterable[str], add: Iterable[str], remove: Iterable[str] = ()
    ) -> None:
        """Add and remove tags of snapshots (restic saves each under a new id)."""
        args = ["tag"]
        for t in add:
            args += ["--add", t]
        for t in remove:
            args += ["--remove", t]
        self._run_retrying([*args, *snapshot_ids], what="tag")

    def forget(self, snapshot_ids: Iterable[str], prune: bool = True) -> None:
        """Remove snapshots (ids not in the repository are skipped) and, by default, the
        data only they used."""
        wanted = set(snapshot_ids)
        if not wanted:
            return
        present = [s.id for s in self.snapshots() if s.id in wanted or s.short_id in wanted]
        if not present:
            return
        self._run_retrying(["forget", *(["--prune"] if prune else []), *present], what="forget")
