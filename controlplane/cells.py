"""Cells: a cell is a Google Cloud project with its own Cloud SQL instance(s). Every tenant
and site records its cell; a new tenant goes to the first open cell with room (one project's
IAM policy and service accounts cap its tenants; Cloud Run's 1,000 services per project and
region cap its sites, one service each)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.errors import Conflict
from controlplane.models import Site, Tenant
from controlplane.settings import Settings

DELETED = "deleted"


def open_cells(settings: Settings) -> tuple[str, ...]:
    """Cells that take new tenants: as listed, else the one this control plane runs."""
    return settings.cells or (settings.cell,)


def place_tenant(
    session: Session, cells: tuple[str, ...], max_tenants: int, max_sites: int | None = None
) -> str:
    """The first cell in `cells` holding fewer than `max_tenants` live tenants and (when
    sites are capped) fewer than `max_sites` sites."""
    live = Tenant.status != DELETED
    tenants = _counts(
        session.execute(
            select(Tenant.cell, func.count()).where(live).group_by(Tenant.cell)
        ).tuples()
    )
    sites = _counts(session.execute(select(Site.cell, func.count()).group_by(Site.cell)).tuples())
    for cell in cells:
        if tenants.get(cell, 0) < max_tenants and (
            max_sites is None or sites.get(cell, 0) < max_sites
        ):
            return cell
    raise Conflict(
        f"every open cell ({', '.join(cells)}) is full ({max_tenants} tenants"
        + (f" or {max_sites} sites" if max_sites is not None else "")
        + "): open a new cell (deploy terraform/ in a new project and add it to AIPRESS_CELLS)"
        " or raise AIPRESS_CELL_MAX_TENANTS"
    )


def check_site_room(session: Session, cell: str, max_sites: int | None) -> None:
    """Refuse a new site in a cell that already holds `max_sites` (None: no cap)."""
    if max_sites is None:
        return
    held = session.scalar(select(func.count()).select_from(Site).where(Site.cell == cell)) or 0
    if held >= max_sites:
        raise Conflict(
            f"cell {cell} holds {held} sites, its limit (AIPRESS_CELL_MAX_SITES; Cloud Run "
            "allows 1,000 services per project and region): delete a site, or an operator "
            "moves the tenant to a cell with room"
        )


def site_cap(settings: Settings) -> int | None:
    """How many sites one cell may hold: capped on gcp only (a site is a Cloud Run service
    there; one machine's limit is its memory, not a count)."""
    return settings.cell_max_sites if settings.provider == "gcp" else None


def _counts(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    return {cell: int(count) for cell, count in rows}
