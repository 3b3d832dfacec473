"""POST /v1/tenants/{tenant_id}/sites/{site}/import: a site made elsewhere, uploaded."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep
from controlplane.imports import uploads
from controlplane.schemas import ImportAccepted
from controlplane.services import backups as backups_service
from controlplane.services import imports as service
from controlplane.services import operations as operations_service

router = APIRouter(tags=["imports"])

FORM_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["old_url"],
                    "properties": {
                        "archive": {"type": "string", "format": "binary",
                                    "description": ".tar.gz: database.sql[.gz] + wp-content/"},
                        "dump": {"type": "string", "format": "binary",
                                 "description": ".sql or .sql.gz (instead of archive)"},
                        "content": {"type": "string", "format": "binary",
                                    "description": "wp-content .tar.gz (with dump)"},
                        "old_url": {"type": "string", "description": "the site's old address"},
                        "admin": {"type": "string", "enum": ["keep", "reset"],
                                  "default": "keep"},
                    },
                }
            }
        },
    }
}  # fmt: skip


@router.post(
    "/v1/tenants/{tenant_id}/sites/{site}/import",
    status_code=202,
    response_model=ImportAccepted,
    openapi_extra=FORM_DOC,
)
async def import_site(
    tenant_id: str,
    site: str,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> ImportAccepted:
    """Replace the site with one made elsewhere (a backup of the live site first); the
    upload is checked before anything is recorded. Follow the operation for progress."""
    settings = platform.settings
    await run_in_threadpool(
        service.check_may_import, session, principal=principal, tenant_id=tenant_id, site=site
    )
    length = request.headers.get("content-length")
    with uploads.tenant_slot(settings.home, tenant_id):
        declared = int(length) if length and length.isdigit() else None
        if declared is None or declared <= settings.import_max_bytes:  # else receive's 413
            uploads.check_space(settings.home, declared, settings.import_max_bytes,
                                settings.import_max_unpacked_bytes)  # fmt: skip
        incoming = uploads.new_incoming(settings.home)
        try:
            form = await uploads.receive(
                request.headers.get("content-type"),
                length,
                request.stream(),
                incoming,
                limit=settings.import_max_bytes,
            )
            old_url, admin = service.form_values(form)
            await run_in_threadpool(service.check_incoming, incoming, settings)
            start = functools.partial(
                service.start_import, session, principal=principal, settings=settings,
                tenant_id=tenant_id, site=site, incoming=incoming, old_url=old_url, admin=admin,
            )  # fmt: skip
            _site, pre, op = await run_in_threadpool(start)
        finally:
            uploads.discard(incoming)  # moved to the operation's directory when recorded
    platform.engine.submit(op.id)
    return ImportAccepted(
        operation=operations_service.to_read(op),
        pre_import_backup=backups_service.to_read(pre, settings),
    )
