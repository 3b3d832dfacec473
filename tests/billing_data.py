"""Helpers that write billing-export rows (the export's shape) into a DuckDB warehouse."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from controlplane.billing.metering import INSERT
from controlplane.billing.warehouse import DuckDBWarehouse


def export_row(
    *,
    start: datetime,
    cost: float,
    service: str = "Cloud Run",
    tenant: str | None = None,
    site: str | None = None,
    credits: tuple[float, ...] = (),
    currency: str = "USD",
    exported: datetime | None = None,
) -> dict[str, Any]:
    """One export row; `exported` decides its partition (default: the usage hour + 3 h)."""
    labels = []
    if tenant is not None:
        labels.append({"key": "aipress-tenant-id", "value": tenant})
    if site is not None:
        labels.append({"key": "aipress-site", "value": site})
    exported = exported or start + timedelta(hours=3)
    naive = start.replace(tzinfo=None)
    return {
        "billing_account_id": "test",
        "service": {"id": service.upper().replace(" ", "-"), "description": service},
        "sku": {"id": "SKU", "description": f"{service} usage"},
        "usage_start_time": naive,
        "usage_end_time": naive + timedelta(hours=1),
        "project": {"id": "test-project"},
        "labels": labels,
        "cost": cost,
        "currency": currency,
        "usage": {"amount": 1.0, "unit": "unit"},
        "credits": [{"name": "promo", "amount": c, "type": "PROMOTION"} for c in credits],
        "export_time": exported.replace(tzinfo=None),
        "_PARTITIONTIME": exported.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0),
    }


def insert(warehouse: DuckDBWarehouse, *rows: dict[str, Any]) -> None:
    """Append rows to the export table."""
    for row in rows:
        warehouse.connection.execute(INSERT, row)
