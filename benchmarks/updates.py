#!/usr/bin/env python
"""Time to update one plugin on one site of the `local` provider, and a bulk update of many
sites at a set concurrency, through the API.

Needs root (site system users, MariaDB, PHP-FPM, nginx, restic). What it does, in order:

0. Makes a fresh, world-traversable AIPRESS_HOME under /tmp, builds the control plane in this
   process and creates one site through the API.
1. Adds the tests' `demo` plugin to the catalogue in `--updates` + 1 working versions and
   the broken 1.2 (`POST /v1/catalogue`), and installs the first version, active.
2. `--updates` times: `POST .../updates` to the next version, until the operation succeeds:
   the wall time from the POST to the end, and each step's time (pre-update backup,
   maintenance, install, database upgrade, probe...).
3. Once: the update to the broken 1.2, which fails its probe (retried for
   `--probe-seconds`) and rolls back by itself: the time to the rolled-back end.
4. With `--bulk-sites` N (default 50; 0 skips it): creates N more sites (the engine builds them
   `max_parallel_operations` at a time), installs the first version on each, and times one
   `POST /v1/tenants/{t}/bulk {action: update}` at `--concurrency` (default 4) from the POST
   to the parent's end: sites per minute, and how many children succeeded or failed.
5. Takes the sites down, stops the stack, removes the home.

Prints tables and writes JSON (machine info included) to `--output`.

Example:
    sudo .venv/bin/python benchmarks/updates.py
    sudo .venv/bin/python benchmarks/updates.py --updates 3 --probe-seconds 5 --bulk-sites 10
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import harness
import local_platform
from harness import fmt

TENANT = "upbench"
SITE = "shop"
STEPS = ("pre_update", "maintenance", "install", "upgrade_db", "maintenance_off", "probe",
         "finish")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser(
        "updates", "Benchmark one plugin's update on one local site.", keep="the home"
    )
    parser.add_argument("--updates", type=int, default=5, help="updates to time")
    parser.add_argument("--probe-seconds", type=float, default=20.0,
                        help="AIPRESS_UPDATE_PROBE_SECONDS of the broken update")  # fmt: skip
    parser.add_argument("--bulk-sites", type=int, default=50,
                        help="sites of the bulk update (0: no bulk run)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=4, help="the bulk's concurrency")
    args = parser.parse_args(argv)
    harness.check_counts(parser, args, positive=("updates", "concurrency"))
    if args.bulk_sites < 0:
        parser.error("--bulk-sites must be 0 or more")
    return args


def versions(count: int) -> list[str]:
    """Working versions 1.0, 1.1, 1.3, 1.4, ... (1.2 is the broken one)."""
    found = ["1.0", "1.1"]
    minor = 3
    while len(found) < count + 1:
        found.append(f"1.{minor}")
        minor += 1
    return found[: count + 1]


def _wait(client: Any, headers: dict[str, str], op_id: str, timeout: float = 600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op = client.get(f"/v1/operations/{op_id}", headers=headers).json()
        if op["status"] in ("succeeded", "failed", "rolled_back", "cancelled"):
            return op
        time.sleep(0.05)
    raise RuntimeError(f"operation {op_id} did not end within {timeout} s")


def _update(client: Any, admin: dict[str, str], version: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    answer = client.post(f"/v1/tenants/{TENANT}/sites/{SITE}/updates", headers=admin,
                         json={"plugins": [{"slug": "demo", "version": version}]})  # fmt: skip
    if answer.status_code != 202:
        raise RuntimeError(f"the update was refused: {answer.text}")
    op = _wait(client, admin, answer.json()["operation"]["id"])
    return time.perf_counter() - started, op


def _create(client: Any, admin: dict[str, str], name: str) -> str:
    """Start creating one site; its operation id."""
    created = client.post(f"/v1/tenants/{TENANT}/sites", headers=admin,
                          json={"name": name, "admin_email": "owner@example.com",
                                "title": name.title()})  # fmt: skip
    if created.status_code != 202:
        raise RuntimeError(f"creating {name} was refused: {created.text}")
    return str(created.json()["operation"]["id"])


def _install_first(platform: Any, names: list[str], version: str) -> None:
    """The first demo version installed and active on each site, outside any operation."""
    from tests.package_zips import install_demo

    for name in names:
        install_demo(platform, TENANT, name, version, key="bench")


def _bulk(client: Any, admin: dict[str, str], platform: Any, args: argparse.Namespace,
          wanted: list[str]) -> dict[str, Any]:  # fmt: skip
    """N sites on the first version, one bulk update of all of them to the second."""
    names = [f"b{i:03d}" for i in range(args.bulk_sites)]
    started = time.perf_counter()
    for op_id in [_create(client, admin, name) for name in names]:
        if _wait(client, admin, op_id, timeout=3600)["status"] != "succeeded":
            raise RuntimeError(f"creating a bulk site failed (operation {op_id})")
    created_seconds = time.perf_counter() - started
    _install_first(platform, names, wanted[0])
    started = time.perf_counter()
    answer = client.post(f"/v1/tenants/{TENANT}/bulk", headers=admin, json={
        "action": "update", "sites": names, "concurrency": args.concurrency,
        "update": {"plugins": [{"slug": "demo", "version": wanted[1]}]},
    })  # fmt: skip
    if answer.status_code != 202:
        raise RuntimeError(f"the bulk update was refused: {answer.text}")
    parent = _wait(client, admin, answer.json()["operation"]["id"], timeout=3600)
    wall = time.perf_counter() - started
    progress = parent.get("progress") or {}
    deletes = [client.delete(f"/v1/tenants/{TENANT}/sites/{name}", headers=admin).json()
               for name in names]  # fmt: skip
    for deleting in deletes:
        _wait(client, admin, deleting["operation"]["id"], timeout=3600)
    return {
        "sites": len(names), "concurrency": args.concurrency,
        "create_seconds": round(created_seconds, 2), "wall_seconds": round(wall, 2),
        "sites_per_minute": round(len(names) / (wall / 60), 2), "status": parent["status"],
        "failed": progress.get("failed"), "done": progress.get("done"), "error": parent["error"],
    }  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    from controlplane.settings import get_settings
    from tests.package_zips import BROKEN, plugin_zip

    os.environ["AIPRESS_UPDATE_PROBE_SECONDS"] = str(args.probe_seconds)
    get_settings.cache_clear()
    results: dict[str, Any] = {"parameters": harness.parameters(args)}
    try:
        with local_platform.local_platform("updates", TENANT, keep=args.keep) as bench:
            client, admin, platform = bench.client, bench.admin, bench.platform
            if _wait(client, admin, _create(client, admin, SITE))["status"] != "succeeded":
                raise RuntimeError("creating the site failed")
            wanted = versions(args.updates)
            for version in [*wanted, BROKEN]:
                added = client.post("/v1/catalogue?kind=plugin", headers=admin,
                                    files={"file": ("demo.zip", plugin_zip(version))})  # fmt: skip
                if added.status_code != 201:
                    raise RuntimeError(f"adding demo {version} was refused: {added.text}")
            _install_first(platform, [SITE], wanted[0])

            runs: list[dict[str, Any]] = []
            for version in wanted[1:]:
                wall, op = _update(client, admin, version)
                if op["status"] != "succeeded":
                    raise RuntimeError(f"the update to {version} ended {op['status']}: "
                                       f"{op['error']}")  # fmt: skip
                runs.append(
                    {"to": version, "wall_seconds": wall, "steps": local_platform.step_seconds(op)}
                )
            results["updates"] = runs
            results["update_wall"] = harness.stats([r["wall_seconds"] for r in runs])
            results["step_median"] = {
                name: harness.stats([r["steps"].get(name, 0.0) for r in runs])["p50"]
                for name in STEPS
            }
            wall, op = _update(client, admin, BROKEN)
            results["rollback"] = {"status": op["status"], "error": op["error"],
                                   "wall_seconds": round(wall, 2)}  # fmt: skip
            if args.bulk_sites:
                results["bulk"] = _bulk(client, admin, platform, args, wanted)
            client.delete(f"/v1/tenants/{TENANT}/sites/{SITE}", headers=admin)
            deleting = client.get(f"/v1/tenants/{TENANT}/sites/{SITE}/operations",
                                  headers=admin).json()  # fmt: skip
            if deleting and deleting[0]["kind"] == "delete_site":
                _wait(client, admin, deleting[0]["id"])
    finally:
        os.environ.pop("AIPRESS_UPDATE_PROBE_SECONDS", None)
        get_settings.cache_clear()
    return results


def print_results(results: dict[str, Any]) -> None:
    wall = results["update_wall"]
    rollback = results["rollback"]
    harness.print_facts(
        f"One plugin on one local site, {len(results['updates'])} updates",
        [
            ("POST .../updates to succeeded, p50 / max",
             f"{fmt(wall['p50'], ' s')} / {fmt(wall['max'], ' s')}"),
            *((f"  step {name} (p50)", fmt(seconds, " s"))
              for name, seconds in results["step_median"].items()),
            (f"broken update to rolled back (probe window "
             f"{results['parameters']['probe_seconds']:.0f} s)",
             f"{fmt(rollback['wall_seconds'], ' s')}: {rollback['status']}"),
        ],
    )  # fmt: skip
    bulk = results.get("bulk")
    if bulk:
        harness.print_facts(
            f"Bulk update of {bulk['sites']} sites at concurrency {bulk['concurrency']}",
            [
                ("creating the sites (the engine's parallel creates)",
                 fmt(bulk["create_seconds"], " s")),
                ("POST /bulk to the parent's end", fmt(bulk["wall_seconds"], " s")),
                ("sites per minute", fmt(bulk["sites_per_minute"])),
                ("children done / failed", f"{bulk['done']} / {bulk['failed']}"),
            ],
        )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    local_platform.main(argv, parse_args, run, print_results)


if __name__ == "__main__":
    main()
