"""/v1/vocabulary: the operation kinds, statuses and event types, for the widget and tools."""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.api.deps import CurrentPrincipal
from controlplane.kernel.vocabulary import (
    ACTIVE_STATUSES,
    KIND_LABELS,
    EventType,
    OperationKind,
    OperationStatus,
    StepStatus,
)
from controlplane.schemas import Vocabulary

router = APIRouter(tags=["vocabulary"])

VOCABULARY = Vocabulary(
    operation_kinds=list(OperationKind),
    operation_kind_labels=KIND_LABELS,
    operation_statuses=list(OperationStatus),
    active_operation_statuses=list(ACTIVE_STATUSES),
    step_statuses=list(StepStatus),
    event_types=list(EventType),
)


@router.get("/v1/vocabulary", response_model=Vocabulary)
def get_vocabulary(principal: CurrentPrincipal) -> Vocabulary:
    """The words operations are told in (any signed-in caller)."""
    return VOCABULARY
