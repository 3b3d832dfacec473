"""The PHP-FPM master of the embedded default: one pool (and system user) per site."""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from controlplane.stack.configfiles import ConfiguredMaster
from controlplane.stack.process import StackError, Under, run, wait_for_path
from controlplane.stack.templates import render

PHP_FPM = "php-fpm8.2"
OPCACHE_FLAGS = [
    "-d", "opcache.enable=1",
    # Each site's hard-linked core has its own paths (~340 scripts, ~13 MB of cache per site):
    # size for ~40 warm sites; untouched pages of the segment cost no memory.
    "-d", "opcache.memory_consumption=512",
    "-d", "opcache.interned_strings_buffer=32",
    "-d", "opcache.max_accelerated_files=60000",
    # No site may read or reset the shared cache (it would list other sites' paths).
    "-d", "opcache.restrict_api=/nonexistent/aipress-no-opcache-api",
    "-d", "opcache.revalidate_freq=2",
    # Pools share one cache: check the worker may read a file before serving it from cache.
    "-d", "opcache.validate_permission=1",
    "-d", "opcache.validate_root=1",
]  # fmt: skip


def php_fpm_binary() -> str:
    """The php-fpm executable (Debian names it by version)."""
    for name in (PHP_FPM, "php-fpm"):
        found = shutil.which(name) or (
            f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
        )
        if found:
            return found
    raise StackError("php-fpm is not installed: run `make up`, which installs php-fpm")


@dataclass
class PhpFpm(ConfiguredMaster):
    """Master process, config and pools under `base`; a reload (USR2) starts new pools, stops
    removed ones and keeps the others serving."""

    base: Path
    file_mode = 0o600  # pool files carry the tenant's secrets: root-only

    conf = Under("php-fpm.conf")  # master config
    pool_dir = Under("pool.d")  # one .conf per site pool
    socket_dir = Under("sockets")  # pool sockets
    pidfile = Under("php-fpm.pid")  # master pid
    slowlog_dir = Under("slowlog")  # per-pool slow logs, written by the master (root) only

    def slowlog(self, pool: str) -> Path:
        """The slow log of a pool: stack traces of its requests that ran past the timeout."""
        return self.slowlog_dir / f"{pool}.log"

    def socket(self, pool: str) -> Path:
        """The socket of a pool."""
        return self.socket_dir / f"{pool}.sock"

    def pool_file(self, pool: str) -> Path:
        """The config file of a pool."""
        return self.pool_dir / f"{pool}.conf"

    def write_master(self) -> None:
        """(Re)write the master config."""
        for path in (self.base, self.pool_dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        # nginx (www-data) traverses to the sockets; site users cannot enter at all.
        for path in (self.base, self.socket_dir):
            if os.geteuid() == 0:
                shutil.chown(path, "root", "www-data")
            path.chmod(0o710)
        self.pool_dir.chmod(0o700)
        self.slowlog_dir.mkdir(mode=0o700, exist_ok=True)
        self.slowlog_dir.chmod(0o700)
        self.conf.write_text(
            render(
                "php-fpm.conf.j2",
                pidfile=self.pidfile,
                error_log=self.base / "php-fpm.log",
                socket_dir=self.socket_dir,
                pool_dir=self.pool_dir,
            )
        )
        self.conf.chmod(0o600)

    def test_config(self) -> None:
        """`php-fpm -t`: refuse a broken config before it is loaded."""
        run([php_fpm_binary(), "--fpm-config", str(self.conf), "-t"], what="php-fpm config test")

    def _start(self) -> None:
        self.write_master()
        if self.pid() is not None:
            return
        run(
            [php_fpm_binary(), "--fpm-config", str(self.conf), *OPCACHE_FLAGS],
            what="starting php-fpm",
        )
        if not wait_for_path(self.pidfile, 10) or not wait_for_path(
            self.socket("aipress-idle"), 10
        ):
            raise StackError(f"php-fpm did not start; see {self.base / 'php-fpm.log'}")

    def _reload(self) -> None:
        pid = self.pid()
        if pid is None:
            self._start()
            return
        self.test_config()
        os.kill(pid, signal.SIGUSR2)
        # The master re-executes and daemonizes again: done when a new pid is recorded.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(0.02)
            new_pid = self.pid()
            if new_pid is not None and new_pid != pid:
                return
        raise StackError(f"php-fpm did not come back after reload; see {self.base / 'php-fpm.log'}")
