"""Sites: create and delete (as durable operations), list, read, reveal the admin login."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.orm import Session, object_session
from sqlalchemy.sql.elements import BindParameter

from controlplane import audit
from controlplane.cells import check_site_room
from controlplane.credentials import DatabaseVault
from controlplane.crypto import Keyring
from controlplane.dnscheck import new_token
from controlplane.engine.backup_steps import new_backup
from controlplane.engine.bulk_steps import adopt
from controlplane.errors import BadRequest, Conflict, Invalid
from controlplane.kernel import names
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import BackupKind, BackupStatus, OperationKind
from controlplane.models import (
    DOMAIN_PENDING,
    DOMAIN_VERIFIED,
    Backup,
    Domain,
    Operation,
    Site,
    SiteCronRun,
    new_id,
)
from controlplane.packages.listing import updates_available
from controlplane.permissions import Action, NotVisible, authorize, site_actions
from controlplane.schemas import AdminCredentials, CronRunRead, SiteCreate, SiteRead
from controlplane.services import bundles
from controlplane.services.operations import record_operation
from controlplane.services.tenants import get_visible_tenant

VERSION = re.compile(r"\d+\.\d+(\.\d+)?([-.][0-9A-Za-z.-]+)?")


def wordpress_version(resources: dict[str, Any] | None) -> str | None:
    """The WordPress version the site's wordpress step read from it (not assumed)."""
    wordpress = (resources or {}).get("wordpress")
    version = wordpress.get("version") if isinstance(wordpress, dict) else None
    return version if isinstance(version, str) and VERSION.fullmatch(version) else None


def parent_name(site: Site) -> str | None:
    """The name of the production site a staging site copies (None for any other)."""
    session = object_session(site)
    if site.parent_id is None or session is None:
        return None
    return session.scalar(select(Site.name).where(Site.id == site.parent_id))


# What a rollback restores: a succeeded pre-promote backup.
ROLLBACK_POINT = (Backup.kind == BackupKind.PRE_PROMOTE, Backup.status == BackupStatus.SUCCEEDED)


def pre_promote_backups(site_ids: list[str]) -> Select[Backup]:
    """The succeeded pre-promote backups of these sites (what a rollback restores), newest
    first."""
    return (
        select(Backup)
        .where(Backup.site_id.in_(site_ids), *ROLLBACK_POINT)
        .order_by(Backup.created_at.desc(), Backup.id.desc())
    )


def promoted_sites(session: Session, site_ids: list[str]) -> set[str]:
    """Which of these sites have a pre-promote state to roll back to."""
    if not site_ids:
        return set()
    query = pre_promote_backups(site_ids).with_only_columns(Backup.site_id).distinct()
    return set(session.scalars(query.order_by(None)))


def to_read(site: Site, principal: Principal) -> SiteRead:
    """The API view of a site, with what `principal` may do to it."""
    session = object_session(site)
    return SiteRead(
        allowed_actions=site_actions(
            principal,
            site.tenant_id,
            site.status,
            busy=site.current_operation_id is not None,
            role=site.role,
            promoted=session is not None and bool(promoted_sites(session, [site.id])),
        ),
        role=site.role,
        parent=parent_name(site),
        wordpress_version=wordpress_version(site.resources),
        updates_available=updates_available(site.resources),
        id=site.id,
        tenant_id=site.tenant_id,
        name=site.name,
        title=site.title,
        status=site.status,
        preview_url=site.preview_url,
        domains=site.verified_domains,
        pending_domains=sorted(d.domain for d in site.domains if d.status != DOMAIN_VERIFIED),
        admin_email=site.admin_email,
        admin_user=site.admin_user,
        current_operation_id=site.current_operation_id,
        created_at=site.created_at,
        updated_at=site.updated_at,
        cron=CronRunRead.model_validate(site.cron_run) if site.cron_run else None,
    )


SITE_READ_COLUMNS = (
    Site.id, Site.tenant_id, Site.name, Site.title, Site.status, Site.preview_url,
    Site.admin_email, Site.admin_user, Site.current_operation_id, Site.created_at,
    Site.updated_at, Site.role,
)  # fmt: skip


