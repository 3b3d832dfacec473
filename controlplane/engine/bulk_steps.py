"""The step of a `bulk`: one child operation per site, at most `concurrency` running at once
(and never more than the engine's workers less one, AIPRESS_MAX_PARALLEL_OPERATIONS - 1).

The parent records each child in its params (`children`: site name -> operation id) in the
commit that records the child, so a resumed parent never makes a second child for a site. It
waits for its children without holding a worker (Deferred: run again later), announces each
child's end ("3 of 10 done, 1 failed") and ends once every child has: a failed child is
counted, never fatal. A cancel (an event, so it never races the parent's own writes) makes
the children not started end `cancelled`; the running ones finish.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.engine.context import Cancelled, Deferred, Work
from controlplane.errors import BadRequest, Conflict, Invalid
from controlplane.kernel.identity import Principal, Role
from controlplane.kernel.vocabulary import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    BulkAction,
    EventType,
    OperationKind,
    OperationStatus,
)
from controlplane.models import Operation, OperationEvent, Site, utcnow
from controlplane.permissions import Forbidden, NotVisible

STEP = "children"
CHILDREN = "children"  # op.params: site name -> child operation id
ANNOUNCED = "announced"  # op.params: the sites whose child's end has its event
PROGRESS = "progress"  # op.params: {total, done, failed, cancelled, running}
CHILD_KINDS: dict[BulkAction, OperationKind] = {
    BulkAction.BACKUP: OperationKind.BACKUP_SITE,
    BulkAction.STOP: OperationKind.STOP_SITE,
    BulkAction.START: OperationKind.START_SITE,
    BulkAction.UPDATE: OperationKind.UPDATE_SITE,
}
FAILED = (OperationStatus.FAILED, OperationStatus.ROLLED_BACK)
# What keeps one site's child from being recorded (busy, gone, in the wrong state): that
# child fails with the reason and the others go on.
REFUSALS: tuple[type[Exception], ...] = (Conflict, NotVisible, BadRequest, Invalid, Forbidden)


class ChildrenRunning(Deferred):
    """Some children have not ended: the bulk looks again later, holding no worker."""


def adopt(session: Session, parent_id: str, child: Operation) -> None:
    """Record `child` (flushed) as its bulk parent's child for its site, in the transaction
    that records the child."""
    parent = session.get(Operation, parent_id)
    if parent is None or parent.kind != OperationKind.BULK:
        raise ValueError(f"operation {parent_id!r} is not a bulk operation")
    child.params = {**child.params, "parent": parent_id}
    parent.params = {
        **parent.params,
        CHILDREN: {**parent.params.get(CHILDREN, {}), child.site_name: child.id},
    }


def cancel_requested(session: Session, operation_id: str) -> bool:
    """Whether someone asked the bulk to stop."""
    return (
        session.scalar(
            select(OperationEvent.id)
            .where(
                OperationEvent.operation_id == operation_id,
                OperationEvent.type == EventType.CANCEL_REQUESTED,
            )
            .limit(1)
        )
        is not None
    )


def count(sites: list[str], children: dict[str, str], statuses: dict[str, str]) -> dict[str, int]:
    """The bulk's progress: `done` counts every child that ended, whatever its end."""
    ends = [statuses.get(children[name], "") for name in sites if name in children]
    return {
        "total": len(sites),
        "done": sum(status in FINISHED_STATUSES for status in ends),
        "failed": sum(status in FAILED for status in ends),
        "cancelled": sum(status == OperationStatus.CANCELLED for status in ends),
        "running": sum(status in ACTIVE_STATUSES for status in ends),
    }


def run_children(work: Work) -> None:
    """Start the next children (up to `concurrency` running), announce the ones that ended,
    and wait (ChildrenRunning) until every site's child has ended."""
    op, session = work.operation, work.session
    sites: list[str] = list(op.params["sites"])
    # Never every engine worker: other operations (and this parent's next run) need one.
    limit = min(int(op.params.get("concurrency", 2)), max(1, work.workers - 1))
    cancelling = cancel_requested(session, op.id)
    for name in sites:
        children: dict[str, str] = op.params.get(CHILDREN, {})
        if name in children:
            continue
        if cancelling:
            _ended_child(work, name, OperationStatus.CANCELLED, "cancelled before it started")
            continue
        if count(sites, children, _statuses(session, children))["running"] >= limit:
            break
        _start_child(work, name)
    children = op.params.get(CHILDREN, {})
    rows = _children(session, children)
    statuses = {row.id: row.status for row in rows}
    _announce(work, sites, children, rows)
    progress = count(sites, children, statuses)
    op.params = {**op.params, PROGRESS: progress}
    session.commit()
    if work.submit is not None:  # a child recorded but never taken (a crash in between) too
        for row in rows:
            if row.status in ACTIVE_STATUSES and row.worker_id is None:
                work.submit(row.id)
    if progress["running"]:
        raise ChildrenRunning("waiting for the running children to end")
    summary = _summary(progress)
    failures = [row for row in rows if row.status in FAILED]
    note = None
    if failures:
        by_id = {child_id: name for name, child_id in children.items()}
        note = f"{len(failures)} of {progress['total']} failed: " + "; ".join(
            f"{by_id[row.id]}: {(row.error or row.status)[:300]}"
            for row in sorted(failures, key=lambda r: by_id[r.id])
        )
    if progress["cancelled"]:
        raise Cancelled(f"{summary}" + (f"; {note}" if note else ""))
    work.detail = summary
    if note is not None:
        op.params = {**op.params, "note": note}


def _summary(progress: dict[str, int]) -> str:
    text = f"{progress['done']} of {progress['total']} done, {progress['failed']} failed"
    return text + (f", {progress['cancelled']} cancelled" if progress["cancelled"] else "")


