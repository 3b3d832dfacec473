"""Staging: clone a site, measure its parent's drift, promote the copy, roll a promotion back,
reveal a staging site's HTTP login."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack

from sqlalchemy.orm import Session

from controlplane import audit
from controlplane.credentials import DatabaseVault
from controlplane.crypto import Keyring
from controlplane.engine.backup_steps import new_backup
from controlplane.engine.drift import Drift, compare
from controlplane.engine.provider import BASIC_AUTH, CopyScope, Fingerprint
from controlplane.engine.staging_steps import fingerprint_of, scope_params
from controlplane.errors import BadRequest, Conflict, DriftConflict
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import BackupKind, OperationKind, SiteRole
from controlplane.models import Backup, Operation, Site, SiteFingerprint
from controlplane.permissions import Action
from controlplane.schemas import (
    BasicAuthCredentials,
    CloneRequest,
    DriftRead,
    FileDriftRead,
    PromoteRequest,
    SiteCreate,
    TableDriftRead,
)
from controlplane.services import backups as backups_service
from controlplane.services.site_checks import require_ready
from controlplane.services.sites import (
    Placement,
    _record_operation,
    get_site,
    pre_promote_backups,
    prepare_site,
)

# (session, site) -> the site's content now (the provider's fingerprint of it).
FingerprintNow = Callable[[Session, Site], Fingerprint]


def _staging(session: Session, *, principal: Principal, tenant_id: str, name: str,
             action: Action) -> tuple[Site, Site]:  # fmt: skip
    """A staging site and its production parent (409 for a site that is not staging)."""
    site = get_site(session, principal=principal, tenant_id=tenant_id, name=name, action=action)
    if site.role != SiteRole.STAGING or site.parent_id is None:
        raise Conflict(f"site {name!r} is not a staging site: clone a site to make one")
    parent = session.get(Site, site.parent_id)
    if parent is None:
        raise Conflict(f"the production site of {name!r} is gone")
    return site, parent


def start_clone(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    site: str,
    data: CloneRequest,
    **where: Unpack[Placement],
) -> tuple[Site, Operation]:
    """Record a new staging site copied from `site` and the clone operation making it."""
    parent = get_site(
        session, principal=principal, tenant_id=tenant_id, name=site, action=Action.CHANGE_SITES
    )
    if data.basic_auth and where["provider"] == "gcp":  # the tenant image's Apache has no login yet
        raise BadRequest(
            "basic auth for staging sites is local-only for now: clone without basic_auth "
            "(the staging site asks search engines not to index it)"
        )
    if parent.role != SiteRole.PRODUCTION:
        raise Conflict(f"site {site!r} is a staging site; clone its production site instead")
    require_ready(parent, "a clone")
    create = SiteCreate(name=data.name, title=parent.title, admin_email=parent.admin_email)
    staging = prepare_site(session, principal=principal, tenant_id=tenant_id, data=create,
                           **where)  # fmt: skip
    staging.role = SiteRole.STAGING
    staging.parent_id = parent.id
    staging.admin_user = parent.admin_user
    session.add(staging)
    session.flush()
    backup = new_backup(parent, kind=BackupKind.PRE_CLONE, requested_by=principal.sub)
    session.add(backup)
    params: dict[str, Any] = {"parent": parent.id, "from_backup": backup.id,
                              "backup": backup.id, "basic_auth": data.basic_auth}  # fmt: skip
    op = _record_operation(
        session, kind=OperationKind.CLONE_SITE, site=staging, principal=principal, params=params
    )
    backup.operation_id = op.id
    staging.current_operation_id = op.id
    audit.record(
        session,
        principal=principal,
        action="site.clone",
        tenant_id=tenant_id,
        target=data.name,
        detail={"operation_id": op.id, "parent": site, "basic_auth": data.basic_auth},
    )
    session.commit()
    return staging, op


def drift_of(session: Session, staging: Site, parent: Site, now: FingerprintNow) -> Drift:
    """The parent's content now against the fingerprint recorded at the clone."""
    row = session.get(SiteFingerprint, staging.id)
    if row is None:
        raise Conflict(
            f"site {staging.name!r} has no fingerprint of its production site yet: wait for "
            "its clone to finish"
        )
    return compare(fingerprint_of(row), now(session, parent))


def drift_read(session: Session, staging: Site, parent: Site, drift: Drift) -> DriftRead:
    """The API view of a drift."""
    row = session.get(SiteFingerprint, staging.id)
    assert row is not None  # drift_of found it
    return DriftRead(
        site=staging.name,
        parent=parent.name,
        since=row.taken_at,
        changed=drift.any,
        tables=[
            TableDriftRead(
                table=t.table,
                rows_then=t.rows_then,
                rows_now=t.rows_now,
                changed=t.changed,
                summary=t.summary,
            )
            for t in drift.tables
        ],
        files=FileDriftRead(added=drift.added, changed=drift.changed, removed=drift.removed),
        summary=drift.summary,
    )


