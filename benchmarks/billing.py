#!/usr/bin/env python
"""Billing aggregation on DuckDB: 1M and 10M synthetic export rows over 200 tenants.

What it does, for each size (`--rows`):

1. Builds a DuckDB file of billing-export-shaped rows with SQL (`range()`): 200 tenants,
   1,000 sites, six services, 5 days of usage, 2% of rows unlabelled, 10% with credits,
   a third of the rows in EUR; partitions one day after usage.
2. Times the embedded default's aggregation query (the DuckDB-native twin of the BigQuery
   SQL) over the 5-day window: best of `--repeat` runs.
3. Times the whole run (query + apportionment + replacing the window in a SQLite
   control-plane database), once.
4. Times the one BigQuery query transpiled by sqlglot, unchanged, on the same data (the
   naive path), once, and reports the ratio naive / native.
5. Prints a table and writes JSON to `--output`.

Example:
    .venv/bin/python benchmarks/billing.py
    .venv/bin/python benchmarks/billing.py --rows 1000000 --repeat 5
"""

from __future__ import annotations

import tempfile
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb
import harness
import sqlglot

from controlplane.billing import sql
from controlplane.billing.aggregate import run_aggregation
from controlplane.billing.warehouse import DuckDBWarehouse
from controlplane.db import make_engine, make_sessionmaker, migrate
from controlplane.kernel.logs import configure_logging
from controlplane.settings import Settings

TARGETS_S = {1_000_000: 0.5, 10_000_000: 5.0}
SINCE, UNTIL = date(2026, 11, 1), date(2026, 11, 6)

GENERATE = """
INSERT INTO billing_export
SELECT
  'bench-account',
  {'id': 'svc-' || (i % 6), 'description':
    ['Cloud Run', 'Cloud SQL', 'Cloud Storage', 'Networking', 'Secret Manager',
     'Cloud DNS'][i % 6 + 1]},
  {'id': 'sku-' || (i % 40), 'description': 'sku ' || (i % 40)},
  TIMESTAMP '2026-11-01' + to_minutes((i * 7) % (5 * 24 * 60)),
  TIMESTAMP '2026-11-01' + to_minutes((i * 7) % (5 * 24 * 60) + 60),
  {'id': 'project-' || (i % 3)},
  CASE WHEN i % 50 = 0 THEN []::STRUCT(key VARCHAR, value VARCHAR)[] ELSE [
    {'key': 'goog-managed', 'value': 'x'},
    {'key': 'aipress-tenant-id', 'value': 'tenant-' || (i % 200)},
    {'key': 'aipress-site', 'value': 'site-' || (i % 1000)}] END,
  ((i * 31) % 1000) / 1000.0,
  CASE WHEN i % 3 = 0 THEN 'EUR' ELSE 'USD' END,
  {'amount': 1.0, 'unit': 'unit'},
  CASE WHEN i % 10 = 0 THEN [{'name': 'free tier', 'amount': -0.01, 'type': 'FREE_TIER'}]
       ELSE []::STRUCT(name VARCHAR, amount DOUBLE, type VARCHAR)[] END,
  TIMESTAMP '2026-11-02' + to_minutes((i * 7) % (5 * 24 * 60)),
  date_trunc('day', TIMESTAMP '2026-11-02' + to_minutes((i * 7) % (5 * 24 * 60)))
FROM range($rows) AS t(i)
"""


def timed(function: Any, repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of `repeat` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def measure(rows: int, repeat: int, skip_naive_above: int, naive_sql: str) -> dict[str, Any]:
    """One size: generate, time the native query, the full run and the naive transpiled query."""
    params = {"tenant_label": sql.TENANT_LABEL, "site_label": sql.SITE_LABEL,
              "since": SINCE, "until": UNTIL}  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="aipress-bench-billing-"))
    warehouse = DuckDBWarehouse(work / "billing.duckdb")
    started = time.perf_counter()
    warehouse.connection.execute(GENERATE, {"rows": rows})
    generate_s = time.perf_counter() - started
    native_s, lines = timed(lambda: warehouse.aggregate(SINCE, UNTIL), repeat)
    settings = Settings(provider="memory", home=work / "home")
    db = make_engine(settings)
    migrate(db)
    full_s, _ = timed(lambda: run_aggregation(
        make_sessionmaker(db), warehouse, since=SINCE, until=UNTIL, database_sizes={},
        shared_services=("Cloud SQL",)))  # fmt: skip
    naive_s = None
    if rows <= skip_naive_above:
        naive_s, naive_rows = timed(
            lambda: warehouse.connection.execute(naive_sql, params).fetchall()
        )
        assert len(naive_rows) == len(lines), "the transpiled query disagrees"
    warehouse.close()
    db.dispose()
    return {
        "rows": rows, "tenants": 200, "output_lines": len(lines),
        "generate_s": round(generate_s, 2), "native_query_s": round(native_s, 3),
        "full_run_s": round(full_s, 3),
        "naive_transpiled_s": round(naive_s, 3) if naive_s else None,
        "naive_over_native": round(naive_s / native_s, 1) if naive_s else None,
        "target_s": TARGETS_S.get(rows), "meets_target": native_s < TARGETS_S.get(rows, 1e9),
    }  # fmt: skip


def table_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """One table row per size."""
    return [
        [
            f"{r['rows']:,}",
            f"{r['output_lines']:,}",
            harness.fmt(r["native_query_s"], " s", 3),
            harness.fmt(r["full_run_s"], " s"),
            harness.fmt(r["naive_transpiled_s"], " s"),
            f"{r['naive_over_native']}x" if r["naive_over_native"] else "-",
            harness.fmt(r["target_s"], " s"),
            "yes" if r["meets_target"] else "NO",
        ]
        for r in results
    ]


def main() -> None:
    """Run the benchmark."""
    parser = harness.parser("billing", __doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-naive-above", type=int, default=10_000_000)
    args = parser.parse_args()
    harness.check_counts(parser, args, positive=("repeat",))
    configure_logging("WARNING")
    machine = harness.machine_info({"duckdb": duckdb.__version__, "sqlglot": version("sqlglot")})
    naive_sql = sqlglot.transpile(sql.BIGQUERY.format(table="billing_export"), read="bigquery",
                                  write="duckdb")[0]  # fmt: skip
    results = [measure(rows, args.repeat, args.skip_naive_above, naive_sql) for rows in args.rows]
    harness.close_machine_info(machine)
    harness.print_table(
        f"Billing aggregation, {SINCE} to {UNTIL}, best of {args.repeat}",
        ["rows", "lines", "native query", "full run", "naive", "naive/native", "target", "met"],
        table_rows(results),
    )
    harness.write_json(args.output, {
        "benchmark": "billing", "machine": machine, "parameters": harness.parameters(args),
        "window": [SINCE.isoformat(), UNTIL.isoformat()], "results": results,
    })  # fmt: skip


if __name__ == "__main__":
    main()
