"""The logs API's work is bounded: files read backwards once, stopping at `limit`, at
`since` or at the request's byte budget, and each caller has a few reads at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controlplane.observability import LogEntry, LogQuery, Severity, matches
from controlplane.providers.local.logs import (
    ReadBudget,
    parse_access,
    parse_nginx_errors,
    parse_php_errors,
    reverse_lines,
    scan_logs,
    tail_lines,
)
from tests.conftest import AuthHeaders, wait_for_operation

BASE = datetime(2030, 1, 1, tzinfo=UTC)
PHP_LINES = 390_000
MIB = 1024 * 1024


def _php_stamp(when: datetime) -> str:
    return when.strftime("%d-%b-%Y %H:%M:%S") + " UTC"


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """390,000 PHP log lines (a fatal error with a stack trace every 1,000 entries), plus
    access and server logs; every entry at its own second, PHP on even ones."""
    root = tmp_path_factory.mktemp("logs")
    php, access, server = root / "php-error.log", root / "access.json", root / "error.log"
    with php.open("w") as out:
        i = 0
        while i < PHP_LINES:
            stamp = _php_stamp(BASE + timedelta(seconds=2 * i))
            if i % 1000 == 999:
                out.write(f"[{stamp}] PHP Fatal error:  boom {i} in /x.php:3\n")
                out.write("Stack trace:\n#0 {main}\n")
                i += 3
            else:
                out.write(f"[{stamp}] PHP Warning:  Undefined variable $v{i} in /x.php on line 7\n")
                i += 1
    with access.open("w") as out:
        for j in range(0, 2 * PHP_LINES, 997):
            when = (BASE + timedelta(seconds=j | 1)).isoformat()
            status = 500 if j % 3 == 0 else 200
            out.write(f'{{"time":"{when}","method":"GET","uri":"/p{j}","status":{status},'
                      f'"request_time":"0.010","bytes":"10","cache":"MISS"}}\n')  # fmt: skip
    server.write_text("")
    return access, server, php


_EVERYTHING: dict[tuple[Path, ...], list[LogEntry]] = {}


def _reference(paths: tuple[Path, Path, Path], query: LogQuery) -> list[tuple[datetime, str]]:
    """What an unbounded read of everything would answer."""
    if paths not in _EVERYTHING:
        access, server, php = paths
        everything = [
            *parse_access(tail_lines(access, 1 << 30)),
            *parse_nginx_errors(tail_lines(server, 1 << 30)),
            *parse_php_errors(tail_lines(php, 1 << 30)),
        ]
        everything.sort(key=lambda e: e.time, reverse=True)
        _EVERYTHING[paths] = everything
    found = [(e.time, e.message) for e in _EVERYTHING[paths] if matches(e, query)]
    return found[: query.limit]


def _query(**changes: object) -> LogQuery:
    values: dict[str, object] = {"since": BASE, "until": BASE + timedelta(days=365), "limit": 100}
    return LogQuery(**(values | changes))


def test_the_newest_entries_cost_a_few_blocks(logs: tuple[Path, Path, Path]) -> None:
    assert logs[2].stat().st_size > 30 * MIB
    budget = ReadBudget(4 * MIB)
    found, more = scan_logs(logs, _query(), budget)
    assert [(e.time, e.message) for e in found] == _reference(logs, _query())
    assert more and len(found) == 100
    assert budget.used <= 3 * 64 * 1024  # one block of each file


def test_a_rare_severity_reads_back_until_the_limit(logs: tuple[Path, Path, Path]) -> None:
    query = _query(severity=Severity.CRITICAL, limit=5)
    budget = ReadBudget(4 * MIB)
    found, more = scan_logs(logs, query, budget)
    assert [(e.time, e.message) for e in found] == _reference(logs, query)
    assert found[0].message.endswith("in /x.php:3\nStack trace:\n#0 {main}")
    assert [e.time for e in found] == sorted((e.time for e in found), reverse=True)
    assert more and budget.used < 2 * MIB


def test_a_window_in_the_past_stops_at_since(logs: tuple[Path, Path, Path]) -> None:
    end = BASE + timedelta(seconds=2 * PHP_LINES)
    query = _query(since=end - timedelta(minutes=150), until=end - timedelta(hours=2), limit=1000)
    budget = ReadBudget(16 * MIB)
    found, more = scan_logs(logs, query, budget)
    assert [(e.time, e.message) for e in found] == _reference(logs, query)
    assert 850 < len(found) < 1000 and not more
    assert budget.used < MIB  # 2.5 hours of a 34 MB log, not the whole tail


def test_nothing_matching_reads_the_budget_and_no_more(logs: tuple[Path, Path, Path]) -> None:
    budget = ReadBudget(4 * MIB)
    found, more = scan_logs(logs, _query(text="never logged"), budget)
    assert found == [] and more  # the budget ended the search: say more may match
    assert budget.used == 4 * MIB


def test_reverse_lines_is_the_file_backwards(tmp_path: Path) -> None:
    path = tmp_path / "f.log"
    lines = [f"line {i} " + "x" * (i % 97) for i in range(5000)] + ["", "last\r"]
    path.write_text("\n".join(lines) + "\n")
    seen = list(reverse_lines(path, ReadBudget(1 << 30), block=1000))
    assert seen == [line.rstrip("\r") for line in reversed(lines) if line]
    cut = list(reverse_lines(path, ReadBudget(5000), block=1000))
    assert cut == seen[: len(cut)] and 0 < len(cut) < len(seen)


def test_a_caller_past_its_concurrent_reads_gets_429(client: TestClient, auth: AuthHeaders) -> None:
    admin = auth("admin")
    client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin)
    created = client.post(
        "/v1/tenants/acme/sites", json={"name": "crumbs", "admin_email": "o@x.example"},
        headers=admin,
    )  # fmt: skip
    wait_for_operation(client, created.json()["operation"]["id"], admin)
    alice = auth("tenant", "acme", sub="alice")
    url = "/v1/tenants/acme/sites/crumbs/logs"
    issuer = client.app.state.platform.verifier  # type: ignore[attr-defined]
    assert client.get(url, headers=alice).status_code == 200  # creates the slots
    slots = client.app.state.log_read_slots  # type: ignore[attr-defined]
    key = issuer.verify(alice["Authorization"].split()[1]).key  # (issuer, sub, tenants)
    with slots.hold(key), slots.hold(key):  # two reads of alice's still running
        for path in (url, "/v1/tenants/acme/sites/crumbs/metrics"):
            busy = client.get(path, headers=alice)
            assert busy.status_code == 429, busy.text
            assert busy.headers["retry-after"] == "1"
            assert "log or metric reads running" in busy.json()["detail"]
        assert client.get(url, headers=auth("tenant", "acme", sub="bob")).status_code == 200
    assert client.get(url, headers=alice).status_code == 200  # slots given back
