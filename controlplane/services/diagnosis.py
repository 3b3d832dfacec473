"""A site's diagnosis: the provider's evidence, the latest changes, the health probe, a verdict."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from controlplane.diagnosis import Change, DiagnosisRead, Probe, diagnose
from controlplane.engine.provider import Provider, SiteContext
from controlplane.kernel.vocabulary import KIND_LABELS, OperationKind, OperationStatus
from controlplane.models import Operation, Site

CHANGES = 5
# Operations that change what a site runs (backups and their checks do not).
CHANGE_KINDS = frozenset(KIND_LABELS) - {
    OperationKind.BACKUP_SITE, OperationKind.VERIFY_BACKUP, OperationKind.BULK,
}  # fmt: skip

# Operations that rebuild a site: its evidence starts after the latest one.
BUILDS = (OperationKind.CREATE_SITE, OperationKind.RESTORE_SITE, OperationKind.IMPORT_SITE,
          OperationKind.PROMOTE_SITE)  # fmt: skip


def latest_changes(session: Session, site: Site, limit: int = CHANGES) -> list[Change]:
    """The site's latest changes, newest first: its own operations and its tenant's env
    changes (which reach every site)."""
    rows = session.scalars(
        select(Operation)
        .where(
            Operation.tenant_id == site.tenant_id,
            Operation.kind.in_([k.value for k in CHANGE_KINDS]),
            or_(Operation.site_id == site.id, Operation.kind == OperationKind.APPLY_ENV.value),
        )
        .order_by(Operation.created_at.desc())
        .limit(limit)
    )
    return [
        Change(
            time=_utc(op.finished_at or op.created_at),
            kind=op.kind,
            label=KIND_LABELS.get(OperationKind(op.kind), op.kind),
            status=op.status,
            operation=op.id,
        )
        for op in rows
    ]


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def probe(provider: Provider, ctx: SiteContext, status: str) -> Probe:
    """The provider's health probe of a serving site (the one an update is checked with)."""
    if status != "ready":
        return Probe(ok=False, check="status", detail=f"the site is {status}, not serving")
    mark = provider.packages.log_mark(ctx)
    result = provider.packages.health(ctx, mark)
    return Probe(ok=result.failed_check is None, check=result.failed_check, detail=result.detail)


def diagnose_site(
    session: Session, *, provider: Provider, site: Site, ctx: SiteContext,
    since: datetime, until: datetime,
) -> DiagnosisRead:  # fmt: skip
    """Evidence over [since, until] and the verdict drawn from it. The window starts no
    earlier than the site's latest successful (re)build finished: the build's own requests
    and warnings (the installer, the readiness probe) are not the site's behaviour."""
    built = session.scalar(
        select(Operation.finished_at)
        .where(
            Operation.site_id == site.id,
            Operation.kind.in_([k.value for k in BUILDS]),
            # A failed or undone one left the site as it was: its evidence still counts.
            Operation.status == OperationStatus.SUCCEEDED.value,
            Operation.finished_at.is_not(None),
        )
        .order_by(Operation.finished_at.desc())
        .limit(1)
    )
    if built is not None:
        since = min(max(since, _utc(built)), until)
    evidence = provider.logs.evidence(ctx, since, until)
    return diagnose(
        site.name, since, until, evidence, latest_changes(session, site),
        probe(provider, ctx, site.status),
    )  # fmt: skip