# The listing's statements, built once (the list is the API's hottest path: building a
# statement costs more than running it on SQLite); `:tenant` is bound per call.
_TENANT: BindParameter[str] = bindparam("tenant")
_LIST_SITES = (
    select(*SITE_READ_COLUMNS, Site.resources, Site.parent_id)
    .where(Site.tenant_id == _TENANT)
    .order_by(Site.name)
)
_LIST_DOMAINS = (
    select(Domain.site_id, Domain.domain, Domain.status)
    .join(Site, Site.id == Domain.site_id)
    .where(Site.tenant_id == _TENANT)
    .order_by(Domain.domain)
)
_LIST_CRON_RUNS = (
    select(
        SiteCronRun.site_id, *(SiteCronRun.__table__.c[name] for name in CronRunRead.model_fields)
    )
    .join(Site, Site.id == SiteCronRun.site_id)
    .where(Site.tenant_id == _TENANT)
)
_LIST_PROMOTED = (
    select(Backup.site_id)
    .join(Site, Site.id == Backup.site_id)
    .where(Site.tenant_id == _TENANT, *ROLLBACK_POINT)
    .distinct()
)


def list_sites(session: Session, *, principal: Principal, tenant_id: str) -> list[SiteRead]:
    """A tenant's sites, by name (read as plain rows: the list is the API's hottest path)."""
    authorize(principal, Action.READ_SITES, tenant_id)
    bound = {"tenant": tenant_id}
    # Core rows through the session's connection: the ORM's per-statement work is most of a
    # listing's cost, and nothing here needs objects.
    connection = session.connection()
    rows = connection.execute(_LIST_SITES, bound).all()
    if not rows:  # an empty list, or no such tenant (404)
        get_visible_tenant(
            session, principal=principal, tenant_id=tenant_id, action=Action.READ_SITES
        )
        return []
    domains: dict[tuple[str, bool], list[str]] = {}
    for site_id, domain, status in connection.execute(_LIST_DOMAINS, bound):
        domains.setdefault((site_id, status == DOMAIN_VERIFIED), []).append(domain)
    crons = {
        run.site_id: CronRunRead.model_validate(run)
        for run in connection.execute(_LIST_CRON_RUNS, bound)
    }
    names_by_id = {row.id: row.name for row in rows}
    promoted = set(connection.execute(_LIST_PROMOTED, bound).scalars())
    return [
        SiteRead(
            **{k: v for k, v in row._mapping.items() if k not in ("resources", "parent_id")},
            parent=names_by_id.get(row.parent_id) if row.parent_id else None,
            domains=domains.get((row.id, True), []),
            pending_domains=domains.get((row.id, False), []),
            wordpress_version=wordpress_version(row.resources),
            updates_available=updates_available(row.resources),
            cron=crons.get(row.id),
            allowed_actions=site_actions(
                principal,
                tenant_id,
                row.status,
                busy=row.current_operation_id is not None,
                role=row.role,
                promoted=row.id in promoted,
            ),
        )
        for row in rows
    ]


def get_site(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    name: str,
    action: Action = Action.READ_SITES,
) -> Site:
    """One site of a tenant the caller may act on; 404 if absent or not visible."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=action)
    site = session.scalar(select(Site).where(Site.tenant_id == tenant_id, Site.name == name))
    if site is None:
        raise NotVisible(f"site {name!r} not found in tenant {tenant_id!r}")
    return site


class Placement(TypedDict, total=False):
    """Where a new site goes: its provider, the platform's domain (a custom domain may not be
    under it), and the cell's cap on sites (None: no cap)."""

    provider: Required[str]
    platform_domain: str | None
    max_sites: int | None


