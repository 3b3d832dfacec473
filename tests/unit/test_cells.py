"""Cells: a new tenant goes to the first open cell with room, its sites follow it, and a
platform with every cell full refuses the tenant (409, nothing made)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from controlplane.cells import site_cap
from controlplane.db import make_engine, make_sessionmaker, migrate
from controlplane.errors import Conflict
from controlplane.kernel.identity import Principal, Role
from controlplane.models import Site, Tenant
from controlplane.schemas import SiteCreate, TenantCreate
from controlplane.services.sites import create_site
from controlplane.services.tenants import create_tenant
from controlplane.settings import Settings

ADMIN = Principal("root", Role.ADMIN, email="root@example.com")


def test_tenants_fill_cells_in_order_and_sites_follow_their_tenant(tmp_path: Path) -> None:
    engine = make_engine(Settings(provider="memory", home=tmp_path))
    migrate(engine)
    cells = ("cell-1", "cell-2")
    with make_sessionmaker(engine)() as session:
        placed = []
        for tenant in ("a", "b", "c", "d"):
            made = create_tenant(session, principal=ADMIN, cells=cells, max_tenants=2,
                                 data=TenantCreate(id=tenant, name=tenant.upper()))  # fmt: skip
            placed.append(made.cell)
        assert placed == ["cell-1", "cell-1", "cell-2", "cell-2"]
        with pytest.raises(
            Conflict, match=r"every open cell \(cell-1, cell-2\) is full \(2 tenants\)"
        ):
            create_tenant(session, principal=ADMIN, cells=cells, max_tenants=2,
                          data=TenantCreate(id="e", name="E"))  # fmt: skip
        assert session.get(Tenant, "e") is None
        # A deleted tenant frees its place.
        tenant_b = session.get(Tenant, "b")
        assert tenant_b is not None
        tenant_b.status = "deleted"
        session.commit()
        made = create_tenant(session, principal=ADMIN, cells=cells, max_tenants=2,
                             data=TenantCreate(id="e", name="E"))  # fmt: skip
        assert made.cell == "cell-1"
        create_site(session, principal=ADMIN, tenant_id="c", provider="memory",
                    data=SiteCreate(name="crumbs", admin_email="o@c.example"))  # fmt: skip
        session.commit()
        assert session.scalar(select(Site.cell).where(Site.name == "crumbs")) == "cell-2"


def test_a_cell_full_of_sites_refuses_new_sites_and_new_tenants(tmp_path: Path) -> None:
    engine = make_engine(Settings(provider="memory", home=tmp_path))
    migrate(engine)
    cells = ("cell-1", "cell-2")
    with make_sessionmaker(engine)() as session:
        create_tenant(session, principal=ADMIN, cells=cells, max_tenants=5, max_sites=2,
                      data=TenantCreate(id="a", name="A"))  # fmt: skip
        for name in ("one", "two"):
            create_site(session, principal=ADMIN, tenant_id="a", provider="memory", max_sites=2,
                        data=SiteCreate(name=name, admin_email="o@a.example"))  # fmt: skip
        with pytest.raises(Conflict, match="cell cell-1 holds 2 sites, its limit"):
            create_site(session, principal=ADMIN, tenant_id="a", provider="memory", max_sites=2,
                        data=SiteCreate(name="three", admin_email="o@a.example"))  # fmt: skip
        session.rollback()
        assert session.scalar(select(Site).where(Site.name == "three")) is None
        # Room for tenants, none for sites: the next tenant goes to the next cell.
        made = create_tenant(session, principal=ADMIN, cells=cells, max_tenants=5, max_sites=2,
                             data=TenantCreate(id="b", name="B"))  # fmt: skip
        assert made.cell == "cell-2"
        with pytest.raises(Conflict, match=r"is full \(5 tenants or 2 sites\)"):
            create_tenant(session, principal=ADMIN, cells=("cell-1",), max_tenants=5, max_sites=2,
                          data=TenantCreate(id="c", name="C"))  # fmt: skip


def test_sites_per_cell_are_capped_on_gcp_only(tmp_path: Path) -> None:
    assert site_cap(Settings(provider="local", home=tmp_path)) is None
    gcp = Settings.model_construct(provider="gcp", cell_max_sites=950)
    assert site_cap(gcp) == 950
