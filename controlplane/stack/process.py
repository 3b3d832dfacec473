"""Small helpers for daemons started from pidfiles (no systemd)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Protocol, overload

# Daemons and tools started by the control plane get this environment, never ours: php-fpm
# hands its own environment to pools (an env value of "$NAME" reads it), and ours holds keys.
CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}


class StackError(Exception):
    """A local service could not be installed, started or stopped."""


class _HasBase(Protocol):
    @property
    def base(self) -> Path: ...


class Under:
    """A path below a service's `base` directory: `conf = Under("nginx.conf")`."""

    def __init__(self, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Under: ...
    @overload
    def __get__(self, obj: _HasBase, owner: type | None = None) -> Path: ...
    def __get__(self, obj: _HasBase | None, owner: type | None = None) -> Path | Under:
        return self if obj is None else obj.base / self.name


def read_pid(pidfile: Path) -> int | None:
    """The live pid recorded in `pidfile`, if any."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def run(args: list[str], *, what: str, timeout: float = 120, input_text: str | None = None) -> str:
    """Run a command with a clean environment; raise StackError with its output on failure."""
    try:
        result = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
            env=CLEAN_ENV,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what} timed out after {timeout} s") from exc
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-3000:]
        raise StackError(f"{what} failed (exit {result.returncode}): {output}")
    return result.stdout


def wait_for_path(path: Path, timeout: float = 10) -> bool:
    """Wait until a file (e.g. a socket) exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.02)
    return False


def stop_pid(pidfile: Path, signal_number: int, timeout: float = 20) -> None:
    """Signal the daemon in `pidfile` and wait for it to exit."""
    pid = read_pid(pidfile)
    if pid is None:
        return
    os.kill(pid, signal_number)
    if not wait_for_exit(pid, timeout):
        os.kill(pid, 9)
        wait_for_exit(pid, 5)


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until `pid` has exited (reaping it if it is our child); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reaped, _status = os.waitpid(pid, os.WNOHANG)
            if reaped == pid:
                return True
        except ChildProcessError:
            pass  # not our child: fall back to probing
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.05)
    return False
