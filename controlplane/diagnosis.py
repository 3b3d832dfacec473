"""Why a site is slow or broken: the evidence a provider gathers, and the verdict drawn from it."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from controlplane.observability import LatencyRead, LogEntry, Severity, percentile

SLOW_MS = 1000.0  # a path whose p95 is past this is slow (as the chat's "is it slow?" says)
UNCACHED_SHARE = 0.5  # past this share of uncached page requests, the cache is a cause
TOP = 5
_CACHE_STATES = ("HIT", "MISS", "BYPASS")
_PHP_PREFIX = re.compile(r"^PHP (Fatal error|Parse error|Warning|Notice|Deprecated):\s+", re.I)
_WHERE = re.compile(r"\s+in (/\S+?)(?: on line |:)(\d+)")
# One left-to-right scan, so a quote inside a comment or `--` inside a string is read as
# what it is: quoted identifiers are kept, literals become `?`, comments (which may quote a
# secret as well as any literal) are dropped.
_SQL_TOKEN = re.compile(
    r"(?P<name>`(?:[^`]|``)*`)"
    r"|(?P<literal>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\b(?:0x[0-9a-f]+|\d+(?:\.\d+)?(?:e[+-]?\d+)?)\b)"
    r"|(?P<comment>/\*.*?(?:\*/|\Z)|(?:--(?=\s|\Z)|#)[^\n]*)",
    re.I | re.S,
)

# Frames of PHP itself, not of the site's code: the waits and PHP's include/eval pseudo-frames.
_NOT_SITE_CODE = ("sleep()", "usleep()", "time_nanosleep()", "[")
LABELS = {"CRITICAL": "fatal error", "ERROR": "error", "WARNING": "warning"}
Status = Literal["healthy", "warnings", "slow", "saturated", "broken", "down"]


class SlowRequest(BaseModel):
    """One PHP-FPM slow-log entry: a request still running past the slow-log timeout."""

    time: datetime
    script: str
    trace: list[str] = Field(description="Innermost call first: 'function() file:line'")


class PoolSaturation(BaseModel):
    """How often the site's PHP workers were all busy (requests queued)."""

    max_children: int | None = Field(
        description="The limit: PHP workers locally, Cloud Run instances on gcp"
    )
    reached: int = Field(description="Times max_children was reached since counted_since")
    last: datetime | None = None
    counted_since: datetime | None = Field(default=None, description="When counting began")


class SlowQuery(BaseModel):
    """A query of the site's database that ran past the server's long_query_time."""

    time: datetime
    seconds: float
    rows_examined: int
    query: str = Field(description="The statement with its literals replaced by ?")


class SiteEvidence(BaseModel):
    """What a provider read about a site over a window (each read bounded)."""

    requests: list[LogEntry]
    php: list[LogEntry]
    slow_requests: list[SlowRequest] = []
    saturation: PoolSaturation | None = None
    slow_queries: list[SlowQuery] = []
    truncated: bool = Field(default=False, description="A read budget ended a read early")
    unavailable: list[str] = Field(default=[], description="Evidence this provider cannot read")


class CacheLatency(BaseModel):
    """Requests and latency of one page-cache status."""

    cache: str
    requests: int
    p50_ms: float | None
    p95_ms: float | None


class PathLatency(BaseModel):
    """Requests of one path: how many, how slow, how many failed."""

    path: str
    requests: int
    p95_ms: float | None
    max_ms: float | None
    errors: int = Field(description="Answers with status 5xx")


class PhpProblem(BaseModel):
    """One PHP error message and how often it was logged."""

    severity: str
    message: str
    where: str | None = Field(description="file:line PHP names, from wp-content/ (etc.) on")
    count: int
    last: datetime


class Change(BaseModel):
    """A recent change to the site (an operation of the control plane)."""

    time: datetime
    kind: str
    label: str
    status: str
    operation: str


class Probe(BaseModel):
    """The site's health probe (homepage, wp-login.php, /wp-json/, new PHP fatals)."""

    ok: bool
    check: str | None = Field(description="The check that failed, None when all passed")
    detail: str


class Verdict(BaseModel):
    """The cause, named from the evidence, and what to do about it."""

    status: Status
    summary: str
    cause: str | None
    action: str | None
    findings: list[str]


