#!/usr/bin/env python
"""CPU time and bytes read per logs/metrics call of the local provider on a site whose own
PHP error log a plugin has filled (issue 11, finding 5).

What it does:

1. Writes a site's three logs under a temporary AIPRESS_HOME, at the paths the local
   provider reads: `--php-lines` PHP error-log lines (a fatal error with a two-line stack
   trace every 1,000 entries), `--access-lines` nginx JSON access lines (every third a 500)
   and `--server-lines` nginx error-log lines; entries are two seconds apart, ending at a
   fixed time (nothing depends on today's date).
2. Calls `LocalLogs.read_logs` / `LocalLogs.metrics` (the code the API runs) for each query
   `--repeat` times, measuring CPU seconds (`time.process_time`) and bytes read (`rchar`
   of /proc/self/io) per call; reports the median.
3. Prints a table and writes JSON (machine info included) to `--output`.

The queries: `newest` (limit 100, the API's default), `errors` (severity=error),
`fatal` (severity=critical: one PHP entry in 1,000, so the read goes back far),
`no-match` (q= a text no line holds: the worst case), `metrics-1h` (metrics over the
last hour of the access log).

Run it on another checkout to compare (the call it makes is the same before and after);
each label's latest run is kept in the one JSON file:
    .venv/bin/python benchmarks/logs.py --label after
    git checkout c7b0de0 -- controlplane && .venv/bin/python benchmarks/logs.py --label before
    git checkout HEAD -- controlplane
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness

from controlplane.engine.provider import SiteContext
from controlplane.observability import LogQuery, Severity
from controlplane.providers.local.logs import LocalLogs
from controlplane.settings import Settings
from controlplane.stack.local import LocalStack

END = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def write_logs(php: Path, access: Path, server: Path, args: argparse.Namespace) -> None:
    """The three files, oldest entry first, the newest at END."""
    for path in (php, access, server):
        path.parent.mkdir(parents=True, exist_ok=True)
    with php.open("w") as out:
        i = 0
        while i < args.php_lines:
            when = END - dt.timedelta(seconds=2 * (args.php_lines - i))
            stamp = when.strftime("%d-%b-%Y %H:%M:%S") + " UTC"
            if i % 1000 == 999:
                out.write(f"[{stamp}] PHP Fatal error:  Uncaught Error: boom {i} in /p.php:3\n")
                out.write("Stack trace:\n#0 {main}\n")
                i += 3
            else:
                plugin = "/var/lib/aipress/sites/t/s/htdocs/wp-content/plugins/p/p.php"
                out.write(
                    f"[{stamp}] PHP Warning:  Undefined variable $v{i} in {plugin} on line 7\n"
                )
                i += 1
    with access.open("w") as out:
        for i in range(args.access_lines):
            stamp = (END - dt.timedelta(seconds=2 * (args.access_lines - i) - 1)).isoformat()
            status = 500 if i % 3 == 0 else 200
            out.write(f'{{"time":"{stamp}","method":"GET","uri":"/page/{i}","status":{status},'
                      f'"request_time":"0.012","bytes":"5120","cache":"MISS"}}\n')  # fmt: skip
    with server.open("w") as out:
        for i in range(args.server_lines):
            when = (END - dt.timedelta(seconds=2 * (args.server_lines - i))).astimezone()
            out.write(f"{when:%Y/%m/%d %H:%M:%S} [error] 12#12: *{i} open() failed, client: "
                      f'127.0.0.1, request: "GET /missing/{i} HTTP/1.1"\n')  # fmt: skip


def measure(call: Callable[[], object], repeat: int) -> dict[str, float]:
    """Median CPU seconds and bytes read of `call`."""
    cpu, read = [], []
    for _ in range(repeat):
        before_cpu, before_read = time.process_time(), _rchar()
        call()
        cpu.append(time.process_time() - before_cpu)
        read.append(_rchar() - before_read)
    return {"cpu_s": statistics.median(cpu), "bytes_read": statistics.median(read)}


def main() -> None:
    """Run the benchmark."""
    parser = harness.parser("logs", __doc__.splitlines()[0])
    parser.add_argument("--php-lines", type=int, default=390_000)
    parser.add_argument("--access-lines", type=int, default=100_000)
    parser.add_argument("--server-lines", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--label", default="current")
    args = parser.parse_args()
    harness.check_counts(parser, args, positive=("repeat",), non_negative=(
        "php_lines", "access_lines", "server_lines"))  # fmt: skip
    machine = harness.machine_info()

    home = Path(tempfile.mkdtemp(prefix="aipress-bench-logs-"))
    try:
        settings = Settings(provider="local", home=home, billing_schedule=False)
        logs = LocalLogs(LocalStack.from_settings(settings), settings)
        ctx = SiteContext(
            tenant_id="acme", site_id="0123456789abcdef0123456789abcdef", site_name="crumbs",
            title="Crumbs", admin_email="o@example.com", admin_user="admin", domains=[],
            credentials=None,  # type: ignore[arg-type]  # reading logs decrypts nothing
        )  # fmt: skip
        access, server, php = logs._paths(ctx)
        write_logs(php, access, server, args)
        sizes = {p.name: p.stat().st_size for p in (php, access, server)}
        window = {"since": END - dt.timedelta(days=30), "until": END}
        queries: dict[str, Callable[[], object]] = {
            "newest": lambda: logs.read_logs(ctx, LogQuery(**window, limit=100)),
            "errors": lambda: logs.read_logs(
                ctx, LogQuery(**window, severity=Severity.ERROR, limit=100)
            ),
            "fatal": lambda: logs.read_logs(
                ctx, LogQuery(**window, severity=Severity.CRITICAL, limit=100)
            ),
            "no-match": lambda: logs.read_logs(ctx, LogQuery(**window, text="zz-never-logged")),
            "metrics-1h": lambda: logs.metrics(ctx, END - dt.timedelta(hours=1), END),
        }
        results = {name: measure(call, args.repeat) for name, call in queries.items()}
    finally:
        shutil.rmtree(home, ignore_errors=True)

    harness.close_machine_info(machine)
    harness.print_table(
        f"Logs of one site: {sizes} ({args.label}; median of {args.repeat})",
        ["query", "CPU s/call", "MiB read/call"],
        [
            [name, f"{f['cpu_s']:.3f}", f"{f['bytes_read'] / 2**20:.2f}"]
            for name, f in results.items()
        ],
    )
    run: dict[str, Any] = {
        "machine": machine,
        "files": sizes,
        "lines": {"php": args.php_lines, "access": args.access_lines, "server": args.server_lines},
        "results": results,
    }
    # One file holds every label's latest run (e.g. "before" from the old checkout, "after").
    report: dict[str, Any] = {"benchmark": "logs", "runs": {}}
    if args.output.exists():
        report = json.loads(args.output.read_text())
    report["runs"][args.label] = run
    harness.write_json(args.output, report)


if __name__ == "__main__":
    main()
