"""Reads behind the billing API: one tenant's costs grouped, and all tenants ranked."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from controlplane.models import BillingRun, TenantCost

GroupBy = Literal["day", "service", "site"]
MAX_DAYS = 400


class MoneyTotal(BaseModel):
    """Totals in one currency (currencies are never added together)."""

    currency: str
    cost: Decimal
    credits: Decimal = Field(description="Negative: discounts and free-tier credits")
    net: Decimal


class CostLineRead(BaseModel):
    """One line of a breakdown."""

    key: str = Field(description="The day (YYYY-MM-DD), service or site of the line")
    kind: str = Field(
        description="direct, apportioned (a share of a shared resource), or all (a day's line)"
    )
    currency: str
    cost: Decimal
    credits: Decimal
    net: Decimal


class BillingRead(BaseModel):
    """A tenant's costs over a period."""

    tenant_id: str
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    group_by: GroupBy
    totals: list[MoneyTotal]
    lines: list[CostLineRead]
    refreshed_at: datetime | None = Field(description="When the last aggregation finished")
    source: str | None = Field(description="bigquery or duckdb")


class TenantRank(BaseModel):
    """A tenant's place in the summary."""

    tenant_id: str
    currency: str
    net: Decimal
    share: float = Field(description="Share of the currency's total, 0-1")


class SummaryRead(BaseModel):
    """Every tenant's net cost over a period, most expensive first."""

    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    tenants: list[TenantRank]
    totals: list[MoneyTotal]
    refreshed_at: datetime | None
    source: str | None


def check_period(start: date, end: date) -> None:
    """Raise ValueError unless start <= end and the span is sane."""
    if start > end:
        raise ValueError("'from' must not be after 'to'")
    if (end - start).days > MAX_DAYS:
        raise ValueError(f"a period may span at most {MAX_DAYS} days")


def last_run(session: Session) -> BillingRun | None:
    """The latest successful aggregation."""
    query = (
        select(BillingRun)
        .where(BillingRun.status == "succeeded")
        .order_by(BillingRun.finished_at.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def _totals(rows: list[tuple[str, Decimal, Decimal, Decimal]]) -> list[MoneyTotal]:
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for currency, cost, credits, net in rows:
        bucket = sums[currency]
        bucket[0] += cost
        bucket[1] += credits
        bucket[2] += net
    return [
        MoneyTotal(currency=c, cost=v[0], credits=v[1], net=v[2]) for c, v in sorted(sums.items())
    ]


def tenant_billing(
    session: Session, *, tenant_id: str, start: date, end: date, group_by: GroupBy
) -> BillingRead:
    """A tenant's totals and lines over [start, end] (inclusive days)."""
    check_period(start, end)
    key = {"day": TenantCost.day, "service": TenantCost.service, "site": TenantCost.site}[group_by]
    # A day's line holds everything of that day (direct and apportioned alike); services and
    # sites keep apportioned shares on lines of their own.
    kind = literal("all") if group_by == "day" else TenantCost.kind
    query = (
        select(key, kind, TenantCost.currency, func.sum(TenantCost.cost),
               func.sum(TenantCost.credits), func.sum(TenantCost.net))
        .where(TenantCost.tenant_id == tenant_id, TenantCost.day >= start, TenantCost.day <= end)
        .group_by(key, *([] if group_by == "day" else [TenantCost.kind]), TenantCost.currency)
        .order_by(key, TenantCost.currency)
    )  # fmt: skip
    lines = []
    for value, line_kind, currency, cost, credits, net in session.execute(query):
        label = value.isoformat() if isinstance(value, date) else str(value)
        if group_by == "site" and not label:
            label = "(shared)" if line_kind == "apportioned" else "(tenant-wide)"
        lines.append(CostLineRead(key=label, kind=line_kind, currency=currency, cost=Decimal(cost),
                                  credits=Decimal(credits), net=Decimal(net)))  # fmt: skip
    run = last_run(session)
    return BillingRead(
        tenant_id=tenant_id, start=start, end=end, group_by=group_by,
        totals=_totals([(ln.currency, ln.cost, ln.credits, ln.net) for ln in lines]),
        lines=lines, refreshed_at=run.finished_at if run else None,
        source=run.source if run else None,
    )  # fmt: skip


def summary(session: Session, *, start: date, end: date) -> SummaryRead:
    """Every tenant (and the platform bucket) ranked by net cost, per currency."""
    check_period(start, end)
    query = (
        select(TenantCost.tenant_id, TenantCost.currency, func.sum(TenantCost.cost),
               func.sum(TenantCost.credits), func.sum(TenantCost.net))
        .where(TenantCost.day >= start, TenantCost.day <= end)
        .group_by(TenantCost.tenant_id, TenantCost.currency)
    )  # fmt: skip
    rows = [
        (t, c, Decimal(cost), Decimal(cr), Decimal(n))
        for t, c, cost, cr, n in session.execute(query)
    ]
    totals = _totals([(c, cost, cr, n) for _t, c, cost, cr, n in rows])
    by_currency = {t.currency: t.net for t in totals}
    ranks = [
        TenantRank(tenant_id=t, currency=c, net=n,
                   share=float(n / by_currency[c]) if by_currency[c] else 0.0)
        for t, c, _cost, _cr, n in sorted(rows, key=lambda r: (r[1], -r[4], r[0]))
    ]  # fmt: skip
    run = last_run(session)
    return SummaryRead(start=start, end=end, tenants=ranks, totals=totals,
                       refreshed_at=run.finished_at if run else None,
                       source=run.source if run else None)  # fmt: skip
