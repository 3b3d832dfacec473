#!/usr/bin/env python
"""Backup and restore speed of the `local` provider (restic), deduplication and memory.

Needs root (site system users, MariaDB, PHP-FPM, nginx, restic). What it does, in order:

0. Makes a fresh, world-traversable AIPRESS_HOME under /tmp, builds the control plane in this
   process and creates one site through the API (as a user would).
1. Fills it: `--uploads-mb` MB of random (incompressible) files in wp-content/uploads, as
   the site's user, and a table of `--rows` rows in the site's database.
2. Backup: `LocalProvider.backups.backup` with a context built the way the engine builds one
   (a test backup key). Wall time, size, bytes added to the repository, and the peak RSS of
   the backup's process tree, sampled every `--sample-ms` ms: restic and mariadb-dump (the
   children) and this Python process (which streams the dump; its baseline, the control
   plane loaded, is reported too).
3. Restore: verify + check_space, then stage + swap (the restore's own work), timed apart.
4. Deduplication: 1 MB of new random bytes in an upload, a second backup: what it added.
5. Takes the site down, stops the stack, removes the home.

Prints tables and writes JSON (machine info included) to `--output`.

Example:
    sudo .venv/bin/python benchmarks/backups.py
    sudo .venv/bin/python benchmarks/backups.py --uploads-mb 20 --rows 10000
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import harness
import local_platform
from harness import fmt

TENANT = "bkbench"
SITE = "big"
PASSWORD = "bench-" + secrets.token_urlsafe(24)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser(
        "backups", "Benchmark restic backups and restores of a local site.", keep="the home"
    )
    local_platform.add_upload_options(parser, uploads_mb=200)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the extra table")
    parser.add_argument("--sample-ms", type=float, default=50.0, help="RSS sampling interval")
    args = parser.parse_args(argv)
    harness.check_counts(parser, args, positive=("uploads_mb", "file_mb", "sample_ms"),
                         non_negative=("rows",))  # fmt: skip
    return args


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler:
    """Peak RSS of this process and, apart, of its descendants, sampled in a thread."""

    def __init__(self, interval: float, daemons: list[int | None]) -> None:
        self.interval = interval
        self.daemons = [pid for pid in daemons if pid is not None]
        self.peak_self_kb = 0
        self.peak_children_kb = 0
        self.peak_children: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            family = harness.process_children()
            # The stack's daemons (started by this process) serve sites; they are not the
            # backup's processes: only restic and mariadb-dump are counted.
            stack = {p for d in self.daemons for p in harness.process_tree(d, family)}
            children = [p for p in harness.process_tree(me, family) if p != me and p not in stack]
            self.peak_self_kb = max(self.peak_self_kb, _rss_kb(me))
            by_name: dict[str, int] = {}
            for pid in children:
                try:
                    name = Path(f"/proc/{pid}/comm").read_text().strip()
                except OSError:
                    continue
                by_name[name] = by_name.get(name, 0) + _rss_kb(pid)
            total = sum(by_name.values())
            if total > self.peak_children_kb:
                self.peak_children_kb, self.peak_children = total, by_name
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _fill(stack: Any, resources: dict[str, Any], args: argparse.Namespace) -> None:
    """Random uploads as the site's user; a table of `rows` rows."""
    local_platform.fill_uploads(resources, args.uploads_mb, args.file_mb)
    db = resources["database"]["name"]
    with stack.mariadb.connect(database=db) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE bench_rows (id INT PRIMARY KEY AUTO_INCREMENT, "
            "title VARCHAR(200), body TEXT, created DATETIME)"
        )
        batch = 2000
        for start in range(0, args.rows, batch):
            rows = [
                (f"row {n}", secrets.token_hex(64), "2026-01-01 00:00:00")
                for n in range(start, min(args.rows, start + batch))
            ]
            cur.executemany(
                "INSERT INTO bench_rows (title, body, created) VALUES (%s, %s, %s)", rows
            )


