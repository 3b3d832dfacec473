"""How the crash tests start an operation of each kind, and what it must end as.

Shared by crash_worker.py (which starts the operation in the process it then kills) and
test_crash_resume.py (which prepares the home, records the boundaries, checks the end). A
kind added to the catalogue needs one `Scenario` here; its crash cases then come from the
catalogue's step list.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from controlplane.db import make_engine, make_sessionmaker
from controlplane.engine.packages import PackageArchive
from controlplane.imports.checks import ARCHIVE
from controlplane.imports.uploads import new_incoming
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import (
    BackupKind,
    BackupStatus,
    EventType,
    OperationKind,
    OperationStatus,
    PackageKind,
)
from controlplane.models import (
    Backup,
    CataloguePackage,
    Operation,
    OperationEvent,
    Site,
    SiteFingerprint,
    Tenant,
)
from controlplane.platform import Platform
from controlplane.schemas import (
    BulkRequest,
    CloneRequest,
    EnvVarWrite,
    PromoteRequest,
    SiteCreate,
    TenantCreate,
    UpdateRequest,
)
from controlplane.services.backups import start_backup, start_restore, start_verify
from controlplane.services.bulk import start_bulk
from controlplane.services.domains import claim_domain, verify_domain
from controlplane.services.env import put_env
from controlplane.services.imports import start_import
from controlplane.services.sites import create_site, delete_site, get_site, set_serving
from controlplane.services.staging import start_clone, start_promote
from controlplane.services.tenants import create_tenant
from controlplane.services.updates import start_update
from controlplane.settings import Settings
from tests.import_fixtures import OLD_URL, good_archive
from tests.import_fixtures import TITLE as IMPORTED_TITLE

ADMIN_EMAIL = "admin@crash-tests.org"
DOMAIN = "victim.crash-tests.org"
ENV_NAME = "CRASH_KEY"
# A secret value: it must reach the provider and never a log line.
ENV_SECRET = "crash-secret-8f1d2c"

# (platform, admin, tenant, site) -> (site id, operation id), both committed.
Starter = Callable[[Platform, Principal, str, str], tuple[str, str]]


def start_create(platform: Platform, admin: Principal, tenant: str, name: str) -> tuple[str, str]:
    """A create of a new site (the tenant made first if missing)."""
    with platform.sessions() as session:
        if session.get(Tenant, tenant) is None:
            create_tenant(session, principal=admin, data=TenantCreate(id=tenant, name="Crash"))
        site, op = create_site(
            session,
            principal=admin,
            tenant_id=tenant,
            data=SiteCreate(name=name, admin_email=ADMIN_EMAIL),
            provider=platform.provider.name,
        )
        return site.id, op.id


def start_delete(platform: Platform, admin: Principal, tenant: str, name: str) -> tuple[str, str]:
    """A delete of a ready site."""
    with platform.sessions() as session:
        site, op = delete_site(session, principal=admin, tenant_id=tenant, name=name)
        return site.id, op.id


def start_serving(serving: bool) -> Starter:
    """A start (of a stopped site) or a stop (of a ready one)."""

    def start(platform: Platform, admin: Principal, tenant: str, name: str) -> tuple[str, str]:
        with platform.sessions() as session:
            site, op = set_serving(
                session, principal=admin, tenant_id=tenant, name=name, serving=serving
            )
            return site.id, op.id

    return start


def start_update_domains(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """A claim proven at once (no DNS here), so the site serves the domain."""
    with platform.sessions() as session:
        claim_domain(session, principal=admin, tenant_id=tenant, site=name, domain=DOMAIN)
        _claim, op = verify_domain(
            session,
            principal=admin,
            tenant_id=tenant,
            site=name,
            domain=DOMAIN,
            check=lambda _domain, _token: None,
        )
        site = get_site(session, principal=admin, tenant_id=tenant, name=name)
        return site.id, op.id


def start_apply_env(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """A secret env var saved; its operation applies it to the tenant's sites."""
    with platform.sessions() as session:
        _vars, op = put_env(
            session,
            principal=admin,
            keyring=platform.keyring,
            tenant_id=tenant,
            values={ENV_NAME: EnvVarWrite(value=ENV_SECRET, secret=True)},
        )
        site = get_site(session, principal=admin, tenant_id=tenant, name=name)
        return site.id, op.id


