"""A private PostgreSQL server for tests (Debian's postgresql, run as the postgres user)."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs it (postgresql)")
    return found[-1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throwaway server on a random port; yield a postgresql:// URL."""
    base = Path(tempfile.mkdtemp(prefix="aipress-test-pg-", dir="/tmp"))
    data = base / "data"
    port = 25000 + secrets.randbelow(5000)
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, _bin("initdb"), "-D", str(data), "-A", "trust", "-U", "aipress"],
                   check=True, capture_output=True)  # fmt: skip
    server = subprocess.Popen(
        [*as_user, _bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(base),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            ready = subprocess.run([_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                                   capture_output=True)  # fmt: skip
            if ready.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("postgres did not start")
        subprocess.run([_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "aipress",
                        "chat"], check=True, capture_output=True)  # fmt: skip
        yield f"postgresql://aipress@127.0.0.1:{port}/chat"
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)