def create_site(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    data: SiteCreate,
    **where: Unpack[Placement],
) -> tuple[Site, Operation]:
    """Record a new site and its create operation (the engine runs it after commit); with
    `from_backup`, the site is made from that backup (another site's, or a deleted one's)."""
    source = (
        source_backup(session, principal=principal, tenant_id=tenant_id,
                      site=data.from_backup.site, backup_id=data.from_backup.backup)
        if data.from_backup is not None
        else None
    )  # fmt: skip
    site = prepare_site(session, principal=principal, tenant_id=tenant_id, data=data, **where)
    params: dict[str, Any] = {}
    if source is not None:
        params = {"from_backup": source.id, "backup": source.id}
    elif (bundle := bundles.resolved_for_create(session, tenant_id)) is not None:
        # A site made from a backup carries its own plugins; a new one gets the bundle.
        params = {"bundle": bundle}
    if source is not None and data.title is None:
        site.title = source.site_title or site.title  # the restored database has that title
    session.add(site)
    session.flush()
    op = _record_operation(
        session, kind=OperationKind.CREATE_SITE, site=site, principal=principal, params=params
    )
    site.current_operation_id = op.id
    detail: dict[str, Any] = {"operation_id": op.id, "domain": data.domain}
    if source is not None:
        detail["from_backup"] = {"site": source.site_name, "backup": source.id}
    if "bundle" in params:
        detail["bundle"] = params["bundle"]
    audit.record(
        session,
        principal=principal,
        action="site.create",
        tenant_id=tenant_id,
        target=data.name,
        detail=detail,
    )
    session.commit()
    return site, op


def source_backup(
    session: Session, *, principal: Principal, tenant_id: str, site: str, backup_id: str
) -> Backup:
    """The backup a new site is made from: the tenant's own, of the named (live or deleted)
    site, and written (404 for anything else of the tenant's or another's, 409 if unusable)."""
    get_visible_tenant(
        session, principal=principal, tenant_id=tenant_id, action=Action.RESTORE_SITES
    )
    backup = session.scalar(
        select(Backup).where(
            Backup.id == backup_id, Backup.tenant_id == tenant_id, Backup.site_name == site
        )
    )
    if backup is None or backup.status == BackupStatus.FORGOTTEN:
        raise NotVisible(f"backup {backup_id!r} of site {site!r} not found in tenant {tenant_id!r}")
    if backup.status != BackupStatus.SUCCEEDED:
        raise Conflict(
            f"backup {backup_id!r} is {backup.status}; only a succeeded backup can be restored"
        )
    return backup


def prepare_site(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    data: SiteCreate,
    **where: Unpack[Placement],
) -> Site:
    """Check a new site (permission, names, conflicts, its cell's room) and build it,
    unsaved: a create records it, a dry run only describes it."""
    tenant = get_visible_tenant(
        session, principal=principal, tenant_id=tenant_id, action=Action.CHANGE_SITES
    )
    if data.domain:
        try:
            names.check_domain(data.domain, where.get("platform_domain"))
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
    admin_email = data.admin_email or principal.email
    if not admin_email:
        raise BadRequest("admin_email is required: your token carries no e-mail to use instead")
    existing = session.scalar(
        select(Site).where(Site.tenant_id == tenant_id, Site.name == data.name)
    )
    if existing is not None:
        raise Conflict(
            f"site {data.name!r} already exists in tenant {tenant_id!r}; choose another name"
        )
    check_site_room(session, tenant.cell, where.get("max_sites"))
    site = Site(
        tenant_id=tenant_id,
        name=data.name,
        title=data.title or data.name.replace("-", " ").title(),
        admin_email=admin_email.lower(),
        admin_user="admin",
        status="provisioning",
        provider=where["provider"],
        cell=tenant.cell,  # a tenant's sites live in its cell
        resources={},
    )
    if data.domain:
        # A pending claim: nothing is served, and no other site's claim is looked at.
        site.domains.append(Domain(domain=data.domain, status=DOMAIN_PENDING, token=new_token()))
    site.id = new_id()
    return site


def _record_operation(
    session: Session,
    *,
    kind: OperationKind,
    site: Site,
    principal: Principal,
    params: dict[str, Any] | None = None,
) -> Operation:
    """A new operation on `site`, flushed so it has its id."""
    return record_operation(
        session, kind=kind, tenant_id=site.tenant_id, principal=principal, site=site,
        params=params,
    )  # fmt: skip


# Called with the site and its new (flushed) operation before the claim: adds the rows the
# operation works with (its backups) to the same transaction and sets their ids as params.
Prepare = Callable[[Site, Operation], None]


