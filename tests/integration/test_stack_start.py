"""Two processes starting the embedded default on one empty state directory at once."""

from __future__ import annotations

import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from controlplane.settings import Settings
from controlplane.stack.local import LocalStack
from tests.conftest import ROOT, remove_after_scan

pytestmark = pytest.mark.integration

START = """
import sys
from pathlib import Path
from controlplane.settings import Settings
from controlplane.stack.local import LocalStack
settings = Settings(provider="local", home=Path(sys.argv[1]), mariadb_port=int(sys.argv[2]),
                    site_port=int(sys.argv[3]))
LocalStack.from_settings(settings).ensure_running()
"""


def test_two_concurrent_starts_on_an_empty_home_make_one_working_stack() -> None:
    base = Path(tempfile.mkdtemp(prefix="aipress-start-", dir="/tmp"))
    base.chmod(0o755)
    home = base / "home"
    ports = [str(3800 + secrets.randbelow(200)), str(21000 + secrets.randbelow(1000))]
    settings = Settings(provider="local", home=home, mariadb_port=int(ports[0]),
                        site_port=int(ports[1]))  # fmt: skip
    stack = LocalStack.from_settings(settings)
    try:
        starts = [
            subprocess.Popen(
                [sys.executable, "-c", START, str(home), *ports],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=180)[0] for p in starts]
        assert [p.returncode for p in starts] == [0, 0], outputs
        assert all(pid is not None for pid in stack.status().values()), stack.status()
        # The one data directory works: a database can be created and used.
        with stack.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE start_check")
            cur.execute("CREATE TABLE start_check.t (id INT PRIMARY KEY)")
            cur.execute("INSERT INTO start_check.t VALUES (1)")
            cur.execute("SELECT COUNT(*) FROM start_check.t")
            assert cur.fetchone() == (1,)
    finally:
        stack.stop()
        remove_after_scan(base)
