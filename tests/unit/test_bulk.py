"""Bulk operations on the memory provider: one parent, one child per site, a few at a time;
one site's failure never stops the others; a cancel stops the ones not started; who may."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from controlplane.api.app import create_app
from controlplane.cli import app as cli_app
from controlplane.engine.packages import PackageArchive
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.kernel.vocabulary import EventType, OperationKind, PackageKind
from controlplane.models import Operation, OperationEvent, Site
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests import package_zips as zips
from tests.agent_fixtures import make_site
from tests.conftest import AuthHeaders, wait_for_operation
from tests.live import serve

EMAIL = "owner@example.com"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Room for a bulk's children beside the ones a test holds at a gate."""
    return settings.model_copy(update={"max_parallel_operations": 6})


def _tenant(client: TestClient, admin: dict[str, str], tenant: str, *names: str) -> None:
    assert client.post("/v1/tenants", json={"id": tenant, "name": tenant}, headers=admin).is_success
    ops = []
    for name in names:
        made = client.post(f"/v1/tenants/{tenant}/sites", headers=admin,
                           json={"name": name, "admin_email": EMAIL})  # fmt: skip
        assert made.status_code == 202, made.text
        ops.append(made.json()["operation"]["id"])
    for op_id in ops:
        assert wait_for_operation(client, op_id, admin)["status"] == "succeeded"


def _bulk(client: TestClient, headers: dict[str, str], tenant: str, **body: Any) -> Any:
    return client.post(f"/v1/tenants/{tenant}/bulk", headers=headers, json=body)


def _children(client: TestClient, parent: dict[str, Any]) -> dict[str, Operation]:
    """The parent's child operations by site name, as stored."""
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        rows = {
            op.id: op
            for op in session.scalars(select(Operation).where(
                Operation.id.in_(parent["children"].values())))
        }  # fmt: skip
        session.expunge_all()
    return {name: rows[op_id] for name, op_id in parent["children"].items()}


def _events(client: TestClient, op_id: str, type_: EventType) -> list[str]:
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        return list(session.scalars(
            select(OperationEvent.message)
            .where(OperationEvent.operation_id == op_id, OperationEvent.type == type_)
            .order_by(OperationEvent.id)
        ))  # fmt: skip


def _most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at one moment (an end before a start at the same instant)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                   key=lambda edge: (edge[0], edge[1]))  # fmt: skip
    most = now = 0
    for _at, step in edges:
        now += step
        most = max(most, now)
    return most


def _slow_backups(provider: MemoryProvider, seconds: float) -> None:
    """Each backup takes `seconds`, so children overlap when they may."""
    inner = provider.backups.backup

    def backup(ctx: Any, backup_id: str) -> Any:
        time.sleep(seconds)
        return inner(ctx, backup_id)

    provider.backups.backup = backup  # type: ignore[method-assign]


SITES = [f"site-{i:02d}" for i in range(10)]


