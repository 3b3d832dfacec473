"""The embedded default's services together: MariaDB, PHP-FPM and nginx under one home."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.kernel.logs import get_logger
from controlplane.settings import Settings
from controlplane.stack.firewall import FirewallUnavailable, SiteFirewall
from controlplane.stack.mariadb import MariaDB
from controlplane.stack.nginx import Nginx
from controlplane.stack.phpfpm import PhpFpm

log = get_logger("aipress.stack")
# Directories of the home only root (and the daemon that owns one) may enter or list.
PRIVATE_DIRS = ("keys", "logs", "run", "backups", "billing")


@dataclass
class LocalStack:
    """Where everything of the embedded default lives, and how to start and stop it."""

    home: Path
    mariadb: MariaDB
    phpfpm: PhpFpm
    nginx: Nginx
    firewall: SiteFirewall
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStack:
        """The stack laid out under AIPRESS_HOME."""
        home = settings.home
        return cls(
            home=home,
            mariadb=MariaDB(home / "mariadb", port=settings.mariadb_port),
            phpfpm=PhpFpm(home / "php-fpm"),
            nginx=Nginx(home / "nginx", port=settings.site_port, listen=settings.site_listen),
            firewall=SiteFirewall(
                home=home,
                sites_dir=home / "sites",
                site_port=settings.site_port,
                site_listen=settings.site_listen,
                mariadb_port=settings.mariadb_port,
            ),
        )

    @property
    def sites_dir(self) -> Path:
        """Site roots: sites/<tenant>/<site>."""
        return self.home / "sites"

    @property
    def backups_dir(self) -> Path:
        """Backups: backups/<tenant>/<site>/<timestamp>-<label>."""
        return self.home / "backups"

    @contextmanager
    def _start_lock(self) -> Iterator[None]:
        """One start at a time across threads and processes (the CLI, `aipress up`, the
        control plane and benchmarks may all start the stack of one home at once)."""
        with self._lock:
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.home / "stack.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the lock

    def ensure_running(self) -> None:
        """Start whatever is not running (cheap when all run)."""
        with self._start_lock():
            # Site users and www-data must traverse the home to reach their own directories,
            # and may list nothing of it (names alone say which tenants and sites exist).
            self.home.chmod(0o711)
            self.sites_dir.mkdir(exist_ok=True)
            self.sites_dir.chmod(0o711)
            self.backups_dir.mkdir(exist_ok=True, mode=0o700)
            for name in PRIVATE_DIRS:
                if (self.home / name).is_dir():
                    (self.home / name).chmod(0o700)
            try:
                # Before any pool starts: existing sites' users are fenced from the first request.
                self.firewall.ensure()
            except FirewallUnavailable as exc:
                # Sites cannot be created (the storage step asks again and refuses).
                log.error("stack.unfenced", error=str(exc))
            self.mariadb.start()
            self.phpfpm.start()
            self.nginx.start()

    def stop(self) -> None:
        """Stop nginx, PHP-FPM and MariaDB (the fence stays while site users remain)."""
        self.nginx.stop()
        self.phpfpm.stop()
        self.mariadb.stop()
        with contextlib.suppress(FirewallUnavailable):  # there was never a table to remove
            self.firewall.remove()

    def status(self) -> dict[str, int | None]:
        """Pid of each service, None when it is not running."""
        return {
            "mariadb": self.mariadb.running_pid(),
            "php-fpm": self.phpfpm.pid(),
            "nginx": self.nginx.pid(),
        }
