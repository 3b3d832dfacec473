"""The embedded default's services together: MariaDB, PHP-FPM and nginx under one home."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.settings import Settings
from controlplane.stack.mariadb import MariaDB
from controlplane.stack.nginx import Nginx
from controlplane.stack.phpfpm import PhpFpm


@dataclass
class LocalStack:
    """Where everything of the embedded default lives, and how to start and stop it."""

    home: Path
    mariadb: MariaDB
    phpfpm: PhpFpm
    nginx: Nginx
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
            # Site users and www-data must traverse the home to reach their own directories.
            self.home.chmod(0o755)
            self.sites_dir.mkdir(exist_ok=True)
            self.sites_dir.chmod(0o755)
            self.mariadb.start()
            self.phpfpm.start()
            self.nginx.start()

    def stop(self) -> None:
        """Stop nginx, PHP-FPM and MariaDB."""
        self.nginx.stop()
        self.phpfpm.stop()
        self.mariadb.stop()

    def status(self) -> dict[str, int | None]:
        """Pid of each service, None when it is not running."""
        return {
            "mariadb": self.mariadb.running_pid(),
            "php-fpm": self.phpfpm.pid(),
            "nginx": self.nginx.pid(),
        }
