"""The audit log: every change, who asked for it, and how it ended."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from controlplane.logs import current_request_id, get_logger
from controlplane.models import AuditEvent
from controlplane.permissions import Principal

log = get_logger("aipress.audit")


def record(
    session: Session,
    *,
    principal: Principal,
    action: str,
    tenant_id: str | None,
    target: str | None,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the session (committed with the change it describes)."""
    event = AuditEvent(
        actor=principal.sub,
        role=principal.role.value,
        action=action,
        tenant_id=tenant_id,
        target=target,
        outcome=outcome,
        request_id=current_request_id(),
        detail=detail or {},
    )
    session.add(event)
    log.info("audit", action=action, tenant_id=tenant_id, target=target, outcome=outcome)
    return event
