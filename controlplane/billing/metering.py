"""Local metering: export-shaped rows, each hour, from what the local sites really use.

Per site and hour: Cloud Run CPU and memory time (the sum of request latencies from the
access log: request-based billing charges instance time while requests are handled),
requests, internet egress (bytes sent), and Cloud Storage (the site's wp-content bytes).
The shared Cloud SQL instance (its vCPU, RAM and the storage of every site's database)
is metered without a tenant label, as Google's export would show it; the aggregation
apportions it by database size. Prices come from `prices.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select

from controlplane.billing import prices
from controlplane.billing.aggregate import database_name
from controlplane.billing.prices import Price
from controlplane.billing.sql import SITE_LABEL, TENANT_LABEL
from controlplane.billing.warehouse import DuckDBWarehouse
from controlplane.engine.provider import SiteContext
from controlplane.kernel import clock
from controlplane.models import Site
from controlplane.platform import Platform

ACCOUNT = "local-metering"
PROJECT = "aipress-local"


class UsageReader(Protocol):
    """What a provider can tell about a site's storage and the shared database."""

    def storage_bytes(self, ctx: SiteContext) -> int:
        """Bytes of the site's own files (uploads, plugins, themes)."""
        ...

    def database_bytes(self) -> dict[str, int]:
        """Bytes of every database on the shared instance, by database name."""
        ...


def _row(price: Price, amount: float, start: datetime, labels: dict[str, str],
         exported: datetime) -> dict[str, Any]:  # fmt: skip
    end = start + timedelta(hours=1)
    return {
        "billing_account_id": ACCOUNT,
        "service": {"id": price.service_id, "description": price.service},
        "sku": {"id": price.sku_id, "description": price.sku},
        "usage_start_time": start.replace(tzinfo=None),
        "usage_end_time": end.replace(tzinfo=None),
        "project": {"id": PROJECT},
        "labels": [{"key": k, "value": v} for k, v in labels.items()],
        "cost": round(amount * price.usd_per_unit, 9),
        "currency": prices.CURRENCY,
        "usage": {"amount": amount, "unit": price.unit},
        "credits": [],
        "export_time": exported.replace(tzinfo=None),
        "_PARTITIONTIME": exported.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0),
    }


def hour_rows(platform: Platform, usage: UsageReader, start: datetime) -> Iterator[dict[str, Any]]:
    """Export rows for the hour starting at `start` (UTC, on the hour)."""
    end = start + timedelta(hours=1)
    exported = clock.now()
    databases = usage.database_bytes()
    site_db_bytes = 0
    with platform.sessions() as session:
        for site in session.scalars(select(Site).order_by(Site.tenant_id, Site.name)):
            ctx = platform.engine.read_context(session, site)
            labels = {TENANT_LABEL: site.tenant_id, SITE_LABEL: site.name}
            figures = platform.provider.logs.metrics(ctx, start, end)
            busy = figures.busy_seconds
            if figures.requests:
                yield _row(prices.CLOUD_RUN_CPU, busy * prices.SITE_VCPU, start, labels, exported)
                yield _row(prices.CLOUD_RUN_MEMORY, busy * prices.SITE_MEMORY_GIB, start, labels,
                           exported)  # fmt: skip
                yield _row(prices.CLOUD_RUN_REQUESTS, figures.requests, start, labels, exported)
            if figures.bytes_sent:
                yield _row(prices.EGRESS, figures.bytes_sent / prices.GIB, start, labels, exported)
            stored = usage.storage_bytes(ctx)
            if stored:
                yield _row(prices.GCS_STANDARD, stored / prices.GIB, start, labels, exported)
            name = database_name(site.resources)
            site_db_bytes += databases.get(name, 0) if name else 0
    # The shared instance: one set of unlabelled rows, as the real export shows it.
    yield _row(prices.CLOUD_SQL_VCPU, prices.SHARED_SQL_VCPU, start, {}, exported)
    yield _row(prices.CLOUD_SQL_MEMORY, prices.SHARED_SQL_MEMORY_GIB, start, {}, exported)
    if site_db_bytes:
        yield _row(prices.CLOUD_SQL_STORAGE, site_db_bytes / prices.GIB, start, {}, exported)


INSERT = (
    "INSERT INTO billing_export BY NAME SELECT * FROM (SELECT "
    "$billing_account_id AS billing_account_id, $service AS service, $sku AS sku, "
    "$usage_start_time AS usage_start_time, $usage_end_time AS usage_end_time, "
    "$project AS project, "
    "CAST($labels AS STRUCT(key VARCHAR, value VARCHAR)[]) AS labels, "
    "$cost AS cost, $currency AS currency, $usage AS usage, "
    "CAST($credits AS STRUCT(name VARCHAR, amount DOUBLE, type VARCHAR)[]) AS credits, "
    "$export_time AS export_time, $_PARTITIONTIME AS _PARTITIONTIME)"
)


def meter_hour(
    platform: Platform, usage: UsageReader, warehouse: DuckDBWarehouse, start: datetime
) -> int:
    """Replace the metered rows of one hour (idempotent); return how many were written."""
    start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    rows = list(hour_rows(platform, usage, start))
    with warehouse.lock:
        con = warehouse.connection
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "DELETE FROM billing_export "
                "WHERE billing_account_id = $a AND usage_start_time = $s",
                {"a": ACCOUNT, "s": start.replace(tzinfo=None)},
            )
            if rows:
                con.executemany(INSERT, rows)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return len(rows)
