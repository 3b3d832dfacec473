"""Bulk operations on the real local stack: a bulk backup of three sites, one of which cannot
be backed up (a view in its database names a dropped table: mariadb-dump refuses it), backs
up the other two with restic; and a control plane SIGKILLed inside a bulk's first child,
restarted, runs each site's child once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from controlplane.kernel.identity import Principal, Role
from controlplane.kernel.vocabulary import BackupStatus, OperationKind
from controlplane.models import Backup, Operation, Site
from controlplane.platform import build_platform
from controlplane.schemas import BulkRequest, SiteCreate, TenantCreate
from controlplane.services.bulk import start_bulk
from controlplane.services.sites import create_site, delete_site
from controlplane.services.tenants import create_tenant
from controlplane.settings import Settings
from controlplane.stack.local import LocalStack
from tests.integration import crash_worker
from tests.integration.crash_kinds import BYSTANDER
from tests.live import local_stack_home

pytestmark = pytest.mark.integration
TENANT = "acme"
SITES = ["victim", BYSTANDER, "third"]
ADMIN = Principal("bulk-admin", Role.ADMIN, email="admin@bulk-tests.org")


def _run(settings: Settings, op_ids: list[str], timeout: float = 300) -> None:
    platform = build_platform(settings)
    try:
        for op_id in op_ids:
            platform.engine.submit(op_id)
        for op_id in op_ids:
            platform.engine.wait(op_id, timeout=timeout)
    finally:
        platform.close()


@pytest.fixture(scope="module")
def stack() -> Iterator[Settings]:
    with local_stack_home("bulk") as settings:
        platform = build_platform(settings)
        try:
            with platform.sessions() as session:
                create_tenant(session, principal=ADMIN, data=TenantCreate(id=TENANT, name="A"))
                ops = [
                    create_site(session, principal=ADMIN, tenant_id=TENANT, provider="local",
                                data=SiteCreate(name=name, admin_email="a@bulk-tests.org"))[1].id
                    for name in SITES
                ]  # fmt: skip
        finally:
            platform.close()
        _run(settings, ops)
        yield settings
        platform = build_platform(settings)
        try:
            with platform.sessions() as session:
                names = list(session.scalars(select(Site.name)))
                ops = [delete_site(session, principal=ADMIN, tenant_id=TENANT, name=n)[1].id
                       for n in names]  # fmt: skip
        finally:
            platform.close()
        _run(settings, ops)


def _database(settings: Settings, name: str) -> str:
    platform = build_platform(settings)
    try:
        with platform.sessions() as session:
            site = session.scalar(select(Site).where(Site.name == name))
            assert site is not None
            return str(site.resources["database"]["name"])
    finally:
        platform.close()


@contextmanager
def broken_view(settings: Settings, name: str) -> Iterator[None]:
    """A view of the site's database whose table is gone, while the block runs."""
    connection = LocalStack.from_settings(settings).mariadb.connect(_database(settings, name))
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bulk_gone (id INT)")
            cursor.execute("CREATE VIEW bulk_broken AS SELECT id FROM bulk_gone")
            cursor.execute("DROP TABLE bulk_gone")
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP VIEW IF EXISTS bulk_broken")
        connection.close()


def test_a_bulk_backup_with_one_broken_site_backs_up_the_others(stack: Settings) -> None:
    with broken_view(stack, "third"):
        platform = build_platform(stack)
        try:
            with platform.sessions() as session:
                parent, sites = start_bulk(session, principal=ADMIN, tenant_id=TENANT,
                                           request=BulkRequest(action="backup", sites="all",
                                                               concurrency=2))  # fmt: skip
                parent_id = parent.id
            assert sites == sorted(SITES)
            platform.engine.submit(parent_id)
            platform.engine.wait(parent_id, timeout=600)
            with platform.sessions() as session:
                parent = session.get(Operation, parent_id)
                assert parent is not None
                children = {
                    name: session.get(Operation, child_id)
                    for name, child_id in parent.params["children"].items()
                }
                backups = {b.site_name: b for b in session.scalars(select(Backup))}
                parent_state = (parent.status, parent.params["progress"], parent.error)
                child_states = {n: c.status for n, c in children.items() if c is not None}
                kept = {n: (b.status, b.location) for n, b in backups.items()}
        finally:
            platform.close()
    status, progress, error = parent_state
    assert status == "succeeded", parent_state
    assert progress == {"total": 3, "done": 3, "failed": 1, "cancelled": 0, "running": 0}
    assert error is not None and error.startswith("1 of 3 failed: third: backup failed"), error
    assert child_states == {"victim": "succeeded", BYSTANDER: "succeeded", "third": "failed"}
    assert kept["victim"][0] == kept[BYSTANDER][0] == BackupStatus.SUCCEEDED, kept
    assert kept["third"][0] == BackupStatus.FAILED, kept
    assert all(kept[n][1] for n in ("victim", BYSTANDER)), kept  # a restic snapshot each


def test_a_bulk_killed_inside_its_first_child_runs_each_child_once(stack: Settings) -> None:
    (stack.home / crash_worker.TRAIL_FILE).unlink(missing_ok=True)
    argv = ["bulk", "--home", str(stack.home), "--kill-at", "after-call:backup",
            "--provider", "local", "--tenant", TENANT, "--site", "victim",
            "--mariadb-port", str(stack.mariadb_port), "--site-port", str(stack.site_port)]  # fmt: skip
    worker = crash_worker.ForkedWorker(crash_worker.fork_server(), dict(os.environ), stack.home,
                                       argv)  # fmt: skip
    try:
        stdout, stderr = worker.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise
    assert worker.returncode == -signal.SIGKILL, stderr[-3000:]
    trail = (stack.home / crash_worker.TRAIL_FILE).read_text().split()
    assert trail[-1] == "after-call:backup", trail
    parent_id = json.loads(stdout.splitlines()[0])["operation_ids"][0]

    platform = build_platform(stack)
    try:
        recovered = platform.engine.recover()
        assert parent_id in recovered and len(recovered) == 2, recovered
        for op_id in recovered:
            platform.engine.wait(op_id, timeout=600)
        with platform.sessions() as session:
            parent = session.get(Operation, parent_id)
            assert parent is not None
            children = parent.params["children"]
            ran = list(session.scalars(select(Operation).where(
                Operation.kind == OperationKind.BACKUP_SITE,
                Operation.id.in_(children.values()))))  # fmt: skip
            taken = list(session.scalars(select(Backup).where(
                Backup.operation_id.in_(children.values()))))  # fmt: skip
            state = (parent.status, parent.attempts, parent.params["progress"])
            child_states = sorted((op.site_name, op.status) for op in ran)
            backup_states = sorted((b.site_name, b.status) for b in taken)
    finally:
        platform.close()
    assert state == ("succeeded", 2, {"total": 2, "done": 2, "failed": 0, "cancelled": 0,
                                       "running": 0}), state  # fmt: skip
    assert sorted(children) == sorted(["victim", BYSTANDER])
    assert child_states == sorted([("victim", "succeeded"), (BYSTANDER, "succeeded")])
    assert backup_states == sorted([("victim", "succeeded"), (BYSTANDER, "succeeded")])
