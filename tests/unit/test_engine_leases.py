"""Operation leases: one engine runs an operation; a dead engine's work is taken over."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from controlplane.kernel.identity import Principal, Role
from controlplane.models import Operation, utcnow
from controlplane.platform import Platform, build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.schemas import SiteCreate, TenantCreate
from controlplane.services.sites import create_site
from controlplane.services.tenants import create_tenant
from controlplane.settings import Settings

ADMIN = Principal("root", Role.ADMIN, email="root@example.com")


@pytest.fixture
def second(settings: Settings) -> Iterator[Platform]:
    """A second control-plane engine on the same database."""
    other = build_platform(settings, provider=MemoryProvider())
    yield other
    other.close()


def _pending_op(platform: Platform, worker_id: str | None, lease_in: timedelta) -> str:
    with platform.sessions() as session:
        create_tenant(session, principal=ADMIN, data=TenantCreate(id="acme", name="Acme"))
        _site, op = create_site(
            session, principal=ADMIN, tenant_id="acme",
            data=SiteCreate(name="crumbs", admin_email="a@example.com"), provider="memory",
        )  # fmt: skip
        session.execute(
            update(Operation)
            .where(Operation.id == op.id)
            .values(worker_id=worker_id, lease_expires_at=utcnow() + lease_in)
        )
        session.commit()
        return op.id


def _status(platform: Platform, op_id: str) -> str:
    with platform.sessions() as session:
        op = session.get(Operation, op_id)
        assert op is not None
        return op.status


def test_a_live_lease_is_respected_and_a_lapsed_one_taken_over(
    platform: Platform, second: Platform
) -> None:
    op_id = _pending_op(platform, "elsewhere:4242:abcd", timedelta(seconds=60))
    assert second.engine.recover() == []
    assert not second.engine._claim(op_id)
    assert _status(platform, op_id) == "pending"
    with platform.sessions() as session:
        session.execute(
            update(Operation)
            .where(Operation.id == op_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    assert second.engine.recover() == [op_id]
    second.engine.wait(op_id, timeout=20)
    assert _status(platform, op_id) == "succeeded"


def test_a_dead_process_on_this_host_is_taken_over_at_once(
    platform: Platform, second: Platform
) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    op_id = _pending_op(platform, f"{socket.gethostname()}:{dead.pid}:dead", timedelta(seconds=600))
    assert second.engine.recover() == [op_id]
    second.engine.wait(op_id, timeout=20)
    assert _status(platform, op_id) == "succeeded"


def test_only_one_engine_claims(platform: Platform, second: Platform) -> None:
    op_id = _pending_op(platform, None, timedelta(0))
    assert platform.engine._claim(op_id)
    assert not second.engine._claim(op_id)
    assert not platform.engine._claim(op_id)  # not even twice by the same engine


def test_a_waiting_operation_keeps_its_lease_and_is_handed_over_at_shutdown(
    platform: Platform, second: Platform
) -> None:
    """An apply_env waiting for a busy site holds no worker, but still its lease (no other
    engine runs it meanwhile); an engine that stops hands it over at once."""
    import time

    from controlplane.schemas import EnvVarWrite
    from controlplane.services.env import put_env

    create_op = _pending_op(platform, None, timedelta(0))  # holds the site, never run here
    with platform.sessions() as session:
        _vars, env_op = put_env(session, principal=ADMIN, keyring=platform.keyring,
                                tenant_id="acme", values={"REGION": EnvVarWrite(value="eu")})  # fmt: skip
        env_id = env_op.id
    platform.engine.submit(env_id)
    deadline = time.monotonic() + 10
    while True:
        with platform.sessions() as session:
            op = session.get(Operation, env_id)
            assert op is not None
            if "waiting" in op.params:
                break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not second.engine._claim(env_id)  # the waiting engine still holds it
    assert env_id not in second.engine._leases.claimable()
    platform.engine.shutdown(wait=True)
    # Handed over: the create finishes on the second engine, then the env change.
    assert second.engine.recover() == [create_op, env_id]
    second.engine.wait(create_op, timeout=20)
    second.engine.wait(env_id, timeout=20)
    assert _status(platform, env_id) == "succeeded"
