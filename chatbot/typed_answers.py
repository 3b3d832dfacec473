"""Typed answers to a pending confirmation: "yes, go ahead", "no, keep it", "cancel"."""

from __future__ import annotations

import re
from typing import Any

APPROVE = re.compile(
    r"^\W*(y|yes|yeah|yep|yup|sure|ok|okay|confirm(ed)?|approved?|do it|go ahead|go for it|"
    r"proceed|please do|affirmative|absolutely|of course)\b",
    re.I,
)
CANCEL = re.compile(
    r"^\W*(n|no|nope|nah|stop|abort|negative)\b|\b(cancel\w*|abort|never\s*mind|don'?t|"
    r"do\s+not|not\s+(yet|now)|keep\s+(?!going)\w+|leave\s+it|changed?\s+my\s+"
    r"mind)\b",
    re.I,
)
# Words that make an answer something other than a plain yes: a hedge, a condition, a question.
HEDGE = re.compile(r"\?|\b(but|instead|wait|hold\s+on|unless|first|later|if|maybe|not|no)\b", re.I)
GO_ON = re.compile(r"\b(go\s+ahead|do\s+it|proceed|confirm)\b", re.I)


def typed_answer(text: str) -> bool | None:
    """True for a clear yes, False for a clear no or cancel, None for anything else."""
    if CANCEL.search(text):
        return None if GO_ON.search(text) or "?" in text else False
    if APPROVE.search(text):
        head = APPROVE.sub("", text, count=1)
        return None if HEDGE.search(head) else True
    return None


def reminder(waiting: dict[str, Any], approve: bool | None) -> str:
    """What a typed message that does not answer the confirmation gets (nothing changes)."""
    asked = " ".join(str(a["question"]) for a in waiting.get("actions", []))
    if approve and any(a.get("input") for a in waiting.get("actions", [])):
        return (
            f"Still waiting: {asked} What it needs goes into the card, never into chat: fill it "
            "in there and press Confirm, or say 'cancel'. Nothing has changed."
        )
    return (
        f"Still waiting for your answer: {asked} Say 'yes' to go ahead or 'no' to cancel (or "
        "use the buttons). Nothing has changed."
    )
