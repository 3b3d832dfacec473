"""The control-plane database on SQLite and on a real MariaDB server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from controlplane.api.app import create_app
from controlplane.db import make_engine, migrate
from controlplane.kernel import clock
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.models import AuditEvent, Base, Domain
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.conftest import LOG_FILE, wait_for_operation

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "mariadb"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = None
    if request.param == "mariadb":
        url = request.getfixturevalue("mariadb_url")
    return Settings(provider="memory", home=tmp_path / "home", database_url=url, log_file=LOG_FILE)


@pytest.fixture
def backend_client(backend_settings: Settings) -> Iterator[TestClient]:
    provider = MemoryProvider()
    app = create_app(
        backend_settings, platform_factory=lambda s: build_platform(s, provider=provider)
    )
    with TestClient(app) as client:
        yield client


def _admin(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {LocalTokenIssuer(settings).issue('root', Role.ADMIN)}"}


def test_migrations_match_the_models(backend_settings: Settings) -> None:
    engine = make_engine(backend_settings)
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []
    assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
    engine.dispose()


def test_full_flow(backend_client: TestClient, backend_settings: Settings) -> None:
    admin = _admin(backend_settings)
    assert (
        backend_client.post(
            "/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin
        ).status_code
        == 201
    )
    accepted = backend_client.post(
        "/v1/tenants/acme/sites",
        json={"name": "crumbs", "admin_email": "a@example.com", "domain": "crumbs.example.org"},
        headers=admin,
    ).json()
    assert (
        wait_for_operation(backend_client, accepted["operation"]["id"], admin)["status"]
        == "succeeded"
    )
    site = backend_client.get("/v1/tenants/acme/sites/crumbs", headers=admin).json()
    assert site["domains"] == [] and site["status"] == "ready"
    assert site["pending_domains"] == ["crumbs.example.org"]  # served once verified
    created = datetime.fromisoformat(site["created_at"].replace("Z", "+00:00"))
    assert created.tzinfo is not None and abs((clock.now() - created).total_seconds()) < 60
    put = backend_client.put(
        "/v1/tenants/acme/env/API_KEY", json={"value": "s3cr3t", "secret": True}, headers=admin
    )
    assert put.status_code == 202
    wait_for_operation(backend_client, put.json()["operation"]["id"], admin)
    dup = backend_client.post(
        "/v1/tenants/acme/sites",
        json={"name": "other", "admin_email": "a@example.com", "domain": "crumbs.example.org"},
        headers=admin,
    )
    assert dup.status_code == 202  # a pending claim blocks nobody
    wait_for_operation(backend_client, dup.json()["operation"]["id"], admin)
    # One verified owner per name, and the database itself enforces it.
    with backend_client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        claims = session.scalars(select(Domain).where(Domain.domain == "crumbs.example.org"))
        for claim in claims:
            claim.status, claim.verified_domain = "verified", claim.domain
        with pytest.raises(IntegrityError):
            session.commit()
    deleted = backend_client.delete("/v1/tenants/acme/sites/crumbs", headers=admin).json()
    assert (
        wait_for_operation(backend_client, deleted["operation"]["id"], admin)["status"]
        == "succeeded"
    )
    with backend_client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        actions = [e.action for e in session.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions == ["tenant.create", "site.create", "env.put", "site.create", "site.delete"]


def test_only_one_concurrent_change_wins(
    backend_client: TestClient, backend_settings: Settings
) -> None:
    admin = _admin(backend_settings)
    backend_client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin)
    op = backend_client.post(
        "/v1/tenants/acme/sites",
        json={"name": "crumbs", "admin_email": "a@example.com"},
        headers=admin,
    ).json()["operation"]
    wait_for_operation(backend_client, op["id"], admin)
    codes: list[int] = []
    barrier = threading.Barrier(8)

    def attempt() -> None:
        barrier.wait()
        codes.append(
            backend_client.delete("/v1/tenants/acme/sites/crumbs", headers=admin).status_code
        )

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes.count(202) == 1, codes
    assert set(codes) <= {202, 404, 409}


def test_domains_attached_before_claims_become_pending(backend_settings: Settings) -> None:
    from alembic import command

    from controlplane.db import alembic_config

    engine = make_engine(backend_settings)
    command.upgrade(alembic_config(engine), "0003")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenants (id, name, status, created_at, created_by) "
                "VALUES ('acme', 'Acme', 'active', '2026-01-01 00:00:00', 'root')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO sites (id, tenant_id, name, title, admin_email, admin_user, status, "
                "provider, resources, created_at, updated_at) VALUES ('s1', 'acme', 'shop', 'Shop', "
                "'a@example.com', 'admin', 'ready', 'memory', '{}', '2026-01-01 00:00:00', "
                "'2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO domains (domain, site_id, created_at) "
                "VALUES ('www.google.com', 's1', '2026-01-01 00:00:00')"
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT domain, status, token, verified_domain FROM domains"))
        [(domain, status, token, verified)] = rows.all()
    assert (domain, status, verified) == ("www.google.com", "pending", None)
    assert len(token) == 32
    engine.dispose()
