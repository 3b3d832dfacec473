"""/v1/tenants/{tenant_id}/billing and /v1/billing/summary"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from controlplane.api.deps import CurrentPrincipal, SessionDep
from controlplane.billing import read
from controlplane.errors import Invalid
from controlplane.kernel import clock
from controlplane.permissions import Action, authorize
from controlplane.services.tenants import get_visible_tenant

router = APIRouter(tags=["billing"])
FromQ = Annotated[
    date | None, Query(alias="from", description="First day, YYYY-MM-DD (default: 1st of month)")
]
ToQ = Annotated[date | None, Query(alias="to", description="Last day, inclusive (default: today)")]


def _period(start: date | None, end: date | None) -> tuple[date, date]:
    today = clock.today()
    period = (start or today.replace(day=1), end or today)
    try:
        read.check_period(*period)
    except ValueError as exc:
        raise Invalid(str(exc)) from exc
    return period


@router.get(
    "/v1/tenants/{tenant_id}/billing", response_model=read.BillingRead, response_model_by_alias=True
)
def tenant_billing(
    tenant_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    start: FromQ = None,
    end: ToQ = None,
    group_by: Annotated[read.GroupBy, Query(description="day, service or site")] = "service",
) -> read.BillingRead:
    """A tenant's net costs (cost + credits) per currency, with lines and the refresh time."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.READ_COSTS)
    first, last = _period(start, end)
    return read.tenant_billing(session, tenant_id=tenant_id, start=first, end=last,
                               group_by=group_by)  # fmt: skip


@router.get("/v1/billing/summary", response_model=read.SummaryRead, response_model_by_alias=True)
def billing_summary(
    session: SessionDep, principal: CurrentPrincipal, start: FromQ = None, end: ToQ = None
) -> read.SummaryRead:
    """Every tenant ranked by net cost (admins), the unlabelled 'platform' bucket included."""
    authorize(principal, Action.READ_COST_SUMMARY)
    first, last = _period(start, end)
    return read.summary(session, start=first, end=last)
