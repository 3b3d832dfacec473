#!/usr/bin/env python
"""The install part of a create, installer vs template, interleaved on one site.

Needs root (site system users, MariaDB, PHP-FPM, nginx). What it does, in order:

0. Makes a fresh AIPRESS_HOME under /tmp, builds the control plane in this process and
   creates one site through the API (which builds the template).
1. `--rounds` rounds; each round empties the site's database (root drops its tables) and
   runs the wordpress step's `install()` (the code a create runs) once with
   AIPRESS_SITE_TEMPLATES off (the installer: `wp_install()`) and once on (the template's
   tables copied, then personalised), in alternating order so a busy machine's load falls
   on both alike. After each, the site's `blogname` and admin login are checked.
   Besides wall time: the CPU seconds of the php it ran and of mariadbd meanwhile.
2. Takes the site down, stops the stack, removes the home.

Prints p50/p95 of both and of the copy alone; writes JSON (machine info included) to
`--output`. The whole create (POST -> first 200) is `provision.py --templates on|off`.

Example:
    sudo .venv/bin/python benchmarks/site_template.py --rounds 10
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path
from typing import Any

import harness
import local_platform
from harness import fmt, stats

TENANT = "tplbench"
SITE = "tpl"
TITLE = "Template Benchmark"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser(
        "site_template", "Installer vs template copy, interleaved.", keep="the home"
    )
    parser.add_argument("--rounds", type=int, default=10, help="rounds (one of each per round)")
    args = parser.parse_args(argv)
    harness.check_counts(parser, args, positive=("rounds",), non_negative=())
    return args


def _empty(stack: Any, database: str) -> None:
    with stack.mariadb.connect(database=database) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        for (table,) in cur.fetchall():
            cur.execute(f"DROP TABLE `{table}`")


def _check(stack: Any, database: str, admin: str) -> None:
    with stack.mariadb.connect(database=database) as conn, conn.cursor() as cur:
        cur.execute("SELECT option_value FROM wp_options WHERE option_name = 'blogname'")
        blogname = cur.fetchone()
        cur.execute("SELECT user_login FROM wp_users")
        logins = [row[0] for row in cur.fetchall()]
    if blogname != (TITLE,) or logins != [admin]:
        raise RuntimeError(f"the install left blogname {blogname}, users {logins}")


def _cpu(stack: Any) -> tuple[float, float]:
    """CPU seconds so far of this process's finished children (the installer's php) and of
    mariadbd: costs a loaded machine stretches less than wall time."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    fields = Path(f"/proc/{stack.mariadb.running_pid()}/stat").read_text().rsplit(")", 1)[1]
    utime, stime = (int(v) for v in fields.split()[11:13])
    return children.ru_utime + children.ru_stime, (utime + stime) / os.sysconf("SC_CLK_TCK")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Create the site, then the interleaved rounds."""
    from controlplane.engine.context import ContextBuilder
    from controlplane.models import Site
    from controlplane.providers.local.site_template import current_template

    results: dict[str, Any] = {"rounds": args.rounds}
    with local_platform.local_platform("tpl", TENANT, keep=args.keep) as lp:
        created = lp.operation("POST", lp.sites, {"name": SITE, "title": TITLE,
                                                  "admin_email": "owner@example.com"})  # fmt: skip
        results["create_seconds"] = created["seconds"]
        platform = lp.platform
        step = platform.provider.wordpress
        stack = platform.provider.stack
        times: dict[str, list[float]] = {
            f"{mode}{part}": []
            for mode in ("installer", "template")
            for part in ("", " php cpu", " mariadb cpu")
        }
        times["copy"] = []
        with platform.sessions() as session:
            row = session.query(Site).filter_by(tenant_id=TENANT, name=SITE).one()
            ctx = ContextBuilder(platform.keyring).change(session, row, None)
            database = ctx.resources["database"]["name"]
            admin = ctx.resources["wordpress"]["admin"]
            template = step.templates
            for n in range(args.rounds):
                order = ("installer", "template") if n % 2 == 0 else ("template", "installer")
                for mode in order:
                    _empty(stack, database)
                    step.settings.site_templates = mode == "template"
                    t0, cpu0 = time.perf_counter(), _cpu(stack)
                    result = step.install(ctx)
                    times[mode].append(time.perf_counter() - t0)
                    php, db = (b - a for a, b in zip(cpu0, _cpu(stack), strict=True))
                    times[f"{mode} php cpu"].append(php)
                    times[f"{mode} mariadb cpu"].append(db)
                    _check(stack, database, admin)
                    if bool(result.get("template")) != (mode == "template"):
                        raise RuntimeError(f"{mode} round ran the other path: {result}")
                _empty(stack, database)
                t0 = time.perf_counter()
                template.copy_into(current_template(step.settings), database)
                times["copy"].append(time.perf_counter() - t0)
            step.settings.site_templates = True
            step.install(ctx)  # personalise the last copy: the site is whole again
        lp.remove_sites(SITE)
    results["seconds"] = {mode: stats(values) for mode, values in times.items()}
    return results


def print_results(results: dict[str, Any]) -> None:
    """The table."""
    machine = results.get("machine", {})
    seconds = results["seconds"]
    rows = [
        ("machine", f"{machine.get('cpu_count')} CPU; load 1/5/15 min at start "
                    f"{machine.get('loadavg_at_start')}, at end {machine.get('loadavg_at_end')}"),
        ("create of the first site (builds the template)", fmt(results["create_seconds"], " s")),
    ]  # fmt: skip
    for mode, label in (("installer", "install: wp_install() (templates off)"),
                        ("installer php cpu", "  CPU of its php"),
                        ("installer mariadb cpu", "  CPU of mariadbd"),
                        ("template", "install: template copy + personalise"),
                        ("template php cpu", "  CPU of its php"),
                        ("template mariadb cpu", "  CPU of mariadbd"),
                        ("copy", "the table copy alone")):  # fmt: skip
        s = seconds[mode]
        rows.append((f"{label}, {results['rounds']} runs p50 / p95",
                     f"{fmt(s.get('p50'), ' s')} / {fmt(s.get('p95'), ' s')}"))  # fmt: skip
    harness.print_facts("Site template vs installer (interleaved)", rows)


def main(argv: list[str] | None = None) -> None:
    local_platform.main(argv, parse_args, run, print_results)


if __name__ == "__main__":
    main()
