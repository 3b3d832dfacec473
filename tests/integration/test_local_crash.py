"""SIGKILL the control plane between steps of a real site: restart ends with a site or nothing."""

from __future__ import annotations

import json
import pwd
import re
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.models import Operation, Site
from controlplane.platform import build_platform
from controlplane.settings import Settings
from controlplane.stack.local import LocalStack
from tests.conftest import LOG_FILE, remove_after_scan

pytestmark = pytest.mark.integration
WORKER = Path(__file__).with_name("crash_worker.py")
TENANT = "crash"


@pytest.fixture(scope="module")
def crash_home() -> Iterator[Settings]:
    base = Path(tempfile.mkdtemp(prefix="aipress-crash-", dir="/tmp"))
    base.chmod(0o755)
    settings = Settings(
        provider="local",
        home=base / "home",
        mariadb_port=3800 + secrets.randbelow(150),
        site_port=19000 + secrets.randbelow(900),
        log_file=LOG_FILE,
    )
    yield settings
    platform = build_platform(settings)
    with platform.sessions() as session:
        leftovers = session.query(Site).count()
    platform.close()
    LocalStack.from_settings(settings).stop()
    remove_after_scan(base)
    assert leftovers == 0, "a test left a site behind"


def _worker(
    settings: Settings, mode: str, site: str, kill_at: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKER), mode, "--home", str(settings.home), "--kill-at", kill_at,
         "--provider", "local", "--tenant", TENANT, "--site", site,
         "--mariadb-port", str(settings.mariadb_port), "--site-port", str(settings.site_port)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def _restart(settings: Settings) -> dict[str, str]:
    """A new control-plane process: recover and wait; return each operation's final status."""
    platform = build_platform(settings)
    try:
        for op_id in platform.engine.recover():
            platform.engine.wait(op_id, timeout=120)
        with platform.sessions() as session:
            return {o.id: o.status for o in session.query(Operation)}
    finally:
        platform.close()


def _site_row(settings: Settings, name: str) -> Site | None:
    platform = build_platform(settings)
    try:
        with platform.sessions() as session:
            return session.query(Site).filter_by(tenant_id=TENANT, name=name).one_or_none()
    finally:
        platform.close()


def _traces(settings: Settings, name: str) -> list[str]:
    """Anything of the site left on the machine."""
    stack = LocalStack.from_settings(settings)
    found = [p.pw_name for p in pwd.getpwall() if p.pw_name.startswith(f"wp-{TENANT}-{name[:6]}-")]
    found += [p.name for p in stack.phpfpm.pool_dir.glob(f"wp-{TENANT}-{name[:6]}-*")]
    found += [p.name for p in stack.nginx.sites_dir.glob(f"{TENANT}--{name}.conf")]
    if (stack.sites_dir / TENANT / name).exists():
        found.append(str(stack.sites_dir / TENANT / name))
    with stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (f"wp_{TENANT}_{name[:16]}_%",))
        found += [r[0] for r in cur.fetchall()]
        cur.execute(
            "SELECT User FROM mysql.user WHERE User LIKE %s", (f"wp_{TENANT[:4]}_{name[:6]}_%",)
        )
        found += [r[0] for r in cur.fetchall()]
    return found


def _serves(settings: Settings, name: str) -> bool:
    response = httpx.get(
        f"http://127.0.0.1:{settings.site_port}/",
        headers={"Host": f"{name}.{TENANT}.localhost:{settings.site_port}"},
        timeout=30,
    )
    title = re.search(r"<title>([^<]*)</title>", response.text)
    return response.status_code == 200 and title is not None


CREATE_BOUNDARIES = [
    "after:database",
    "after:storage",
    "before:runtime",
    "after:runtime",
    "before:wordpress",
]


@pytest.mark.parametrize("boundary", CREATE_BOUNDARIES)
def test_create_killed_then_restarted(crash_home: Settings, boundary: str) -> None:
    name = "c" + re.sub(r"[^a-z0-9]", "", boundary)[:20]
    died = _worker(crash_home, "create", name, boundary)
    assert died.returncode == -9, died.stderr[-2000:]
    op_id = json.loads(died.stdout.splitlines()[0])["operation_ids"][0]
    statuses = _restart(crash_home)
    site = _site_row(crash_home, name)
    if statuses[op_id] == "succeeded":
        assert site is not None and site.status == "ready"
        assert _serves(crash_home, name)
        deleted = _worker(crash_home, "delete", name, "never")
        assert deleted.returncode == 0, deleted.stderr[-2000:]
    else:
        assert statuses[op_id] == "rolled_back" and site is None
    assert _traces(crash_home, name) == []


@pytest.mark.parametrize("boundary", ["after:backup", "after:runtime", "before:database"])
def test_delete_killed_then_restarted(crash_home: Settings, boundary: str) -> None:
    name = "d" + re.sub(r"[^a-z0-9]", "", boundary)[:20]
    created = _worker(crash_home, "create", name, "never")
    assert created.returncode == 0, created.stderr[-2000:]
    died = _worker(crash_home, "delete", name, boundary)
    assert died.returncode == -9, died.stderr[-2000:]
    op_id = json.loads(died.stdout.splitlines()[0])["operation_ids"][0]
    assert _restart(crash_home)[op_id] == "succeeded"
    assert _site_row(crash_home, name) is None
    assert _traces(crash_home, name) == []
    assert list((crash_home.home / "backups" / TENANT / name).glob("*/database.sql.gz"))