# The site's content when its backup is taken, and what it is changed to afterwards: a
# restore must end with exactly one of them live, never a mix.
BACKED_UP = "database as backed up"
CHANGED = "database changed after the backup"


def start_backup_site(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """A manual backup of a ready site."""
    with platform.sessions() as session:
        backup, op = start_backup(session, principal=admin, tenant_id=tenant, site=name)
        return backup.site_id, op.id


def start_restore_site(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """A restore of the site's (one) manual backup, taken before its database changed."""
    with platform.sessions() as session:
        backup_id = session.scalar(
            select(Backup.id).where(Backup.site_name == name, Backup.kind == BackupKind.MANUAL)
        )
        assert backup_id is not None, "the scenario's site has no backup"
        site, _backup, _pre, op = start_restore(
            session, principal=admin, tenant_id=tenant, site=name, backup_id=backup_id
        )
        return site.id, op.id


def start_verify_backup(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """A trial restore of the site's manual backup beside it (the site changed since)."""
    with platform.sessions() as session:
        backup_id = session.scalar(
            select(Backup.id).where(Backup.site_name == name, Backup.kind == BackupKind.MANUAL)
        )
        assert backup_id is not None, "the scenario's site has no backup"
        backup, op = start_verify(
            session, principal=admin, tenant_id=tenant, site=name, backup_id=backup_id
        )
        return backup.site_id, op.id


COPY = "copy"  # the site a create from the victim's backup makes


def start_create_from_backup(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """A new site COPY made from the manual backup of `name` (its last step: restore)."""
    with platform.sessions() as session:
        backup_id = session.scalar(
            select(Backup.id).where(Backup.site_name == name, Backup.kind == BackupKind.MANUAL)
        )
        assert backup_id is not None, "the scenario's site has no backup"
        site, op = create_site(
            session,
            principal=admin,
            tenant_id=tenant,
            data=SiteCreate.model_validate(
                {
                    "name": COPY,
                    "admin_email": ADMIN_EMAIL,
                    "from_backup": {"site": name, "backup": backup_id},
                }
            ),
            provider=platform.provider.name,
        )
        return site.id, op.id


STAGING = "victim-dev"  # the staging copy a clone makes of the victim
# What the staging copy's database is changed to before a promotion: production must end
# with exactly this (its address rewritten) or exactly what it had, never a mix.
STAGED_EDIT = "blogname=edited on staging; home=http://victim-dev.crash.memory.invalid/"
PROMOTED = "blogname=edited on staging; home=http://victim.crash.memory.invalid/"


def start_clone_site(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """A staging copy STAGING of the ready site `name` (the operation runs on the copy)."""
    with platform.sessions() as session:
        site, op = start_clone(
            session, principal=admin, tenant_id=tenant, site=name,
            data=CloneRequest(name=STAGING, basic_auth=True), provider=platform.provider.name,
        )  # fmt: skip
        return site.id, op.id


def start_import_site(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """An import of a good archive (another prefix and address) into the ready site, as the
    API records it once the upload is written and checked."""
    incoming = new_incoming(platform.settings.home)
    (incoming / ARCHIVE).write_bytes(good_archive())
    with platform.sessions() as session:
        site, _pre, op = start_import(
            session, principal=admin, settings=platform.settings, tenant_id=tenant, site=name,
            incoming=incoming, old_url=OLD_URL, admin="keep",
        )  # fmt: skip
        return site.id, op.id


BYSTANDER = "bystander"  # the second site of a bulk ("pair": ready beside the victim)


def start_bulk_backup(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """A bulk backup of the victim, then BYSTANDER, one child at a time."""
    with platform.sessions() as session:
        op, _sites = start_bulk(
            session, principal=admin, tenant_id=tenant,
            request=BulkRequest(action="backup", sites=[name, BYSTANDER], concurrency=1),
        )  # fmt: skip
        site = get_site(session, principal=admin, tenant_id=tenant, name=name)
        return site.id, op.id


def bulk_ran_once(home: Path, site_id: str, operation_id: str) -> None:
    """Each site of the bulk has exactly one child, run to its end once, whose backup was
    written once; each child's end was announced once."""
    rows, parent = _backups(home, operation_id)
    children = parent.params["children"]
    assert sorted(children) == sorted(["victim", BYSTANDER]), parent.params
    assert parent.params["progress"] == {"total": 2, "done": 2, "failed": 0, "cancelled": 0,
                                         "running": 0}, parent.params  # fmt: skip
    db = make_engine(Settings(provider="memory", home=home))
    try:
        with make_sessionmaker(db)() as session:
            kids = list(session.scalars(select(Operation).where(
                Operation.kind == OperationKind.BACKUP_SITE)))  # fmt: skip
            announced = list(session.scalars(select(OperationEvent.message).where(
                OperationEvent.operation_id == operation_id,
                OperationEvent.type == EventType.CHILD_FINISHED)))  # fmt: skip
    finally:
        db.dispose()
    assert sorted(k.id for k in kids) == sorted(children.values()), kids
    assert all(k.status == OperationStatus.SUCCEEDED for k in kids), [k.status for k in kids]
    assert len(announced) == 2 and announced[-1].startswith("2 of 2 done, 0 failed"), announced
    assert sorted(b.operation_id for b in rows) == sorted(children.values()), rows
    assert all(b.status == BackupStatus.SUCCEEDED for b in rows), rows
    assert set(_state(home)["store"]["crash"]) == {b.id for b in rows}


def _fingerprint_now(platform: Platform) -> Callable[[Any, Site], Any]:
    def now(session: Any, site: Site) -> Any:
        return platform.provider.backups.fingerprint(platform.engine.read_context(session, site))

    return now


def start_promote_site(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """The staging copy (edited since the clone) promoted whole into `name`."""
    with platform.sessions() as session:
        site, _pre, op = start_promote(
            session, principal=admin, tenant_id=tenant, site=STAGING,
            data=PromoteRequest(), now=_fingerprint_now(platform),
        )  # fmt: skip
        return site.id, op.id


def imported_or_not(home: Path, site_id: str, operation_id: str) -> None:
    """The site holds all of the import (database and files) or none of it, out of
    maintenance, nothing staged or kept aside; the upload's directory is gone either way."""
    state = _state(home)
    live = state["live"][site_id]
    rows, op = _backups(home, operation_id)
    if op.status == OperationStatus.SUCCEEDED:
        assert IMPORTED_TITLE in live["database"] and OLD_URL not in live["database"], live
        assert "wp-content/uploads/2024/cat.png" in live["files"], live
        (pre,) = [b for b in rows if b.id == op.params["pre_backup"]]
        assert pre.kind == BackupKind.PRE_IMPORT and pre.status == BackupStatus.SUCCEEDED
        assert set(state["store"]["crash"]) == {pre.id}, state["store"]
    else:
        assert op.status == OperationStatus.ROLLED_BACK, op.status
        assert IMPORTED_TITLE not in live["database"] and "cat.png" not in live["files"], live
    assert site_id not in state["maintenance"], state
    assert site_id not in state["staged"] and site_id not in state["previous"], state
    imports = home / "imports"
    assert not imports.exists() or list(imports.iterdir()) == [], list(imports.iterdir())


UPDATED_FROM, UPDATED_TO = "1.0", "1.1"  # the demo plugin's versions before and after


def start_update_site(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """The ready site has demo 1.0 (active); the catalogue holds 1.1: update everything."""
    archive = PackageArchive(PackageKind.PLUGIN, "demo", UPDATED_FROM, "0" * 64, 1, "memory")
    with platform.sessions() as session:
        site = get_site(session, principal=admin, tenant_id=tenant, name=name)
        ctx = platform.engine.read_context(session, site)
        platform.provider.packages.install(ctx, [archive], key="setup", activate=True)
        platform.provider.packages.discard_previous(ctx, key="setup")
        session.add(CataloguePackage(
            kind="plugin", slug="demo", version=UPDATED_TO, name="Demo", sha256="1" * 64,
            size_bytes=1, location="memory", added_by=admin.sub,
        ))  # fmt: skip
        session.commit()
        op, _changes = start_update(
            session, principal=admin, tenant_id=tenant, site=name, request=UpdateRequest(),
            installed=platform.provider.packages.installed(ctx),
        )  # fmt: skip
        return site.id, op.id


def updated_once(home: Path, site_id: str, operation_id: str) -> None:
    """The site has demo 1.1, out of maintenance, nothing kept aside; the pre-update backup
    was written once."""
    state = _state(home)
    assert state["packages"][site_id]["plugin"]["demo"]["version"] == UPDATED_TO, state
    assert state["packages"][site_id]["plugin"]["demo"]["active"], state
    assert site_id not in state["maintenance"], state
    assert state["packages_aside"] == {}, state
    rows, op = _backups(home, operation_id)
    (pre,) = [b for b in rows if b.id == op.params["pre_backup"]]
    assert pre.kind == BackupKind.PRE_UPDATE and pre.status == BackupStatus.SUCCEEDED
    assert set(state["store"]["crash"]) == {b.id for b in rows}


# Worker modes that start something other than a kind's plain scenario.
EXTRA_STARTERS: dict[str, Starter] = {
    "create_from_backup": start_create_from_backup,
    # The same trial restore of a backup corrupted in storage: it must fail verification.
    "verify_corrupted": start_verify_backup,
}


def _state(home: Path) -> dict[str, Any]:
    path = home / "memory-provider.backups.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _backups(home: Path, operation_id: str) -> tuple[list[Backup], Operation]:
    db = make_engine(Settings(provider="memory", home=home))
    try:
        with make_sessionmaker(db)() as session:
            rows = list(session.scalars(select(Backup).order_by(Backup.created_at)))
            op = session.get(Operation, operation_id)
            assert op is not None
            session.expunge_all()
            return rows, op
    finally:
        db.dispose()


def backed_up_once(home: Path, site_id: str, operation_id: str) -> None:
    """The backup is written once (a resumed try found the first), verified, on its row."""
    rows, op = _backups(home, operation_id)
    taken = [b for b in rows if b.id == op.params["backup"]]
    assert len(taken) == 1 and taken[0].status == BackupStatus.SUCCEEDED, rows
    assert taken[0].verified_at is not None and taken[0].checksums, taken[0].__dict__
    stored = _state(home)["store"]["crash"]
    assert set(stored) == {b.id for b in rows}, (stored.keys(), [b.id for b in rows])


def restored_exactly(home: Path, site_id: str, operation_id: str) -> None:
    """The site holds exactly the backup's content, out of maintenance, nothing staged or
    kept aside, and the pre-restore backup (of the changed site) was written once."""
    state = _state(home)
    assert state["live"][site_id]["database"] == BACKED_UP, state["live"]
    assert site_id not in state["maintenance"], state
    assert site_id not in state["staged"] and site_id not in state["previous"], state
    rows, op = _backups(home, operation_id)
    pre = [b for b in rows if b.id == op.params["pre_backup"]]
    assert len(pre) == 1 and pre[0].kind == BackupKind.PRE_RESTORE, rows
    assert pre[0].status == BackupStatus.SUCCEEDED, pre[0].__dict__
    stored = state["store"]["crash"]
    assert set(stored) == {b.id for b in rows}, (stored.keys(), [b.id for b in rows])
    assert stored[pre[0].id]["content"]["database"] == CHANGED


def verified_beside(home: Path, site_id: str, operation_id: str) -> None:
    """The backup passed its trial restore; the live site kept its changed content, out of
    maintenance, with nothing staged or kept aside, and no backup was taken."""
    state = _state(home)
    assert state["live"][site_id]["database"] == CHANGED, state["live"]
    assert site_id not in state["maintenance"], state
    assert site_id not in state["staged"] and site_id not in state["previous"], state
    rows, op = _backups(home, operation_id)
    (checked,) = [b for b in rows if b.id == op.params["backup"]]
    assert checked.sample_checked_at is not None and checked.verification_error is None
    assert checked.verified_at == checked.sample_checked_at, checked.__dict__
    assert set(state["store"]["crash"]) == {b.id for b in rows} == {checked.id}


def cloned_exactly(home: Path, site_id: str, operation_id: str) -> None:
    """The copy holds the parent's content at its own address, nothing staged or kept aside;
    it is the parent's staging site with a fingerprint; the parent's backup written once."""
    state = _state(home)
    rows, op = _backups(home, operation_id)
    (parent_backup,) = [b for b in rows if b.id == op.params["from_backup"]]
    assert parent_backup.kind == BackupKind.PRE_CLONE, parent_backup.__dict__
    assert parent_backup.status == BackupStatus.SUCCEEDED, parent_backup.__dict__
    parent_id = op.params["parent"]
    parent_db = state["live"][parent_id]["database"]
    assert state["live"][site_id]["database"] == parent_db.replace(
        "://victim.crash.", f"://{STAGING}.crash."
    ), state["live"]
    assert site_id not in state["staged"] and site_id not in state["previous"], state
    assert set(state["store"]["crash"]) == {b.id for b in rows}
    db = make_engine(Settings(provider="memory", home=home))
    try:
        with make_sessionmaker(db)() as session:
            site = session.get(Site, site_id)
            assert site is not None and site.role == "staging" and site.parent_id == parent_id
            fingerprint = session.get(SiteFingerprint, site_id)
            assert fingerprint is not None and fingerprint.tables, "no fingerprint recorded"
    finally:
        db.dispose()


def promoted_exactly(home: Path, site_id: str, operation_id: str) -> None:
    """Production holds the staging copy at its own address, out of maintenance, nothing
    staged or kept aside; the pre-promote backup (of the old content) was written once."""
    state = _state(home)
    assert state["live"][site_id]["database"] == PROMOTED, state["live"]
    assert site_id not in state["maintenance"], state
    assert site_id not in state["staged"] and site_id not in state["previous"], state
    rows, op = _backups(home, operation_id)
    (pre,) = [b for b in rows if b.id == op.params["pre_backup"]]
    assert pre.kind == BackupKind.PRE_PROMOTE and pre.status == BackupStatus.SUCCEEDED
    assert state["store"]["crash"][pre.id]["content"]["database"] != PROMOTED
    assert set(state["store"]["crash"]) == {b.id for b in rows}


@dataclass(frozen=True)
class Scenario:
    """One kind's crash scenario: its start, the site it needs, the state it ends in."""

    start: Starter
    # What the site must be before the operation starts: None (nothing), "ready", "stopped",
    # "backed_up" (ready, with a manual backup of BACKED_UP, then changed to CHANGED).
    needs: str | None
    # The site's status once the operation is resumed to its end; None: the site is gone.
    site_status: str | None
    # What the provider must hold for the site at the end, beyond the six parts.
    provider_holds: dict[str, Any]
    # Any further check of the end state: (home, site id, operation id); raises if wrong.
    check: Callable[[Path, str, str], None] | None = None


SCENARIOS: dict[OperationKind, Scenario] = {
    OperationKind.CREATE_SITE: Scenario(start_create, None, "ready", {}),
    OperationKind.DELETE_SITE: Scenario(start_delete, "ready", None, {}),
    OperationKind.START_SITE: Scenario(
        start_serving(True), "stopped", "ready", {"runtime": "running"}
    ),
    OperationKind.STOP_SITE: Scenario(
        start_serving(False), "ready", "stopped", {"runtime": "stopped"}
    ),
    OperationKind.UPDATE_DOMAINS: Scenario(
        start_update_domains, "ready", "ready", {"dns": {"domains": [DOMAIN]}}
    ),
    OperationKind.APPLY_ENV: Scenario(start_apply_env, "ready", "ready", {"env": [ENV_NAME]}),
    OperationKind.BACKUP_SITE: Scenario(
        start_backup_site, "ready", "ready", {}, check=backed_up_once
    ),
    # "backed_up": ready, backed up with BACKED_UP, then changed to CHANGED.
    OperationKind.RESTORE_SITE: Scenario(
        start_restore_site, "backed_up", "ready", {}, check=restored_exactly
    ),
    OperationKind.VERIFY_BACKUP: Scenario(
        start_verify_backup, "backed_up", "ready", {}, check=verified_beside
    ),
    # The new staging site is the operation's site: it ends ready beside its parent.
    OperationKind.CLONE_SITE: Scenario(
        start_clone_site, "ready", "ready", {}, check=cloned_exactly
    ),
    # "staged": ready, cloned to STAGING, the copy edited to STAGED_EDIT.
    OperationKind.PROMOTE_SITE: Scenario(
        start_promote_site, "staged", "ready", {}, check=promoted_exactly
    ),
    OperationKind.IMPORT_SITE: Scenario(
        start_import_site, "ready", "ready", {}, check=imported_or_not
    ),
    OperationKind.UPDATE_SITE: Scenario(
        start_update_site, "ready", "ready", {}, check=updated_once
    ),
    # "pair": the victim and BYSTANDER, both ready.
    OperationKind.BULK: Scenario(start_bulk_backup, "pair", "ready", {}, check=bulk_ran_once),
}
