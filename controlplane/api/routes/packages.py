"""The platform catalogue (/v1/catalogue), a site's packages and its updates."""

from __future__ import annotations

import functools
import secrets
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep
from controlplane.engine.packages import InstalledPackage
from controlplane.errors import ApplyFailed, BadRequest, Conflict, Invalid, TooLarge
from controlplane.imports import uploads
from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import PackageKind
from controlplane.models import Site
from controlplane.packages import catalogue
from controlplane.packages.archives import ArchiveRefused, ArchiveTooLarge
from controlplane.packages.store import catalogue_store
from controlplane.permissions import Action, authorize
from controlplane.platform import Platform
from controlplane.schemas import (
    CatalogueEntryRead,
    SitePackagesRead,
    UpdateAccepted,
    UpdatePlan,
    UpdateRequest,
)
from controlplane.services import operations as operations_service
from controlplane.services import updates as service
from controlplane.services.sites import get_site

router = APIRouter(tags=["packages"])
SITE = "/v1/tenants/{tenant_id}/sites/{site}"


@router.get("/v1/catalogue", response_model=list[CatalogueEntryRead])
def list_catalogue(session: SessionDep, principal: CurrentPrincipal) -> list[CatalogueEntryRead]:
    """Every package version the platform holds, by kind and slug, oldest version first."""
    return [catalogue.to_read(e) for e in catalogue.list_entries(session, principal=principal)]


CATALOGUE_FORM = uploads.UploadForm(
    files={"file": "package.zip"}, texts=(),
    hint="send the package's zip as the form field file (curl -F file=@plugin.zip ...)",
    setting="AIPRESS_CATALOGUE_MAX_BYTES",
)  # fmt: skip
CATALOGUE_FORM_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary",
                                 "description": "the package's zip (one top directory)"},
                    },
                }
            }
        },
    }
}  # fmt: skip


def _incoming(home: Path) -> Path:
    """A fresh root-only directory one catalogue upload is written to."""
    root = home / "catalogue-incoming"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = root / f".upload-{secrets.token_hex(8)}"
    path.mkdir(mode=0o700)
    return path


@router.post(
    "/v1/catalogue",
    status_code=201,
    response_model=CatalogueEntryRead,
    openapi_extra=CATALOGUE_FORM_DOC,
)
async def add_to_catalogue(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
    kind: Annotated[PackageKind, Query(description="plugin, theme or core")] = PackageKind.PLUGIN,
) -> CatalogueEntryRead:
    """Check a zip and keep it (admins): 400 for a zip the platform would not install (what
    is wrong in `detail`), 413 for one too big, 409 for a version already there. Who asks is
    checked before a byte of the body is read; the body is streamed to disk, capped."""
    authorize(principal, Action.MANAGE_TENANTS)
    limit = platform.settings.catalogue_max_bytes
    incoming = _incoming(platform.settings.home)
    try:
        form = await uploads.receive(
            request.headers.get("content-type"), request.headers.get("content-length"),
            request.stream(), incoming, limit=limit, spec=CATALOGUE_FORM,
        )  # fmt: skip
        if "file" not in form.files:
            raise Invalid("the form has no field file: send the package's zip as file")
        add = functools.partial(
            catalogue.add_package, session, principal=principal,
            store=catalogue_store(platform.settings), kind=kind,
            zip_path=incoming / CATALOGUE_FORM.files["file"], max_bytes=limit,
        )  # fmt: skip
        try:
            entry = await run_in_threadpool(add)
        except ArchiveTooLarge as exc:
            raise TooLarge(str(exc)) from exc
        except ArchiveRefused as exc:
            raise BadRequest(f"the zip is refused: {exc}") from exc
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    return catalogue.to_read(entry)


def _read_installed(
    session: Session, platform: Platform, principal: Principal, tenant_id: str, site: str,
    action: Action,
) -> tuple[Site, list[InstalledPackage]]:  # fmt: skip
    """The site (the caller may do `action` to it) and what it has, read from the site."""
    target = get_site(session, principal=principal, tenant_id=tenant_id, name=site, action=action)
    if target.status not in ("ready", "stopped"):
        raise Conflict(f"site {site!r} is {target.status}; its packages are read once it is ready")
    try:
        installed = platform.provider.packages.installed(
            platform.engine.read_context(session, target)
        )
    except ApplyFailed:
        raise
    except Exception as exc:
        raise ApplyFailed(
            f"the packages of site {site!r} cannot be read: {str(exc)[:300]}"
        ) from exc
    return target, installed


@router.get(f"{SITE}/packages", response_model=SitePackagesRead)
def list_packages(
    tenant_id: str, site: str, session: SessionDep, principal: CurrentPrincipal,
    platform: PlatformDep,
) -> SitePackagesRead:  # fmt: skip
    """Core, plugins and themes the site has (read from it) and the catalogue's newer versions."""
    target, installed = _read_installed(session, platform, principal, tenant_id, site,
                                        Action.READ_SITES)  # fmt: skip
    return service.record_listing(session, target, installed)


@router.post(
    f"{SITE}/updates",
    status_code=202,
    response_model=UpdateAccepted | UpdatePlan,
    responses={200: {"model": UpdatePlan, "description": "dry_run: what would change"}},
)
def update_site(
    tenant_id: str, site: str, body: UpdateRequest, response: Response, session: SessionDep,
    principal: CurrentPrincipal, platform: PlatformDep,
) -> UpdateAccepted | UpdatePlan:  # fmt: skip
    """Put catalogue versions in place (none named: everything with an update); a backup
    first, maintenance meanwhile, a health probe after that rolls back by itself. `dry_run`:
    200 with what would change, nothing recorded."""
    target, installed = _read_installed(session, platform, principal, tenant_id, site,
                                        Action.CHANGE_SITES)  # fmt: skip
    if target.current_operation_id and not body.dry_run:
        raise Conflict(
            f"site {site!r} is busy with operation {target.current_operation_id}; wait for it"
        )
    if body.dry_run:
        response.status_code = 200
        changes = service.dry_run(session, principal=principal, tenant_id=tenant_id, site=site,
                                  request=body, installed=installed)  # fmt: skip
        return UpdatePlan(changes=changes)
    op, changes = service.start_update(session, principal=principal, tenant_id=tenant_id,
                                       site=site, request=body, installed=installed)  # fmt: skip
    platform.engine.submit(op.id)
    return UpdateAccepted(operation=operations_service.to_read(op), changes=changes)
