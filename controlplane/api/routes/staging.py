"""/v1/tenants/{tenant_id}/sites/{site}/clone, drift, promote, rollback and the staging
site's HTTP login."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep
from controlplane.cells import site_cap
from controlplane.engine.provider import Fingerprint
from controlplane.models import Site
from controlplane.platform import Platform
from controlplane.schemas import (
    BasicAuthCredentials,
    CloneAccepted,
    CloneRequest,
    DriftRead,
    PromoteAccepted,
    PromoteRequest,
    RollbackAccepted,
)
from controlplane.services import backups as backups_service
from controlplane.services import operations as operations_service
from controlplane.services import sites as sites_service
from controlplane.services import staging as service
from controlplane.services.staging import FingerprintNow

router = APIRouter(tags=["staging"])
SITE = "/v1/tenants/{tenant_id}/sites/{site}"


def _fingerprints(platform: Platform) -> FingerprintNow:
    """The provider's fingerprint of a site's live content (read context: no secrets)."""

    def now(session: Session, site: Site) -> Fingerprint:
        return platform.provider.backups.fingerprint(platform.engine.read_context(session, site))

    return now


@router.post(f"{SITE}/clone", status_code=202, response_model=CloneAccepted)
def clone_site(
    tenant_id: str,
    site: str,
    data: CloneRequest,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> CloneAccepted:
    """Make a staging copy of a site (a new site, URLs rewritten, not indexed)."""
    staging, op = service.start_clone(
        session, principal=principal, tenant_id=tenant_id, site=site, data=data,
        provider=platform.provider.name, platform_domain=platform.settings.platform_domain,
        max_sites=site_cap(platform.settings),
    )  # fmt: skip
    platform.engine.announce(staging.id)
    platform.engine.submit(op.id)
    return CloneAccepted(
        site=sites_service.to_read(staging, principal), operation=operations_service.to_read(op)
    )


@router.get(f"{SITE}/drift", response_model=DriftRead)
def get_drift(
    tenant_id: str,
    site: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> DriftRead:
    """What changed on the staging site's production parent since the clone."""
    return service.get_drift(
        session, principal=principal, tenant_id=tenant_id, site=site, now=_fingerprints(platform)
    )


@router.post(f"{SITE}/promote", status_code=202, response_model=PromoteAccepted)
def promote_site(
    tenant_id: str,
    site: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
    data: PromoteRequest | None = None,
) -> PromoteAccepted:
    """Put the staging copy into its production site (a backup of production first); 409
    with the drift when production changed where it would write."""
    _target, pre, op = service.start_promote(
        session, principal=principal, tenant_id=tenant_id, site=site,
        data=data or PromoteRequest(), now=_fingerprints(platform),
    )  # fmt: skip
    platform.engine.submit(op.id)
    return PromoteAccepted(
        operation=operations_service.to_read(op),
        pre_promote_backup=backups_service.to_read(pre, platform.settings),
    )


@router.post(f"{SITE}/rollback", status_code=202, response_model=RollbackAccepted)
def rollback_site(
    tenant_id: str,
    site: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> RollbackAccepted:
    """Put a production site back as it was before its last promotion."""
    _target, backup, op = service.start_rollback(
        session, principal=principal, tenant_id=tenant_id, site=site
    )
    platform.engine.submit(op.id)
    return RollbackAccepted(
        operation=operations_service.to_read(op),
        backup=backups_service.to_read(backup, platform.settings),
    )


@router.post(f"{SITE}/basic-auth/reveal", response_model=BasicAuthCredentials)
def reveal_basic_auth(
    tenant_id: str,
    site: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> BasicAuthCredentials:
    """The HTTP login of a staging site (audited)."""
    return service.reveal_basic_auth(
        session, principal=principal, keyring=platform.keyring, tenant_id=tenant_id, site=site
    )
