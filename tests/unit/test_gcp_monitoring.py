"""Site metrics from Cloud Monitoring through the real client (gRPC) against a local gRPC
server that answers ListTimeSeries and checks each request's filter and aggregation."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

from controlplane.kernel import clock
from controlplane.providers.gcp import monitoring

A = monitoring_v3.Aggregation


class FakeMetrics:
    """ListTimeSeries with canned series per metric type."""

    def __init__(self) -> None:
        self.requests: list[monitoring_v3.ListTimeSeriesRequest] = []

    def series(self, metric: str, labels: dict[str, str], value: dict[str, Any]) -> dict[str, Any]:
        now = clock.now()
        return {"metric": {"type": metric, "labels": labels},
                "points": [{"interval": {"end_time": now}, "value": value}]}  # fmt: skip

    def list(
        self, request: monitoring_v3.ListTimeSeriesRequest, context: Any
    ) -> monitoring_v3.ListTimeSeriesResponse:
        self.requests.append(request)
        assert 'resource.labels.service_name="s-acme-crumbs-1"' in request.filter
        assert request.interval.start_time and request.interval.end_time  # always bounded
        aligner = request.aggregation.per_series_aligner
        if monitoring.REQUESTS in request.filter:
            assert list(request.aggregation.group_by_fields) == [
                "metric.labels.response_code_class"
            ]
            found = [self.series(monitoring.REQUESTS, {"response_code_class": c}, {"int64_value": n})
                     for c, n in (("2xx", 90), ("4xx", 7), ("5xx", 3))]  # fmt: skip
        elif monitoring.LATENCIES in request.filter and aligner == A.Aligner.ALIGN_SUM:
            found = [self.series(monitoring.LATENCIES, {},
                                 {"distribution_value": {"count": 100, "mean": 250.0}})]  # fmt: skip
        elif monitoring.SENT_BYTES in request.filter:
            assert aligner == A.Aligner.ALIGN_SUM
            found = [self.series(monitoring.SENT_BYTES, {}, {"int64_value": 123456})]
        elif monitoring.LATENCIES in request.filter:
            value = {A.Aligner.ALIGN_PERCENTILE_50: 120.0, A.Aligner.ALIGN_PERCENTILE_95: 850.5,
                     A.Aligner.ALIGN_PERCENTILE_99: 1900.0}[aligner]  # fmt: skip
            found = [self.series(monitoring.LATENCIES, {}, {"double_value": value})]
        else:
            assert aligner == A.Aligner.ALIGN_MAX
            found = [self.series(monitoring.INSTANCES, {"state": "active"}, {"int64_value": 4})]
        return monitoring_v3.ListTimeSeriesResponse(time_series=found)


@pytest.fixture
def metric_service() -> Iterator[tuple[FakeMetrics, monitoring_v3.MetricServiceClient]]:
    fake = FakeMetrics()
    handler = grpc.method_handlers_generic_handler("google.monitoring.v3.MetricService", {
        "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
            fake.list, request_deserializer=monitoring_v3.ListTimeSeriesRequest.deserialize,
            response_serializer=monitoring_v3.ListTimeSeriesResponse.serialize),
    })  # fmt: skip
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    client = monitoring_v3.MetricServiceClient(
        transport=MetricServiceGrpcTransport(channel=channel)
    )
    yield fake, client
    channel.close()
    server.stop(None)


def test_request_count_latencies_and_instances(
    metric_service: tuple[FakeMetrics, monitoring_v3.MetricServiceClient],
) -> None:
    fake, client = metric_service
    until = clock.now()
    figures = monitoring.metrics(
        client, "p", "s-acme-crumbs-1", "crumbs", until - timedelta(hours=1), until
    )
    assert (figures.requests, figures.errors, figures.client_errors) == (100, 3, 7)
    assert figures.error_rate == 0.03 and figures.status_counts == {"2xx": 90, "4xx": 7, "5xx": 3}
    assert (figures.latency_ms.p50, figures.latency_ms.p95, figures.latency_ms.p99) == (
        120.0,
        850.5,
        1900.0,
    )
    assert figures.instances == 4
    # Time spent serving (100 requests x 250 ms) and bytes sent, from Monitoring too.
    assert (figures.busy_seconds, figures.bytes_sent) == (25.0, 123456)
    assert len(fake.requests) == 7
    assert all(r.name == "projects/p" for r in fake.requests)


class NoLogging:
    """A Cloud Logging client that must not be called (entries.list: 60 calls a minute)."""

    def list_entries(self, **_: Any) -> Any:
        raise AssertionError("metrics read Cloud Logging")


def test_site_metrics_with_monitoring_never_read_the_logs(
    metric_service: tuple[FakeMetrics, monitoring_v3.MetricServiceClient], tmp_path: Any
) -> None:
    from controlplane.credentials import DatabaseVault
    from controlplane.engine.provider import SiteContext
    from controlplane.providers.gcp.base import GcpClients
    from controlplane.providers.gcp.logs import CloudLoggingLogs
    from controlplane.settings import Settings

    _fake, client = metric_service
    logs = CloudLoggingLogs(Settings(provider="memory", home=tmp_path, gcp_project="p"),
                            GcpClients(monitoring=client, logging=NoLogging()))  # fmt: skip
    ctx = SiteContext(tenant_id="acme", site_id="1", site_name="crumbs", title="t",
                      admin_email="a@b.example", admin_user="admin", domains=[],
                      credentials=DatabaseVault.__new__(DatabaseVault),
                      resources={"runtime": {"service": "projects/p/locations/r/services/s-acme-crumbs-1"}})  # fmt: skip
    until = clock.now()
    figures = logs.metrics(ctx, until - timedelta(hours=1), until)
    assert figures.requests == 100 and figures.bytes_sent == 123456
