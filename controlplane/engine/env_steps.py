"""The steps of `apply_env`: claim the tenant's sites, then re-apply its env to them at once."""

from __future__ import annotations

from sqlalchemy import or_, select, update

from controlplane.engine.context import Deferred, Work
from controlplane.kernel.vocabulary import ACTIVE_STATUSES, OperationKind, StepStatus
from controlplane.models import Operation, OperationStep, Site

# Sites whose runtime takes env vars: a stopped site gets them for when it starts again.
SERVING = ("ready", "stopped")


class SitesBusy(Deferred):
    """A site of the tenant is being changed by another operation (run again once it ends)."""


def claim_sites(work: Work) -> None:
    """Take the one-change-per-site claim of every serving site of the tenant, all or none.

    A site busy with another change (created, deleted, stopped...) is waited for: the step
    raises SitesBusy and the operation is run again later without holding a worker, so that
    change finishes first and a deleted site is simply no longer there. When a newer
    apply_env of the tenant is queued, this one claims nothing: the values are read when
    applied, so the newer one applies these too.
    """
    op, session = work.operation, work.session
    # Newer and not yet applying: its runtime step will read the env, these values included
    # (they were committed before this operation could run). The newest never merges.
    newer = session.scalar(
        select(Operation.id)
        .join(OperationStep, OperationStep.operation_id == Operation.id)
        .where(
            OperationStep.name == "runtime",
            OperationStep.status == StepStatus.PENDING,
            Operation.tenant_id == op.tenant_id,
            Operation.kind == OperationKind.APPLY_ENV,
            Operation.status.in_(ACTIVE_STATUSES),
            Operation.id != op.id,
            or_(
                Operation.created_at > op.created_at,
                (Operation.created_at == op.created_at) & (Operation.id > op.id),
            ),
        )
        .limit(1)
    )
    if newer is not None:
        op.params = {**op.params, "sites": [], "merged_into": newer}
        return
    sites = session.scalars(
        select(Site).where(Site.tenant_id == op.tenant_id).order_by(Site.name)
    ).all()
    busy = [s.name for s in sites if s.current_operation_id not in (None, op.id)]
    if busy:
        raise SitesBusy(f"waiting for the change on {', '.join(busy)} to finish")
    claimed = []
    for site in sites:
        if site.status not in SERVING:
            continue
        taken = session.execute(  # type: ignore[attr-defined]
            update(Site)
            .where(
                Site.id == site.id,
                or_(Site.current_operation_id.is_(None), Site.current_operation_id == op.id),
            )
            .values(current_operation_id=op.id)
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:  # claimed by another process since the read above
            raise SitesBusy(f"waiting for the change on {site.name} to finish")
        claimed.append(site.id)
    op.params = {**op.params, "sites": claimed}


def apply_env(work: Work) -> None:
    """Rewrite the runtime config of every claimed site with the tenant's env, one reload."""
    op, session = work.operation, work.session
    site_ids = list(op.params.get("sites", []))
    sites = session.scalars(
        select(Site).where(Site.id.in_(site_ids), Site.status.in_(SERVING)).order_by(Site.name)
    ).all()
    contexts = [work.contexts.change(session, site, op.request_id) for site in sites]
    if contexts:
        work.provider.runtime.apply_env(contexts)
    op.params = {**op.params, "applied": [site.name for site in sites]}


def release_sites(work: Work) -> None:
    """Drop this operation's claims (whether it succeeded or failed)."""
    op = work.operation
    work.session.execute(
        update(Site)
        .where(Site.tenant_id == op.tenant_id, Site.current_operation_id == op.id)
        .values(current_operation_id=None)
        .execution_options(synchronize_session=False)
    )
