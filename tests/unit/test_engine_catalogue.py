"""The engine walks kinds from its catalogue: env changes as operations, retries, site locks,
and the vocabulary the API serves."""

from __future__ import annotations

import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import select

from controlplane.engine.catalogue import CATALOGUE, RetryPolicy
from controlplane.engine.locks import SiteLocks
from controlplane.engine.provider import SiteContext
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.vocabulary import EventType, OperationKind, OperationStatus, StepStatus
from controlplane.models import OperationEvent, Site
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.cli_harness import served_cli
from tests.conftest import AuthHeaders, wait_for_operation

EMAIL = "owner@example.com"


def _site(client: TestClient, headers: dict[str, str], name: str) -> None:
    accepted = client.post(
        "/v1/tenants/acme/sites", json={"name": name, "admin_email": EMAIL}, headers=headers
    )
    assert accepted.status_code == 202, accepted.text
    op = wait_for_operation(client, accepted.json()["operation"]["id"], headers)
    assert op["status"] == "succeeded", op


def _setup(client: TestClient, auth: AuthHeaders, *sites: str) -> dict[str, str]:
    admin = auth("admin")
    assert client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin).is_success
    for name in sites:
        _site(client, admin, name)
    return admin


def _events(client: TestClient, op_id: str) -> list[tuple[str, str | None]]:
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        rows = session.execute(
            select(OperationEvent.type, OperationEvent.step)
            .where(OperationEvent.operation_id == op_id)
            .order_by(OperationEvent.id)
        )
        return [(r.type, r.step) for r in rows]


def _site_ids(client: TestClient) -> dict[str, str]:
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        return {s.name: s.id for s in session.scalars(select(Site))}


