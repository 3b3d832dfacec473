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
import time
from typing import Any

import harness
import local_platform
from harness import fmt

TENANT = "stbench"
SITE = "prod"
STAGING = "prod-dev"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser(
        "staging", "Benchmark clone and promote of a local site.", keep="the home"
    )
    parser.add_argument("--posts", type=int, default=10_000, help="published posts")
    local_platform.add_upload_options(parser, uploads_mb=100)
    args = parser.parse_args(argv)
    harness.check_counts(parser, args, positive=("uploads_mb", "file_mb"),
                         non_negative=("posts",))  # fmt: skip
    return args


def _fill(stack: Any, resources: dict[str, Any], url: str, args: argparse.Namespace) -> None:
    """Posts straight into wp_posts (each naming the site's URL); random uploads."""
    local_platform.fill_uploads(resources, args.uploads_mb, args.file_mb)
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    from controlplane.models import Site

    results: dict[str, Any] = {"parameters": harness.parameters(args)}
    with local_platform.local_platform("staging", TENANT, keep=args.keep) as bench:
        client, admin, sites = bench.client, bench.admin, bench.sites
        body = {"name": SITE, "admin_email": "owner@example.com", "title": "Big site"}
        results["create"] = bench.operation("POST", sites, body)
        platform = bench.platform
        site = client.get(f"{sites}/{SITE}", headers=admin).json()
        with platform.sessions() as session:
            row = session.get(Site, site["id"])
            assert row is not None
            resources = dict(row.resources)
        t0 = time.perf_counter()
        _fill(platform.provider.stack, resources, site["preview_url"], args)
        results["fill_seconds"] = round(time.perf_counter() - t0, 1)

        results["clone"] = bench.operation("POST", f"{sites}/{SITE}/clone", {"name": STAGING})
        t0 = time.perf_counter()
        drift = client.get(f"{sites}/{STAGING}/drift", headers=admin)
        results["drift_seconds"] = round(time.perf_counter() - t0, 2)
        results["drift_changed"] = drift.json().get("changed")
        results["promote_all"] = bench.operation("POST", f"{sites}/{STAGING}/promote",
                                                 {"force": True})  # fmt: skip
        scoped = {"scope": "database", "tables": ["wp_posts", "wp_postmeta"], "force": True}
        results["promote_posts"] = bench.operation("POST", f"{sites}/{STAGING}/promote", scoped)
        bench.remove_sites(STAGING, SITE)
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
    local_platform.main(argv, parse_args, run, print_results)


if __name__ == "__main__":
    main()
