"""Attack: a tenant's env change waits for its sites' other changes. The wait slept in an
engine worker for up to 600 s, so a tenant with a long change (or a few tenants saving env
while a site is busy) took every worker and the whole platform's operations queued behind
them; and each save queued its own apply. A waiting apply_env now gives its worker back and
is run again later; queued applies of one tenant merge into the newest."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi.testclient import TestClient

from controlplane.kernel.vocabulary import EventType
from controlplane.models import Operation, OperationEvent, Site
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.conftest import AuthHeaders, wait_for_operation

EMAIL = "owner@example.com"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Two workers: one held by a gated stop, one left."""
    return settings.model_copy(update={"max_parallel_operations": 2})


def _site(client: TestClient, admin: dict[str, str], tenant: str, name: str) -> dict[str, object]:
    accepted = client.post(f"/v1/tenants/{tenant}/sites", headers=admin,
                           json={"name": name, "admin_email": EMAIL})  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    return wait_for_operation(client, accepted.json()["operation"]["id"], admin, timeout=10)


def _setup(client: TestClient, auth: AuthHeaders) -> dict[str, str]:
    admin = auth("admin")
    for tenant in ("acme", "globex"):
        assert client.post("/v1/tenants", json={"id": tenant, "name": tenant},
                           headers=admin).is_success  # fmt: skip
    assert _site(client, admin, "acme", "alpha")["status"] == "succeeded"
    return admin


@contextmanager
def _alpha_stop_held(
    client: TestClient, provider: MemoryProvider, admin: dict[str, str]
) -> Iterator[httpx.Response]:
    """alpha's stop, asked and held at its runtime call (a worker busy) until the block ends."""
    gate = provider.gates["set:runtime"] = threading.Event()
    try:
        yield client.post("/v1/tenants/acme/sites/alpha/stop", headers=admin)
    finally:
        gate.set()


def _waiting(client: TestClient, op_id: str) -> None:
    """Until the operation has said it waits for the busy site."""
    deadline = time.monotonic() + 10
    while True:
        with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
            types = session.scalars(
                OperationEvent.__table__.select()
                .with_only_columns(OperationEvent.type)
                .where(OperationEvent.operation_id == op_id)
            ).all()
        if EventType.STEP_RETRYING in types:
            return
        assert time.monotonic() < deadline, types
        time.sleep(0.05)


def test_a_waiting_env_change_holds_no_worker(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = _setup(client, auth)
    with _alpha_stop_held(client, memory_provider, admin) as stop:  # worker 1
        env = client.put("/v1/tenants/acme/env/REGION", json={"value": "eu"}, headers=admin)
        env_op = env.json()["operation"]["id"]
        _waiting(client, env_op)
        # Another tenant's create runs on the worker the wait gave back, stop still held.
        other = _site(client, admin, "globex", "elsewhere")
        assert other["status"] == "succeeded", other
        waiting = client.get(f"/v1/operations/{env_op}", headers=admin).json()
        assert waiting["status"] == "running" and waiting["attempts"] == 1
    assert (
        wait_for_operation(client, stop.json()["operation"]["id"], admin)["status"] == "succeeded"
    )
    final = wait_for_operation(client, env_op, admin, timeout=10)
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 1  # runs after a wait are the same attempt
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        events = session.query(OperationEvent).filter_by(operation_id=env_op).all()
        alpha = session.query(Site).filter_by(name="alpha").one()
    started = [e for e in events if e.type == EventType.STEP_STARTED and e.step == "claim_sites"]
    waits = [e for e in events if e.type == EventType.STEP_RETRYING]
    assert len(started) == 1 and len(waits) == 1, [(e.type, e.message) for e in events]
    assert "waiting for the change on alpha to finish" in waits[0].message
    assert memory_provider.site_resources(alpha.id)["env"] == ["REGION"]


def test_queued_env_changes_of_a_tenant_merge_into_the_newest(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = _setup(client, auth)
    with _alpha_stop_held(client, memory_provider, admin) as stop:
        ops = []
        for name in ("ONE", "TWO", "THREE"):
            put = client.put(f"/v1/tenants/acme/env/{name}", json={"value": "1"}, headers=admin)
            assert put.status_code == 202, put.text
            ops.append(put.json()["operation"]["id"])
        # The older two end without waiting: the newest applies their values too.
        for op_id in ops[:2]:
            done = wait_for_operation(client, op_id, admin, timeout=10)
            assert done["status"] == "succeeded", done
            assert done["merged_into"] in ops[1:], done  # the API says which one took over
    wait_for_operation(client, stop.json()["operation"]["id"], admin)
    assert wait_for_operation(client, ops[2], admin, timeout=10)["status"] == "succeeded"
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        params = {op_id: session.get(Operation, op_id).params for op_id in ops}
        alpha = session.query(Site).filter_by(name="alpha").one()
    merged = [p.get("merged_into") for p in params.values()]
    assert merged[0] in ops[1:] and merged[1:] == [ops[2], None]  # each into a newer one
    assert [p.get("applied") for p in params.values()] == [[], [], ["alpha"]]
    assert memory_provider.calls.count("set:env:alpha") == 1
    assert memory_provider.site_resources(alpha.id)["env"] == ["ONE", "THREE", "TWO"]
