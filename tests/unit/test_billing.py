"""Billing aggregation correctness, with totals computed by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb
import pytest
import sqlglot
from sqlalchemy import select

from controlplane.billing import sql
from controlplane.billing.aggregate import run_aggregation
from controlplane.billing.apportion import split
from controlplane.billing.read import summary, tenant_billing
from controlplane.billing.warehouse import DuckDBWarehouse, money
from controlplane.models import Site, Tenant, TenantCost
from controlplane.platform import Platform
from tests.billing_data import export_row, insert

D = Decimal
NOV_10 = datetime(2026, 11, 10, 8, tzinfo=UTC)


@pytest.fixture
def warehouse() -> Iterator[DuckDBWarehouse]:
    wh = DuckDBWarehouse(":memory:")
    yield wh
    wh.close()


def _aggregate(platform: Platform, wh: DuckDBWarehouse, since: date, until: date,
               sizes: dict[str, int] | None = None) -> int:  # fmt: skip
    result = run_aggregation(platform.sessions, wh, since=since, until=until,
                             database_sizes=sizes or {}, shared_services=("Cloud SQL",))  # fmt: skip
    return result.rows


def _costs(platform: Platform) -> set[tuple[str, str, str, str, str, str, Decimal, Decimal]]:
    with platform.sessions() as session:
        return {
            (c.tenant_id, c.day.isoformat(), c.service, c.site, c.kind, c.currency,
             money(c.cost), money(c.credits))
            for c in session.scalars(select(TenantCost))
        }  # fmt: skip


def _net(platform: Platform, tenant: str, start: date, end: date, currency: str = "USD") -> Decimal:
    with platform.sessions() as session:
        report = tenant_billing(session, tenant_id=tenant, start=start, end=end, group_by="service")
    return next((t.net for t in report.totals if t.currency == currency), D(0))


def test_credits_are_netted(platform: Platform, warehouse: DuckDBWarehouse) -> None:
    insert(warehouse,
           export_row(start=NOV_10, cost=10.0, tenant="acme", site="crumbs", credits=(-1.5, -0.25)),
           export_row(start=NOV_10, cost=5.0, tenant="acme", site="crumbs"))  # fmt: skip
    _aggregate(platform, warehouse, date(2026, 11, 6), date(2026, 11, 11))
    assert _costs(platform) == {
        ("acme", "2026-11-10", "Cloud Run", "crumbs", "direct", "USD", D("15.000000"), D("-1.750000"))
    }  # fmt: skip
    assert _net(platform, "acme", date(2026, 11, 1), date(2026, 11, 30)) == D("13.25")


def test_currencies_are_kept_apart(platform: Platform, warehouse: DuckDBWarehouse) -> None:
    insert(warehouse,
           export_row(start=NOV_10, cost=3.0, tenant="globex", currency="USD"),
           export_row(start=NOV_10, cost=2.0, tenant="globex", currency="EUR"),
           export_row(start=NOV_10, cost=1.0, tenant="acme", currency="EUR"))  # fmt: skip
    _aggregate(platform, warehouse, date(2026, 11, 10), date(2026, 11, 11))
    with platform.sessions() as session:
        report = tenant_billing(session, tenant_id="globex", start=date(2026, 11, 1),
                                end=date(2026, 11, 30), group_by="day")  # fmt: skip
        ranked = summary(session, start=date(2026, 11, 1), end=date(2026, 11, 30))
    assert [(t.currency, t.net) for t in report.totals] == [("EUR", D("2")), ("USD", D("3"))]
    assert [(r.tenant_id, r.currency, r.net) for r in ranked.tenants] == [
        ("globex", "EUR", D("2")), ("acme", "EUR", D("1")), ("globex", "USD", D("3"))
    ]  # fmt: skip
    assert [(t.currency, t.net) for t in ranked.totals] == [("EUR", D("3")), ("USD", D("3"))]


def test_unlabelled_rows_go_to_the_platform_bucket(
    platform: Platform, warehouse: DuckDBWarehouse
) -> None:
    insert(warehouse,
           export_row(start=NOV_10, cost=4.0, service="Networking"),
           export_row(start=NOV_10, cost=1.0, tenant="acme"))  # fmt: skip
    _aggregate(platform, warehouse, date(2026, 11, 10), date(2026, 11, 11))
    assert _net(platform, "platform", date(2026, 11, 10), date(2026, 11, 10)) == D("4")
    assert _net(platform, "acme", date(2026, 11, 10), date(2026, 11, 10)) == D("1")


def test_late_rows_are_picked_up_and_a_rerun_changes_nothing(
    platform: Platform, warehouse: DuckDBWarehouse
) -> None:
    insert(warehouse, export_row(start=NOV_10, cost=2.0, tenant="acme"))
    window = (date(2026, 11, 8), date(2026, 11, 13))
    _aggregate(platform, warehouse, *window)
    first = _costs(platform)
    _aggregate(platform, warehouse, *window)
    assert _costs(platform) == first  # idempotent: the window is replaced, not added to
    # Three days later the export delivers another row for Nov 10, in a newer partition.
    insert(warehouse, export_row(start=NOV_10, cost=0.5, tenant="acme",
                                 exported=datetime(2026, 11, 13, 2, tzinfo=UTC)))  # fmt: skip
    _aggregate(platform, warehouse, *window)
    assert _net(platform, "acme", date(2026, 11, 10), date(2026, 11, 10)) == D("2.5")
    with platform.sessions() as session:
        assert session.query(TenantCost).count() == 1


def test_partition_filter_bounds_the_scan(platform: Platform, warehouse: DuckDBWarehouse) -> None:
    """A row in a partition older than the window's start is not read (it cannot exist in a
    real export: rows are exported after their usage)."""
    insert(warehouse, export_row(start=NOV_10, cost=7.0, tenant="acme",
                                 exported=datetime(2026, 11, 1, tzinfo=UTC)))  # fmt: skip
    _aggregate(platform, warehouse, date(2026, 11, 10), date(2026, 11, 11))
    assert _costs(platform) == set()


def test_month_boundary(platform: Platform, warehouse: DuckDBWarehouse) -> None:
    insert(warehouse,
           export_row(start=datetime(2026, 10, 31, 23, tzinfo=UTC), cost=1.25, tenant="acme"),
           export_row(start=datetime(2026, 11, 1, 0, tzinfo=UTC), cost=2.5, tenant="acme"))  # fmt: skip
    _aggregate(platform, warehouse, date(2026, 10, 29), date(2026, 11, 3))
    assert _net(platform, "acme", date(2026, 10, 1), date(2026, 10, 31)) == D("1.25")
    assert _net(platform, "acme", date(2026, 11, 1), date(2026, 11, 30)) == D("2.5")
    with platform.sessions() as session:
        days = tenant_billing(session, tenant_id="acme", start=date(2026, 10, 1),
                              end=date(2026, 11, 30), group_by="day")  # fmt: skip
    assert [(ln.key, ln.net) for ln in days.lines] == [
        ("2026-10-31", D("1.25")),
        ("2026-11-01", D("2.5")),
    ]


def _site(platform: Platform, tenant: str, name: str, database: str) -> None:
    with platform.sessions.begin() as session:
        if session.get(Tenant, tenant) is None:
            session.add(Tenant(id=tenant, name=tenant, created_by="test"))
            session.flush()
        session.add(Site(tenant_id=tenant, name=name, title=name, admin_email="a@b.example",
                         provider="memory", status="ready",
                         resources={"database": {"name": database}}))  # fmt: skip


def test_shared_cost_is_apportioned_by_database_size(
    platform: Platform, warehouse: DuckDBWarehouse
) -> None:
    _site(platform, "acme", "crumbs", "db_crumbs")
    _site(platform, "globex", "shop", "db_shop")
    _site(platform, "globex", "blog", "db_blog")
    insert(warehouse,
           export_row(start=NOV_10, cost=10.000001, service="Cloud SQL", credits=(-1.0,)),
           export_row(start=NOV_10, cost=3.0, service="Cloud SQL", tenant="acme"))  # fmt: skip
    sizes = {"db_crumbs": 100, "db_shop": 150, "db_blog": 50, "mysql": 999}
    _aggregate(platform, warehouse, date(2026, 11, 10), date(2026, 11, 11), sizes)
    with platform.sessions() as session:
        shared = session.scalars(select(TenantCost).where(TenantCost.kind == "apportioned")).all()
        parts = {c.tenant_id: (money(c.cost), money(c.credits)) for c in shared}
        platform_rows = session.scalars(
            select(TenantCost).where(TenantCost.tenant_id == "platform")
        ).all()
    # acme has 100 of 300 bytes, globex 200 of 300.
    assert parts == {
        "acme": (D("3.333334"), D("-0.333333")),
        "globex": (D("6.666667"), D("-0.666667")),
    }
    assert sum(c for c, _ in parts.values()) == D("10.000001")
    assert sum(cr for _, cr in parts.values()) == D("-1")
    assert platform_rows == []  # the instance's cost moved entirely to the tenants
    assert {c.service for c in shared} == {"Cloud SQL (shared instance, apportioned)"}
    assert _net(platform, "acme", date(2026, 11, 10), date(2026, 11, 10)) == D("3") + D(
        "3.333334"
    ) - D("0.333333")


def test_without_any_database_the_shared_cost_stays_with_the_platform(
    platform: Platform, warehouse: DuckDBWarehouse
) -> None:
    insert(warehouse, export_row(start=NOV_10, cost=1.0, service="Cloud SQL"))
    _aggregate(platform, warehouse, date(2026, 11, 10), date(2026, 11, 11), {})
    assert _net(platform, "platform", date(2026, 11, 10), date(2026, 11, 10)) == D("1")


# Shares worked out by hand in micro-units (largest remainder first; a tie goes to the later
# key): each share is pinned, not only their sum.
@pytest.mark.parametrize(("amount", "weights", "shares"), [
    (D("0.000001"), {"a": 1, "b": 1}, {"a": D("0"), "b": D("0.000001")}),
    (D("-7.5"), {"a": 3, "b": 1, "c": 1}, {"a": D("-4.5"), "b": D("-1.5"), "c": D("-1.5")}),
    (D("100"), {"a": 1}, {"a": D("100")}),
    (D("0.999999"), {"a": 2, "b": 2, "c": 3},
     {"a": D("0.285714"), "b": D("0.285714"), "c": D("0.428571")}),
    # 1/3 and 2/3 of a million micro-units: the leftover unit goes to the larger remainder
    (D("1"), {"a": 1, "b": 2}, {"a": D("0.333333"), "b": D("0.666667")}),
    (D("-1"), {"b": 2, "a": 1}, {"a": D("-0.333333"), "b": D("-0.666667")}),
    (D("0.00001"), {"a": 1, "b": 1, "c": 1},
     {"a": D("0.000003"), "b": D("0.000003"), "c": D("0.000004")}),
])  # fmt: skip
def test_split_gives_each_share(
    amount: Decimal, weights: dict[str, int], shares: dict[str, Decimal]
) -> None:
    assert split(amount, weights) == shares
    assert sum(shares.values()) == amount  # the table itself adds up


def test_bigquery_sql_and_the_duckdb_twin_return_the_same_rows(warehouse: DuckDBWarehouse) -> None:
    """The one BigQuery query, transpiled by sqlglot and run on DuckDB over the same rows,
    agrees with the hand-written DuckDB twin (which the embedded default runs: it is the
    fast one)."""
    insert(warehouse,
           export_row(start=NOV_10, cost=10.0, tenant="acme", site="crumbs", credits=(-1.5, -0.25)),
           export_row(start=NOV_10, cost=4.0, service="Networking"),
           export_row(start=NOV_10, cost=2.0, tenant="globex", currency="EUR"),
           export_row(start=datetime(2026, 11, 11, 23, tzinfo=UTC), cost=1.0, tenant="globex", site="shop"),
           export_row(start=datetime(2026, 11, 12, tzinfo=UTC), cost=9.0, tenant="acme"),  # outside
           export_row(start=NOV_10, cost=0.125, tenant="acme", site="crumbs", credits=(-0.125,)))  # fmt: skip
    transpiled = sqlglot.transpile(sql.BIGQUERY.format(table="billing_export"), read="bigquery",
                                   write="duckdb")[0]  # fmt: skip
    params = {"tenant_label": sql.TENANT_LABEL, "site_label": sql.SITE_LABEL,
              "since": date(2026, 11, 10), "until": date(2026, 11, 12)}  # fmt: skip
    from_bigquery = warehouse.connection.execute(transpiled, params).fetchall()
    twin = warehouse.aggregate(date(2026, 11, 10), date(2026, 11, 12))

    def key(row: tuple[object, ...]) -> tuple[object, ...]:
        tenant, site, day, service, currency, cost, credits = row
        day = day.date() if isinstance(day, datetime) else day
        return (tenant, site, day, service, currency, money(cost), money(credits))

    assert sorted(map(key, from_bigquery)) == sorted(
        (r.tenant_id, r.site, r.day, r.service, r.currency, r.cost, r.credits) for r in twin
    )
    assert len(twin) == 4


def test_the_export_table_name_is_validated() -> None:
    assert "`my-project.billing.gcp_billing_export_v1_01A2B3`" in sql.bigquery_sql(
        "my-project.billing.gcp_billing_export_v1_01A2B3"
    )
    with pytest.raises(ValueError, match=r"project\.dataset\.table"):
        sql.bigquery_sql("x`; DROP TABLE y; --")


def test_duckdb_file_is_created(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "sub" / "billing.duckdb"
    DuckDBWarehouse(path).close()
    assert duckdb.connect(str(path)).execute("SELECT count(*) FROM billing_export").fetchone() == (
        0,
    )
