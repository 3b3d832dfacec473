"""Phrasing evals: many ways to ask for each intent (negated, spread over sentences, with
typos, slots in any order), played on the offline planner k times each and judged on the
calls it plans or the answer it gives. Cases are data, one YAML file per intent."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from chatbot.offline.planner import Planner
from chatbot.situation import Situation
from controlplane.kernel.identity import Role
from tests.evals.runner import _fill, placeholders
from tools.registry import toolset_for

PHRASINGS_DIR = Path(__file__).resolve().parent / "phrasings"
NOW = datetime(2026, 5, 14, 12, tzinfo=UTC)  # a fixed day: the cases name dates through it
KINDS = {"plain", "negated", "multi-sentence", "typo", "any-order", "several-sites"}


@dataclass
class Tally:
    """One intent's phrasings: how many, and how many passed all k runs."""

    cases: int = 0
    passed_all: int = 0
    kinds: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


def situation(role: str) -> Situation:
    """The caller a phrasing is said by: a tenant of acme, or an admin."""
    admin = role == "admin"
    return Situation(admin=admin, role=role, tenant=None if admin else "acme",
                     email="alice@acme.example", now=NOW,
                     tools=frozenset(toolset_for(Role(role))))  # fmt: skip


def play(said: list[str], role: str) -> AIMessage:
    """The planner's answer to the last of the messages (each earlier one answered too)."""
    messages: list[BaseMessage] = []
    reply = AIMessage(content="")
    for text in said:
        messages.append(HumanMessage(content=text))
        reply = Planner().respond(messages, situation(role))
        messages.append(reply)
    return reply


def judge(case: dict[str, Any], reply: AIMessage) -> list[str]:
    """Why the reply is not what the case wants (no call may run that it does not list)."""
    problems = []
    calls = [{"name": c["name"], "args": c["args"]} for c in reply.tool_calls]
    if calls != (case.get("tools") or []):
        problems.append(f"calls {calls}, wanted {case.get('tools') or []}")
    for text in case.get("reply_contains", []):
        if text.lower() not in str(reply.content).lower():
            problems.append(f"reply lacks {text!r}: {reply.content!r}")
    return problems


def case_problems(intent: str, cases: list[dict[str, Any]]) -> list[str]:
    """Why a file cannot judge its intent well (too few cases, unknown kinds, no checks)."""
    problems = [] if len(cases) >= 5 else [f"{intent}: {len(cases)} phrasings, need 5"]
    for case in cases:
        if not (set(case.get("kinds") or ["plain"]) <= KINDS):
            problems.append(f"{intent}: unknown kind in {case.get('kinds')}")
        if not case.get("tools") and not case.get("reply_contains"):
            problems.append(f"{intent}: {case['say']!r} checks nothing")
    kinds = {k for case in cases for k in case.get("kinds") or ["plain"]}
    problems += [
        f"{intent}: no {k} phrasing" for k in ("negated", "multi-sentence") if k not in kinds
    ]
    return problems


def run_phrasings(k: int) -> dict[str, Tally]:
    """Every intent's phrasings, each played k times."""
    values = placeholders(NOW.date())
    tallies: dict[str, Tally] = {}
    for path in sorted(PHRASINGS_DIR.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        tally = tallies.setdefault(spec["intent"], Tally())
        tally.failures += case_problems(spec["intent"], spec["cases"])
        for raw in spec["cases"]:
            case = _fill(raw, values)
            said = case["say"] if isinstance(case["say"], list) else [case["say"]]
            runs = [judge(case, play(said, case.get("role", spec.get("role", "tenant"))))
                    for _ in range(k)]  # fmt: skip
            tally.cases += 1
            tally.kinds.update(case.get("kinds") or ["plain"])
            if not any(runs):
                tally.passed_all += 1
            else:
                tally.failures.append(f"{said!r}: " + "; ".join(next(r for r in runs if r)))
    return tallies
