"""Shared costs that cannot carry a tenant label, split among tenants by a documented key.

The shared Cloud SQL instance is one resource for every tenant's database, so the export
shows its charges without `aipress-tenant-id`. Each such row is split by each tenant's
share of the instance's storage (the bytes of its sites' databases, from
information_schema, measured when the aggregation runs). The split is exact to the
micro-unit: the parts always sum to the row (largest remainder).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from controlplane.billing.sql import PLATFORM
from controlplane.billing.warehouse import MONEY, CostRow

APPORTIONED_SUFFIX = " (shared instance, apportioned)"


@dataclass(frozen=True)
class CostLine:
    """A row as it is stored: direct, or a tenant's apportioned part of a shared row."""

    row: CostRow
    kind: str  # "direct" | "apportioned"


def split(amount: Decimal, weights: dict[str, int]) -> dict[str, Decimal]:
    """`amount` in parts proportional to `weights` that sum to it exactly."""
    total_weight = sum(weights.values())
    units = int((amount / MONEY).to_integral_value())
    sign = -1 if units < 0 else 1
    units = abs(units)
    exact = {key: units * w / total_weight for key, w in weights.items()}
    parts = {key: int(value) for key, value in exact.items()}
    leftover = units - sum(parts.values())
    for key in sorted(exact, key=lambda k: (exact[k] - parts[k], k), reverse=True)[:leftover]:
        parts[key] += 1
    return {key: sign * value * MONEY for key, value in parts.items()}


def apportion(
    rows: list[CostRow], weights: dict[str, int], shared_services: tuple[str, ...]
) -> list[CostLine]:
    """Direct lines, with unlabelled rows of shared services replaced by tenants' parts."""
    usable = {tenant: w for tenant, w in weights.items() if w > 0}
    lines: list[CostLine] = []
    for row in rows:
        if row.tenant_id != PLATFORM or row.service not in shared_services or not usable:
            lines.append(CostLine(row, "direct"))
            continue
        costs = split(row.cost, usable)
        credits = split(row.credits, usable)
        for tenant in sorted(usable):
            part = replace(row, tenant_id=tenant, site="",
                           service=row.service + APPORTIONED_SUFFIX,
                           cost=costs[tenant], credits=credits[tenant])  # fmt: skip
            lines.append(CostLine(part, "apportioned"))
    return lines
