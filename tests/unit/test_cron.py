"""The platform's cron: stable spread offsets, bounded concurrency, ready sites only, and
each run recorded where the API shows it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controlplane.api.app import create_app
from controlplane.cron.rounds import round_start, run_round, run_site, site_offset
from controlplane.models import Site
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.conftest import LOG_FILE, AuthHeaders, wait_for_operation


def test_offsets_are_stable_within_the_interval_and_spread_evenly() -> None:
    ids = [uuid.UUID(int=i * 7919 + 13).hex for i in range(2000)]
    offsets = [site_offset(i, 300) for i in ids]
    assert offsets == [site_offset(i, 300) for i in ids]  # same site, same place, every time
    assert all(0 <= o < 300 for o in offsets)
    buckets = [0] * 10
    for o in offsets:
        buckets[int(o // 30)] += 1
    assert min(buckets) > 140 and max(buckets) < 260, buckets  # ~200 each, none bunched
    assert round_start(1_000_123.5, 300) == 999_900  # epoch-aligned: every process agrees
    assert round_start(1_000_200.0, 300) == 1_000_200


def _create(client: TestClient, headers: dict[str, str], name: str) -> None:
    response = client.post(
        "/v1/tenants/acme/sites", json={"name": name, "admin_email": "o@example.com"},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 202, response.text
    assert wait_for_operation(client, response.json()["operation"]["id"], headers)["status"] == (
        "succeeded"
    )


@pytest.fixture
def cron_client(tmp_path: Path, memory_provider: MemoryProvider) -> Iterator[TestClient]:
    settings = Settings(
        provider="memory", home=tmp_path / "home", log_file=LOG_FILE,
        cron_interval_seconds=2, cron_concurrency=2,
    )  # fmt: skip
    app = create_app(
        settings, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )
    with TestClient(app) as client:
        yield client


def test_a_round_runs_ready_sites_once_at_their_offsets_two_at_a_time(
    cron_client: TestClient, memory_provider: MemoryProvider, auth: AuthHeaders
) -> None:
    admin = auth("admin")
    cron_client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin)
    for name in ("alpha", "beta", "gamma", "delta", "paused", "broken"):
        _create(cron_client, admin, name)
    stop = cron_client.post("/v1/tenants/acme/sites/paused/stop", headers=admin).json()
    assert wait_for_operation(cron_client, stop["operation"]["id"], admin)["status"] == "succeeded"
    memory_provider.cron.delay = 0.4
    memory_provider.cron.fail = {"broken"}
    platform = cron_client.app.state.platform  # type: ignore[attr-defined]
    sites = {s["name"]: s for s in cron_client.get("/v1/tenants/acme/sites", headers=admin).json()}

    wall_start, mono_start = time.time(), time.monotonic()
    results = run_round(platform, started=wall_start)

    ran = [name for name, _s, _e in memory_provider.cron.runs]
    assert sorted(ran) == ["alpha", "beta", "broken", "delta", "gamma"]  # not the stopped one
    assert sites["paused"]["id"] not in results
    for name, started, _ended in memory_provider.cron.runs:
        # no site starts before its turn (it may queue behind the concurrency bound)
        assert started - mono_start >= site_offset(sites[name]["id"], 2) - 0.05
    edges = sorted([(s, 1) for _n, s, _e in memory_provider.cron.runs]
                   + [(e, -1) for _n, _s, e in memory_provider.cron.runs])  # fmt: skip
    running = peak = 0
    for _at, change in edges:
        running += change
        peak = max(peak, running)
    assert peak <= 2

    listed = {s["name"]: s for s in cron_client.get("/v1/tenants/acme/sites", headers=admin).json()}
    assert listed["paused"]["cron"] is None
    alpha = cron_client.get("/v1/tenants/acme/sites/alpha", headers=admin).json()["cron"]
    assert alpha["status"] == "ok" and alpha["events_run"] == 1 and alpha["runs"] == 1
    assert alpha["duration_ms"] >= 350
    broken = listed["broken"]["cron"]
    assert broken["status"] == "failed" and "injected cron failure" in broken["detail"]

    run_round(platform, started=time.time())
    again = cron_client.get("/v1/tenants/acme/sites/alpha", headers=admin).json()["cron"]
    assert again["runs"] == 2 and again["last_run_at"] > alpha["last_run_at"]


def test_a_site_stopped_during_the_round_is_skipped(
    cron_client: TestClient, memory_provider: MemoryProvider, auth: AuthHeaders
) -> None:
    admin = auth("admin")
    cron_client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin)
    _create(cron_client, admin, "crumbs")
    platform = cron_client.app.state.platform  # type: ignore[attr-defined]
    site_id = cron_client.get("/v1/tenants/acme/sites/crumbs", headers=admin).json()["id"]
    stop = cron_client.post("/v1/tenants/acme/sites/crumbs/stop", headers=admin).json()
    wait_for_operation(cron_client, stop["operation"]["id"], admin)
    with platform.sessions() as session:  # the context the round took while it was ready
        ctx = platform.engine.read_context(session, session.get(Site, site_id))
    assert run_site(platform, memory_provider.cron, ctx) is None
    assert memory_provider.cron.runs == []


def test_gcp_cron_requests_each_services_wp_cron(tmp_path: Path) -> None:
    from fastapi import FastAPI, Response

    from controlplane.engine.provider import SiteContext
    from controlplane.providers.gcp.cron import HttpCron
    from tests.live import serve

    hits: list[str] = []
    service = FastAPI()

    @service.get("/wp-cron.php")
    def wp_cron() -> Response:
        hits.append("ok")
        return Response(status_code=200)

    @service.get("/broken/wp-cron.php")
    def broken() -> Response:
        return Response(status_code=503)

    cron = HttpCron(Settings(provider="memory", home=tmp_path, cron_timeout_seconds=5))

    def ctx(uri: str | None) -> SiteContext:
        return SiteContext(
            tenant_id="acme", site_id="s1", site_name="crumbs", title="t", admin_email="a@b.c",
            admin_user="admin", domains=[], credentials=None,  # type: ignore[arg-type]
            resources={"runtime": {"uri": uri}} if uri else {},
        )  # fmt: skip

    with serve(service) as url:
        assert cron.run_due(ctx(url)).ok and hits == ["ok"]
        failed = cron.run_due(ctx(f"{url}/broken"))
        assert not failed.ok and "HTTP 503" in failed.detail
    assert not cron.run_due(ctx(None)).ok
    gone = cron.run_due(ctx(url))  # the server is down now
    assert not gone.ok and "unreachable" in gone.detail