def get_drift(
    session: Session, *, principal: Principal, tenant_id: str, site: str, now: FingerprintNow
) -> DriftRead:
    """What changed on a staging site's production parent since the clone (or the last
    promotion)."""
    staging, parent = _staging(session, principal=principal, tenant_id=tenant_id, name=site,
                               action=Action.READ_SITES)  # fmt: skip
    return drift_read(session, staging, parent, drift_of(session, staging, parent, now))


def scope_of(data: PromoteRequest) -> CopyScope:
    """The copy scope a promotion request asks for (`tables` narrows the database)."""
    if data.scope == "files":
        if data.tables is not None:
            raise BadRequest("tables go with scope all or database, not files: leave one out")
        return CopyScope(tables=(), files=True)
    tables = tuple(data.tables) if data.tables is not None else None
    return CopyScope(tables=tables, files=data.scope == "all")


def start_promote(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    site: str,
    data: PromoteRequest,
    now: FingerprintNow,
) -> tuple[Site, Backup, Operation]:
    """Start putting a staging site's copy into its production parent (a pre-promote
    backup first); 409 with the drift when production changed where it would write."""
    staging, parent = _staging(session, principal=principal, tenant_id=tenant_id, name=site,
                               action=Action.RESTORE_SITES)  # fmt: skip
    if staging.status != "ready" or staging.current_operation_id is not None:
        raise Conflict(f"site {site!r} is {staging.status} or busy; a promotion needs it ready")
    scope = scope_of(data)
    drift = drift_of(session, staging, parent, now)
    row = session.get(SiteFingerprint, staging.id)
    known = set(row.tables if row is not None else {}) | {t.table for t in drift.tables}
    missing = sorted(set(scope.tables or ()) - known)
    if missing:
        raise BadRequest(f"no table {', '.join(missing)} in {site!r}; name tables it has")
    conflicts = drift.conflicts(scope)
    if conflicts and not data.force:
        raise DriftConflict(
            f"{parent.name!r} changed where this promotion would write "
            f"({', '.join(conflicts)}): narrow the scope, or force it to overwrite",
            drift_read(session, staging, parent, drift).model_dump(mode="json"),
        )

    def params(_claimed: Site, op: Operation, pre: Backup) -> dict[str, Any]:
        copy = new_backup(staging, kind=BackupKind.PRE_PROMOTE, requested_by=principal.sub)
        copy.operation_id = op.id
        session.add(copy)
        return {"staging": staging.id, "backup": copy.id, "pre_backup": pre.id,
                "scope": scope_params(scope), "force": data.force,
                "conflicts": conflicts}  # fmt: skip

    target, pre, op = backups_service.start_with_backup(
        session, principal=principal, tenant_id=tenant_id, site=parent.name,
        kind=OperationKind.PROMOTE_SITE, backup_kind=BackupKind.PRE_PROMOTE, params=params,
        action=Action.RESTORE_SITES, new_status="promoting",
    )  # fmt: skip
    return target, pre, op


def start_rollback(
    session: Session, *, principal: Principal, tenant_id: str, site: str
) -> tuple[Site, Backup, Operation]:
    """Start restoring a production site's newest pre-promote backup."""
    target = get_site(
        session, principal=principal, tenant_id=tenant_id, name=site, action=Action.RESTORE_SITES
    )
    if target.role != SiteRole.PRODUCTION:
        raise Conflict(f"site {site!r} is a staging site: roll back its production site")
    newest = session.scalar(pre_promote_backups([target.id]))
    if newest is None:
        raise Conflict(f"nothing to roll back: site {site!r} has no pre-promote backup")
    claimed, backup, _pre, op = backups_service.start_restore(
        session, principal=principal, tenant_id=tenant_id, site=site, backup_id=newest.id
    )
    return claimed, backup, op


def reveal_basic_auth(
    session: Session, *, principal: Principal, keyring: Keyring, tenant_id: str, site: str
) -> BasicAuthCredentials:
    """A staging site's HTTP login; audited, never logged."""
    target = get_site(
        session, principal=principal, tenant_id=tenant_id, name=site, action=Action.REVEAL_PASSWORD
    )
    stored = DatabaseVault(session, keyring, target.id).get(BASIC_AUTH)
    if stored is None:
        raise Conflict(f"site {site!r} has no HTTP login (clone with basic_auth to get one)")
    audit.record(
        session,
        principal=principal,
        action="site.reveal_basic_auth",
        tenant_id=tenant_id,
        target=site,
    )
    session.commit()
    return BasicAuthCredentials(username=stored[0], password=stored[1])
