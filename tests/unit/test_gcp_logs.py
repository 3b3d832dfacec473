"""Site logs and metrics from Cloud Logging through the real client (REST) against a fake
that checks every query carries the service and a time bound; answers are cached."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from google.auth.credentials import AnonymousCredentials
from google.cloud import logging

from controlplane.credentials import DatabaseVault
from controlplane.engine.provider import SiteContext
from controlplane.kernel import clock
from controlplane.observability import LogQuery, Severity
from controlplane.providers.gcp.base import GcpClients
from controlplane.providers.gcp.logs import CloudLoggingLogs
from controlplane.settings import Settings
from tests.integration.gcp_fakes import FakeLogging
from tests.live import serve

NOW = clock.now().replace(microsecond=0)


def _request(seconds_ago: int, status: int, latency: str, size: int) -> dict[str, object]:
    return {
        "logName": "projects/p/logs/run.googleapis.com%2Frequests", "insertId": f"r{seconds_ago}",
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": "s-acme-crumbs-1"}},
        "timestamp": (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z"),
        "severity": "ERROR" if status >= 500 else "INFO",
        "httpRequest": {"requestMethod": "GET", "requestUrl": f"https://crumbs.example/p{seconds_ago}",
                        "status": status, "latency": latency, "responseSize": str(size)},
    }  # fmt: skip


def test_logs_and_metrics_from_cloud_logging(tmp_path: Path) -> None:
    fake = FakeLogging()
    fake.entries = [
        _request(10, 200, "0.100s", 1000), _request(20, 200, "0.300s", 2000),
        _request(30, 503, "2.500s", 50),
        {"logName": "projects/p/logs/run.googleapis.com%2Fstderr", "insertId": "e1",
         "resource": {"type": "cloud_run_revision",
                      "labels": {"service_name": "s-acme-crumbs-1"}}, "severity": "ERROR",
         "timestamp": (NOW - timedelta(seconds=40)).isoformat().replace("+00:00", "Z"),
         "textPayload": "PHP Fatal error: Uncaught Error: Call to undefined function boom()"},
        # Another site's error, and this site's from before the window: the filter drops both.
        {**_request(15, 500, "0.100s", 10),
         "resource": {"type": "cloud_run_revision", "labels": {"service_name": "s-other-1"}}},
        _request(7200, 500, "0.100s", 10),
    ]  # fmt: skip
    with serve(fake.app()) as url:
        client = logging.Client(project="p", credentials=AnonymousCredentials(), _use_grpc=False,  # type: ignore[no-untyped-call]
                                client_options={"api_endpoint": url})  # fmt: skip
        logs = CloudLoggingLogs(Settings(provider="memory", home=tmp_path, gcp_project="p"),
                                GcpClients(logging=client))  # fmt: skip
        ctx = SiteContext(tenant_id="acme", site_id="1", site_name="crumbs", title="t",
                          admin_email="a@b.example", admin_user="admin", domains=[],
                          credentials=DatabaseVault.__new__(DatabaseVault),
                          resources={"runtime": {"service": "projects/p/locations/r/services/s-acme-crumbs-1"}})  # fmt: skip
        since, until = NOW - timedelta(hours=1), NOW + timedelta(seconds=1)
        errors, more = logs.read_logs(
            ctx, LogQuery(since=since, until=until, severity=Severity.ERROR)
        )
        metrics = logs.metrics(ctx, since, until)
    assert not more
    assert [(e.source, e.status) for e in errors] == [("access", 503), ("php", None)]
    assert "undefined function boom" in errors[1].message
    assert metrics.requests == 3 and metrics.errors == 1
    assert metrics.latency_ms.p50 == 300.0 and metrics.bytes_sent == 3050
    assert metrics.busy_seconds == 2.9
    queries = [body for _m, _p, body in fake.requests]
    assert len(queries) == 1  # the second read came from the cache (the quota is 60/min)
    assert 'resource.labels.service_name="s-acme-crumbs-1"' in queries[0]["filter"]
    assert f'timestamp>="{since.isoformat()}"' in queries[0]["filter"]
    assert queries[0]["resourceNames"] == ["projects/p"]
    fake.assert_clean()
