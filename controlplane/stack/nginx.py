"""The nginx of the embedded default: one server block per site, checked before it is enabled."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from controlplane.stack.configfiles import ConfiguredMaster
from controlplane.stack.process import StackError, Under, run, wait_for_path
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
class Nginx(ConfiguredMaster):
    """Master process, config, per-site server blocks, logs and caches under `base`; a
    reload returns once workers with the new config are accepting."""

    base: Path
    port: int = 8080
    listen: str = "127.0.0.1"
    file_mode = 0o644  # server blocks (nginx keeps its previous config when a reload fails)

    conf = Under("nginx.conf")  # main config
    sites_dir = Under("sites")  # one .conf per site
    log_dir = Under("logs")  # access and error logs (root-owned: sites cannot rewrite them)
    cache_dir = Under("cache")  # FastCGI page caches
    pidfile = Under("nginx.pid")  # master pid

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

    def test_config(self) -> None:
        """`nginx -t`."""
        run(self._cmd("-t", "-q"), what="nginx -t")

    def _start(self) -> None:
        self.write_master()
        if self.pid() is not None:
            return
        self.test_config()
        run(self._cmd(), what="starting nginx")
        if not wait_for_path(self.pidfile, 10):
            raise StackError(f"nginx did not start; see {self.log_dir / 'nginx-error.log'}")

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

    def install_site(self, key: str, content: str) -> None:
        """Enable a server block only if `nginx -t` accepts it; otherwise restore the old one."""
        self.apply({self.site_file(key): content})

    def remove_site(self, key: str) -> None:
        """Disable a server block (no-op when absent)."""
        self.apply({self.site_file(key): None})

    def render_site(self, **values: object) -> str:
        """A server block from the site template."""
        return render("vhost.conf.j2", listen=self.listen, port=self.port, **values)
