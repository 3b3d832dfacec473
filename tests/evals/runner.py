"""Runs one eval case (a YAML file in cases/) against a chat engine and judges it.

A case names the user (role, tenants, e-mail), the sites that exist before it starts,
its turns (a user message, or the answer to a confirmation) with the tool calls and reply
each turn must produce, and the sites that must exist at the end.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from controlplane.billing.aggregate import run_aggregation
from controlplane.billing.warehouse import DuckDBWarehouse
from controlplane.kernel import clock
from controlplane.platform import Platform
from tests.agent_fixtures import TENANTS, Chatter, Turn, site_names
from tests.billing_data import export_row, insert
from tests.package_zips import plugin_zip

CASES_DIR = Path(__file__).resolve().parent / "cases"


def case_files() -> list[Path]:
    """Every case, in name order."""
    return sorted(CASES_DIR.glob("*.yaml"))


CASE_KEYS = {"description", "role", "tenants", "email", "sub", "setup", "turns", "final"}
TURN_KEYS = {"user", "resume", "tools", "reply_contains", "reply_excludes", "interrupt",
             "tool_status"}  # fmt: skip
# What a turn must show happened: an absence alone (no call, no phrase) passes a planner
# that does nothing at all.
POSITIVE_KEYS = ("tools", "reply_contains", "interrupt", "tool_status")


def case_problems(case: dict[str, Any]) -> list[str]:
    """Why a case cannot judge anything (unknown keys, calls without arguments, only absences)."""
    problems = [f"unknown key {k!r}" for k in sorted(set(case) - CASE_KEYS)]
    for key in ("description", "role", "turns"):
        if key not in case:
            problems.append(f"missing {key!r}")
    for index, turn in enumerate(case.get("turns") or []):
        where = f"turn {index + 1}"
        problems += [f"{where}: unknown key {k!r}" for k in sorted(set(turn) - TURN_KEYS)]
        if ("user" in turn) == ("resume" in turn):
            problems.append(f"{where}: needs exactly one of 'user' and 'resume'")
        for call in turn.get("tools") or []:
            if "args" not in call:
                problems.append(f"{where}: call {call['name']} must list its exact args")
        if not any(turn.get(key) for key in POSITIVE_KEYS):
            problems.append(f"{where}: checks only absences; add what must happen")
    return problems


def read_case(path: Path) -> dict[str, Any]:
    """A case file as data, unchecked."""
    case: dict[str, Any] = yaml.safe_load(path.read_text())
    return case


def load_case(path: Path) -> dict[str, Any]:
    """A case file as data (ValueError if it is malformed)."""
    case = read_case(path)
    problems = case_problems(case)
    if problems:
        raise ValueError(f"{path.name}: " + "; ".join(problems))
    return case


def is_dated(case: dict[str, Any]) -> bool:
    """Whether a case names dates (so its outcome depends on the calendar day)."""
    return re.search(r"\{[a-z_]+\}", yaml.safe_dump(case)) is not None


def placeholders(today: date) -> dict[str, str]:
    """Dates a case may name: {today}, {month_start}, {last_month_start}..."""
    last_month_end = today.replace(day=1) - timedelta(days=1)
    october_end = date(today.year if today.month >= 10 else today.year - 1, 10, 31)
    return {
        "today": today.isoformat(),
        "yesterday": (today - timedelta(days=1)).isoformat(),
        "month_start": today.replace(day=1).isoformat(),
        "last_month_start": last_month_end.replace(day=1).isoformat(),
        "last_month_end": last_month_end.isoformat(),
        "last_month_name": calendar.month_name[last_month_end.month],
        "october_start": october_end.replace(day=1).isoformat(),
        "october_end": min(october_end, today).isoformat(),
    }


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


class SetupError(AssertionError):
    """The state a case starts from could not be made: the case fails, it is not judged."""


def _wait(api: httpx.Client, response: httpx.Response, what: str) -> None:
    if response.status_code != 202:
        raise SetupError(f"setup: {what} answered {response.status_code}: {response.text}")
    op_id = response.json()["operation"]["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = api.get(f"/v1/operations/{op_id}").json()["status"]
        if status == "succeeded":
            return
        if status == "failed":
            raise SetupError(f"setup: {what} failed (operation {op_id})")
        time.sleep(0.01)
    raise SetupError(f"setup: {what} did not finish in 30 s")


def setup_sites(api: httpx.Client, wanted: dict[str, list[str]]) -> None:
    """Make the tenants' sites exactly `wanted` (others are deleted); SetupError if it can't."""
    for tenant in TENANTS:
        for name in site_names(api, tenant):
            if name not in wanted.get(tenant, []):
                _wait(api, api.delete(f"/v1/tenants/{tenant}/sites/{name}"), f"delete {name}")
        for name in wanted.get(tenant, []):
            if name not in site_names(api, tenant):
                made = api.post(f"/v1/tenants/{tenant}/sites",
                                json={"name": name, "admin_email": "o@example.com"})  # fmt: skip
                _wait(api, made, f"create {tenant}/{name}")
    for tenant in TENANTS:
        got = site_names(api, tenant)
        if got != sorted(wanted.get(tenant, [])):
            raise SetupError(f"setup: tenant {tenant} has sites {got}, wanted {wanted.get(tenant)}")


def setup_packages(api: httpx.Client, setup: dict[str, Any]) -> None:
    """Put `catalogue` (plugin zips the tests build, as {slug: [versions]}) in the catalogue
    (one there already is kept), then give each site of `packages` ({tenant: {site: {slug:
    version}}}) those plugins by updating it through the API."""
    for slug, versions in (setup.get("catalogue") or {}).items():
        for version in versions:
            added = api.post("/v1/catalogue?kind=plugin",
                             files={"file": (f"{slug}.zip", plugin_zip(version, slug))})  # fmt: skip
            if added.status_code not in (201, 409):
                raise SetupError(f"setup: catalogue {slug} {version}: {added.text}")
    for tenant, sites in (setup.get("packages") or {}).items():
        for site, plugins in sites.items():
            body = {"plugins": [{"slug": s, "version": v} for s, v in plugins.items()]}
            made = api.post(f"/v1/tenants/{tenant}/sites/{site}/updates", json=body)
            _wait(api, made, f"give {tenant}/{site} {plugins}")


def seed_costs(platform: Platform, costs: list[dict[str, Any]]) -> None:
    """Aggregate export rows for the given days into the control plane's tenant_costs."""
    if not costs:
        return
    warehouse = DuckDBWarehouse(":memory:")
    values = placeholders(clock.today())
    days = []
    for cost in costs:
        day = date.fromisoformat(_fill(cost["day"], values))
        days.append(day)
        insert(warehouse, export_row(
            start=datetime(day.year, day.month, day.day, 12, tzinfo=UTC), cost=cost["cost"],
            service=cost.get("service", "Cloud Run"), tenant=cost.get("tenant"),
            site=cost.get("site"), credits=tuple(cost.get("credits", ())),
        ))  # fmt: skip
    result = run_aggregation(platform.sessions, warehouse, since=min(days),
                             until=max(days) + timedelta(days=1), database_sizes={},
                             shared_services=("Cloud SQL",))  # fmt: skip
    warehouse.close()
    if result.rows == 0:
        raise SetupError(f"setup: the costs {costs} aggregated to no rows")


