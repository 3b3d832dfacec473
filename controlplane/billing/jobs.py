"""The billing jobs as the CLI, the schedule and the Cloud Run Job run them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from controlplane.billing.aggregate import Progress, RunResult, default_window, run_aggregation
from controlplane.billing.metering import UsageReader, meter_hour
from controlplane.billing.warehouse import BigQueryWarehouse, DuckDBWarehouse, Warehouse
from controlplane.kernel import clock
from controlplane.kernel.logs import get_logger
from controlplane.platform import Platform
from controlplane.settings import Settings

log = get_logger("aipress.billing")


# DuckDB lets one process at a time open the file for writing: the schedule (in the control
# plane) and `aipress billing` (the CLI) each open it briefly and wait for the other.
@retry(
    retry=retry_if_exception_type(duckdb.IOException),
    wait=wait_exponential(multiplier=0.2, max=5),
    stop=stop_after_delay(60),
    reraise=True,
)
def _open_duckdb(settings: Settings) -> DuckDBWarehouse:
    path = settings.billing_duckdb_file
    legacy = settings.home / "billing.duckdb"  # where it was kept before (0644, in the home)
    if settings.billing_duckdb_path is None and legacy.exists() and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for suffix in ("", ".wal"):
            old = legacy.with_name(legacy.name + suffix)
            if old.exists():
                old.chmod(0o600)
                old.rename(path.with_name(path.name + suffix))
    return DuckDBWarehouse(path)


@contextmanager
def open_warehouse(settings: Settings, *, bigquery_client: Any = None) -> Iterator[Warehouse]:
    """The configured warehouse, open for the duration of one job."""
    if settings.billing_warehouse_name == "duckdb":
        warehouse = _open_duckdb(settings)
        try:
            yield warehouse
        finally:
            warehouse.close()
        return
    if not settings.billing_export_table:
        raise ValueError(
            "AIPRESS_BILLING_EXPORT_TABLE must name the Cloud Billing export table "
            "(project.dataset.gcp_billing_export_v1_XXXXXX)"
        )
    if bigquery_client is None:
        from google.cloud import bigquery

        bigquery_client = bigquery.Client(
            project=settings.billing_bigquery_project or settings.gcp_project
        )
    yield BigQueryWarehouse(bigquery_client, settings.billing_export_table)


def database_sizes(platform: Platform) -> dict[str, int]:
    """Database bytes on the shared instance (empty when the provider cannot tell)."""
    usage: UsageReader | None = getattr(platform.provider, "usage", None)
    return usage.database_bytes() if usage is not None else {}


def aggregate(
    platform: Platform,
    *,
    since: date | None = None,
    until: date | None = None,
    progress: Progress = lambda _m: None,
    bigquery_client: Any = None,
) -> RunResult:
    """Re-aggregate a window (default: the trailing `billing_window_days`)."""
    settings = platform.settings
    default_since, default_until = default_window(settings.billing_window_days)
    with open_warehouse(settings, bigquery_client=bigquery_client) as warehouse:
        return run_aggregation(
            platform.sessions,
            warehouse,
            since=since or default_since,
            until=until or default_until,
            database_sizes=database_sizes(platform),
            shared_services=settings.billing_shared_services,
            progress=progress,
        )


def meter(platform: Platform, hours: int = 1, *, now: datetime | None = None) -> int:
    """Meter the last `hours` whole hours of the local sites; return rows written."""
    usage: UsageReader | None = getattr(platform.provider, "usage", None)
    if usage is None or platform.settings.billing_warehouse_name != "duckdb":
        raise ValueError("local metering runs in the embedded default (DuckDB warehouse)")
    current = (now or clock.now()).replace(minute=0, second=0, microsecond=0)
    written = 0
    with open_warehouse(platform.settings) as warehouse:
        assert isinstance(warehouse, DuckDBWarehouse)
        for back in range(hours, 0, -1):
            written += meter_hour(platform, usage, warehouse, current - timedelta(hours=back))
    return written
