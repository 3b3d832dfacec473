"""A site's packages and their updates: the listing (read from the site, with the
catalogue's newer versions), the plan of an update, and the update_site operation."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from controlplane.engine.backup_steps import new_backup
from controlplane.engine.packages import CORE_SLUG, InstalledPackage
from controlplane.errors import BadRequest, Conflict
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import BackupKind, OperationKind, PackageKind
from controlplane.models import CataloguePackage, Operation, Site
from controlplane.packages import catalogue
from controlplane.packages.listing import cached, site_packages
from controlplane.packages.versions import compare
from controlplane.permissions import Action
from controlplane.schemas import PackageChange, PackageTarget, SitePackagesRead, UpdateRequest
from controlplane.services.sites import get_site, start_change


def record_listing(
    session: Session, site: Site, installed: list[InstalledPackage]
) -> SitePackagesRead:
    """The site's listing against the catalogue, kept on the site row (committed)."""
    listing = site_packages(installed, catalogue.versions(session))
    site.resources = {**(site.resources or {}), "packages": cached(listing)}
    session.commit()
    return listing


def cached_installed(site: Site) -> list[InstalledPackage] | None:
    """What the site's last listing found installed (None: never listed)."""
    record = (site.resources or {}).get("packages")
    rows = record.get("installed") if isinstance(record, dict) else None
    if not isinstance(rows, list):
        return None
    return [
        InstalledPackage(PackageKind(kind), slug, version, bool(active), name)
        for kind, slug, version, active, name in rows
    ]


def _targets(request: UpdateRequest) -> list[tuple[PackageKind, PackageTarget]]:
    """The request's named packages; 400 for a package named twice."""
    named = [
        *((PackageKind.PLUGIN, t) for t in request.plugins or []),
        *((PackageKind.THEME, t) for t in request.themes or []),
    ]
    if request.core is not None:
        named.append((PackageKind.CORE, PackageTarget(slug=CORE_SLUG, version=request.core)))
    seen: set[tuple[str, str]] = set()
    for kind, target in named:
        if (kind, target.slug) in seen:
            raise BadRequest(f"{kind} {target.slug!r} is named twice: name each package once")
        seen.add((kind, target.slug))
    return named


def plan_update(
    session: Session, installed: list[InstalledPackage], request: UpdateRequest
) -> list[tuple[PackageChange, CataloguePackage]]:
    """What the update changes: the named packages at their versions, or (none named) every
    installed package the catalogue has a newer version of. 400 for a slug or version the
    catalogue lacks, 409 when nothing would change."""
    have = {(item.kind, item.slug): item for item in installed}
    planned: list[tuple[PackageChange, CataloguePackage]] = []
    named = _targets(request)
    if named:
        for kind, target in named:
            current = have.get((kind, target.slug))
            if (
                current is not None
                and target.version != catalogue.LATEST
                and (compare(current.version, target.version) == 0)
            ):
                continue  # already there: nothing to fetch
            entry = catalogue.resolve(session, kind, target.slug, target.version)
            if current is None and kind is PackageKind.CORE:
                raise Conflict("the site's WordPress version is unknown: read its packages first")
            if current is not None and compare(current.version, entry.version) == 0:
                continue
            planned.append((_change(kind, target.slug, current, entry), entry))
    else:
        held = catalogue.versions(session)
        for item in installed:
            versions = held.get((item.kind, item.slug))
            newest = versions[-1] if versions else None
            if newest is not None and compare(newest, item.version) > 0:
                entry = catalogue.resolve(session, item.kind, item.slug, newest)
                planned.append((_change(item.kind, item.slug, item, entry), entry))
    if not planned:
        raise Conflict("nothing to update: the site already has these versions")
    return planned


def _change(
    kind: PackageKind, slug: str, current: InstalledPackage | None, entry: CataloguePackage
) -> PackageChange:
    return PackageChange(
        kind=kind, slug=slug, from_version=current.version if current else None,
        to_version=entry.version,
    )  # fmt: skip


def _installed_for(site: Site, installed: list[InstalledPackage] | None) -> list[InstalledPackage]:
    found = installed if installed is not None else cached_installed(site)
    if found is None:
        raise Conflict(
            f"the packages of site {site.name!r} were never read: list them first "
            "(GET .../packages)"
        )
    return found


def dry_run(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    site: str,
    request: UpdateRequest,
    installed: list[InstalledPackage] | None = None,
) -> list[PackageChange]:
    """What an update would change; nothing is recorded."""
    target = get_site(
        session, principal=principal, tenant_id=tenant_id, name=site, action=Action.CHANGE_SITES
    )
    return [change for change, _entry in plan_update(session, _installed_for(target, installed),
                                                     request)]  # fmt: skip


def start_update(
    session: Session,
    *,
    principal: Principal,
    tenant_id: str,
    site: str,
    request: UpdateRequest,
    parent_id: str | None = None,
    installed: list[InstalledPackage] | None = None,
) -> tuple[Operation, list[PackageChange]]:
    """Record an update_site operation (a pre-update backup first) and claim the site; 400
    for what the catalogue lacks, 409 when nothing changes or the site is busy. `installed`:
    what the site has now (else its last listing's); `parent_id`: a bulk operation's id."""
    target = get_site(
        session, principal=principal, tenant_id=tenant_id, name=site, action=Action.CHANGE_SITES
    )
    planned = plan_update(session, _installed_for(target, installed), request)
    recorded: list[dict[str, Any]] = [
        {**change.model_dump(mode="json"), "sha256": entry.sha256,
         "size_bytes": entry.size_bytes, "location": entry.location}
        for change, entry in planned
    ]  # fmt: skip

    def record(claimed: Site, op: Operation) -> None:
        pre = new_backup(claimed, kind=BackupKind.PRE_UPDATE, requested_by=principal.sub)
        pre.operation_id = op.id
        session.add(pre)
        op.params = {**op.params, "pre_backup": pre.id, "changes": recorded}

    _site, op = start_change(
        session,
        principal=principal,
        tenant_id=tenant_id,
        name=site,
        kind=OperationKind.UPDATE_SITE,
        allowed_from=("ready",),
        action=Action.CHANGE_SITES,
        prepare=record,
        parent_id=parent_id,  # recorded in the bulk's children in the same commit
    )
    return op, [change for change, _entry in planned]