class DiagnosisRead(BaseModel):
    """Evidence about a site over a window, and the verdict drawn from it."""

    site: str
    since: datetime
    until: datetime
    requests: int
    latency_ms: LatencyRead
    errors: int = Field(description="Responses with status 5xx")
    cache: list[CacheLatency]
    uncached_share: float | None = Field(description="Share of page requests not from cache")
    slowest_paths: list[PathLatency]
    error_paths: list[PathLatency]
    slow_requests: list[SlowRequest]
    saturation: PoolSaturation | None
    php_errors: list[PhpProblem]
    slow_queries: list[SlowQuery]
    changes: list[Change]
    probe: Probe
    truncated: bool
    unavailable: list[str]
    verdict: Verdict


def redact_sql(statement: str, limit: int = 500) -> str:
    """A statement with its string and number literals as `?` and its comments dropped
    (they may hold secrets)."""
    text = _SQL_TOKEN.sub(_redacted_token, statement)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _redacted_token(found: re.Match[str]) -> str:
    if found.lastgroup == "name":
        return found.group()
    return "?" if found.lastgroup == "literal" else " "


def _ms(values: list[float], fraction: float) -> float | None:
    found = percentile(values, fraction)
    return round(found, 1) if found is not None else None


def _path(entry: LogEntry) -> str:
    return (entry.path or "/").split("?", 1)[0]


def cache_split(requests: list[LogEntry]) -> tuple[list[CacheLatency], float | None]:
    """Latency per cache status (HIT/MISS/BYPASS, others as they come) and the uncached
    share of the requests the page cache saw."""
    groups: dict[str, list[float]] = defaultdict(list)
    for entry in requests:
        if entry.cache:
            groups[entry.cache.upper()].append(entry.latency_ms or 0.0)
    order = [*_CACHE_STATES, *sorted(set(groups) - set(_CACHE_STATES))]
    split = [
        CacheLatency(
            cache=state,
            requests=len(groups[state]),
            p50_ms=_ms(sorted(groups[state]), 0.5),
            p95_ms=_ms(sorted(groups[state]), 0.95),
        )
        for state in order
        if groups.get(state)
    ]
    seen = sum(len(v) for v in groups.values())
    uncached = seen - len(groups.get("HIT", []))
    return split, (round(uncached / seen, 4) if seen else None)


def by_path(requests: list[LogEntry]) -> list[PathLatency]:
    """Every path's requests, slowest p95 first."""
    groups: dict[str, list[LogEntry]] = defaultdict(list)
    for entry in requests:
        groups[_path(entry)].append(entry)
    paths = []
    for path, entries in groups.items():
        latencies = sorted(e.latency_ms or 0.0 for e in entries)
        paths.append(
            PathLatency(
                path=path,
                requests=len(entries),
                p95_ms=_ms(latencies, 0.95),
                max_ms=round(latencies[-1], 1) if latencies else None,
                errors=sum(1 for e in entries if (e.status or 0) >= 500),
            )
        )
    return sorted(paths, key=lambda p: (-(p.p95_ms or 0), -p.requests, p.path))


def php_problems(entries: list[LogEntry]) -> list[PhpProblem]:
    """PHP fatals first, then warnings, each message once with its count, most frequent first."""
    counts: Counter[tuple[str, str, str | None]] = Counter()
    last: dict[tuple[str, str, str | None], datetime] = {}
    for entry in entries:
        try:
            severity = Severity.parse(entry.severity).name
        except ValueError:
            continue
        line = entry.message.split("\n", 1)[0]
        if re.search(r"\b(fatal|parse) error\b", line, re.I):
            severity = "CRITICAL"  # Cloud Logging labels PHP's stderr ERROR at best
        if severity not in ("CRITICAL", "ERROR", "WARNING"):
            continue
        first = _PHP_PREFIX.sub("", line).strip()
        where = _WHERE.search(first)
        message = _WHERE.split(first, 1)[0] if where else first
        key = (
            severity,
            message[:300],
            short_file(f"{where.group(1)}:{where.group(2)}") if where else None,
        )
        counts[key] += 1
        last[key] = max(last.get(key, entry.time), entry.time)
    rank = {"CRITICAL": 0, "ERROR": 1, "WARNING": 2}
    ordered = sorted(counts.items(), key=lambda kv: (rank[kv[0][0]], -kv[1], kv[0][1]))
    return [
        PhpProblem(severity=sev, message=msg, where=where, count=n, last=last[(sev, msg, where)])
        for (sev, msg, where), n in ordered[: TOP * 2]
    ]


