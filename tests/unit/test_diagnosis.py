"""The diagnosis: the verdict from evidence, the API over the memory provider, and the gcp
evidence from Cloud Logging (REST, against the fake) and Cloud Monitoring (gRPC fake)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging, monitoring_v3

from controlplane.credentials import DatabaseVault
from controlplane.diagnosis import (
    Change,
    PoolSaturation,
    Probe,
    SiteEvidence,
    SlowQuery,
    SlowRequest,
    diagnose,
    redact_sql,
)
from controlplane.engine.provider import SiteContext
from controlplane.kernel import clock
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.models import Operation
from controlplane.observability import LogEntry
from controlplane.providers.gcp.base import GcpClients
from controlplane.providers.gcp.logs import CloudLoggingLogs
from controlplane.providers.local.diagnosis import parse_slowlog_reversed
from controlplane.providers.memory import MemoryLogs, MemoryProvider
from controlplane.settings import Settings
from tests.cli_harness import served_cli
from tests.conftest import AuthHeaders, ready_crumbs
from tests.integration.gcp_fakes import FakeLogging
from tests.live import serve
from tests.unit.test_gcp_logs import _request
from tests.unit.test_gcp_monitoring import FakeMetrics, metric_service

__all__ = ["metric_service"]  # the fixture, shared with test_gcp_monitoring.py

NOW = clock.now().replace(microsecond=0)
SINCE = NOW - timedelta(hours=1)
OK = Probe(ok=True, check=None, detail="homepage, wp-login.php and /wp-json/ answer")


def _hit(path: str, ms: float, status: int = 200, cache: str = "MISS", ago: int = 60) -> LogEntry:
    return LogEntry(time=NOW - timedelta(seconds=ago), source="access", severity="INFO",
                    message="", method="GET", path=path, status=status, latency_ms=ms,
                    cache=cache)  # fmt: skip


def _php(message: str, severity: str = "CRITICAL") -> LogEntry:
    return LogEntry(time=NOW - timedelta(seconds=30), source="php", severity=severity,
                    message=message)  # fmt: skip


def _run(evidence: SiteEvidence, probe: Probe = OK, changes: list[Change] | None = None) -> Any:
    return diagnose("crumbs", SINCE, NOW, evidence, changes or [], probe)


def test_a_quiet_fast_site_is_healthy() -> None:
    found = _run(SiteEvidence(requests=[_hit("/", 80, cache="HIT"), _hit("/", 120)], php=[]))
    assert found.verdict.status == "healthy"
    assert "2 requests" in found.verdict.summary
    assert [(c.cache, c.requests) for c in found.cache] == [("HIT", 1), ("MISS", 1)]
    assert found.uncached_share == 0.5


def test_a_slow_path_names_the_path_and_the_slow_log_function() -> None:
    slow = SlowRequest(time=NOW, script="htdocs/index.php", trace=[
        "usleep() /s/wp-content/mu-plugins/x.php:2", "[INCLUDE_OR_EVAL]() /s/wp-settings.php:9",
        "report() /s/wp-content/plugins/stats/stats.php:40"])  # fmt: skip
    requests = [_hit("/", 90, cache="HIT") for _ in range(20)]
    requests += [_hit("/report/", 1600, cache="BYPASS") for _ in range(2)]
    found = _run(SiteEvidence(requests=requests, php=[], slow_requests=[slow]))
    verdict = found.verdict
    assert verdict.status == "slow"
    assert "/report/ takes 1.6 s" in verdict.summary
    assert "report() (wp-content/plugins/stats/stats.php:40)" in verdict.summary
    assert verdict.action and verdict.action.startswith("Speed up or remove report()")
    assert found.slowest_paths[0].path == "/report/" and found.slowest_paths[0].requests == 2


def test_numbers_that_say_slow_are_never_called_healthy() -> None:
    # The overall p95 is fine (most requests are cache hits) but one path is slow.
    requests = [_hit("/", 5, cache="HIT") for _ in range(98)] + [_hit("/cart/", 3000)] * 2
    found = _run(SiteEvidence(requests=requests, php=[]))
    assert found.latency_ms.p95 is not None and found.latency_ms.p95 < 1000
    assert found.verdict.status == "slow" and "/cart/" in found.verdict.summary


def test_a_fatal_names_the_error_the_file_and_the_path() -> None:
    fatal = _php("PHP Fatal error:  Uncaught Error: Call to undefined function boom() in "
                 "/srv/s/htdocs/wp-content/plugins/shop/shop.php:12\nStack trace:\n#0 {main}")  # fmt: skip
    requests = [_hit("/", 100), _hit("/checkout/", 40, status=500), _hit("/checkout/", 41, 500)]
    found = _run(SiteEvidence(requests=requests, php=[fatal, _php("PHP Warning:  x", "WARNING")]))
    verdict = found.verdict
    assert verdict.status == "broken"
    assert "Call to undefined function boom()" in verdict.summary
    assert "wp-content/plugins/shop/shop.php:12" in verdict.summary
    assert "on /checkout/" in verdict.summary
    assert found.php_errors[0].severity == "CRITICAL" and found.php_errors[1].severity == "WARNING"


def test_a_failed_probe_is_down_and_names_a_recent_change() -> None:
    change = Change(time=NOW - timedelta(minutes=5), kind="update_site", label="Update site",
                    status="succeeded", operation="op1")  # fmt: skip
    probe = Probe(ok=False, check="homepage", detail="the homepage answers HTTP 500")
    found = _run(SiteEvidence(requests=[], php=[]), probe, [change])
    assert found.verdict.status == "down"
    assert "HTTP 500" in found.verdict.summary and "update site" in found.verdict.summary


def test_saturation_and_slow_queries_are_causes() -> None:
    busy = PoolSaturation(max_children=5, reached=3, counted_since=SINCE)
    assert _run(SiteEvidence(requests=[_hit("/", 50)], php=[], saturation=busy)).verdict.status == (
        "saturated"
    )
    query = SlowQuery(time=NOW, seconds=2.5, rows_examined=90000, query="SELECT ?")
    found = _run(SiteEvidence(requests=[_hit("/", 50)], php=[], slow_queries=[query]))
    assert found.verdict.status == "slow" and "slow database query (2.5 s)" in found.verdict.summary


def test_warnings_alone_are_not_healthy() -> None:
    found = _run(SiteEvidence(requests=[_hit("/", 50)], php=[_php("PHP Warning:  w", "WARNING")]))
    assert found.verdict.status == "warnings"


def test_sql_literals_are_hidden() -> None:
    assert redact_sql("SELECT * FROM wp_users WHERE user_pass = 'x\\'y' AND id = 12.5") == (
        "SELECT * FROM wp_users WHERE user_pass = ? AND id = ?"
    )
    # A hex literal is a string too ("secret" here), and an exponent is part of its number.
    assert redact_sql("SELECT 1 FROM t WHERE v = 0x736563726574 OR w = 0X73 OR n > 1e10") == (
        "SELECT ? FROM t WHERE v = ? OR w = ? OR n > ?"
    )
    # Comments are dropped: a plugin may tag its queries with anything, a key included. A quote
    # in a comment starts no string, `--` in a string starts no comment, names stay as written.
    assert (
        redact_sql(
            "SELECT /* api_key=sk_live_abc, it's */ a FROM `t--1` -- token sk_live_def\n"
            "WHERE b = 'x -- y' # pass hunter2\nAND c /* unterminated sk_live_ghi"
        )
        == "SELECT a FROM `t--1` WHERE b = ? AND c"
    )


def test_a_slow_site_function_that_is_the_innermost_frame_is_named_once() -> None:
    busy = SlowRequest(time=NOW, script="htdocs/index.php", trace=[
        "spin() /s/wp-content/plugins/p/p.php:5", "[INCLUDE_OR_EVAL]() /s/wp-settings.php:9"])  # fmt: skip
    found = _run(SiteEvidence(requests=[_hit("/", 50)], php=[], slow_requests=[busy]))
    assert "in spin() (wp-content/plugins/p/p.php:5)." in found.verdict.summary
    assert found.verdict.summary.count("spin()") == 1


def test_the_slow_log_keeps_its_own_pool_only() -> None:
    text = """
