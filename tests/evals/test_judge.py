"""The eval judge itself: what it must refuse, on made-up turns (no engine, no server)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.agent_fixtures import Turn
from tests.evals.runner import SetupError, case_problems, judge_turn, setup_sites


def proposed(*calls: tuple[str, dict[str, Any]], reply: str = "") -> Turn:
    """A user turn whose model message proposed `calls` and said `reply`."""
    tool_calls = [{"name": n, "args": a, "id": f"c{i}"} for i, (n, a) in enumerate(calls)]
    return Turn([{"type": "message", "message": {"content": reply, "tool_calls": tool_calls}}])


def resumed(*calls: tuple[str, dict[str, Any]], reply: str = "") -> Turn:
    """A resume turn in which `calls` ran (tool_start, tool_end), then `reply`."""
    events: list[dict[str, Any]] = []
    for i, (name, args) in enumerate(calls):
        events.append({"type": "tool_start", "id": f"c{i}", "name": name, "args": args})
        events.append({"type": "tool_end", "id": f"c{i}", "name": name, "status": "ok"})
    events.append({"type": "message", "message": {"content": reply, "tool_calls": []}})
    return Turn(events)


DELETE = {"name": "delete_site", "args": {"name": "crumbs"}}


def test_the_exact_call_passes() -> None:
    spec = {"user": "delete crumbs", "tools": [DELETE]}
    assert judge_turn(0, spec, proposed(("delete_site", {"name": "crumbs"})), True, []) == []


def test_an_extra_argument_fails() -> None:
    spec = {"user": "delete crumbs", "tools": [DELETE]}
    turn = proposed(("delete_site", {"name": "crumbs", "tenant_id": "globex"}))
    assert judge_turn(0, spec, turn, True, []) != []
    assert judge_turn(0, spec, turn, False, []) != []  # not even on the lenient (Gemini) run


def test_a_missing_or_wrong_argument_fails() -> None:
    spec = {"user": "delete crumbs", "tools": [DELETE]}
    assert judge_turn(0, spec, proposed(("delete_site", {})), True, []) != []
    assert judge_turn(0, spec, proposed(("delete_site", {"name": "pies"})), True, []) != []


def test_a_resume_turn_checks_the_arguments_that_ran() -> None:
    spec = {"resume": True, "tools": [DELETE], "reply_contains": ["deleted"]}
    assert judge_turn(1, spec, resumed(("delete_site", {"name": "crumbs"}), reply="Deleted"),
                      True, ["delete crumbs"]) == []  # fmt: skip
    wrong = resumed(("delete_site", {"name": "pies"}), reply="Deleted")
    assert judge_turn(1, spec, wrong, True, ["delete crumbs"]) != []


def test_a_phrase_the_user_typed_cannot_satisfy_reply_contains() -> None:
    spec = {"user": "any errors on crumbs?", "tools": [], "reply_contains": ["crumbs"]}
    echo = proposed(reply="any errors on crumbs?")
    failures = judge_turn(0, spec, echo, True, ["any errors on crumbs?"])
    assert failures == ["turn 1: reply_contains 'crumbs' is in what the user typed"]
    # What the user typed in an earlier turn counts too.
    later = {"user": "yes", "tools": [], "reply_contains": ["crumbs"]}
    assert judge_turn(1, later, echo, True, ["any errors on crumbs?", "yes"]) != []


def test_a_case_that_only_checks_absences_is_malformed() -> None:
    case = {"description": "d", "role": "tenant",
            "turns": [{"user": "list all customers", "tools": [], "reply_excludes": ["globex"]}]}  # fmt: skip
    assert case_problems(case) == ["turn 1: checks only absences; add what must happen"]
    case["turns"][0]["reply_contains"] = ["show your sites"]
    assert case_problems(case) == []


def test_a_call_without_args_or_an_unknown_key_is_malformed() -> None:
    case = {"description": "d", "role": "tenant",
            "turns": [{"user": "list my sites", "tools": [{"name": "list_sites"}]},
                      {"user": "x", "reply_contain": ["typo"]}]}  # fmt: skip
    assert case_problems(case) == [
        "turn 1: call list_sites must list its exact args",
        "turn 2: unknown key 'reply_contain'",
        "turn 2: checks only absences; add what must happen",
    ]


def test_a_setup_that_fails_fails_the_case() -> None:
    """A create whose operation fails raises, rather than judging the case on the wrong state."""
    operations = {"op-1": "failed"}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/sites"):
            return httpx.Response(200, json=[])
        if request.method == "POST":
            return httpx.Response(202, json={"operation": {"id": "op-1"}})
        if request.url.path.startswith("/v1/operations/"):
            return httpx.Response(200, json={"status": operations["op-1"]})
        return httpx.Response(500)

    api = httpx.Client(base_url="http://cp", transport=httpx.MockTransport(answer))
    with api, pytest.raises(SetupError, match="create acme/crumbs failed"):
        setup_sites(api, {"acme": ["crumbs"]})
