"""Bundles: the plugins and themes every new site of a tenant gets, installed and activated by
its create. A tenant without a bundle of its own inherits the platform default."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from controlplane import audit
from controlplane.engine.bundle_steps import KINDS
from controlplane.errors import BadRequest
from controlplane.kernel.identity import Principal
from controlplane.models import PLATFORM_BUNDLE, Bundle, utcnow
from controlplane.packages import catalogue
from controlplane.permissions import Action, authorize
from controlplane.schemas import BundleRead, BundleWrite, PackageTarget
from controlplane.services.tenants import get_visible_tenant


def _read(bundle: Bundle | None, *, tenant_id: str | None, inherited: bool) -> BundleRead:
    """The API view of a stored bundle (an empty one when none is stored)."""
    if bundle is None:
        return BundleRead(tenant_id=tenant_id, plugins=[], themes=[], inherited=inherited)
    return BundleRead(
        tenant_id=tenant_id,
        plugins=[PackageTarget.model_validate(p) for p in bundle.plugins],
        themes=[PackageTarget.model_validate(t) for t in bundle.themes],
        inherited=inherited,
        updated_by=bundle.updated_by,
        updated_at=bundle.updated_at,
    )


def effective_bundle(session: Session, tenant_id: str) -> tuple[Bundle | None, bool]:
    """The bundle new sites of the tenant get, and whether it is the inherited default."""
    own = session.get(Bundle, tenant_id)
    if own is not None:
        return own, False
    return session.get(Bundle, PLATFORM_BUNDLE), True


def get_bundle(session: Session, *, principal: Principal, tenant_id: str) -> BundleRead:
    """The tenant's bundle, or the platform default it inherits."""
    get_visible_tenant(session, principal=principal, tenant_id=tenant_id, action=Action.READ_SITES)
    bundle, inherited = effective_bundle(session, tenant_id)
    return _read(bundle, tenant_id=tenant_id, inherited=inherited)


def get_platform_bundle(session: Session, *, principal: Principal) -> BundleRead:
    """The platform default: what tenants without a bundle of their own get."""
    authorize(principal, Action.READ_SITES)
    return _read(session.get(Bundle, PLATFORM_BUNDLE), tenant_id=None, inherited=False)


def _check_in_catalogue(session: Session, data: BundleWrite) -> None:
    """400 naming the first slug or version of `data` the catalogue does not hold."""
    for field, kind in KINDS.items():
        for target in getattr(data, field):
            catalogue.resolve(session, kind, target.slug, target.version)


def _store(
    session: Session, *, principal: Principal, scope: str, tenant_id: str | None, data: BundleWrite
) -> Bundle:
    """Create or replace the bundle of `scope` (checked first: nothing changes on bad input)."""
    _check_in_catalogue(session, data)
    bundle = session.get(Bundle, scope)
    if bundle is None:
        bundle = Bundle(scope=scope, tenant_id=tenant_id, updated_by=principal.sub)
        session.add(bundle)
    bundle.plugins = [t.model_dump() for t in data.plugins]
    bundle.themes = [t.model_dump() for t in data.themes]
    bundle.updated_by = principal.sub
    bundle.updated_at = utcnow()
    audit.record(
        session,
        principal=principal,
        action="bundle.put",
        tenant_id=tenant_id,
        target=tenant_id or "platform",
        detail={"plugins": bundle.plugins, "themes": bundle.themes},
    )
    session.commit()
    return bundle


def put_bundle(
    session: Session, *, principal: Principal, tenant_id: str, data: BundleWrite
) -> BundleRead:
    """Set the tenant's own bundle (it stops inheriting the platform default)."""
    get_visible_tenant(
        session, principal=principal, tenant_id=tenant_id, action=Action.CHANGE_SITES
    )
    bundle = _store(session, principal=principal, scope=tenant_id, tenant_id=tenant_id, data=data)
    return _read(bundle, tenant_id=tenant_id, inherited=False)


def delete_bundle(session: Session, *, principal: Principal, tenant_id: str) -> BundleRead:
    """Drop the tenant's own bundle: it inherits the platform default again."""
    get_visible_tenant(
        session, principal=principal, tenant_id=tenant_id, action=Action.CHANGE_SITES
    )
    own = session.get(Bundle, tenant_id)
    if own is not None:
        session.delete(own)
        audit.record(
            session,
            principal=principal,
            action="bundle.delete",
            tenant_id=tenant_id,
            target=tenant_id,
        )
        session.commit()
    bundle, inherited = effective_bundle(session, tenant_id)
    return _read(bundle, tenant_id=tenant_id, inherited=inherited)


def put_platform_bundle(session: Session, *, principal: Principal, data: BundleWrite) -> BundleRead:
    """Set the platform default (admins only)."""
    authorize(principal, Action.MANAGE_TENANTS)
    bundle = _store(session, principal=principal, scope=PLATFORM_BUNDLE, tenant_id=None, data=data)
    return _read(bundle, tenant_id=None, inherited=False)


def resolved_for_create(session: Session, tenant_id: str) -> dict[str, Any] | None:
    """The tenant's effective bundle with "latest" resolved to the catalogue's versions now,
    for a create's params (None when it is empty); 400 when the catalogue lost one of them."""
    bundle, _ = effective_bundle(session, tenant_id)
    if bundle is None or not (bundle.plugins or bundle.themes):
        return None
    resolved: dict[str, Any] = {}
    for field, kind in KINDS.items():
        resolved[field] = []
        for target in getattr(bundle, field):
            try:
                entry = catalogue.resolve(session, kind, target["slug"], target["version"])
            except BadRequest as exc:
                raise BadRequest(f"the tenant's bundle cannot be installed: {exc}") from exc
            resolved[field].append({"slug": entry.slug, "version": entry.version})
    return resolved
