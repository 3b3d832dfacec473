"""Small helpers for daemons started from pidfiles (no systemd)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Protocol, overload

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


def run(
    args: list[str],
    *,
    what: str,
    timeout: float = 120,
    input_text: str | None = None,
    cwd: str | None = None,
    max_output: int | None = None,
) -> str:
    """Run a command with a clean environment; raise StackError with its output on failure.
    With `max_output`, the command (its whole process group) is killed once it prints more
    than that many bytes on stdout or stderr, or runs past `timeout`: for commands that run
    code the platform does not trust."""
    if max_output is not None:
        returncode, stdout, stderr = _run_bounded(
            args, what=what, timeout=timeout, input_text=input_text, cwd=cwd, limit=max_output
        )
    else:
        try:
            result = subprocess.run(
                args,
                capture_output=True,
                text=True,
                timeout=timeout,
                input=input_text,
                check=False,
                env=CLEAN_ENV,
                cwd=cwd,
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"{what} timed out after {timeout} s") from exc
        returncode, stdout, stderr = result.returncode, result.stdout, result.stderr
    if returncode != 0:
        output = (stderr or stdout).strip()[-3000:]
        raise StackError(f"{what} failed (exit {returncode}): {output}")
    return stdout


def _run_bounded(
    args: list[str], *, what: str, timeout: float, input_text: str | None, cwd: str | None,
    limit: int,
) -> tuple[int, str, str]:  # fmt: skip
    """(exit code, stdout, stderr) of a command read at most `limit` bytes per stream; its
    process group is killed past the limit or the timeout (StackError)."""
    deadline = time.monotonic() + timeout
    proc = subprocess.Popen(
        args,
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=CLEAN_ENV,
        cwd=cwd,
        start_new_session=True,  # its own group: runuser's children are killed with it
    )
    feeder = None
    if input_text is not None and proc.stdin is not None:
        feeder = threading.Thread(target=_feed, args=(proc.stdin, input_text.encode()),
                                  daemon=True)  # fmt: skip
        feeder.start()
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    read = {out_fd: bytearray(), err_fd: bytearray()}
    try:
        with selectors.DefaultSelector() as selector:
            for fd in read:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StackError(f"{what} timed out after {timeout} s")
                for key, _events in selector.select(left):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fd)
                        continue
                    read[key.fd] += chunk
                    if len(read[key.fd]) > limit:
                        raise StackError(f"{what} printed more than {limit} bytes; stopped")
        try:
            returncode = proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise StackError(f"{what} timed out after {timeout} s") from None
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        proc.stderr.close()
        if feeder is not None:
            feeder.join(timeout=5)
    return returncode, read[out_fd].decode(errors="replace"), read[err_fd].decode(errors="replace")


def _feed(stdin: IO[bytes], data: bytes) -> None:
    """Write a command's input and close it (a command that stops reading ends the write)."""
    with contextlib.suppress(OSError):
        stdin.write(data)
    with contextlib.suppress(OSError):
        stdin.close()


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