def _children(session: Session, children: dict[str, str]) -> list[Operation]:
    if not children:
        return []
    return list(session.scalars(select(Operation).where(Operation.id.in_(children.values()))))


def _statuses(session: Session, children: dict[str, str]) -> dict[str, str]:
    if not children:
        return {}
    return dict(
        session.execute(
            select(Operation.id, Operation.status).where(Operation.id.in_(children.values()))
        ).all()
    )


def _announce(
    work: Work, sites: list[str], children: dict[str, str], rows: list[Operation]
) -> None:
    """One CHILD_FINISHED event per child that ended since the last look, in the order they
    ended, each with the counts up to it."""
    op, session = work.operation, work.session
    announced = list(op.params.get(ANNOUNCED, []))
    by_id = {child_id: name for name, child_id in children.items()}
    statuses = {row.id: row.status for row in rows}
    ended = sorted(
        (row for row in rows if row.status in FINISHED_STATUSES and by_id[row.id] not in announced),
        key=lambda row: (row.finished_at or utcnow(), by_id[row.id]),
    )
    for row in ended:
        name = by_id[row.id]
        announced.append(name)
        progress = count(sites, {n: children[n] for n in announced}, statuses)
        session.add(
            OperationEvent(
                operation_id=op.id,
                type=EventType.CHILD_FINISHED,
                step=STEP,
                message=f"{progress['done']} of {progress['total']} done, "
                f"{progress['failed']} failed ({name} {row.status})",
            )
        )
    op.params = {**op.params, ANNOUNCED: announced}


def _principal(op: Operation) -> Principal:
    """Who the children are done for: the caller the bulk was checked for, on its tenant."""
    return Principal(op.requested_by, Role(op.params["role"]), frozenset({op.tenant_id}))


def _start_child(work: Work, name: str) -> None:
    """Record (and commit) the child of one site, or its failure when the site is held by
    another operation, gone, or cannot take the action."""
    # The services record operations with the catalogue this module is part of: imported
    # when the first child starts, not when the catalogue loads.
    from controlplane.services.backups import start_backup
    from controlplane.services.sites import set_serving

    op, session = work.operation, work.session
    action = BulkAction(op.params["action"])
    principal, tenant = _principal(op), op.tenant_id
    try:
        if action is BulkAction.BACKUP:
            start_backup(session, principal=principal, tenant_id=tenant, site=name,
                         parent_id=op.id)  # fmt: skip
        elif action in (BulkAction.STOP, BulkAction.START):
            set_serving(session, principal=principal, tenant_id=tenant, name=name,
                        serving=action is BulkAction.START, parent_id=op.id)  # fmt: skip
        else:
            _start_update(work, principal, name)
    except REFUSALS as exc:
        session.rollback()
        _ended_child(work, name, OperationStatus.FAILED, str(exc))


def _start_update(work: Work, principal: Principal, name: str) -> None:
    """The update child of one site, planned against what the site has now (read from it)."""
    from controlplane.schemas import UpdateRequest
    from controlplane.services.updates import start_update

    op, session = work.operation, work.session
    site = session.scalar(select(Site).where(Site.tenant_id == op.tenant_id, Site.name == name))
    if site is None:
        raise NotVisible(f"site {name!r} not found in tenant {op.tenant_id!r}")
    if site.status != "ready":
        raise Conflict(f"site {name!r} is {site.status}; an update needs it to be ready")
    try:
        installed = work.provider.packages.installed(work.contexts.read(session, site))
    except Exception as exc:  # the site cannot say what it has: this child fails, not the bulk
        raise Conflict(f"the packages of site {name!r} cannot be read: {str(exc)[:300]}") from exc
    start_update(session, principal=principal, tenant_id=op.tenant_id, site=name,
                 request=UpdateRequest.model_validate(op.params.get("update") or {}),
                 parent_id=op.id, installed=installed)  # fmt: skip


def _ended_child(work: Work, name: str, status: OperationStatus, reason: str) -> None:
    """A child that ended before it began (refused, or cancelled): in the site's history as
    any other operation, its site untouched; committed with its place in the parent."""
    op, session = work.operation, work.session
    action = BulkAction(op.params["action"])
    site_id = session.scalar(select(Site.id).where(Site.tenant_id == op.tenant_id,
                                                   Site.name == name))  # fmt: skip
    kind = CHILD_KINDS[action]
    child = Operation(
        kind=kind,
        tenant_id=op.tenant_id,
        site_id=site_id,
        site_name=name,
        status=status,
        requested_by=op.requested_by,
        request_id=op.request_id,
        params={},
        error=reason,
        finished_at=utcnow(),
        steps=[],
    )
    session.add(child)
    session.flush()
    ending = (
        EventType.OPERATION_CANCELLED
        if status == OperationStatus.CANCELLED
        else EventType.OPERATION_FAILED
    )
    session.add(
        OperationEvent(operation_id=child.id, type=ending, message=f"{kind} {name} {status}: "
                       f"{reason}")
    )  # fmt: skip
    adopt(session, op.id, child)
    session.commit()


def bulk_params(
    *,
    action: BulkAction,
    sites: list[str],
    concurrency: int,
    role: Role,
    update: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The params a new bulk is recorded with."""
    params: dict[str, Any] = {
        "action": action.value,
        "sites": sites,
        "concurrency": concurrency,
        "role": role.value,
        CHILDREN: {},
        PROGRESS: {"total": len(sites), "done": 0, "failed": 0, "cancelled": 0, "running": 0},
    }
    if update is not None:
        params["update"] = update
    return params
