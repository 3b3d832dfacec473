"""The billing API and local metering on the memory provider."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controlplane.billing import prices
from controlplane.billing.aggregate import run_aggregation
from controlplane.billing.metering import meter_hour
from controlplane.billing.warehouse import DuckDBWarehouse
from controlplane.kernel import clock
from controlplane.observability import LogEntry
from controlplane.platform import Platform
from controlplane.providers.memory import MemoryProvider
from tests.billing_data import export_row, insert
from tests.conftest import AuthHeaders, ready_crumbs


def _seed_costs(platform: Platform) -> None:
    wh = DuckDBWarehouse(":memory:")
    day = datetime(2026, 11, 3, 10, tzinfo=UTC)
    insert(wh,
           export_row(start=day, cost=4.0, tenant="acme", site="crumbs", credits=(-1.0,)),
           export_row(start=day, cost=2.0, service="Cloud Storage", tenant="acme", site="crumbs"),
           export_row(start=day + timedelta(days=1), cost=1.5, tenant="acme", site="pies"),
           export_row(start=day, cost=9.0, tenant="globex"),
           export_row(start=day, cost=0.5, service="Networking"))  # fmt: skip
    run_aggregation(platform.sessions, wh, since=date(2026, 11, 1), until=date(2026, 11, 6),
                    database_sizes={}, shared_services=("Cloud SQL",))  # fmt: skip
    wh.close()


@pytest.fixture
def seeded(client: TestClient, auth: AuthHeaders) -> TestClient:
    admin = auth("admin")
    for tenant in ("acme", "globex"):
        client.post("/v1/tenants", json={"id": tenant, "name": tenant}, headers=admin)
    _seed_costs(client.app.state.platform)  # type: ignore[attr-defined]
    return client


PERIOD = {"from": "2026-11-01", "to": "2026-11-30"}


def test_tenant_billing_grouped(seeded: TestClient, auth: AuthHeaders) -> None:
    alice = auth("tenant", "acme")
    by_service = seeded.get("/v1/tenants/acme/billing", params=PERIOD, headers=alice).json()
    assert by_service["from"] == "2026-11-01" and by_service["to"] == "2026-11-30"
    assert by_service["totals"] == [{"currency": "USD", "cost": "7.500000",
                                     "credits": "-1.000000", "net": "6.500000"}]  # fmt: skip
    assert [(ln["key"], ln["net"]) for ln in by_service["lines"]] == [
        ("Cloud Run", "4.500000"), ("Cloud Storage", "2.000000")]  # fmt: skip
    assert by_service["source"] == "duckdb" and by_service["refreshed_at"]
    by_day = seeded.get("/v1/tenants/acme/billing", params={**PERIOD, "group_by": "day"},
                        headers=alice).json()  # fmt: skip
    assert [(ln["key"], ln["net"]) for ln in by_day["lines"]] == [
        ("2026-11-03", "5.000000"), ("2026-11-04", "1.500000")]  # fmt: skip
    by_site = seeded.get("/v1/tenants/acme/billing", params={**PERIOD, "group_by": "site"},
                         headers=alice).json()  # fmt: skip
    assert [(ln["key"], ln["net"]) for ln in by_site["lines"]] == [
        ("crumbs", "5.000000"), ("pies", "1.500000")]  # fmt: skip
    narrow = seeded.get("/v1/tenants/acme/billing", params={"from": "2026-11-04", "to": "2026-11-04"},
                        headers=alice).json()  # fmt: skip
    assert narrow["totals"][0]["net"] == "1.500000"


def test_summary_ranks_tenants(seeded: TestClient, auth: AuthHeaders) -> None:
    body = seeded.get("/v1/billing/summary", params=PERIOD, headers=auth("admin")).json()
    assert [(t["tenant_id"], t["net"]) for t in body["tenants"]] == [
        ("globex", "9.000000"), ("acme", "6.500000"), ("platform", "0.500000")]  # fmt: skip
    assert body["totals"][0]["net"] == "16.000000"
    assert abs(sum(t["share"] for t in body["tenants"]) - 1) < 1e-9


@pytest.mark.parametrize(("params", "detail"), [
    ({"from": "2026-11-30", "to": "2026-11-01"}, "'from' must not be after 'to'"),
    ({"from": "2020-01-01", "to": "2026-11-01"}, "at most 400 days"),
    ({"group_by": "week"}, "group_by"),
    ({"from": "yesterday"}, "from"),
])  # fmt: skip
def test_bad_periods_are_422(seeded: TestClient, auth: AuthHeaders, params: dict[str, str],
                             detail: str) -> None:  # fmt: skip
    response = seeded.get("/v1/tenants/acme/billing", params=params, headers=auth("admin"))
    assert response.status_code == 422
    assert detail in response.json()["detail"]


def test_unknown_tenant_is_404_even_for_admins(seeded: TestClient, auth: AuthHeaders) -> None:
    assert seeded.get("/v1/tenants/nobody/billing", headers=auth("admin")).status_code == 404


# The calendar's edges: the metered hour (the one before the clock's) is the last of a month,
# of a year, of October; or the clock is in the last hour of a month or of a year.
EDGES = {
    "month-first": datetime(2027, 3, 1, 0, 30, tzinfo=UTC),
    "year-first": datetime(2027, 1, 1, 0, 5, tzinfo=UTC),
    "november-first": datetime(2026, 11, 1, 0, 20, tzinfo=UTC),
    "october-last": datetime(2026, 10, 31, 23, 50, tzinfo=UTC),
    "month-last": datetime(2027, 2, 28, 23, 30, tzinfo=UTC),
    "year-last": datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
}


@pytest.mark.parametrize("moment", EDGES.values(), ids=EDGES.keys())
def test_metering_prices_what_the_sites_used(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider, moment: datetime
) -> None:
    with clock.travel(moment):
        _meter_and_bill(client, auth, memory_provider)


def _meter_and_bill(client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider) -> None:
    admin = auth("admin")
    site_id = ready_crumbs(client, admin)
    hour = clock.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    exported = clock.now()
    memory_provider.logs.entries[site_id] = [  # type: ignore[attr-defined]
        LogEntry(time=hour + timedelta(minutes=m), source="access", severity="info", message="GET /",
                 method="GET", path="/", status=200, latency_ms=250.0, bytes=2 * 1024**2)
        for m in range(10)
    ] + [LogEntry(time=hour - timedelta(minutes=5), source="access", severity="info", message="old",
                  status=200, latency_ms=1000.0, bytes=1)]  # fmt: skip
    memory_provider.usage.storage[site_id] = 3 * 1024**3
    memory_provider.usage.databases = {"database-crumbs": 1024**3, "mysql": 5 * 1024**3}
    platform: Platform = client.app.state.platform  # type: ignore[attr-defined]
    wh = DuckDBWarehouse(":memory:")
    assert meter_hour(platform, memory_provider.usage, wh, hour) == 8
    assert meter_hour(platform, memory_provider.usage, wh, hour) == 8  # replaced, not added
    rows = dict(wh.connection.execute(
        "SELECT sku.id, cost FROM billing_export ORDER BY sku.id").fetchall())  # fmt: skip
    assert wh.connection.execute("SELECT count(*) FROM billing_export").fetchone() == (8,)
    # Usage is the metered hour's; the partition is the day the clock exported it on.
    assert wh.connection.execute(
        "SELECT DISTINCT usage_start_time, CAST(_PARTITIONTIME AS DATE) FROM billing_export"
    ).fetchall() == [(hour.replace(tzinfo=None), exported.date())]
    busy = 10 * 0.25
    assert rows["CR-CPU-T1"] == pytest.approx(busy * 0.000024, abs=1e-9)
    assert rows["CR-MEM-T1"] == pytest.approx(busy * 0.5 * 0.0000025, abs=1e-9)
    assert rows["CR-REQ"] == pytest.approx(10 * 0.40 / 1e6, abs=1e-9)
    assert rows["NET-EGRESS-PREMIUM"] == pytest.approx(20 / 1024 * 0.12, abs=1e-9)
    assert rows["GCS-STD-US-CENTRAL1"] == pytest.approx(3 * 0.020 / 730, abs=1e-9)
    assert rows["SQL-MYSQL-SSD"] == pytest.approx(0.17 / 730, abs=1e-9)  # the sites' databases
    assert rows["SQL-MYSQL-VCPU"] == pytest.approx(prices.CLOUD_SQL_VCPU.usd_per_unit, abs=1e-9)
    run_aggregation(platform.sessions, wh, since=hour.date(), until=hour.date() + timedelta(days=1),
                    database_sizes=memory_provider.usage.database_bytes(),
                    shared_services=("Cloud SQL",))  # fmt: skip
    body = client.get("/v1/tenants/acme/billing",
                      params={"from": hour.date().isoformat(), "to": hour.date().isoformat()},
                      headers=admin).json()  # fmt: skip
    services = {ln["key"]: float(ln["net"]) for ln in body["lines"]}
    sql_instance = 0.0413 + 3.75 * 0.0070 + 0.17 / 730
    assert services["Cloud SQL (shared instance, apportioned)"] == pytest.approx(
        sql_instance, abs=2e-6
    )
    assert set(services) == {"Cloud Run", "Networking", "Cloud Storage",
                             "Cloud SQL (shared instance, apportioned)"}  # fmt: skip
    wh.close()


def test_the_cloud_run_job_entry_point(tmp_path: Path) -> None:
    """`python -m controlplane.billing` aggregates and exits 0; misconfigured, it exits 1."""
    env = {**os.environ, "AIPRESS_PROVIDER": "memory", "AIPRESS_HOME": str(tmp_path / "home"),
           "AIPRESS_LOG_FILE": str(tmp_path / "job.log")}  # fmt: skip
    ok = subprocess.run([sys.executable, "-m", "controlplane.billing"], env=env, timeout=120)
    assert ok.returncode == 0
    assert '"event": "billing.job_done"' in (tmp_path / "job.log").read_text()
    broken = subprocess.run([sys.executable, "-m", "controlplane.billing"], timeout=120,
                            env={**env, "AIPRESS_BILLING_WAREHOUSE": "bigquery"})  # fmt: skip
    assert broken.returncode == 1
    assert "AIPRESS_BILLING_EXPORT_TABLE must name" in (tmp_path / "job.log").read_text()


@pytest.mark.parametrize("moment", EDGES.values(), ids=EDGES.keys())
def test_default_period_is_this_month_by_the_clock(
    client: TestClient, auth: AuthHeaders, moment: datetime
) -> None:
    """With no dates, the period runs from the 1st of the clock's month to the clock's day."""
    admin = auth("admin")
    client.post("/v1/tenants", json={"id": "acme", "name": "acme"}, headers=admin)
    today = moment.date()
    month_start = today.replace(day=1)
    wh = DuckDBWarehouse(":memory:")
    noon = datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
    insert(wh,
           export_row(start=noon, cost=2.0, tenant="acme"),
           export_row(start=noon.replace(day=1) - timedelta(days=1), cost=5.0, tenant="acme"))  # fmt: skip
    run_aggregation(client.app.state.platform.sessions, wh,  # type: ignore[attr-defined]
                    since=month_start - timedelta(days=2), until=today + timedelta(days=1),
                    database_sizes={}, shared_services=("Cloud SQL",))  # fmt: skip
    wh.close()
    with clock.travel(moment):
        body = client.get("/v1/tenants/acme/billing", params={"group_by": "day"},
                          headers=auth("tenant", "acme")).json()  # fmt: skip
        summary = client.get("/v1/billing/summary", headers=admin).json()
    assert (body["from"], body["to"]) == (month_start.isoformat(), today.isoformat())
    assert [(ln["key"], ln["net"]) for ln in body["lines"]] == [(today.isoformat(), "2.000000")]
    assert summary["totals"][0]["net"] == "2.000000"
