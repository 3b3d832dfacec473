"""The aggregation run: warehouse rows -> apportionment -> tenant_costs (window replaced)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from controlplane.billing.apportion import apportion
from controlplane.billing.warehouse import Warehouse
from controlplane.kernel import clock
from controlplane.kernel.logs import get_logger
from controlplane.models import BillingRun, Site, TenantCost, utcnow

log = get_logger("aipress.billing")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    """What a run did."""

    run_id: str
    since: date
    until: date
    rows: int
    bytes_scanned: int | None


def default_window(trailing_days: int, today: date | None = None) -> tuple[date, date]:
    """[today - trailing_days + 1, tomorrow): the export arrives late, so re-read recent days."""
    today = today or clock.today()
    return today - timedelta(days=trailing_days - 1), today + timedelta(days=1)


def database_name(resources: dict[str, Any] | None) -> str | None:
    """The site's database on the shared instance, as its provider recorded it."""
    database = (resources or {}).get("database")
    if isinstance(database, dict):
        name = database.get("name")
        return str(name) if name else None
    return str(database) if database else None


def database_weights(session: Session, sizes: dict[str, int]) -> dict[str, int]:
    """Each tenant's bytes in the shared database instance (its live sites' databases)."""
    weights: dict[str, int] = {}
    for tenant_id, resources in session.execute(select(Site.tenant_id, Site.resources)):
        name = database_name(resources)
        if name and name in sizes:
            weights[tenant_id] = weights.get(tenant_id, 0) + sizes[name]
    return weights


def run_aggregation(
    sessions: sessionmaker[Session],
    warehouse: Warehouse,
    *,
    since: date,
    until: date,
    database_sizes: dict[str, int],
    shared_services: tuple[str, ...],
    progress: Progress = lambda _message: None,
) -> RunResult:
    """Aggregate [since, until), apportion shared rows, replace the window's tenant_costs."""
    if since >= until:
        raise ValueError("since must be before until")
    with sessions.begin() as session:
        run = BillingRun(source=warehouse.name, since=since, until=until)
        session.add(run)
    try:
        progress(f"estimating the scan of {since} to {until - timedelta(days=1)}")
        scanned = warehouse.bytes_to_scan(since, until)
        progress("aggregating the billing export")
        rows = warehouse.aggregate(since, until)
        progress(f"apportioning shared costs over {len(rows)} rows")
        with sessions() as session:
            weights = database_weights(session, database_sizes)
        lines = apportion(rows, weights, shared_services)
        progress(f"writing {len(lines)} cost lines")
        with sessions.begin() as session:
            session.execute(
                delete(TenantCost).where(TenantCost.day >= since, TenantCost.day < until)
            )
            if lines:  # one executemany: an ORM object per line costs ~0.1 ms each
                session.execute(insert(TenantCost), [
                    {"tenant_id": line.row.tenant_id, "day": line.row.day,
                     "service": line.row.service[:200], "site": line.row.site, "kind": line.kind,
                     "currency": line.row.currency, "cost": line.row.cost,
                     "credits": line.row.credits, "net": line.row.net}
                    for line in lines
                ])  # fmt: skip
            finished = session.get(BillingRun, run.id)
            assert finished is not None
            finished.status, finished.finished_at = "succeeded", utcnow()
            finished.row_count, finished.bytes_scanned = len(lines), scanned
    except Exception as exc:
        with sessions.begin() as session:
            failed = session.get(BillingRun, run.id)
            if failed is not None:
                failed.status, failed.finished_at = "failed", utcnow()
                failed.error = f"{type(exc).__name__}: {exc}"[:2000]
        log.error("billing.aggregate_failed", error_type=type(exc).__name__, run_id=run.id)
        raise
    log.info("billing.aggregated", run_id=run.id, rows=len(lines), since=str(since),
             until=str(until), bytes_scanned=scanned)  # fmt: skip
    return RunResult(run.id, since, until, len(lines), scanned)
