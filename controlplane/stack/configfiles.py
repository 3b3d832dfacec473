"""Config files of a daemon changed as one unit: write, test, reload; or put everything back."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from controlplane.stack.process import read_pid, stop_pid

# What to do to each file: its new content, or None to remove it.
Changes = Mapping[Path, str | None]


@contextlib.contextmanager
def config_lock(path: Path) -> Iterator[None]:
    """Exclusive across threads and processes: flock on a descriptor of our own.

    Every holder opens the file anew, so two threads of one process exclude each other as
    two processes do (flock locks belong to the open file description). Not reentrant.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True)
class _Saved:
    content: bytes | None
    mode: int


def _save(path: Path) -> _Saved:
    try:
        return _Saved(path.read_bytes(), path.stat().st_mode & 0o7777)
    except FileNotFoundError:
        return _Saved(None, 0)


def write_file(path: Path, content: bytes | str, mode: int) -> None:
    """Replace `path` atomically with a file created at `mode` (never briefly wider)."""
    data = content.encode() if isinstance(content, str) else content
    tmp = path.with_name(f".{path.name}.tmp")  # not matched by the daemons' `*.conf` globs
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def apply_changes(changes: Changes, *, mode: int, activate: Callable[[], None]) -> None:
    """Write or remove every file, then `activate` (test + reload); if anything fails,
    restore every file as it was and re-raise. The caller holds the daemon's config lock."""
    saved = {path: _save(path) for path in changes}
    try:
        for path, content in changes.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                write_file(path, content, mode)
        activate()
    except BaseException:
        for path, old in saved.items():
            if old.content is None:
                path.unlink(missing_ok=True)
            else:
                write_file(path, old.content, old.mode)
        raise


def apply_as_unit(
    changes: Changes,
    *,
    mode: int,
    lock: contextlib.AbstractContextManager[None],
    reload: Callable[[], None],
    start: Callable[[], None],
    running: Callable[[], bool],
) -> None:
    """A daemon's config change as one unit under its lock: write or remove the files, test
    and reload (`reload`); on failure every file is restored and a daemon the failed reload
    stopped is started again on the old files, so later changes still load."""
    with lock:
        if all(content is None and not path.exists() for path, content in changes.items()):
            return  # removing what is not there: nothing to test or reload
        try:
            apply_changes(changes, mode=mode, activate=reload)
        except BaseException:
            if not running():
                start()
            raise


class ConfiguredMaster(ABC):
    """A master process (nginx, PHP-FPM) under `base` whose config files change as one unit:
    one lock over the files, the config test, start and reload (threads and processes)."""

    base: Path
    file_mode = 0o600  # of the files `apply` writes

    @property
    @abstractmethod
    def pidfile(self) -> Path:
        """The master's pidfile."""

    @abstractmethod
    def _start(self) -> None:
        """Start the master with the current files."""

    @abstractmethod
    def _reload(self) -> None:
        """Make the running master load the current files."""

    def pid(self) -> int | None:
        """The master's pid if it runs."""
        return read_pid(self.pidfile)

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """The one lock over the config files, the test, start and reload."""
        return config_lock(self.base / "config.lock")

    def start(self) -> None:
        """Start the master (no-op if it runs)."""
        with self.locked():
            self._start()

    def reload(self) -> None:
        """Graceful reload; returns once the new config serves."""
        with self.locked():
            self._reload()

    def apply(self, changes: Changes) -> None:
        """Write (content) or remove (None) config files, test, reload: as one unit.

        If the test or the reload fails, every file is put back as it was and the master
        keeps (or is restarted with) the previous config, so later changes still load.
        """
        apply_as_unit(changes, mode=self.file_mode, lock=self.locked(), reload=self._reload,
                      start=self._start, running=lambda: self.pid() is not None)  # fmt: skip

    def stop(self) -> None:
        """Stop the master and its workers."""
        with self.locked():
            stop_pid(self.pidfile, signal.SIGQUIT)