@dataclass
class Verdict:
    """The outcome of a case: passed, and what failed if not."""

    passed: bool
    failures: list[str]


def _matches(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    """Same tool, and exactly the same arguments (an extra argument is a different call)."""
    return bool(expected["name"] == actual["name"] and expected["args"] == actual["args"])


def calls_of(turn: Turn, resumed: bool) -> list[dict[str, Any]]:
    """The calls a turn made: proposed by the model, or (on resume) those that then ran."""
    if not resumed:
        return [{"name": c["name"], "args": c["args"]} for c in turn.proposed]
    return [
        {"name": e["name"], "args": e["args"]} for e in turn.events if e["type"] == "tool_start"
    ]


def judge_turn(
    index: int, spec: dict[str, Any], turn: Turn, strict: bool, typed: list[str]
) -> list[str]:
    """Failures of one turn against its expectations; `typed` is what the user has said."""
    failures = []
    where = f"turn {index + 1}"
    if "tools" in spec:
        expected = spec["tools"] or []
        actual = calls_of(turn, "resume" in spec)
        position = 0
        for want in expected:
            while position < len(actual) and not _matches(want, actual[position]):
                position += 1
            if position == len(actual):
                failures.append(f"{where}: expected call {want}, got {actual}")
                break
            position += 1
        if strict and len(actual) != len(expected):
            failures.append(f"{where}: expected {len(expected)} call(s), got {actual}")
    said = " ".join(typed).lower()
    for text in spec.get("reply_contains", []):
        if text.lower() in said:
            # Echoing the user would satisfy it: the phrase must be one only the agent knows.
            failures.append(f"{where}: reply_contains {text!r} is in what the user typed")
        elif text.lower() not in turn.reply.lower():
            failures.append(f"{where}: reply lacks {text!r}: {turn.reply!r}")
    for text in spec.get("reply_excludes", []):
        if text.lower() in turn.reply.lower():
            failures.append(f"{where}: reply contains {text!r}: {turn.reply!r}")
    if "interrupt" in spec:
        actions = [a["action"] for a in (turn.interrupt or {}).get("actions", [])]
        named = spec["interrupt"]
        want = named if isinstance(named, list) else [named] if named else []
        if actions != want:
            failures.append(f"{where}: expected confirmation {want}, got {actions}")
    for status in spec.get("tool_status", []):
        statuses = [e["status"] for e in turn.executed]
        if status not in statuses:
            failures.append(f"{where}: no tool ended {status!r}: {statuses}")
    return failures


def run_case(case: dict[str, Any], chatter: Chatter, api: httpx.Client, *, strict: bool) -> Verdict:
    """Play the turns, then check the final state."""
    values = placeholders(clock.today())
    failures: list[str] = []
    typed: list[str] = []
    for index, raw in enumerate(case["turns"]):
        spec = _fill(raw, values)
        if "user" in spec:
            typed.append(spec["user"])
            turn = chatter.say(spec["user"])
        else:
            turn = chatter.resume(spec["resume"])
        failures += judge_turn(index, spec, turn, strict, typed)
    final = (case.get("final") or {}).get("sites")
    if final is not None:
        for tenant in TENANTS:
            got = site_names(api, tenant)
            if got != sorted(final.get(tenant, [])):
                failures.append(
                    f"final: tenant {tenant} has sites {got}, expected {final.get(tenant, [])}"
                )
    return Verdict(not failures, failures)
