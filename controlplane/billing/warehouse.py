"""Where the billing export lives: BigQuery in production, DuckDB in the embedded default."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from controlplane.billing import sql

MONEY = Decimal("0.000001")


@dataclass(frozen=True)
class CostRow:
    """One aggregated line: a tenant's cost on a day for a service (and site)."""

    tenant_id: str
    site: str
    day: date
    service: str
    currency: str
    cost: Decimal
    credits: Decimal

    @property
    def net(self) -> Decimal:
        """Cost after credits (credits are negative)."""
        return self.cost + self.credits


def money(value: Any) -> Decimal:
    """A sum from a warehouse as Decimal, to the micro-unit."""
    return Decimal(str(value or 0)).quantize(MONEY)


class Warehouse(Protocol):
    """Runs the aggregation over [since, until) usage days."""

    name: str

    def aggregate(self, since: date, until: date) -> list[CostRow]:
        """Net cost rows of the window."""
        ...

    def bytes_to_scan(self, since: date, until: date) -> int | None:
        """What the query would read (a dry run), if the warehouse can tell."""
        ...


def _row(values: tuple[Any, ...]) -> CostRow:
    tenant, site, day, service, currency, cost, credits = values
    return CostRow(str(tenant), str(site), day, str(service), str(currency),
                   money(cost), money(credits))  # fmt: skip


class DuckDBWarehouse:
    """A DuckDB file holding rows of the billing export's shape (the embedded default)."""

    name = "duckdb"

    def __init__(self, path: Path | str) -> None:
        import duckdb

        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.connection = duckdb.connect(str(path))
        if isinstance(path, Path):
            path.chmod(0o600)
        self.connection.execute("SET TimeZone = 'UTC'")
        self.connection.execute(sql.DUCKDB_EXPORT_TABLE)
        self.lock = threading.Lock()  # one DuckDB connection, used from several threads

    def aggregate(self, since: date, until: date) -> list[CostRow]:
        """The DuckDB-native twin of the BigQuery query."""
        params = {"tenant_label": sql.TENANT_LABEL, "site_label": sql.SITE_LABEL,
                  "since": since, "until": until}  # fmt: skip
        with self.lock:
            rows = self.connection.execute(sql.DUCKDB, params).fetchall()
        return [_row(r) for r in rows]

    def bytes_to_scan(self, since: date, until: date) -> int | None:
        """DuckDB reads local files: nothing is billed per byte."""
        return None

    def close(self) -> None:
        """Close the file."""
        self.connection.close()


class BigQueryWarehouse:
    """The Cloud Billing export in BigQuery, queried with parameters and job labels."""

    name = "bigquery"

    def __init__(self, client: Any, table: str, *, labels: dict[str, str] | None = None) -> None:
        self.client = client
        self.query = sql.bigquery_sql(table)
        self.labels = {"aipress-job": "billing-aggregate", **(labels or {})}

    def _config(self, since: date, until: date, *, dry_run: bool = False) -> Any:
        from google.cloud import bigquery

        return bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("tenant_label", "STRING", sql.TENANT_LABEL),
                bigquery.ScalarQueryParameter("site_label", "STRING", sql.SITE_LABEL),
                bigquery.ScalarQueryParameter("since", "DATE", since),
                bigquery.ScalarQueryParameter("until", "DATE", until),
            ],
            labels=self.labels,
            dry_run=dry_run,
            use_query_cache=False,
        )

    def aggregate(self, since: date, until: date) -> list[CostRow]:
        """Run the query and read every row."""
        result = self.client.query_and_wait(self.query, job_config=self._config(since, until))
        return [
            _row((r["tenant_id"], r["site"], r["day"], r["service"], r["currency"],
                  r["cost"], r["credits"]))
            for r in result
        ]  # fmt: skip

    def bytes_to_scan(self, since: date, until: date) -> int | None:
        """A dry run: the bytes BigQuery would process (and bill) for this window."""
        job = self.client.query(self.query, job_config=self._config(since, until, dry_run=True))
        total = job.total_bytes_processed
        return int(total) if total is not None else None