def run(args: argparse.Namespace) -> dict[str, Any]:
    from controlplane.engine.context import ContextBuilder
    from controlplane.models import Site

    results: dict[str, Any] = {"parameters": harness.parameters(args)}
    with local_platform.local_platform("backups", TENANT, keep=args.keep) as bench:
        body = {"name": SITE, "admin_email": "owner@example.com", "title": "Big site"}
        bench.operation("POST", bench.sites, body, timeout=300)
        platform = bench.platform
        provider = platform.provider
        with platform.sessions() as session:
            site = session.query(Site).filter_by(tenant_id=TENANT, name=SITE).one()
            ctx = ContextBuilder(platform.keyring).change(session, site, None)
            ctx.backup_password = PASSWORD
            t0 = time.perf_counter()
            _fill(provider.stack, ctx.resources, args)
            results["fill_seconds"] = round(time.perf_counter() - t0, 1)
            results["measure"] = _measure(provider, ctx, args)
        bench.remove_sites(SITE)
    return results


def _measure(provider: Any, ctx: Any, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    backups = provider.backups
    baseline_kb = _rss_kb(os.getpid())
    stack = provider.stack
    daemons = [stack.mariadb.running_pid(), stack.phpfpm.pid(), stack.nginx.pid()]
    with TreeSampler(args.sample_ms / 1000, daemons) as sampler:
        t0 = time.perf_counter()
        first = backups.backup(ctx, secrets.token_hex(16))
        out["backup_seconds"] = round(time.perf_counter() - t0, 2)
    out["backup_size_mb"] = round(first.size_bytes / 1e6, 1)
    out["backup_added_mb"] = round(first.added_bytes / 1e6, 1)
    out["python_rss_baseline_mb"] = round(baseline_kb / 1024, 1)
    out["python_rss_peak_mb"] = round(sampler.peak_self_kb / 1024, 1)
    out["children_rss_peak_mb"] = round(sampler.peak_children_kb / 1024, 1)
    out["children_at_peak_mb"] = {k: round(v / 1024, 1) for k, v in sampler.peak_children.items()}
    out["tree_rss_peak_mb"] = round((sampler.peak_self_kb + sampler.peak_children_kb) / 1024, 1)

    t0 = time.perf_counter()
    backups.verify(ctx, first)
    backups.check_space(ctx, first)
    out["verify_seconds"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    backups.stage(ctx, first)
    out["stage_seconds"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    backups.swap(ctx)
    out["swap_seconds"] = round(time.perf_counter() - t0, 2)
    out["restore_seconds"] = round(out["stage_seconds"] + out["swap_seconds"], 2)
    backups.discard_previous(ctx)
    backups.unstage(ctx)

    root = Path(ctx.resources["storage"]["root"])
    changed = root / "htdocs" / "wp-content" / "uploads" / "bench" / "changed.bin"
    changed.write_bytes(os.urandom(1 << 20))
    shutil.chown(changed, ctx.resources["storage"]["user"], "www-data")
    t0 = time.perf_counter()
    second = backups.backup(ctx, secrets.token_hex(16))
    out["second_backup_seconds"] = round(time.perf_counter() - t0, 2)
    out["second_backup_added_mb"] = round(second.added_bytes / 1e6, 2)
    out["second_backup_size_mb"] = round(second.size_bytes / 1e6, 1)
    return out


def print_results(results: dict[str, Any]) -> None:
    m = results["measure"]
    params = results["parameters"]
    harness.print_facts(
        f"Backups (restic), {params['uploads_mb']} MB uploads + {params['rows']} rows",
        [
            ("backup (dump + files + read back)", fmt(m["backup_seconds"], " s")),
            ("backup size / added to repo",
             f"{m['backup_size_mb']} MB / {m['backup_added_mb']} MB"),
            ("verify + space check", fmt(m["verify_seconds"], " s")),
            ("restore: stage", fmt(m["stage_seconds"], " s")),
            ("restore: swap", fmt(m["swap_seconds"], " s")),
            ("restore: stage + swap", fmt(m["restore_seconds"], " s")),
            ("second backup after 1 MB change", fmt(m["second_backup_seconds"], " s")),
            ("second backup added", f"{m['second_backup_added_mb']} MB"),
            ("peak RSS, children (restic, dump)", f"{m['children_rss_peak_mb']} MB "
             f"{m['children_at_peak_mb']}"),
            ("peak RSS, this process", f"{m['python_rss_peak_mb']} MB "
             f"(baseline {m['python_rss_baseline_mb']} MB: the control plane loaded)"),
        ],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    local_platform.main(argv, parse_args, run, print_results)


if __name__ == "__main__":
    main()