def start_change(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    name: str,
    kind: OperationKind,
    allowed_from: tuple[str, ...] | None = None,
    new_status: str | None = None,
    action: Action = Action.CHANGE_SITES,
    prepare: Prepare | None = None,
    parent_id: str | None = None,
) -> tuple[Site, Operation]:
    """Record an operation on an existing site and claim the site for it (409 if busy);
    with `parent_id`, as a child of that bulk operation (recorded in it, same commit)."""
    site = get_site(session, principal=principal, tenant_id=tenant_id, name=name, action=action)
    if allowed_from is not None and site.status not in allowed_from:
        raise Conflict(
            f"site {name!r} is {site.status}; {kind.replace('_', ' ')} needs it to be "
            f"{' or '.join(allowed_from)}"
        )
    op = _record_operation(session, kind=kind, site=site, principal=principal)
    if parent_id is not None:
        adopt(session, parent_id, op)
    if prepare is not None:
        prepare(site, op)
    values: dict[str, str] = {"current_operation_id": op.id}
    if new_status:
        values["status"] = new_status
    # A conditional update is the lock: only one change per site at a time, across processes.
    claimed = session.execute(  # type: ignore[attr-defined]
        update(Site)
        .where(Site.id == site.id, Site.current_operation_id.is_(None))
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        site_id = site.id
        session.rollback()
        busy_with = session.execute(
            select(Site.current_operation_id).where(Site.id == site_id)
        ).first()
        if busy_with is None:  # deleted by the change that held it
            raise NotVisible(f"site {name!r} not found in tenant {tenant_id!r}")
        raise Conflict(
            f"site {name!r} is busy with operation {busy_with[0]}; wait for it to finish"
        )
    audit.record(
        session,
        principal=principal,
        action=f"site.{kind.removesuffix('_site')}",
        tenant_id=tenant_id,
        target=name,
        detail={"operation_id": op.id, **({"parent": parent_id} if parent_id else {})},
    )
    session.commit()
    session.refresh(site)
    return site, op


def delete_site(
    session: Session, *, principal: Principal, tenant_id: str, name: str
) -> tuple[Site, Operation]:
    """Start deleting a site (a backup first); 409 while another change runs on it, or
    while staging copies of it exist (deleted first: a promotion needs its parent)."""
    target = get_site(
        session, principal=principal, tenant_id=tenant_id, name=name, action=Action.CHANGE_SITES
    )
    children = sorted(session.scalars(select(Site.name).where(Site.parent_id == target.id)))
    if children:
        raise Conflict(
            f"site {name!r} has staging copies ({', '.join(children)}); delete them first"
        )

    def pre_delete_backup(site: Site, op: Operation) -> None:
        backup = new_backup(site, kind=BackupKind.PRE_DELETE, requested_by=principal.sub)
        backup.operation_id = op.id
        session.add(backup)
        op.params = {**op.params, "backup": backup.id}

    return start_change(
        session,
        principal=principal,
        tenant_id=tenant_id,
        name=name,
        kind=OperationKind.DELETE_SITE,
        new_status="deleting",
        prepare=pre_delete_backup,
    )


def set_serving(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    name: str,
    serving: bool,
    parent_id: str | None = None,
) -> tuple[Site, Operation]:
    """Start (serve again) or stop (answer 503, delete nothing) a site."""
    return start_change(
        session,
        principal=principal,
        tenant_id=tenant_id,
        name=name,
        kind=OperationKind.START_SITE if serving else OperationKind.STOP_SITE,
        allowed_from=("ready", "stopped"),
        parent_id=parent_id,
    )


def reveal_admin_credentials(
    session: Session, *, principal: Principal, keyring: Keyring, tenant_id: str, name: str
) -> AdminCredentials:
    """The WordPress admin login of a site; audited, never logged."""
    site = get_site(
        session, principal=principal, tenant_id=tenant_id, name=name, action=Action.REVEAL_PASSWORD
    )
    stored = DatabaseVault(session, keyring, site.id).get("wordpress_admin")
    if stored is None:
        raise Conflict(
            f"site {name!r} has no admin login yet (status {site.status}); retry when ready"
        )
    audit.record(
        session,
        principal=principal,
        action="site.reveal_admin_password",
        tenant_id=tenant_id,
        target=name,
    )
    session.commit()
    login_url = f"{site.preview_url.rstrip('/')}/wp-login.php" if site.preview_url else None
    return AdminCredentials(username=stored[0], password=stored[1], login_url=login_url)
