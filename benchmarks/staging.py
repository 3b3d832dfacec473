#!/usr/bin/env python
"""Clone and promote times of the `local` provider for a site with many posts and uploads.

Needs root (site system users, MariaDB, PHP-FPM, nginx, restic). What it does, in order:

0. Makes a fresh, world-traversable AIPRESS_HOME under /tmp, builds the control plane in this
   process and creates one site through the API.
1. Fills it: `--posts` published posts (inserted in batches, each naming the site's URL so
   the clone's rewrite has work to do) and `--uploads-mb` MB of random files in uploads.
2. Clone: `POST .../clone` and the operation to its end (fingerprint, backup of the parent,
   a new site, the restore with URLs rewritten), wall time and each step's time.
3. Drift: `GET .../drift` (the parent fingerprinted again and compared).
4. Promote: `POST .../promote {"force": true}` (everything: pre-promote backup, the copy's
   backup, stage with the rewrite, swap, probe, fingerprint) and the same with
   `{"scope": "database", "tables": ["wp_posts", "wp_postmeta"]}`.
5. Takes both sites down, stops the stack, removes the home.

Prints a table and writes JSON (machine info included) to `--output`.

Example:
    sudo .venv/bin/python benchmarks/staging.py
    sudo .venv/bin/python benchmarks/staging.py --posts 1000 --uploads-mb 10
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import harness
from harness import fmt

TENANT = "stbench"
SITE = "prod"
STAGING = "prod-dev"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser("staging", "Benchmark clone and promote of a local site.")
    parser.add_argument("--posts", type=int, default=10_000, help="published posts")
    parser.add_argument("--uploads-mb", type=int, default=100, help="MB of random uploads")
    parser.add_argument("--file-mb", type=int, default=4, help="size of each upload file (MB)")
    parser.add_argument("--keep", action="store_true", help="keep the home (for debugging)")
    args = parser.parse_args(argv)
    harness.check_counts(parser, args, positive=("uploads_mb", "file_mb"),
                         non_negative=("posts",))  # fmt: skip
    return args


def _fill(stack: Any, resources: dict[str, Any], url: str, args: argparse.Namespace) -> None:
    """Posts straight into wp_posts (each naming the site's URL); random uploads."""
    root = Path(resources["storage"]["root"])
    user = resources["storage"]["user"]
    uploads = root / "htdocs" / "wp-content" / "uploads" / "bench"
    subprocess.run(["runuser", "-u", user, "--", "mkdir", "-p", str(uploads)], check=True)
    for n in range(max(1, args.uploads_mb // args.file_mb)):
        path = uploads / f"file-{n:04d}.bin"
        with path.open("wb") as out:
            for _ in range(args.file_mb):
                out.write(os.urandom(1 << 20))
        shutil.chown(path, user, "www-data")
    db = resources["database"]["name"]
    with stack.mariadb.connect(database=db) as conn, conn.cursor() as cur:
        batch = 1000
        for start in range(0, args.posts, batch):
            rows = [
                (1, "2026-01-01 00:00:00", "2026-01-01 00:00:00",
                 f"Post {n}: read more at {url}post-{n}/", f"Post {n}", "", "publish",
                 f"post-{n}", "", "", "2026-01-01 00:00:00", "2026-01-01 00:00:00", "",
                 f"{url}?p={n}", "post")
                for n in range(start, min(args.posts, start + batch))
            ]  # fmt: skip
            cur.executemany(
                "INSERT INTO wp_posts (post_author, post_date, post_date_gmt, post_content, "
                "post_title, post_excerpt, post_status, post_name, to_ping, pinged, "
                "post_modified, post_modified_gmt, post_content_filtered, guid, post_type) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )


def _step_seconds(op: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for step in op["steps"]:
        if step.get("started_at") and step.get("finished_at"):
            began = datetime.fromisoformat(step["started_at"])
            ended = datetime.fromisoformat(step["finished_at"])
            out[step["name"]] = round((ended - began).total_seconds(), 2)
    return out


def _timed(client: Any, admin: dict[str, str], method: str, path: str,
           body: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Start an operation and wait for its end: wall seconds and each step's."""
    t0 = time.perf_counter()
    answer = client.request(method, path, json=body, headers=admin)
    if answer.status_code != 202:
        raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
    op_id = answer.json()["operation"]["id"]
    deadline = time.monotonic() + 3600
    while True:
        op = client.get(f"/v1/operations/{op_id}", headers=admin).json()
        if op["status"] in ("succeeded", "failed", "rolled_back"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not finish within an hour")
        time.sleep(0.2)
    if op["status"] != "succeeded":
        raise RuntimeError(f"{path} {op['status']}: {op.get('error')}")
    return {"seconds": round(time.perf_counter() - t0, 2), "steps": _step_seconds(op)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from controlplane.api.app import create_app
    from controlplane.engine.context import ContextBuilder
    from controlplane.kernel.auth import LocalTokenIssuer
    from controlplane.kernel.identity import Role
    from controlplane.models import Site
    from controlplane.settings import Settings
    from controlplane.stack.local import LocalStack

    base = Path(tempfile.mkdtemp(prefix="aipress-bench-staging-", dir="/tmp"))
    base.chmod(0o755)
    settings = Settings(
        provider="local", home=base / "home", mariadb_port=harness.free_port(),
        site_port=harness.free_port(), log_file=base / "platform.log", log_level="WARNING",
    )  # fmt: skip
    results: dict[str, Any] = {"parameters": harness.parameters(args)}
    app = create_app(settings)
    sites = f"/v1/tenants/{TENANT}/sites"
    try:
        with TestClient(app) as client:
            admin = {
                "Authorization": f"Bearer {LocalTokenIssuer(settings).issue('root', Role.ADMIN)}"
            }
            client.post("/v1/tenants", json={"id": TENANT, "name": TENANT}, headers=admin)
            body = {"name": SITE, "admin_email": "owner@example.com", "title": "Big site"}
            results["create"] = _timed(client, admin, "POST", sites, body)
            platform = app.state.platform
            provider = platform.provider
            site = client.get(f"{sites}/{SITE}", headers=admin).json()
            with platform.sessions() as session:
                row = session.get(Site, site["id"])
                assert row is not None
                resources = dict(row.resources)
            t0 = time.perf_counter()
            _fill(provider.stack, resources, site["preview_url"], args)
            results["fill_seconds"] = round(time.perf_counter() - t0, 1)

            results["clone"] = _timed(client, admin, "POST", f"{sites}/{SITE}/clone",
                                      {"name": STAGING})  # fmt: skip
            t0 = time.perf_counter()
            drift = client.get(f"{sites}/{STAGING}/drift", headers=admin)
            results["drift_seconds"] = round(time.perf_counter() - t0, 2)
            results["drift_changed"] = drift.json().get("changed")
            results["promote_all"] = _timed(client, admin, "POST", f"{sites}/{STAGING}/promote",
                                            {"force": True})  # fmt: skip
            scoped = {"scope": "database", "tables": ["wp_posts", "wp_postmeta"], "force": True}
            results["promote_posts"] = _timed(
                client, admin, "POST", f"{sites}/{STAGING}/promote", scoped
            )
            parts = (provider.wordpress, provider.dns, provider.runtime, provider.storage,
                     provider.secrets, provider.database)  # fmt: skip
            with platform.sessions() as session:
                for name in (STAGING, SITE):
                    row = session.query(Site).filter_by(tenant_id=TENANT, name=name).one()
                    ctx = ContextBuilder(platform.keyring).change(session, row, None)
                    for step in parts:
                        step.remove(ctx)
                    session.delete(row)
                session.commit()
    finally:
        LocalStack.from_settings(settings).stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return results


def print_results(results: dict[str, Any]) -> None:
    params = results["parameters"]

    def steps(key: str) -> str:
        return ", ".join(f"{k} {v} s" for k, v in results[key]["steps"].items())

    harness.print_facts(
        f"Staging (local), {params['posts']} posts + {params['uploads_mb']} MB uploads",
        [
            ("fill (posts + uploads)", fmt(results["fill_seconds"], " s")),
            ("clone (end to end)", fmt(results["clone"]["seconds"], " s")),
            ("  clone steps", steps("clone")),
            ("drift (fingerprint + compare)", fmt(results["drift_seconds"], " s")),
            ("promote all (end to end)", fmt(results["promote_all"]["seconds"], " s")),
            ("  promote steps", steps("promote_all")),
            ("promote wp_posts + wp_postmeta", fmt(results["promote_posts"]["seconds"], " s")),
            ("  promote steps", steps("promote_posts")),
        ],
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root: the local stack makes system users and runs daemons")
    info = harness.machine_info(
        {"restic": harness.command_version(["restic", "version"]),
         "mariadb-dump": harness.command_version(["mariadb-dump", "--version"])}
    )  # fmt: skip
    results = run(args)
    harness.close_machine_info(info)
    results["machine"] = info
    print_results(results)
    harness.write_json(args.output, results)


if __name__ == "__main__":
    main()
