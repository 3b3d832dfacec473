"""Log parsing, filtering and metrics; the logs and metrics API with the memory provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from controlplane.kernel import clock
from controlplane.observability import (
    LogEntry,
    LogQuery,
    Severity,
    matches,
    metrics_from_access,
    parse_time,
)
from controlplane.providers.local.logs import parse_access, parse_nginx_errors, parse_php_errors
from controlplane.providers.memory import MemoryProvider
from tests.conftest import AuthHeaders, ready_crumbs

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_parse_access_lines() -> None:
    line = ('{"time":"2026-11-22T11:59:00+00:00","host":"a","method":"GET","uri":"/x?y=1",'
            '"status":502,"bytes":120,"request_time":0.250,"upstream_time":"0.249","cache":"MISS",'
            '"remote":"127.0.0.1","user_agent":"curl"}')  # fmt: skip
    (entry,) = parse_access([line, "not json", '{"time": "bad"}'])
    assert entry.status == 502 and entry.severity == "ERROR" and entry.latency_ms == 250.0
    assert (
        entry.path == "/x?y=1"
        and entry.cache == "MISS"
        and entry.message == "GET /x?y=1 502 250 ms"
    )


def test_parse_php_errors_joins_stack_traces() -> None:
    lines = [
        "[22-Nov-2026 11:58:00 UTC] PHP Warning:  Undefined variable $x in /s/a.php on line 3",
        "[22-Nov-2026 11:59:00 UTC] PHP Fatal error:  Uncaught Error: Call to undefined function f()",
        "Stack trace:",
        "#0 {main}",
        "  thrown in /s/b.php on line 2",
    ]
    warning, fatal = list(parse_php_errors(lines))
    assert warning.severity == "WARNING" and fatal.severity == "CRITICAL"
    assert fatal.time == datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    assert fatal.message.endswith("thrown in /s/b.php on line 2") and "#0 {main}" in fatal.message


def test_parse_nginx_errors() -> None:
    line = ('2026/11/22 11:59:30 [error] 12#12: *7 connect() to unix:/s.sock failed, client: 127.0.0.1, '
            'server: a, request: "GET /shop HTTP/1.1", host: "a"')  # fmt: skip
    (entry,) = parse_nginx_errors([line, "garbage"])
    assert entry.severity == "ERROR" and entry.method == "GET" and entry.path == "/shop"


def _entry(minutes_ago: float, status: int, latency: float, cache: str | None = None) -> LogEntry:
    return LogEntry(
        time=NOW - timedelta(minutes=minutes_ago), source="access",
        severity="ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO",
        message=f"GET /p {status}", method="GET", path="/p" if status != 404 else "/missing",
        status=status, latency_ms=latency, bytes=100, cache=cache,
    )  # fmt: skip


def test_metrics_are_hand_checked() -> None:
    entries = [_entry(1, 200, 10, "HIT"), _entry(2, 200, 20, "HIT"), _entry(3, 200, 30, "MISS"),
               _entry(4, 404, 40), _entry(5, 500, 50), _entry(90, 500, 999)]  # fmt: skip
    m = metrics_from_access("s", entries, NOW - timedelta(hours=1), NOW)
    assert m.requests == 5 and m.errors == 1 and m.client_errors == 1
    assert m.error_rate == 0.2 and m.bytes_sent == 500
    assert (m.latency_ms.p50, m.latency_ms.p95, m.latency_ms.p99) == (30, 50, 50)
    assert m.cache_hit_ratio == round(2 / 3, 4)
    assert m.status_counts == {"2xx": 3, "4xx": 1, "5xx": 1}
    assert m.requests_per_minute == round(5 / 60, 3)


def test_filters() -> None:
    window = {"since": NOW - timedelta(hours=1), "until": NOW}
    ok, missing, broken = _entry(1, 200, 1), _entry(2, 404, 1), _entry(3, 503, 1)
    assert matches(broken, LogQuery(**window, severity=Severity.ERROR))
    assert not matches(missing, LogQuery(**window, severity=Severity.ERROR))
    assert matches(missing, LogQuery(**window, status="4xx")) and not matches(
        ok, LogQuery(**window, status="4xx")
    )
    assert matches(missing, LogQuery(**window, path="/miss")) and not matches(
        ok, LogQuery(**window, path="/miss")
    )
    assert matches(broken, LogQuery(**window, text="get /P 503"))
    assert not matches(_entry(61, 200, 1), LogQuery(**window))


def test_parse_time() -> None:
    assert parse_time("2h", now=NOW) == NOW - timedelta(hours=2)
    assert parse_time("2026-11-22T10:00:00Z") == datetime(2026, 11, 22, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="duration"):
        parse_time("yesterday-ish")


def test_logs_api(client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider) -> None:
    admin = auth("admin")
    site_id = ready_crumbs(client, admin)
    now = clock.now()
    memory_provider.logs.entries[site_id] = [  # type: ignore[attr-defined]
        e.model_copy(update={"time": now - (NOW - e.time)})
        for e in (_entry(1, 200, 5), _entry(2, 500, 80), _entry(200, 500, 80))
    ]
    owner = auth("tenant", "acme")
    body = client.get(
        "/v1/tenants/acme/sites/crumbs/logs?severity=error&since=1h", headers=owner
    ).json()
    assert [e["status"] for e in body["entries"]] == [500] and body["truncated"] is False
    wide = client.get("/v1/tenants/acme/sites/crumbs/logs?since=1d&limit=1", headers=owner).json()
    assert len(wide["entries"]) == 1 and wide["truncated"] is True
    metrics = client.get("/v1/tenants/acme/sites/crumbs/metrics?since=1h", headers=owner).json()
    assert metrics["requests"] == 2 and metrics["errors"] == 1
    for bad in ("severity=loud", "since=soon", "status=6xx", "since=1h&until=2h"):
        response = client.get(f"/v1/tenants/acme/sites/crumbs/logs?{bad}", headers=owner)
        assert response.status_code == 422, (bad, response.text)
    stranger = auth("tenant", "other")
    assert client.get("/v1/tenants/acme/sites/crumbs/logs", headers=stranger).status_code == 404
    viewer = auth("viewer", "acme")
    assert client.get("/v1/tenants/acme/sites/crumbs/metrics", headers=viewer).status_code == 200
