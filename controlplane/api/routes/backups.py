"""/v1/tenants/{tenant_id}/sites/{site}/backups, the tenant's backups, the backup policy and
the owner's download."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from controlplane.api.deps import CurrentPrincipal, PlatformDep, SessionDep
from controlplane.credentials import tenant_backup_password
from controlplane.engine.backup_steps import record_of
from controlplane.engine.provider import BackupInvalid
from controlplane.errors import Conflict
from controlplane.schemas import (
    BackupAccepted,
    BackupDownloadLink,
    BackupPolicyRead,
    BackupPolicyWrite,
    BackupRead,
    RestoreAccepted,
)
from controlplane.services import backups as service
from controlplane.services import operations as operations_service
from controlplane.services import sites as sites_service

router = APIRouter(tags=["backups"])
SITE = "/v1/tenants/{tenant_id}/sites/{site}"


@router.post(f"{SITE}/backups", status_code=202, response_model=BackupAccepted)
def create_backup(
    tenant_id: str,
    site: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> BackupAccepted:
    """Back a site up now; follow the operation for progress."""
    backup, op = service.start_backup(session, principal=principal, tenant_id=tenant_id, site=site)
    platform.engine.submit(op.id)
    return BackupAccepted(
        backup=service.to_read(backup, platform.settings),
        operation=operations_service.to_read(op),
    )


@router.get(f"{SITE}/backups", response_model=list[BackupRead])
def list_backups(
    tenant_id: str,
    site: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> list[BackupRead]:
    """A site's backups, newest first."""
    rows = service.list_site_backups(session, principal=principal, tenant_id=tenant_id, site=site)
    return [service.to_read(b, platform.settings) for b in rows]


@router.get(f"{SITE}/backups/{{backup_id}}", response_model=BackupRead)
def get_backup(
    tenant_id: str,
    site: str,
    backup_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> BackupRead:
    """One backup."""
    backup = service.get_backup(
        session, principal=principal, tenant_id=tenant_id, site=site, backup_id=backup_id
    )
    return service.to_read(backup, platform.settings)


@router.post(
    f"{SITE}/backups/{{backup_id}}/restore", status_code=202, response_model=RestoreAccepted
)
def restore_backup(
    tenant_id: str,
    site: str,
    backup_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> RestoreAccepted:
    """Put a backup back in place of the live site (a backup of the live site first)."""
    target, backup, pre, op = service.start_restore(
        session, principal=principal, tenant_id=tenant_id, site=site, backup_id=backup_id
    )
    platform.engine.submit(op.id)
    return RestoreAccepted(
        site=sites_service.to_read(target, principal),
        backup=service.to_read(backup, platform.settings),
        pre_restore_backup=service.to_read(pre, platform.settings),
        operation=operations_service.to_read(op),
    )


@router.post(f"{SITE}/backups/{{backup_id}}/download-link", response_model=BackupDownloadLink)
def download_link(
    tenant_id: str,
    site: str,
    backup_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
) -> BackupDownloadLink:
    """A link that downloads this backup as .tar.gz for a short time (the owner's; audited)."""
    return service.create_download_link(
        session, principal=principal, keyring=platform.keyring, tenant_id=tenant_id, site=site,
        backup_id=backup_id, ttl_seconds=platform.settings.backup_download_ttl_seconds,
    )  # fmt: skip


@router.get(
    "/v1/backup-downloads/{token}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/gzip": {}}, "description": "the backup"}},
)
def download(token: str, session: SessionDep, platform: PlatformDep) -> StreamingResponse:
    """The backup a download link names, streamed (the signed link is the credential)."""
    backup = service.open_download(session, keyring=platform.keyring, token=token)
    password = tenant_backup_password(session, platform.keyring, backup.tenant_id)
    record = record_of(backup)
    name = f"{backup.site_name}-{backup.created_at:%Y%m%dT%H%M%SZ}-{backup.id[:8]}.tar.gz"
    session.close()
    chunks = platform.provider.backups.archive(backup.tenant_id, password, record)
    try:  # the first chunk here: a backup that cannot be read is an answer, not a cut stream
        first = next(chunks, b"")
    except BackupInvalid as exc:
        raise Conflict(f"backup {backup.id!r} cannot be read: {exc}") from exc
    body: Iterator[bytes] = itertools.chain([first], chunks)
    return StreamingResponse(
        body,
        media_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/v1/tenants/{tenant_id}/backups", response_model=list[BackupRead])
def tenant_backups(
    tenant_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    platform: PlatformDep,
    deleted: Annotated[
        bool, Query(description="The backups of deleted sites (kept for the undelete)")
    ] = False,
) -> list[BackupRead]:
    """The tenant's backups: of its sites, or (`deleted=true`) of its deleted sites."""
    rows = service.list_tenant_backups(
        session, principal=principal, tenant_id=tenant_id, deleted=deleted
    )
    return [service.to_read(b, platform.settings) for b in rows]


@router.get(f"{SITE}/backup-policy", response_model=BackupPolicyRead)
def get_policy(
    tenant_id: str, site: str, session: SessionDep, principal: CurrentPrincipal
) -> BackupPolicyRead:
    """The site's backup schedule and retention."""
    return service.get_policy(session, principal=principal, tenant_id=tenant_id, site=site)


@router.put(f"{SITE}/backup-policy", response_model=BackupPolicyRead)
def put_policy(
    tenant_id: str,
    site: str,
    data: BackupPolicyWrite,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> BackupPolicyRead:
    """Change the site's backup schedule, retention or on/off."""
    return service.put_policy(
        session, principal=principal, tenant_id=tenant_id, site=site, data=data
    )