[02-Dec-2026 03:50:01]  [pool other] pid 1
script_filename = /x/other/htdocs/index.php
[0x1] evil() /x/other/a.php:1

[02-Dec-2026 03:51:01]  [pool mine] pid 2
script_filename = /x/mine/htdocs/index.php
[0x2] usleep() /x/mine/htdocs/wp-content/mu-plugins/a.php:3
[0x3] slow() /x/mine/htdocs/wp-content/mu-plugins/a.php:5
"""
    found = list(parse_slowlog_reversed(iter(reversed(text.splitlines())), "mine", "/x/mine/"))
    assert len(found) == 1
    assert found[0].script == "htdocs/index.php"
    assert found[0].trace == ["usleep() htdocs/wp-content/mu-plugins/a.php:3",
                              "slow() htdocs/wp-content/mu-plugins/a.php:5"]  # fmt: skip


def test_the_api_answers_and_refuses_a_bad_window(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = auth(Role.ADMIN)
    site_id = ready_crumbs(client, admin)
    logs = memory_provider.logs
    assert isinstance(logs, MemoryLogs)
    # A request from before the site was built (the build's own) is not the site's evidence.
    after_build = _hit("/slow/", 2500).model_copy(update={"time": clock.now()})
    logs.entries[site_id] = [after_build, _hit("/during-build/", 9000, ago=600)]
    url = "/v1/tenants/acme/sites/crumbs/diagnosis"
    found = client.get(url, params={"since": "1h"}, headers=admin)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["verdict"]["status"] == "slow"
    assert [p["path"] for p in body["slowest_paths"]] == ["/slow/"]
    assert body["changes"][0]["kind"] == "create_site"
    bad = client.get(url, params={"since": "yesterday-ish"}, headers=admin)
    assert bad.status_code == 422 and "ISO 8601" in bad.json()["detail"]


def test_gcp_evidence_from_cloud_logging_and_monitoring(
    tmp_path: Path, metric_service: tuple[FakeMetrics, monitoring_v3.MetricServiceClient]
) -> None:
    _fake_metrics, monitoring_client = metric_service
    fake = FakeLogging()
    fake.entries = [
        _request(10, 200, "0.100s", 1000), _request(20, 503, "2.500s", 50),
        {"logName": "projects/p/logs/run.googleapis.com%2Fstderr", "insertId": "e1",
         "resource": {"type": "cloud_run_revision",
                      "labels": {"service_name": "s-acme-crumbs-1"}}, "severity": "ERROR",
         "timestamp": (NOW - timedelta(seconds=40)).isoformat().replace("+00:00", "Z"),
         "textPayload": "PHP Fatal error:  Uncaught Error: Call to undefined function boom() "
                        "in /var/www/html/wp-content/plugins/p/p.php:3"},
    ]  # fmt: skip
    with serve(fake.app()) as url:
        client = logging.Client(project="p", credentials=AnonymousCredentials(), _use_grpc=False,  # type: ignore[no-untyped-call]
                                client_options={"api_endpoint": url})  # fmt: skip
        settings = Settings(provider="memory", home=tmp_path, gcp_project="p", site_max_instances=4)
        logs = CloudLoggingLogs(settings, GcpClients(logging=client, monitoring=monitoring_client))
        ctx = SiteContext(tenant_id="acme", site_id="1", site_name="crumbs", title="t",
                          admin_email="a@b.example", admin_user="admin", domains=[],
                          credentials=DatabaseVault.__new__(DatabaseVault),
                          resources={"runtime": {"service": "projects/p/locations/r/services/s-acme-crumbs-1"}})  # fmt: skip
        evidence = logs.evidence(ctx, SINCE, NOW + timedelta(seconds=1))
    found = diagnose("crumbs", SINCE, NOW + timedelta(seconds=1), evidence, [], OK)
    assert [e.status for e in evidence.requests] == [200, 503]
    assert found.verdict.status == "broken"
    assert "undefined function boom()" in found.verdict.summary
    assert found.php_errors[0].where == "wp-content/plugins/p/p.php:3"
    assert evidence.saturation is not None and evidence.saturation.reached == 1  # 4 of 4
    assert any("slow log" in reason for reason in evidence.unavailable)
    fake.assert_clean()


def test_the_cli_prints_the_verdict_and_its_evidence(
    settings: Settings, memory_provider: MemoryProvider, issuer: LocalTokenIssuer
) -> None:
    with served_cli(settings, memory_provider, issuer) as cli:
        logs = memory_provider.logs
        assert isinstance(logs, MemoryLogs)
        fatal = _php("PHP Fatal error:  Uncaught Error: boom in /s/wp-content/plugins/a/a.php:3")
        logs.entries[cli.site_id] = [
            fatal.model_copy(update={"time": clock.now()}),
            _hit("/shop/", 50, status=500).model_copy(update={"time": clock.now()}),
        ]
        shown = cli("sites", "diagnose", "globex", "shop", "--since", "2h")
        refused = cli("sites", "diagnose", "globex", "nosuchsite")
    assert shown.exit_code == 0, shown.output
    assert "BROKEN" in shown.output and "Uncaught Error: boom" in shown.output
    assert "/shop/" in shown.output and "wp-content/plugins/a/a.php:3" in shown.output
    assert refused.exit_code == 1 and "404" in refused.output


def test_a_failed_rebuild_does_not_hide_the_evidence_before_it(
    client: TestClient, auth: AuthHeaders, memory_provider: MemoryProvider
) -> None:
    admin = auth(Role.ADMIN)
    site_id = ready_crumbs(client, admin)
    seen = clock.now()  # after the create finished
    logs = memory_provider.logs
    assert isinstance(logs, MemoryLogs)
    logs.entries[site_id] = [_hit("/slow/", 2500).model_copy(update={"time": seen})]
    platform = client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:  # an import refused after the request: nothing changed
        session.add(Operation(kind="import_site", tenant_id="acme", site_id=site_id,
                              site_name="crumbs", status="failed", requested_by="admin",
                              finished_at=seen + timedelta(seconds=1)))  # fmt: skip
        session.commit()
    until = (seen + timedelta(seconds=2)).isoformat()
    found = client.get("/v1/tenants/acme/sites/crumbs/diagnosis",
                       params={"since": "1h", "until": until}, headers=admin)  # fmt: skip
    assert found.status_code == 200, found.text
    assert found.json()["verdict"]["status"] == "slow"
