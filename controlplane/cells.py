"""Cells: a cell is a Google Cloud project with its own Cloud SQL instance(s). Every tenant
and site records its cell; a new tenant goes to the first open cell with room (one project's
IAM policy, service accounts and Cloud Run services cap the tenants a cell can hold)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.errors import Conflict
from controlplane.models import Tenant
from controlplane.settings import Settings

DELETED = "deleted"


def open_cells(settings: Settings) -> tuple[str, ...]:
    """Cells that take new tenants: as listed, else the one this control plane runs."""
    return settings.cells or (settings.cell,)


def place_tenant(session: Session, cells: tuple[str, ...], max_tenants: int) -> str:
    """The first cell in `cells` holding fewer than `max_tenants` live tenants."""
    rows = session.execute(
        select(Tenant.cell, func.count()).where(Tenant.status != DELETED).group_by(Tenant.cell)
    )
    counts = {cell: int(count) for cell, count in rows}
    for cell in cells:
        if counts.get(cell, 0) < max_tenants:
            return cell
    raise Conflict(
        f"every open cell ({', '.join(cells)}) holds {max_tenants} tenants: open a new cell "
        "(deploy terraform/ in a new project and add it to AIPRESS_CELLS) or raise "
        "AIPRESS_CELL_MAX_TENANTS"
    )