def test_an_env_change_is_an_operation_applied_to_every_serving_site(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = _setup(client, auth, "alpha", "beta")
    stopped = client.post("/v1/tenants/acme/sites/beta/stop", headers=admin).json()["operation"]
    wait_for_operation(client, stopped["id"], admin)

    put = client.put(
        "/v1/tenants/acme/env/STRIPE_KEY", json={"value": "sk_1", "secret": True}, headers=admin
    )

    assert put.status_code == 202, put.text
    body = put.json()
    assert body["variable"]["name"] == "STRIPE_KEY" and "sk_1" not in put.text
    assert body["operation"]["kind"] == "apply_env" and body["operation"]["site_id"] is None
    final = wait_for_operation(client, body["operation"]["id"], admin)
    assert final["status"] == "succeeded", final
    assert [s["name"] for s in final["steps"]] == ["claim_sites", "runtime"]
    ids = _site_ids(client)
    for name in ("alpha", "beta"):  # the stopped site has them for when it starts again
        assert memory_provider.site_resources(ids[name])["env"] == ["STRIPE_KEY"]
    types = [t for t, _step in _events(client, final["id"])]
    assert types[0] == EventType.OPERATION_STARTED and types[-1] == EventType.OPERATION_SUCCEEDED
    assert (EventType.STEP_FINISHED, "runtime") in _events(client, final["id"])
    listed = client.get("/v1/tenants/acme/operations", headers=admin).json()
    assert listed[0]["id"] == final["id"]
    # Sites are free again: a stop is accepted at once.
    assert client.post("/v1/tenants/acme/sites/alpha/stop", headers=admin).status_code == 202

    deleted = client.delete("/v1/tenants/acme/env/STRIPE_KEY", headers=admin)
    assert deleted.status_code == 202 and deleted.json()["variable"]["name"] == "STRIPE_KEY"
    wait_for_operation(client, deleted.json()["operation"]["id"], admin)
    assert memory_provider.site_resources(ids["beta"])["env"] == []


def test_an_env_change_waits_for_a_site_busy_with_another_change(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = _setup(client, auth, "alpha")
    gate = memory_provider.gates["set:runtime"] = threading.Event()
    stop = client.post("/v1/tenants/acme/sites/alpha/stop", headers=admin).json()["operation"]
    put = client.put("/v1/tenants/acme/env/REGION", json={"value": "eu"}, headers=admin)
    env_op = put.json()["operation"]["id"]
    try:
        deadline = time.monotonic() + 10
        while (EventType.STEP_RETRYING, "claim_sites") not in _events(client, env_op):
            assert time.monotonic() < deadline, _events(client, env_op)
            time.sleep(0.05)
        env_calls = [c for c in memory_provider.calls if c.startswith("set:env")]
        assert env_calls == [], "the env was applied while the stop still held the site"
    finally:
        gate.set()
    assert wait_for_operation(client, stop["id"], admin)["status"] == "succeeded"
    final = wait_for_operation(client, env_op, admin)
    assert final["status"] == "succeeded", final
    ids = _site_ids(client)
    assert memory_provider.site_resources(ids["alpha"])["env"] == ["REGION"]
    assert memory_provider.calls.index("set:runtime:alpha") < memory_provider.calls.index(
        "set:env:alpha"
    )


def test_a_failing_env_apply_fails_the_operation_and_frees_the_sites(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = _setup(client, auth, "alpha")
    memory_provider.fail_on = {"set:env"}
    put = client.put("/v1/tenants/acme/env/REGION", json={"value": "eu"}, headers=admin)
    final = wait_for_operation(client, put.json()["operation"]["id"], admin)
    assert final["status"] == "failed"
    assert "injected failure at set:env" in final["error"] and "save one again" in final["error"]
    tries = [c for c in memory_provider.calls if c == "set:env:alpha"]
    assert len(tries) == CATALOGUE[OperationKind.APPLY_ENV].step("runtime").retry.attempts
    # The value stays saved, and the site is not left claimed by the failed operation.
    assert client.get("/v1/tenants/acme/env/REGION", headers=admin).json()["value"] == "eu"
    site = client.get("/v1/tenants/acme/sites/alpha", headers=admin).json()
    assert site["current_operation_id"] is None


def test_a_transient_step_error_is_retried_in_process(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = _setup(client, auth)
    flaky: list[str] = []
    real_ensure = memory_provider.storage.ensure

    def ensure_once_broken(ctx: SiteContext) -> None:
        flaky.append(ctx.site_name)
        if len(flaky) == 1:
            raise ConnectionError("storage API reset the connection")
        real_ensure(ctx)

    memory_provider.storage.ensure = ensure_once_broken  # type: ignore[method-assign]
    accepted = client.post(
        "/v1/tenants/acme/sites", json={"name": "crumbs", "admin_email": EMAIL}, headers=admin
    ).json()
    final = wait_for_operation(client, accepted["operation"]["id"], admin)

    assert final["status"] == "succeeded", final
    assert final["attempts"] == 1 and flaky == ["crumbs", "crumbs"]
    assert (EventType.STEP_RETRYING, "storage") in _events(client, final["id"])


def test_an_error_not_worth_retrying_fails_at_once(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = _setup(client, auth)
    tries: list[str] = []

    def refused(ctx: SiteContext) -> None:
        tries.append(ctx.site_name)
        raise ValueError("image name is malformed")

    memory_provider.runtime.ensure = refused  # type: ignore[method-assign]
    accepted = client.post(
        "/v1/tenants/acme/sites", json={"name": "crumbs", "admin_email": EMAIL}, headers=admin
    ).json()
    final = wait_for_operation(client, accepted["operation"]["id"], admin)

    assert final["status"] == OperationStatus.ROLLED_BACK
    assert tries == ["crumbs"]
    assert (EventType.STEP_RETRYING, "runtime") not in _events(client, final["id"])
    steps = {s["name"]: s["status"] for s in final["steps"]}
    assert steps["runtime"] == StepStatus.UNDONE and steps["dns"] == StepStatus.PENDING


def test_site_locks_are_dropped_when_unused(client: TestClient, auth: AuthHeaders) -> None:
    _setup(client, auth, "alpha", "beta")
    engine = client.app.state.platform.engine  # type: ignore[attr-defined]
    assert len(engine.site_locks) == 0

    locks = SiteLocks()
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with locks.hold("s1"):
            entered.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(5)
    waiting: list[str] = []

    def wait_then_hold() -> None:
        with locks.hold("s1"):
            waiting.append("held")

    waiter = threading.Thread(target=wait_then_hold)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and waiting == []  # the second holder waits on the same lock
    assert len(locks) == 1
    release.set()
    holder.join(5)
    waiter.join(5)
    assert waiting == ["held"]
    assert len(locks) == 0  # nobody holds or waits: the entry is gone


def test_retry_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(attempts=6, backoff_seconds=0.5, max_backoff_seconds=3)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_the_vocabulary_is_served_to_signed_in_callers(
    client: TestClient, auth: AuthHeaders
) -> None:
    assert client.get("/v1/vocabulary").status_code == 401
    body = client.get("/v1/vocabulary", headers=auth("viewer")).json()
    assert body["operation_kinds"] == [k.value for k in OperationKind]
    assert set(body["operation_kind_labels"]) == {k.value for k in CATALOGUE}
    assert body["operation_statuses"] == [s.value for s in OperationStatus]
    assert body["active_operation_statuses"] == ["pending", "running", "rolling_back"]
    assert body["step_statuses"] == [s.value for s in StepStatus]
    assert "step_retrying" in body["event_types"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["OperationKind"]["enum"] == [k.value for k in OperationKind]
    assert schema["OperationRead"]["properties"]["status"]["$ref"].endswith("OperationStatus")


def test_the_cli_sets_and_unsets_env_and_waits_for_the_sites(
    settings: Settings, memory_provider: MemoryProvider, issuer: LocalTokenIssuer
) -> None:
    with served_cli(settings, memory_provider, issuer) as cli:
        site_id = cli.site_id
        saved = cli("env", "set", "globex", "API_KEY", "--secret", stdin="k-123\n")
        assert saved.exit_code == 0, saved.output
        assert "applied to the tenant's sites" in saved.output and "k-123" not in saved.output
        # The command returned only once the site had the variable.
        assert memory_provider.site_resources(site_id)["env"] == ["API_KEY"]
        listed = cli("env", "list", "globex")
        assert "API_KEY" in listed.output and "k-123" not in listed.output
        removed = cli("env", "unset", "globex", "API_KEY")
        assert removed.exit_code == 0, removed.output
        assert memory_provider.site_resources(site_id)["env"] == []
        missing = cli("env", "unset", "globex", "API_KEY")
        assert missing.exit_code == 1 and "not found" in missing.output