def short_file(path: str) -> str:
    """A site file from `wp-content/` or `wp-includes/` on (the site root is the platform's)."""
    for marker in ("/wp-content/", "/wp-includes/", "/wp-admin/"):
        if marker in path:
            return marker.lstrip("/") + path.split(marker, 1)[1]
    return path.rsplit("/", 1)[-1]


def _frame(frame: str) -> str:
    """ "f() /srv/x/wp-content/mu-plugins/a.php:4" -> "f() (wp-content/mu-plugins/a.php:4)"."""
    function, _, where = frame.partition(" ")
    return f"{function} ({short_file(where)})" if where else function


def slow_code(slow: list[SlowRequest]) -> str | None:
    """The innermost site function the slow requests were caught in, most frequent first."""
    frames: Counter[str] = Counter()
    for request in slow:
        named = [f for f in request.trace if not f.startswith(_NOT_SITE_CODE)]
        if request.trace:
            # The innermost frame, and the site's function it ran in (once, when it is it).
            shown = request.trace[:1] + [f for f in named[:1] if f != request.trace[0]]
            frames[" in ".join(_frame(f) for f in shown if f)] += 1
    return frames.most_common(1)[0][0] if frames else None


def verdict(
    *,
    since: datetime,
    requests: list[LogEntry],
    paths: list[PathLatency],
    uncached_share: float | None,
    php: list[PhpProblem],
    evidence: SiteEvidence,
    changes: list[Change],
    probe: Probe,
) -> Verdict:
    """The worst cause the evidence shows, what to do, and every finding; healthy only when
    nothing in the evidence says otherwise."""
    findings: list[str] = []
    fatals = [p for p in php if p.severity in ("CRITICAL", "ERROR")]
    warnings = [p for p in php if p.severity == "WARNING"]
    failing = sorted((p for p in paths if p.errors), key=lambda p: -p.errors)
    slow_paths = [p for p in paths if (p.p95_ms or 0) >= SLOW_MS]
    code = slow_code(evidence.slow_requests)
    latest = changes[0] if changes else None
    after = (
        f" It began after the latest change, {latest.label.lower()} at "
        f"{latest.time:%Y-%m-%d %H:%M} UTC: consider undoing it."
        if latest and (fatals or failing or not probe.ok) and latest.time > since
        else ""
    )
    if not probe.ok:
        findings.append(f"health probe failed ({probe.check}): {probe.detail}")
    for problem in fatals[:TOP]:
        where = f" at {problem.where}" if problem.where else ""
        findings.append(
            f"PHP {LABELS[problem.severity]}: {problem.message}{where} ({problem.count}x)"
        )
    for path in failing[:TOP]:
        findings.append(f"{path.path} answered 5xx {path.errors} of {path.requests} times")
    for path in slow_paths[:TOP]:
        findings.append(
            f"{path.path} is slow: p95 {path.p95_ms:.0f} ms over {path.requests} requests"
        )
    if code:
        findings.append(
            f"the PHP slow log caught {len(evidence.slow_requests)} request(s) in {code}"
        )
    for query in evidence.slow_queries[:TOP]:
        findings.append(
            f"slow query ({query.seconds:.1f} s, {query.rows_examined} rows): {query.query}"
        )
    saturated = evidence.saturation is not None and evidence.saturation.reached > 0
    if saturated and evidence.saturation is not None:
        findings.append(
            f"all PHP workers were busy {evidence.saturation.reached} time(s) "
            f"(max_children {evidence.saturation.max_children})"
        )
    if uncached_share is not None and uncached_share > UNCACHED_SHARE and requests:
        findings.append(f"{uncached_share:.0%} of page requests did not come from the page cache")
    for problem in warnings[:TOP]:
        findings.append(f"PHP warning: {problem.message} ({problem.count}x)")

    if not probe.ok or fatals or failing:
        fatal = fatals[0] if fatals else None
        failed_path = failing[0].path if failing else None
        what = (
            f"PHP {LABELS[fatal.severity]} \u201c{fatal.message}\u201d"
            + (f" in {fatal.where}" if fatal.where else "")
            if fatal
            else f"the health probe: {probe.detail}"
            if not probe.ok
            else f"{failing[0].errors} server errors"
        )
        on = f" on {failed_path}" if failed_path else ""
        status: Status = "down" if not probe.ok and probe.check == "homepage" else "broken"
        where = f" ({fatal.where})" if fatal and fatal.where else ""
        return Verdict(
            status=status,
            summary=f"The site is {status}: {what}{on}.{after}",
            cause=f"{what}{on}",
            action=(
                f"Fix or disable the code that fails{where}; the site's logs have the full "
                "error. If a recent update or deployment brought it, roll that back."
            ),
            findings=findings,
        )
    if slow_paths or code or evidence.slow_queries:
        top = slow_paths[0] if slow_paths else None
        what = f"{top.path} takes {top.p95_ms / 1000:.1f} s (p95)" if top and top.p95_ms else ""
        why = (
            f"the PHP slow log shows it in {code}"
            if code
            else f"a slow database query ({evidence.slow_queries[0].seconds:.1f} s)"
            if evidence.slow_queries
            else "PHP time (no slow-log entry caught it)"
        )
        action = (
            f"Speed up or remove {code.rsplit(' in ', 1)[-1].split(' ', 1)[0]} (the slow "
            "log has the full stack)"
            if code
            else "Add an index for the slow query or cache its result"
            if evidence.slow_queries
            else "Profile the slow path's plugins and theme code"
        )
        if saturated:
            action += "; the PHP workers also ran out, so slow requests queue the others"
        return Verdict(
            status="slow",
            summary=f"The site is slow: {what or 'requests run long'}; {why}.",
            cause=f"{what}: {why}" if what else why,
            action=action + ".",
            findings=findings,
        )
    if saturated:
        return Verdict(
            status="saturated",
            summary="Requests queue: every PHP worker was busy at times.",
            cause="PHP-FPM reached max_children",
            action="Cut the time each request takes (the page cache, slow plugins) or raise "
            "the workers' limit.",
            findings=findings,
        )
    p95 = percentile(sorted(e.latency_ms or 0.0 for e in requests), 0.95)
    figures = (
        f"{len(requests)} requests, p95 {p95:.0f} ms, no server errors"
        if requests and p95 is not None
        else "no requests in the window"
    )
    if warnings:
        return Verdict(
            status="warnings",
            summary=f"The site works ({figures}), but PHP logs warnings: "
            f"\u201c{warnings[0].message}\u201d.",
            cause=None,
            action="Fix the warnings' code when convenient; they do not stop pages.",
            findings=findings,
        )
    return Verdict(
        status="healthy",
        summary=f"The site is healthy: the health probe passes, {figures}, no PHP errors "
        "and no slow requests.",
        cause=None,
        action=None,
        findings=findings,
    )


