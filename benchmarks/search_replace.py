#!/usr/bin/env python
"""Speed of the one search-replace (controlplane/providers/local/search_replace.php) on a
WordPress-shaped database of `--posts` posts, with the real php and a real MariaDB.

Needs mariadbd and php with mysqli (what `make test` installs); root when MariaDB runs as
its `mysql` user. What it does, in order:

0. Starts a private MariaDB in a temporary directory and makes a database and its user.
1. Fills it as WordPress would look after a few years: `--posts` posts (the old address in
   every post's content and guid), `--meta` post meta rows per post (a third plain, a third
   PHP-serialized arrays, a third Elementor-style JSON with escaped slashes), 200 options
   (serialized widgets among them) and a comment per post.
2. Runs the script as the local provider does (the source on stdin, the input in the
   environment): a dry run, then the rewrite, then a second rewrite (nothing left to change:
   the cost of scanning). Wall time, rows scanned and rows/s of each; the rewrite's report.
3. Stops MariaDB and removes the directory.

Prints a table and writes JSON (machine info included) to `--output`.

Example:
    sudo .venv/bin/python benchmarks/search_replace.py
    sudo .venv/bin/python benchmarks/search_replace.py --posts 50000 --meta 6
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
from harness import fmt

OLD, NEW = "http://old-bakery.example", "https://bakery.sites.example.com"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser(
        "search_replace", "Benchmark the search-replace of a site's URL.", keep="the directory"
    )
    parser.add_argument("--posts", type=int, default=10_000, help="posts in wp_posts")
    parser.add_argument("--meta", type=int, default=3, help="wp_postmeta rows per post")
    args = parser.parse_args(argv)
    harness.check_counts(parser, args, positive=("posts",), non_negative=("meta",))
    return args


def _php_serialized(items: dict[str, str]) -> str:
    """A PHP-serialized array of strings (what WordPress stores for meta arrays)."""
    body = "".join(
        f's:{len(k.encode())}:"{k}";s:{len(v.encode())}:"{v}";' for k, v in items.items()
    )
    return f"a:{len(items)}:{{{body}}}"


def _fill(cur: Any, posts: int, meta: int) -> dict[str, int]:
    cur.execute("CREATE TABLE wp_posts (ID BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, "
                "post_title TEXT, post_content LONGTEXT, post_excerpt TEXT, guid VARCHAR(255), "
                "post_name VARCHAR(200)) DEFAULT CHARSET=utf8mb4")  # fmt: skip
    cur.execute("CREATE TABLE wp_postmeta (meta_id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, "
                "post_id BIGINT UNSIGNED, meta_key VARCHAR(255), meta_value LONGTEXT, "
                "KEY post_id (post_id)) DEFAULT CHARSET=utf8mb4")  # fmt: skip
    cur.execute("CREATE TABLE wp_options (option_id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, "
                "option_name VARCHAR(191) UNIQUE, option_value LONGTEXT, autoload VARCHAR(20)) "
                "DEFAULT CHARSET=utf8mb4")  # fmt: skip
    cur.execute("CREATE TABLE wp_comments (comment_ID BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,"
                " comment_post_ID BIGINT UNSIGNED, comment_author_url VARCHAR(200), "
                "comment_content TEXT) DEFAULT CHARSET=utf8mb4")  # fmt: skip
    filler = "Fresh sourdough every morning. " * 40
    batch = 1000
    for start in range(0, posts, batch):
        ids = range(start + 1, min(posts, start + batch) + 1)
        cur.executemany(
            "INSERT INTO wp_posts (ID, post_title, post_content, post_excerpt, guid, post_name) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(i, f"Post {i}", f'<p>{filler}</p><a href="{OLD}/post-{i}/">more</a>'
              f'<img src="{OLD}/wp-content/uploads/2026/11/{i}.jpg">', "é" * 20,
              f"{OLD}/?p={i}", f"post-{i}") for i in ids],
        )  # fmt: skip
        rows = []
        for i in ids:
            for n in range(meta):
                if n % 3 == 0:
                    value = f"{OLD}/wp-content/uploads/2026/11/{i}-{n}.jpg"
                elif n % 3 == 1:
                    value = _php_serialized({"url": f"{OLD}/shop/{i}", "label": f"item {n}"})
                else:
                    value = json.dumps([{"settings": {"link": {"url": f"{OLD}/p/{i}"}}}])
                    value = value.replace("/", "\\/")
                rows.append((i, f"_meta_{n}", value))
        cur.executemany(
            "INSERT INTO wp_postmeta (post_id, meta_key, meta_value) VALUES (%s, %s, %s)", rows
        )
        cur.executemany(
            "INSERT INTO wp_comments (comment_post_ID, comment_author_url, comment_content) "
            "VALUES (%s, %s, %s)",
            [(i, "https://visitor.example", "Lovely bread!") for i in ids],
        )
    options = [("siteurl", OLD), ("home", OLD)] + [
        (f"widget_{n}", _php_serialized({"title": f"Widget {n}", "link": f"{OLD}/w/{n}"}))
        for n in range(198)
    ]
    cur.executemany(
        "INSERT INTO wp_options (option_name, option_value, autoload) VALUES (%s, %s, 'yes')",
        options,
    )
    return {"wp_posts": posts, "wp_postmeta": posts * meta, "wp_comments": posts,
            "wp_options": len(options)}  # fmt: skip


def _run_script(payload: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    from controlplane.providers.search_replace import INPUT_ENV, script_source

    t0 = time.perf_counter()
    done = subprocess.run(
        ["php", "-d", "memory_limit=256M", "--"], input=script_source(), capture_output=True,
        text=True, env={"PATH": os.environ["PATH"], INPUT_ENV: json.dumps(payload)}, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"the script failed: {done.stderr[-500:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return seconds, report


def run(args: argparse.Namespace) -> dict[str, Any]:
    from controlplane.stack.mariadb import MariaDB

    base = Path(tempfile.mkdtemp(prefix="aipress-bench-sr-", dir="/tmp"))
    base.chmod(0o755)
    server = MariaDB(base / "mariadb", port=harness.free_port())
    results: dict[str, Any] = {"parameters": harness.parameters(args)}
    server.start()
    try:
        name, password = "bench_sr", secrets.token_urlsafe(16)
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
            cur.execute(f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL ON {name}.* TO '{name}'@'127.0.0.1'")
            cur.execute(f"USE {name}")
            t0 = time.perf_counter()
            counts = _fill(cur, args.posts, args.meta)
            conn.commit()
            results["fill_seconds"] = round(time.perf_counter() - t0, 1)
        results["rows"] = counts
        total = sum(counts.values())
        payload = {"host": "127.0.0.1", "port": server.port, "user": name, "password": password,
                   "database": name, "from": OLD, "to": NEW}  # fmt: skip
        runs: dict[str, Any] = {}
        for label, extra in (("dry run", {"dry_run": True}), ("rewrite", {}),
                             ("rescan (nothing left)", {})):  # fmt: skip
            seconds, report = _run_script({**payload, **extra})
            runs[label] = {"seconds": round(seconds, 2), "rows_changed": report["rows"],
                           "cells_changed": report["cells"],
                           "rows_per_second": round(total / seconds), "report": report}  # fmt: skip
        results["total_rows"] = total
        results["runs"] = runs
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return results


def print_results(results: dict[str, Any]) -> None:
    params = results["parameters"]
    harness.print_table(
        f"search-replace, {params['posts']} posts ({results['total_rows']} rows in 4 tables, "
        f"filled in {results['fill_seconds']} s)",
        ["run", "seconds", "rows changed", "cells changed", "rows/s (all rows)"],
        [(label, fmt(r["seconds"], " s"), str(r["rows_changed"]), str(r["cells_changed"]),
          str(r["rows_per_second"])) for label, r in results["runs"].items()],
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    versions = {"php": ["php", "-v"], "mariadbd": ["mariadbd", "--version"]}
    harness.run_and_report(args.output, versions, lambda: run(args), print_results)


if __name__ == "__main__":
    main()
