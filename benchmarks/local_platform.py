"""The control plane built in this process on a fresh local home: what the benchmarks of the
`local` provider's site operations (backups.py, staging.py, updates.py) share.

`local_platform()` makes a world-traversable AIPRESS_HOME under /tmp, builds the app, signs
in as an admin and creates the tenant; on the way out it stops the stack and removes the home
(unless kept). `LocalPlatform.operation()` starts an operation and waits for its end;
`remove_sites()` takes sites down the way a delete's steps would; `main()` is their entry
point.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import harness

FINISHED = ("succeeded", "failed", "rolled_back")
# The programs a site's backup runs, whose versions go with the results.
VERSIONS = {"restic": ["restic", "version"], "mariadb-dump": ["mariadb-dump", "--version"]}


def run_and_report(
    args: argparse.Namespace,
    run: Callable[[], dict[str, Any]],
    print_results: Callable[[dict[str, Any]], None],
) -> None:
    """As root (the local stack makes system users and runs daemons), harness.run_and_report
    with the versions of restic and mariadb-dump."""
    harness.require_root("run as root: the local stack makes system users and runs daemons")
    harness.run_and_report(args.output, VERSIONS, run, print_results)


def main(
    argv: list[str] | None,
    parse_args: Callable[[list[str] | None], argparse.Namespace],
    run: Callable[[argparse.Namespace], dict[str, Any]],
    print_results: Callable[[dict[str, Any]], None],
) -> None:
    """A local-platform benchmark's entry point: its arguments, then `run_and_report`."""
    args = parse_args(argv)
    run_and_report(args, lambda: run(args), print_results)


def step_seconds(op: dict[str, Any]) -> dict[str, float]:
    """Each finished step's wall seconds, by step name."""
    out: dict[str, float] = {}
    for step in op["steps"]:
        if step.get("started_at") and step.get("finished_at"):
            began = datetime.fromisoformat(step["started_at"])
            ended = datetime.fromisoformat(step["finished_at"])
            out[step["name"]] = round((ended - began).total_seconds(), 2)
    return out


def add_upload_options(parser: argparse.ArgumentParser, *, uploads_mb: int) -> None:
    """`--uploads-mb` and `--file-mb`: how much `fill_uploads` writes, in files of what size."""
    parser.add_argument("--uploads-mb", type=int, default=uploads_mb, help="MB of random uploads")
    parser.add_argument("--file-mb", type=int, default=4, help="size of each upload file (MB)")


def fill_uploads(resources: dict[str, Any], uploads_mb: int, file_mb: int) -> None:
    """`uploads_mb` MB of random (incompressible) files in the site's uploads, as its user."""
    root = Path(resources["storage"]["root"])
    user = resources["storage"]["user"]
    uploads = root / "htdocs" / "wp-content" / "uploads" / "bench"
    subprocess.run(["runuser", "-u", user, "--", "mkdir", "-p", str(uploads)], check=True)
    for n in range(max(1, uploads_mb // file_mb)):
        path = uploads / f"file-{n:04d}.bin"
        with path.open("wb") as out:
            for _ in range(file_mb):
                out.write(os.urandom(1 << 20))
        shutil.chown(path, user, "www-data")


class LocalPlatform:
    """The app, a test client signed in as an admin, and the tenant the benchmark works in."""

    def __init__(self, app: Any, client: Any, admin: dict[str, str], tenant: str) -> None:
        self.app = app
        self.client = client
        self.admin = admin
        self.sites = f"/v1/tenants/{tenant}/sites"
        self.tenant = tenant

    @property
    def platform(self) -> Any:
        """The control plane's platform object (provider, sessions, keyring)."""
        return self.app.state.platform

    def operation(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 3600
    ) -> dict[str, Any]:
        """Start an operation and wait for its end: wall seconds and each step's."""
        t0 = time.perf_counter()
        answer = self.client.request(method, path, json=body, headers=self.admin)
        if answer.status_code != 202:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
        op_id = answer.json()["operation"]["id"]
        deadline = time.monotonic() + timeout
        while True:
            op = self.client.get(f"/v1/operations/{op_id}", headers=self.admin).json()
            if op["status"] in FINISHED:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} did not finish within {timeout:.0f} s")
            time.sleep(0.2)
        if op["status"] != "succeeded":
            raise RuntimeError(f"{path} {op['status']}: {op.get('error')}")
        return {"seconds": round(time.perf_counter() - t0, 2), "steps": step_seconds(op)}

    def remove_sites(self, *names: str) -> None:
        """Take the sites down (WordPress, DNS, runtime, storage, secrets, database) and
        forget their rows."""
        from controlplane.engine.context import ContextBuilder
        from controlplane.models import Site

        platform = self.platform
        provider = platform.provider
        parts = (provider.wordpress, provider.dns, provider.runtime, provider.storage,
                 provider.secrets, provider.database)  # fmt: skip
        with platform.sessions() as session:
            for name in names:
                row = session.query(Site).filter_by(tenant_id=self.tenant, name=name).one()
                ctx = ContextBuilder(platform.keyring).change(session, row, None)
                for step in parts:
                    step.remove(ctx)
                session.delete(row)
            session.commit()


@contextmanager
def local_platform(name: str, tenant: str, *, keep: bool) -> Iterator[LocalPlatform]:
    """The control plane on a fresh home, its tenant made; the stack stopped at the end."""
    from fastapi.testclient import TestClient

    from controlplane.api.app import create_app
    from controlplane.kernel.auth import LocalTokenIssuer
    from controlplane.kernel.identity import Role
    from controlplane.settings import Settings
    from controlplane.stack.local import LocalStack

    base = Path(tempfile.mkdtemp(prefix=f"aipress-bench-{name}-", dir="/tmp"))
    base.chmod(0o755)
    settings = Settings(
        provider="local", home=base / "home", mariadb_port=harness.free_port(),
        site_port=harness.free_port(), log_file=base / "platform.log", log_level="WARNING",
    )  # fmt: skip
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            admin = {
                "Authorization": f"Bearer {LocalTokenIssuer(settings).issue('root', Role.ADMIN)}"
            }
            client.post("/v1/tenants", json={"id": tenant, "name": tenant}, headers=admin)
            yield LocalPlatform(app, client, admin, tenant)
    finally:
        LocalStack.from_settings(settings).stop()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