def diagnose(
    site: str,
    since: datetime,
    until: datetime,
    evidence: SiteEvidence,
    changes: list[Change],
    probe: Probe,
) -> DiagnosisRead:
    """The evidence summarised, and its verdict."""
    requests = [e for e in evidence.requests if since <= e.time <= until]
    php = php_problems([e for e in evidence.php if since <= e.time <= until])
    cache, uncached = cache_split(requests)
    paths = by_path(requests)
    latencies = sorted(e.latency_ms or 0.0 for e in requests)
    return DiagnosisRead(
        site=site,
        since=since,
        until=until,
        requests=len(requests),
        latency_ms=LatencyRead(
            p50=_ms(latencies, 0.5), p95=_ms(latencies, 0.95), p99=_ms(latencies, 0.99)
        ),
        errors=sum(1 for e in requests if (e.status or 0) >= 500),
        cache=cache,
        uncached_share=uncached,
        slowest_paths=paths[:TOP],
        error_paths=sorted((p for p in paths if p.errors), key=lambda p: -p.errors)[:TOP],
        slow_requests=evidence.slow_requests[:TOP],
        saturation=evidence.saturation,
        php_errors=php,
        slow_queries=evidence.slow_queries[:TOP],
        changes=changes,
        probe=probe,
        truncated=evidence.truncated,
        unavailable=evidence.unavailable,
        verdict=verdict(
            since=since,
            requests=requests,
            paths=paths,
            uncached_share=uncached,
            php=php,
            evidence=evidence,
            changes=changes,
            probe=probe,
        ),
    )
