"""/v1/tenants/{tenant_id}/sites"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep, SiteCall, SiteCallDep
from controlplane.cells import site_cap
from controlplane.engine.catalogue import CATALOGUE
from controlplane.engine.provider import SiteContext
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import OperationKind
from controlplane.models import Operation, Site
from controlplane.permissions import Action
from controlplane.platform import Platform
from controlplane.schemas import (
    AdminCredentials,
    AdminLogin,
    OperationRead,
    SiteAccepted,
    SiteCreate,
    SitePlan,
    SiteRead,
)
from controlplane.services import admin_login as admin_login_service
from controlplane.services import operations as operations_service
from controlplane.services import sites as service
from controlplane.services.tenants import get_visible_tenant

router = APIRouter(prefix="/v1/tenants/{tenant_id}/sites", tags=["sites"])


class NoCredentials:
    """A dry run's vault: a plan names secrets but never makes or reads one."""

    def get_or_create(self, kind: str, username: str) -> tuple[str, str]:
        """Refused: planning must not generate secrets."""
        raise RuntimeError("a dry run does not create credentials")

    def get(self, kind: str) -> tuple[str, str] | None:
        """Nothing is stored."""
        return None


def _started(platform: Platform, site: Site, op: Operation, principal: Principal) -> SiteAccepted:
    """Hand the operation to the engine; answer with the site and the operation."""
    platform.engine.submit(op.id)
    return SiteAccepted(
        site=service.to_read(site, principal), operation=operations_service.to_read(op)
    )


@router.post(
    "",
    status_code=202,
    response_model=SiteAccepted,
    responses={200: {"model": SitePlan, "description": "dry_run: what a create would do"}},
)
def create_site(
    tenant_id: str,
    data: SiteCreate,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
    dry_run: Annotated[
        bool, Query(description="Check and describe the create without doing it")
    ] = False,
) -> SiteAccepted | JSONResponse:
    """Start creating a site; follow the operation for progress."""
    if dry_run:
        if data.from_backup is not None:  # refused now as the create would refuse it
            service.source_backup(
                session, principal=principal, tenant_id=tenant_id,
                site=data.from_backup.site, backup_id=data.from_backup.backup,
            )  # fmt: skip
        site = service.prepare_site(
            session, principal=principal, tenant_id=tenant_id, data=data,
            provider=platform.provider.name, platform_domain=platform.settings.platform_domain,
            max_sites=site_cap(platform.settings),
        )  # fmt: skip
        ctx = SiteContext(
            tenant_id=tenant_id, site_id=site.id, site_name=site.name, title=site.title,
            admin_email=site.admin_email, admin_user=site.admin_user,
            domains=site.verified_domains, credentials=NoCredentials(),
        )  # fmt: skip
        # Claimed, not yet proven: the plan shows what their proof will add.
        ctx.resources["claimed_domains"] = sorted(d.domain for d in site.domains)
        session.rollback()
        plan = getattr(platform.provider, "plan", None)
        calls = (
            plan(ctx)
            if plan
            else [
                {"step": s, "api": "ensure"}
                for s in CATALOGUE[OperationKind.CREATE_SITE].steps_for(
                    {"from_backup": data.from_backup.backup} if data.from_backup else {}
                )
            ]
        )
        body = SitePlan(provider=platform.provider.name, site=site.name, calls=calls)
        return JSONResponse(body.model_dump(mode="json"), status_code=200)
    site, op = service.create_site(
        session,
        principal=principal,
        tenant_id=tenant_id,
        data=data,
        provider=platform.provider.name,
        platform_domain=platform.settings.platform_domain,
        max_sites=site_cap(platform.settings),
    )
    platform.engine.announce(site.id)
    return _started(platform, site, op, principal)


@router.get("", response_model=list[SiteRead])
def list_sites(tenant_id: str, session: SessionDep, principal: CurrentPrincipal) -> list[SiteRead]:
    """A tenant's sites."""
    return service.list_sites(session, principal=principal, tenant_id=tenant_id)


@router.get("/{site}", response_model=SiteRead)
def get_site(call: SiteCallDep) -> SiteRead:
    """One site."""
    record = service.get_site(
        call.session, principal=call.principal, tenant_id=call.tenant_id, name=call.site
    )
    return service.to_read(record, call.principal)


@router.delete("/{site}", status_code=202, response_model=SiteAccepted)
def delete_site(call: SiteCallDep) -> SiteAccepted:
    """Start deleting a site (a backup is taken first)."""
    record, op = service.delete_site(
        call.session, principal=call.principal, tenant_id=call.tenant_id, name=call.site
    )
    return _started(call.platform, record, op, call.principal)


@router.post("/{site}/stop", status_code=202, response_model=SiteAccepted)
def stop_site(call: SiteCallDep) -> SiteAccepted:
    """Take a site offline (it answers 503); nothing is deleted."""
    return _set_serving(call, serving=False)


@router.post("/{site}/start", status_code=202, response_model=SiteAccepted)
def start_site(call: SiteCallDep) -> SiteAccepted:
    """Serve a stopped site again."""
    return _set_serving(call, serving=True)


def _set_serving(call: SiteCall, *, serving: bool) -> SiteAccepted:
    record, op = service.set_serving(
        call.session, principal=call.principal, tenant_id=call.tenant_id, name=call.site,
        serving=serving,
    )  # fmt: skip
    return _started(call.platform, record, op, call.principal)


@router.get("/{site}/operations", response_model=list[OperationRead])
def site_operations(
    call: SiteCallDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[OperationRead]:
    """A site's deployment history, newest first (also after the site is deleted)."""
    get_visible_tenant(
        call.session, principal=call.principal, tenant_id=call.tenant_id, action=Action.READ_SITES
    )
    ops = operations_service.list_operations(
        call.session, tenant_id=call.tenant_id, site_name=call.site, limit=limit
    )
    return [operations_service.to_read(o) for o in ops]


@router.post("/{site}/admin-credentials/reveal", response_model=AdminCredentials)
def reveal_admin_credentials(call: SiteCallDep) -> AdminCredentials:
    """The WordPress admin login (audited; for the widget's reveal action, never the model)."""
    return service.reveal_admin_credentials(
        call.session, principal=call.principal, keyring=call.platform.keyring,
        tenant_id=call.tenant_id, name=call.site,
    )  # fmt: skip


@router.post("/{site}/admin-login", response_model=AdminLogin)
def admin_login(call: SiteCallDep) -> AdminLogin:
    """A one-click wp-admin link, valid 60 s and usable once (audited; never for the model)."""
    return admin_login_service.create_admin_login(
        call.session, principal=call.principal, keyring=call.platform.keyring,
        tenant_id=call.tenant_id, name=call.site,
        ttl_seconds=call.platform.settings.admin_login_ttl_seconds,
    )  # fmt: skip
