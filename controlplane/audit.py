"""The audit log: every change, who asked for it, and how it ended."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from controlplane.kernel.identity import Principal
from controlplane.kernel.logs import current_request_id, get_logger
from controlplane.models import AuditEvent

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
        actor_issuer=principal.issuer or None,
        actor_key=principal.key,
        role=principal.role.value,
        action=action,
        tenant_id=tenant_id,
        target=target,
        outcome=outcome,
        request_id=current_request_id(),
        detail={
            **(detail or {}),
            **({"client_id": principal.client_id} if principal.client_id else {}),
        },
    )
    session.add(event)
    log.info("audit", action=action, tenant_id=tenant_id, target=target, outcome=outcome)
    return event


def denied_entry(
    principal: Principal, *, method: str, route: str | None, path_params: dict[str, Any]
) -> tuple[str, str | None, dict[str, Any]]:
    """(action, tenant_id, extra detail) of a denied request: the action is the route
    template, never the raw path (a caller chooses the path's text), and a tenant the caller
    cannot see is not where it is filed: it goes under the caller (tenant_id None, which
    admins read) so that nobody writes into another tenant's log."""
    action = f"{method} {route or '(no route)'}"[:120]
    target = path_params.get("tenant_id")
    if isinstance(target, str) and principal.sees_tenant(target):
        return action, target, {}
    own = sorted(principal.tenants)
    return action, own[0] if len(own) == 1 else None, {"target_visible": False}
