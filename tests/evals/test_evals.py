"""The eval cases: all must pass on the offline planner; on Gemini (when credentials are
configured) each runs k times and pass^k is reported and held to a floor."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from controlplane.kernel import clock
from controlplane.kernel.auth import LocalTokenIssuer
from tests.agent_fixtures import ChatFactory, EngineFactory
from tests.conftest import ARTIFACTS
from tests.evals.runner import (
    case_files,
    is_dated,
    load_case,
    read_case,
    run_case,
    seed_costs,
    setup_packages,
    setup_sites,
)

GEMINI_PROJECT = os.environ.get("AIPRESS_EVAL_GEMINI_PROJECT")


def _chatter(case: dict[str, object], chat: ChatFactory, **kwargs: object):  # type: ignore[no-untyped-def]
    tenants = [str(t) for t in case.get("tenants", []) or []]  # type: ignore[union-attr]
    return chat(str(case["role"]), *tenants, sub=str(case.get("sub", "eval-user")),
                email=case.get("email"), **kwargs)  # fmt: skip


def test_there_are_enough_cases() -> None:
    cases = [load_case(p) for p in case_files()]
    assert len(cases) >= 40
    tools = {c["name"] for case in cases for t in case["turns"] for c in t.get("tools") or []}
    assert tools >= {"create_site", "delete_site", "query_logs", "get_billing", "list_sites",
                     "get_site", "get_metrics", "list_tenants", "billing_summary"}  # fmt: skip
    assert any(t.get("resume") is True for c in cases for t in c["turns"])
    assert any(t.get("resume") is False for c in cases for t in c["turns"])
    assert sum(1 for c in cases if c["role"] == "admin") >= 6


# Cases that name dates also run at the calendar's edges: the first minutes of a month and of
# a year, the last minutes of a month and of a year, and either side of the end of October
# (the month a case names by name, in it and just after it).
CLOCKS = {
    "month-first": datetime(2027, 3, 1, 0, 30, tzinfo=UTC),
    "month-last": datetime(2027, 2, 28, 23, 40, tzinfo=UTC),
    "year-first": datetime(2027, 1, 1, 0, 5, tzinfo=UTC),
    "year-last": datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
    "october-last": datetime(2026, 10, 31, 23, 45, tzinfo=UTC),
    "november-first": datetime(2026, 11, 1, 0, 15, tzinfo=UTC),
}


def _runs() -> list[tuple[Path, str]]:
    runs = []
    for path in case_files():
        runs.append((path, "now"))
        if is_dated(read_case(path)):
            runs += [(path, name) for name in CLOCKS]
    return runs


@pytest.mark.parametrize(("path", "when"), _runs(), ids=lambda v: getattr(v, "stem", v))
def test_offline_planner(
    path: Path, when: str, chat: ChatFactory, admin_api: httpx.Client, live_app: FastAPI
) -> None:
    case = load_case(path)
    moment = CLOCKS.get(when, clock.now())
    with clock.travel(moment):
        setup_sites(admin_api, (case.get("setup") or {}).get("sites", {}))
        seed_costs(live_app.state.platform, (case.get("setup") or {}).get("costs", []))
        setup_packages(admin_api, case.get("setup") or {})
        verdict = run_case(case, _chatter(case, chat), admin_api, strict=True)
    assert verdict.passed, f"{case['description']} ({when})\n" + "\n".join(verdict.failures)


@pytest.mark.skipif(not GEMINI_PROJECT, reason="set AIPRESS_EVAL_GEMINI_PROJECT to run on Gemini")
def test_gemini_pass_k(
    chat: ChatFactory,
    admin_api: httpx.Client,
    engine_factory: EngineFactory,
    issuer: LocalTokenIssuer,
    live_app: FastAPI,
) -> None:
    from chatbot.models import make_model

    k = int(os.environ.get("AIPRESS_EVAL_K", "3"))
    floor = float(os.environ.get("AIPRESS_EVAL_MIN_PASS_K", "0.75"))
    settings = engine_factory(None).settings.model_copy(
        update={"chat_model": "gemini", "gcp_project": GEMINI_PROJECT}
    )
    engine = engine_factory(make_model(settings))
    report = {}
    for path in case_files():
        case = load_case(path)
        runs = []
        for _ in range(k):
            setup_sites(admin_api, (case.get("setup") or {}).get("sites", {}))
            seed_costs(live_app.state.platform, (case.get("setup") or {}).get("costs", []))
            setup_packages(admin_api, case.get("setup") or {})
            verdict = run_case(case, _chatter(case, chat, engine_=engine), admin_api, strict=False)
            runs.append(verdict.passed)
        report[path.stem] = {"runs": runs, "pass_k": all(runs)}
        print(f"{path.stem:50} {''.join('✓' if r else '✗' for r in runs)}")
    rate = sum(r["pass_k"] for r in report.values()) / len(report)
    (ARTIFACTS / "evals-gemini.json").write_text(
        json.dumps({"k": k, "pass_k": rate, "cases": report}, indent=2)
    )
    print(f"pass^{k} = {rate:.2%}")
    assert rate >= floor
