"""/v1/vocabulary: the operation kinds, statuses and event types, for the widget and tools."""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.api.deps import CurrentPrincipal
from controlplane.kernel.vocabulary import as_json
from controlplane.schemas import Vocabulary

router = APIRouter(tags=["vocabulary"])

VOCABULARY = Vocabulary.model_validate(as_json())


@router.get("/v1/vocabulary", response_model=Vocabulary)
def get_vocabulary(principal: CurrentPrincipal) -> Vocabulary:
    """The words operations are told in (any signed-in caller)."""
    return VOCABULARY
