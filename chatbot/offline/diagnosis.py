"""The offline planner's answer to a diagnosis: the verdict first, then its evidence."""

from __future__ import annotations

from typing import Any

from chatbot.offline.answers import _during

MAX_LINES = 6
SEVERITY = {"CRITICAL": "fatal error", "ERROR": "error", "WARNING": "warning"}


def _evidence(data: dict[str, Any]) -> list[str]:
    """The lines that back the verdict: slow log, errors, paths, queries, cache, changes."""
    lines: list[str] = []
    for slow in data.get("slow_requests", [])[:2]:
        stack = " ← ".join(slow["trace"][:4]) or slow["script"]
        lines.append(f"- PHP slow log, {slow['time'][11:19]} UTC: {stack}")
    for problem in data.get("php_errors", [])[:3]:
        where = f" ({problem['where']})" if problem.get("where") else ""
        label = SEVERITY.get(problem["severity"], problem["severity"].lower())
        times = "once" if problem["count"] == 1 else f"{problem['count']} times"
        lines.append(f"- PHP {label}: {problem['message']}{where}, {times}")
    for path in data.get("error_paths", [])[:3]:
        lines.append(
            f"- {path['path']}: {path['errors']} of {path['requests']} requests failed (5xx)"
        )
    for path in data.get("slowest_paths", [])[:3]:
        if path.get("p95_ms") is not None:
            lines.append(
                f"- {path['path']}: p95 {path['p95_ms']:.0f} ms over {path['requests']} requests"
            )
    for query in data.get("slow_queries", [])[:2]:
        lines.append(f"- slow query, {query['seconds']} s: {query['query'][:160]}")
    saturation = data.get("saturation") or {}
    if saturation.get("reached"):
        lines.append(f"- every PHP worker was busy {saturation['reached']} time(s)")
    cache = ", ".join(
        f"{row['cache']} {row['requests']} (p95 {row['p95_ms']:.0f} ms)"
        for row in data.get("cache", [])
        if row.get("p95_ms") is not None
    )
    if cache:
        share = data.get("uncached_share")
        uncached = f"; {share:.0%} uncached" if share is not None else ""
        lines.append(f"- page cache: {cache}{uncached}")
    changes = data.get("changes", [])
    if changes:
        latest = changes[0]
        lines.append(
            f"- latest change: {latest['label']} at {latest['time'][:16]} ({latest['status']})"
        )
    return lines[: MAX_LINES + 2]


def diagnose_site(args: dict[str, Any], data: dict[str, Any], label: str) -> str:
    """The verdict, what to do, and the evidence it rests on."""
    verdict = data["verdict"]
    text = [f"**{data['site']}** {_during(label)}: {verdict['summary']}"]
    if verdict.get("action"):
        text.append(f"What to do: {verdict['action']}")
    evidence = _evidence(data)
    if evidence:
        text.append("Evidence:")
        text.extend(evidence)
    if data.get("truncated"):
        text.append("(The logs are large: only their newest part was read.)")
    return "\n".join(text)
