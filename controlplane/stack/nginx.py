"""The nginx of the embedded default: one server block per site, checked before it is enabled."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from controlplane.stack.configfiles import Changes, apply_as_unit, config_lock
from controlplane.stack.process import StackError, read_pid, run, stop_pid, wait_for_path
from controlplane.stack.templates import render


def children(pid: int) -> set[int]:
    """Child pids of a process (from /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


def _retired(pid: int) -> bool:
    """Whether an old nginx worker has stopped taking requests (or is gone)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return not title or b"shutting down" in title


@dataclass
class Nginx:
    """Master process, config, per-site server blocks, logs and caches under `base`."""

    base: Path
    port: int = 8080
    listen: str = "127.0.0.1"

    @property
    def conf(self) -> Path:
        """Main config."""
        return self.base / "nginx.conf"

    @property
    def sites_dir(self) -> Path:
        """One .conf per site."""
        return self.base / "sites"

    @property
    def log_dir(self) -> Path:
        """Access and error logs (root-owned: sites cannot rewrite them)."""
        return self.base / "logs"

    @property
    def cache_dir(self) -> Path:
        """FastCGI page caches."""
        return self.base / "cache"

    @property
    def pidfile(self) -> Path:
        """Master pid."""
        return self.base / "nginx.pid"

    def site_file(self, key: str) -> Path:
        """The server block of a site."""
        return self.sites_dir / f"{key}.conf"

    def write_master(self) -> None:
        """(Re)write the main config."""
        temp_dir = self.base / "tmp"
        for path in (self.base, self.sites_dir, self.log_dir, self.cache_dir, temp_dir):
            path.mkdir(parents=True, exist_ok=True)
        # Workers (www-data) only traverse to their cache and temp dirs (nginx makes those
        # its own); a site's group reads its own logs by name; nobody else lists or reads.
        for path in (self.base, self.log_dir, self.cache_dir, temp_dir):
            path.chmod(0o711)
        self.sites_dir.chmod(0o700)
        self.prepare_log(self.log_dir / "nginx-error.log", group=0)
        self.conf.write_text(
            render(
                "nginx.conf.j2",
                workers=max(1, min(os.cpu_count() or 1, 4)),
                pidfile=self.pidfile,
                log_dir=self.log_dir,
                temp_dir=temp_dir,
                sites_dir=self.sites_dir,
                listen=self.listen,
                port=self.port,
            )
        )
        self.conf.chmod(0o600)

    def prepare_log(self, path: Path, group: int) -> None:
        """Create (or fix) a log file before nginx opens it: 0640, root and `group`."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o640)
        try:
            if os.geteuid() == 0:
                os.fchown(fd, 0, group)
            os.fchmod(fd, 0o640 if group else 0o600)
        finally:
            os.close(fd)

    def _cmd(self, *args: str) -> list[str]:
        return ["nginx", "-p", str(self.base), "-e", str(self.log_dir / "nginx-error.log"),
                "-c", str(self.conf), *args]  # fmt: skip

    def pid(self) -> int | None:
        """The master's pid if it runs."""
        return read_pid(self.pidfile)

    def test_config(self) -> None:
        """`nginx -t`."""
        run(self._cmd("-t", "-q"), what="nginx -t")

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """The one lock over server blocks, `nginx -t`, start and reload (threads and processes)."""
        return config_lock(self.base / "config.lock")

    def start(self) -> None:
        """Start nginx (no-op if it runs)."""
        with self.locked():
            self._start()

    def _start(self) -> None:
        self.write_master()
        if self.pid() is not None:
            return
        self.test_config()
        run(self._cmd(), what="starting nginx")
        if not wait_for_path(self.pidfile, 10):
            raise StackError(f"nginx did not start; see {self.log_dir / 'nginx-error.log'}")

    def reload(self, timeout: float = 10) -> None:
        """Graceful reload; returns once workers with the new config are accepting."""
        with self.locked():
            self._reload(timeout)

    def _reload(self, timeout: float = 10) -> None:
        pid = self.pid()
        if pid is None:
            self._start()
            return
        self.test_config()
        before = children(pid)
        os.kill(pid, signal.SIGHUP)
        # The master starts new workers, then tells the old ones to stop: an old worker
        # renames itself "is shutting down" once it has closed its listening sockets and its
        # idle keep-alive connections. Only then does every new request reach the new config.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.02)
            current = children(pid)
            if current - before and all(_retired(old) for old in before & current):
                return
        raise StackError(f"nginx did not reload within {timeout} s; see {self.log_dir}")

    def apply(self, changes: Changes) -> None:
        """Write (content) or remove (None) server blocks, `nginx -t`, reload: as one unit.

        If the test or the reload fails, every file is put back as it was (nginx keeps its
        previous config when a reload is refused), so later changes still load.
        """
        apply_as_unit(changes, mode=0o644, lock=self.locked(), reload=self._reload,
                      start=self._start, running=lambda: self.pid() is not None)  # fmt: skip

    def install_site(self, key: str, content: str) -> None:
        """Enable a server block only if `nginx -t` accepts it; otherwise restore the old one."""
        self.apply({self.site_file(key): content})

    def remove_site(self, key: str) -> None:
        """Disable a server block (no-op when absent)."""
        self.apply({self.site_file(key): None})

    def stop(self) -> None:
        """Stop nginx."""
        with self.locked():
            stop_pid(self.pidfile, signal.SIGQUIT)

    def render_site(self, **values: object) -> str:
        """A server block from the site template."""
        return render("vhost.conf.j2", listen=self.listen, port=self.port, **values)