def test_bulk_backup_of_ten_sites_one_failing_backs_up_the_other_nine(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = auth("admin")
    _tenant(client, admin, "acme", *SITES)
    memory_provider.fail_on = {"backup:backup:site-03"}
    _slow_backups(memory_provider, 0.1)

    accepted = _bulk(client, admin, "acme", action="backup", sites="all", concurrency=3)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["sites"] == SITES
    parent = wait_for_operation(client, accepted.json()["operation"]["id"], admin, timeout=60)

    assert parent["kind"] == "bulk" and parent["status"] == "succeeded", parent
    assert parent["progress"] == {"total": 10, "done": 10, "failed": 1, "cancelled": 0,
                                  "running": 0}  # fmt: skip
    assert parent["error"].startswith("1 of 10 failed: site-03: backup failed"), parent["error"]
    children = _children(client, parent)
    assert sorted(children) == SITES
    assert {n: c.status for n, c in children.items()} == {
        n: "failed" if n == "site-03" else "succeeded" for n in SITES
    }
    assert all(c.kind == "backup_site" and c.params["parent"] == parent["id"]
               for c in children.values())  # fmt: skip
    # Never more than 3 at once, and 3 did run at once.
    spans = [(c.created_at, c.finished_at) for c in children.values() if c.finished_at]
    assert len(spans) == 10 and _most_at_once(spans) == 3, spans
    progress = _events(client, parent["id"], EventType.CHILD_FINISHED)
    assert len(progress) == 10 and progress[-1].startswith("10 of 10 done, 1 failed"), progress
    assert [m.split(" of ")[0] for m in progress] == [str(i) for i in range(1, 11)]
    # A child is an ordinary operation in its site's history.
    history = client.get("/v1/tenants/acme/sites/site-03/operations", headers=admin).json()
    assert children["site-03"].id in [op["id"] for op in history]
    stored = memory_provider.stored_backups("acme")
    assert {entry["site_id"] for entry in stored.values()} == {
        c.site_id for n, c in children.items() if n != "site-03"
    }


def test_a_bulk_never_runs_more_children_than_the_workers_less_one(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider, settings: Settings
) -> None:
    admin = auth("admin")
    _tenant(client, admin, "acme", *SITES)
    _slow_backups(memory_provider, 0.2)
    accepted = _bulk(client, admin, "acme", action="backup", sites="all", concurrency=8)
    assert accepted.status_code == 202, accepted.text
    parent = wait_for_operation(client, accepted.json()["operation"]["id"], admin, timeout=60)
    assert parent["status"] == "succeeded", parent
    spans = [(c.created_at, c.finished_at) for c in _children(client, parent).values()]
    assert settings.max_parallel_operations == 6
    assert _most_at_once(spans) == 5, spans  # type: ignore[arg-type]


def test_a_site_another_operation_holds_fails_its_child_and_the_others_go_on(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = auth("admin")
    _tenant(client, admin, "acme", "held", "free-1", "free-2")
    gate = memory_provider.gates["set:runtime"] = threading.Event()
    try:
        stop = client.post("/v1/tenants/acme/sites/held/stop", headers=admin).json()["operation"]
        accepted = _bulk(client, admin, "acme", action="backup",
                         sites=["held", "free-1", "free-2"])  # fmt: skip
        parent = wait_for_operation(client, accepted.json()["operation"]["id"], admin)
    finally:
        gate.set()
    assert parent["status"] == "succeeded" and parent["progress"]["failed"] == 1, parent
    children = _children(client, parent)
    assert children["held"].status == "failed"
    assert f"busy with operation {stop['id']}" in (children["held"].error or "")
    assert parent["error"].startswith("1 of 3 failed: held: site 'held' is busy"), parent
    assert children["free-1"].status == children["free-2"].status == "succeeded"
    assert wait_for_operation(client, stop["id"], admin)["status"] == "succeeded"


def test_cancel_mid_way_cancels_the_children_not_started_and_touches_their_sites_not(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = auth("admin")
    names = [f"site-{i}" for i in range(5)]
    _tenant(client, admin, "acme", *names)
    gate = memory_provider.gates["backup:backup"] = threading.Event()
    try:
        accepted = _bulk(client, admin, "acme", action="backup", sites=names, concurrency=1)
        parent_id = accepted.json()["operation"]["id"]
        deadline = time.monotonic() + 10
        while not client.get(f"/v1/operations/{parent_id}", headers=admin).json()["children"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        cancelled = client.post(f"/v1/operations/{parent_id}/cancel", headers=admin)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["progress"] == {"total": 5, "done": 4, "failed": 0,
                                                "cancelled": 4, "running": 1}  # fmt: skip
    finally:
        gate.set()
    parent = wait_for_operation(client, parent_id, admin)
    assert parent["status"] == "cancelled", parent
    assert parent["error"] == "5 of 5 done, 0 failed, 4 cancelled", parent
    children = _children(client, parent)
    assert children["site-0"].status == "succeeded"
    assert {n: children[n].status for n in names[1:]} == dict.fromkeys(names[1:], "cancelled")
    backed_up = {c.split(":")[-1] for c in memory_provider.calls if c.startswith("backup:")}
    assert backed_up == {"site-0"}, memory_provider.calls
    sites = client.get("/v1/tenants/acme/sites", headers=admin).json()
    assert {s["name"]: (s["status"], s["current_operation_id"]) for s in sites} == {
        n: ("ready", None) for n in names
    }
    again = client.post(f"/v1/operations/{parent_id}/cancel", headers=admin)
    assert again.status_code == 409 and "already ended (cancelled)" in again.text
    not_bulk = client.post(f"/v1/operations/{children['site-0'].id}/cancel", headers=admin)
    assert not_bulk.status_code == 409 and "not a bulk operation" in not_bulk.text


def test_bad_bulk_requests_are_refused_and_record_nothing(
    client: TestClient, auth: AuthHeaders
) -> None:
    admin = auth("admin")
    _tenant(client, admin, "acme", "blog")

    def bulks() -> int:
        with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
            return int(session.scalar(select(func.count()).where(
                Operation.kind == OperationKind.BULK)) or 0)  # fmt: skip

    unknown = _bulk(client, admin, "acme", action="backup", sites=["blog", "nope"])
    assert unknown.status_code == 400 and "'nope'" in unknown.json()["detail"], unknown.text
    twice = _bulk(client, admin, "acme", action="stop", sites=["blog", "blog"])
    assert twice.status_code == 400 and "repeated: blog" in twice.json()["detail"]
    empty = _bulk(client, admin, "acme", action="stop", sites=[])
    assert empty.status_code == 400
    many = [f"site-{i}" for i in range(1_001)]
    too_many = _bulk(client, admin, "acme", action="stop", sites=many)
    assert too_many.status_code == 422 and "1000" in too_many.text, too_many.text
    admin_too_many = client.post("/v1/bulk", headers=admin, json={
        "action": "stop", "sites": [{"tenant_id": "acme", "site": n} for n in many]})  # fmt: skip
    assert admin_too_many.status_code == 422 and "1000" in admin_too_many.text
    repeated = _bulk(client, admin, "acme", action="stop",
                     sites=["blog", "blog", "zed", *many[:996], "zed"])  # fmt: skip
    assert repeated.status_code == 400, repeated.text
    assert "repeated: blog, zed" in repeated.json()["detail"]
    unknown_many = _bulk(client, admin, "acme", action="stop", sites=many[:1_000])
    assert unknown_many.status_code == 400
    assert "'site-9' and 990 more" in unknown_many.json()["detail"]
    assert (
        _bulk(client, admin, "acme", action="backup", sites="all", concurrency=9).status_code == 422
    )
    assert _bulk(client, admin, "acme", action="reboot", sites="all").status_code == 422
    nothing = _bulk(client, admin, "acme", action="start", sites="all")  # nothing is stopped
    assert nothing.status_code == 409 and "no site of tenant 'acme' can start" in nothing.text
    admin_unknown = client.post("/v1/bulk", headers=admin, json={
        "action": "backup", "sites": [{"tenant_id": "acme", "site": "blog"},
                                      {"tenant_id": "acme", "site": "ghost"}]})  # fmt: skip
    assert admin_unknown.status_code == 400 and "'ghost'" in admin_unknown.text
    assert bulks() == 0


def test_admin_bulk_across_two_tenants_makes_one_parent_per_tenant(
    client: TestClient, auth: AuthHeaders
) -> None:
    admin = auth("admin")
    _tenant(client, admin, "acme", "one", "two")
    _tenant(client, admin, "globex", "three")

    accepted = client.post("/v1/bulk", headers=admin, json={"action": "stop", "sites": "all"})
    assert accepted.status_code == 202, accepted.text
    parents = accepted.json()["operations"]
    assert [(p["tenant_id"], p["kind"]) for p in parents] == [("acme", "bulk"), ("globex", "bulk")]
    ends = [wait_for_operation(client, p["id"], admin) for p in parents]
    assert [(e["status"], sorted(e["children"])) for e in ends] == [
        ("succeeded", ["one", "two"]), ("succeeded", ["three"])
    ]  # fmt: skip
    for tenant, names in (("acme", {"one", "two"}), ("globex", {"three"})):
        sites = client.get(f"/v1/tenants/{tenant}/sites", headers=admin).json()
        assert {s["name"]: s["status"] for s in sites} == dict.fromkeys(names, "stopped")
    # Named sites: only those, each in its tenant's parent.
    again = client.post("/v1/bulk", headers=admin, json={"action": "start", "sites": [
        {"tenant_id": "globex", "site": "three"}, {"tenant_id": "acme", "site": "two"}]})  # fmt: skip
    assert again.status_code == 202, again.text
    ends = [wait_for_operation(client, p["id"], admin) for p in again.json()["operations"]]
    assert [(e["tenant_id"], sorted(e["children"])) for e in ends] == [
        ("globex", ["three"]), ("acme", ["two"])
    ]  # fmt: skip
    acme = {
        s["name"]: s["status"] for s in client.get("/v1/tenants/acme/sites", headers=admin).json()
    }
    assert acme == {"one": "stopped", "two": "ready"}


ROLES = ("admin", "operator", "viewer", "tenant")
# Who may start and cancel a bulk of each action, on their own tenant and on another's.
ALLOWED = {"admin": (202, 202), "operator": (202, 404), "viewer": (403, 404), "tenant": (202, 404)}


@pytest.mark.parametrize("action", ["backup", "stop"])
def test_who_may_start_a_bulk(client: TestClient, auth: AuthHeaders, action: str) -> None:
    admin = auth("admin")
    _tenant(client, admin, "acme", "blog")
    _tenant(client, admin, "globex", "shop")
    for role in ROLES:
        caller = auth(role, "acme")
        got = tuple(
            _bulk(
                client,
                caller,
                tenant,
                action=action,
                sites=["blog" if tenant == "acme" else "shop"],
            ).status_code
            for tenant in ("acme", "globex")
        )
        assert got == ALLOWED[role], (role, got)
        with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
            running = session.scalars(select(Operation.id).where(Operation.finished_at.is_(None)))
            for op_id in list(running):
                wait_for_operation(client, op_id, admin)
        if action == "stop":  # serve again for the next caller's stop
            for tenant, name in (("acme", "blog"), ("globex", "shop")):
                start = client.post(f"/v1/tenants/{tenant}/sites/{name}/start", headers=admin)
                if start.status_code == 202:
                    wait_for_operation(client, start.json()["operation"]["id"], admin)
    for role in ("operator", "viewer", "tenant"):
        refused = client.post("/v1/bulk", headers=auth(role, "acme"),
                              json={"action": action, "sites": "all"})  # fmt: skip
        assert refused.status_code == 403, (role, refused.text)


def test_who_may_cancel_a_bulk(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = auth("admin")
    _tenant(client, admin, "acme", "blog", "news")
    _tenant(client, admin, "globex", "shop", "store")
    gate = memory_provider.gates["backup:backup"] = threading.Event()
    try:
        parents = {
            tenant: _bulk(client, admin, tenant, action="backup", sites="all",
                          concurrency=1).json()["operation"]["id"]
            for tenant in ("acme", "globex")
        }  # fmt: skip
        for role in ROLES:
            got = tuple(
                client.post(f"/v1/operations/{parents[t]}/cancel",
                            headers=auth(role, "acme")).status_code
                for t in ("acme", "globex")
            )  # fmt: skip
            assert got == tuple(200 if code == 202 else code for code in ALLOWED[role]), role
    finally:
        gate.set()
    for parent_id in parents.values():
        assert wait_for_operation(client, parent_id, admin)["status"] == "cancelled"


def test_the_cli_runs_a_bulk_with_progress_and_cancels_one(
    settings: Settings, memory_provider: MemoryProvider, issuer: LocalTokenIssuer
) -> None:
    app = create_app(
        settings, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )
    memory_provider.fail_on = {"backup:backup:beta"}
    with serve(app) as url:
        token = issuer.issue("root", Role.ADMIN)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as admin:
            admin.post("/v1/tenants", json={"id": "globex", "name": "Globex"})
            for name in ("alpha", "beta", "gamma"):
                make_site(admin, "globex", name)
        runner = CliRunner()

        def cli(*args: str) -> Any:
            return runner.invoke(cli_app, [*args, "--url", url, "--token", token])

        ran = cli("bulk", "backup", "--all", "--tenant", "globex", "--concurrency", "2")
        assert ran.exit_code == 1, ran.output  # one site failed
        assert "globex: succeeded, 3 of 3 done, 1 failed" in ran.output, ran.output
        assert "1 of 3 failed: beta: backup failed" in ran.output, ran.output
        memory_provider.fail_on = set()
        across = cli("bulk", "stop", "globex/alpha", "globex/gamma")
        assert across.exit_code == 0, across.output
        assert "globex: succeeded, 2 of 2 done, 0 failed" in across.output
        neither = cli("bulk", "start", "--tenant", "globex")
        assert neither.exit_code == 2 and "Name the sites, or pass --all" in neither.output
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as admin:
            sites = {s["name"]: s["status"] for s in admin.get("/v1/tenants/globex/sites").json()}
            assert sites == {"alpha": "stopped", "beta": "ready", "gamma": "stopped"}
            gate = memory_provider.gates["backup:backup"] = threading.Event()
            try:
                started = admin.post("/v1/tenants/globex/bulk", json={
                    "action": "backup", "sites": "all", "concurrency": 1}).json()  # fmt: skip
                path = f"/v1/operations/{started['operation']['id']}"
                deadline = time.monotonic() + 10
                while not admin.get(path).json()["children"]:  # the first child is held
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                cancelled = cli("operations", "cancel", started["operation"]["id"])
            finally:
                gate.set()
        assert cancelled.exit_code == 0, cancelled.output
        assert "2 cancelled, 1 still running" in cancelled.output, cancelled.output


def _give(client: TestClient, provider: MemoryProvider, site: str, slug: str) -> None:
    """The site has plugin `slug` 1.0, active."""
    platform = client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        row = session.scalar(select(Site).where(Site.name == site))
        ctx = platform.engine.read_context(session, row)
    archive = PackageArchive(PackageKind.PLUGIN, slug, "1.0", "0" * 64, 1, "memory")
    provider.packages.install(ctx, [archive], key="setup", activate=True)
    provider.packages.discard_previous(ctx, key="setup")


def test_bulk_update_of_ten_sites_one_rolled_back_updates_the_other_nine(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider, fast_probe: None
) -> None:
    admin = auth("admin")
    _tenant(client, admin, "acme", *SITES)
    for name in SITES:
        _give(client, memory_provider, name, "demo")
    _give(client, memory_provider, "site-07", "extra")  # only site-07 has it
    for slug in ("demo", "extra"):
        added = client.post("/v1/catalogue?kind=plugin", headers=admin,
                            files={"file": ("p.zip", zips.plugin_zip("1.1", slug))})  # fmt: skip
        assert added.status_code == 201, added.text
    memory_provider.packages.broken.add("plugin:extra:1.1")  # a PHP fatal once loaded

    accepted = _bulk(client, admin, "acme", action="update", sites="all", concurrency=4,
                     update={})  # everything that has an update  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    parent = wait_for_operation(client, accepted.json()["operation"]["id"], admin, timeout=90)

    assert parent["status"] == "succeeded", parent
    assert parent["progress"] == {"total": 10, "done": 10, "failed": 1, "cancelled": 0,
                                  "running": 0}  # fmt: skip
    assert parent["error"] == (
        "1 of 10 failed: site-07: update rolled back: php_fatal: PHP Fatal error in plugin "
        "extra 1.1"
    ), parent["error"]
    children = _children(client, parent)
    assert {n: c.status for n, c in children.items()} == {
        n: "rolled_back" if n == "site-07" else "succeeded" for n in SITES
    }
    for name in SITES:
        listing = client.get(f"/v1/tenants/acme/sites/{name}/packages", headers=admin).json()
        versions = {p["slug"]: p["version"] for p in listing["plugins"]}
        assert versions == ({"demo": "1.0", "extra": "1.0"} if name == "site-07"
                            else {"demo": "1.1"}), (name, versions)  # fmt: skip
    spans = [(c.created_at, c.finished_at) for c in children.values() if c.finished_at]
    assert _most_at_once(spans) <= 4
    dry = _bulk(client, admin, "acme", action="update", sites="all", update={"dry_run": True})
    assert dry.status_code == 400 and "dry_run" in dry.text
