"""What a local model is told about its caller: structured, from the verified token, never
parsed back out of the rendered prompt or the tool schemas."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from controlplane.kernel import clock
from tools.context import AgentContext
from tools.registry import toolset_for

# The keyword argument under which the graph hands a situated model its Situation.
SITUATION_KWARG = "situation"


@dataclass(frozen=True)
class Situation:
    """Who is asking (role, tenant, e-mail), with which tools, and when."""

    admin: bool
    role: str
    tenant: str | None
    email: str | None
    tools: frozenset[str]
    now: datetime

    @property
    def today(self) -> date:
        """Today in UTC."""
        return self.now.date()


def situation_of(ctx: AgentContext) -> Situation:
    """The situation of a turn, from its runtime context (no token in it)."""
    principal = ctx.principal
    return Situation(
        admin=principal.is_admin,
        role=principal.role.value,
        tenant=ctx.tenant_id,
        email=principal.email,
        tools=frozenset(toolset_for(principal.role)),
        now=clock.now(),
    )
