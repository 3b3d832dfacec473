"""A private MariaDB server under a state directory: own datadir, socket, pidfile, no systemd."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from controlplane.kernel.logs import get_logger
from controlplane.stack.process import CLEAN_ENV, StackError, Under, read_pid, stop_pid

log = get_logger("aipress.stack.mariadb")


@dataclass(frozen=True)
class MariaDB:
    """One mariadbd with everything under `base`; root connects over the socket only."""

    base: Path
    port: int = 3307
    run_as: str = "mysql"
    options: tuple[str, ...] = ()  # more server options (e.g. TLS: --ssl-cert, --ssl-key)

    datadir = Under("data")  # data files
    socket = Under("mariadb.sock")  # the Unix socket clients use
    pidfile = Under("mariadb.pid")  # the server's pid
    error_log = Under("mariadb.err")  # server log

    def _owned(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, self.run_as, self.run_as)

    def install(self) -> None:
        """Create the system tables once."""
        if (self.datadir / "mysql").is_dir():
            return
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o700)
        self.datadir.mkdir(exist_ok=True)
        self._owned(self.base)
        self._owned(self.datadir)
        result = subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--user={self.run_as}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            check=False,
            env=CLEAN_ENV,
        )
        if result.returncode != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise StackError(f"mariadb-install-db failed: {result.stderr.strip()[-2000:]}")

    def running_pid(self) -> int | None:
        """The server's pid if it runs."""
        return read_pid(self.pidfile)

    def start(self, timeout: float = 30) -> None:
        """Start the server (no-op if it already runs) and wait until it answers."""
        self.install()
        # The socket, data and logs are the server's and root's alone: site users reach
        # MariaDB over TCP with their own credentials, never over the socket.
        self._owned(self.base)
        self.base.chmod(0o700)
        self.datadir.chmod(0o700)
        if self.running_pid() is not None and self._answers():
            return
        subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--pid-file={self.pidfile}",
                f"--log-error={self.error_log}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--user={self.run_as}",
                "--skip-name-resolve",
                # Many small databases (12 tables per site), most of them idle: the caches
                # are bounded so memory stops growing with the site count (a cold site
                # reopens its tables in well under a millisecond); see README "Density".
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--innodb-log-buffer-size=4M",
                "--table-open-cache=600",
                "--table-definition-cache=600",
                "--table-open-cache-instances=1",
                "--thread-cache-size=16",
                "--key-buffer-size=1M",
                "--aria-pagecache-buffer-size=8M",
                # A local stand-in: flush the redo log once a second, not at every commit
                # (a mariadbd crash loses nothing; an OS crash can lose the last second).
                "--innodb-flush-log-at-trx-commit=2",
                "--performance-schema=OFF",
                # Slow queries to a table (mysql.slow_log): its `db` column is the session's
                # schema, which a site cannot set to another's (a file could be forged).
                "--slow-query-log=ON",
                "--log-output=TABLE",
                "--long-query-time=1",
                "--max-connections=300",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=CLEAN_ENV,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._answers():
                log.info("mariadb.started", port=self.port)
                return
            time.sleep(0.1)
        tail = self.error_log.read_text()[-2000:] if self.error_log.exists() else ""
        raise StackError(f"MariaDB did not start within {timeout} s: {tail}")

    def _answers(self) -> bool:
        try:
            self.connect().close()
        except pymysql.MySQLError:
            return False
        return True

    def connect(
        self, database: str | None = None, **kwargs: Any
    ) -> pymysql.connections.Connection[Any]:
        """A root connection over the unix socket (socket authentication)."""
        return pymysql.connect(
            unix_socket=str(self.socket), user="root", database=database, autocommit=True, **kwargs
        )

    def stop(self, timeout: float = 30) -> None:
        """Stop the server and wait for it to exit."""
        stop_pid(self.pidfile, signal.SIGTERM, timeout)
