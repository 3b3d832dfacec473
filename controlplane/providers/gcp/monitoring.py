"""Request figures of a Cloud Run site from Cloud Monitoring: request count by response
class, latency percentiles, time spent serving, bytes sent and the instance count, over the
asked window. Nothing here reads Cloud Logging (its entries.list quota is 60 a minute)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.cloud import monitoring_v3
from google.protobuf import duration_pb2, timestamp_pb2

from controlplane.observability import LatencyRead, MetricsRead

REQUESTS = "run.googleapis.com/request_count"
LATENCIES = "run.googleapis.com/request_latencies"
INSTANCES = "run.googleapis.com/container/instance_count"
SENT_BYTES = "run.googleapis.com/container/network/sent_bytes_count"
A = monitoring_v3.Aggregation


def _interval(since: datetime, until: datetime) -> monitoring_v3.TimeInterval:
    start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    start.FromDatetime(since)
    end.FromDatetime(until)
    return monitoring_v3.TimeInterval(start_time=start, end_time=end)


def _points(client: Any, project: str, metric: str, service: str, since: datetime,
            until: datetime, aggregation: monitoring_v3.Aggregation) -> list[Any]:  # fmt: skip
    return list(client.list_time_series(request={
        "name": f"projects/{project}",
        "filter": f'metric.type="{metric}" AND resource.type="cloud_run_revision" '
                  f'AND resource.labels.service_name="{service}"',
        "interval": _interval(since, until),
        "aggregation": aggregation,
        "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
    }))  # fmt: skip


def metrics(client: Any, project: str, service: str, site: str, since: datetime,
            until: datetime) -> MetricsRead:  # fmt: skip
    """MetricsRead for one service (list_time_series calls, each over the window)."""
    window = duration_pb2.Duration(seconds=max(60, int((until - since).total_seconds())))
    counts: dict[str, int] = {}
    for series in _points(client, project, REQUESTS, service, since, until, A(
            alignment_period=window, per_series_aligner=A.Aligner.ALIGN_SUM,
            cross_series_reducer=A.Reducer.REDUCE_SUM,
            group_by_fields=["metric.labels.response_code_class"])):  # fmt: skip
        key = series.metric.labels.get("response_code_class", "other")
        counts[key] = counts.get(key, 0) + sum(int(p.value.int64_value) for p in series.points)
    latency: dict[str, float | None] = {}
    for name, aligner in (("p50", A.Aligner.ALIGN_PERCENTILE_50),
                          ("p95", A.Aligner.ALIGN_PERCENTILE_95),
                          ("p99", A.Aligner.ALIGN_PERCENTILE_99)):  # fmt: skip
        found = _points(client, project, LATENCIES, service, since, until,
                        A(alignment_period=window, per_series_aligner=aligner))  # fmt: skip
        values = [p.value.double_value for s in found for p in s.points]
        latency[name] = round(max(values), 3) if values else None
    total = A(alignment_period=window, per_series_aligner=A.Aligner.ALIGN_SUM,
              cross_series_reducer=A.Reducer.REDUCE_SUM)  # fmt: skip
    # The latency distribution summed over the window: count x mean is the time spent serving.
    busy_ms = sum(p.value.distribution_value.count * p.value.distribution_value.mean
                  for s in _points(client, project, LATENCIES, service, since, until, total)
                  for p in s.points)  # fmt: skip
    sent = sum(int(p.value.int64_value)
               for s in _points(client, project, SENT_BYTES, service, since, until, total)
               for p in s.points)  # fmt: skip
    most = A(alignment_period=window, per_series_aligner=A.Aligner.ALIGN_MAX)
    instances = [int(p.value.int64_value or p.value.double_value)
                 for s in _points(client, project, INSTANCES, service, since, until, most)
                 for p in s.points]  # fmt: skip
    requests = sum(counts.values())
    errors = counts.get("5xx", 0)
    minutes = max((until - since).total_seconds() / 60, 1 / 60)
    return MetricsRead(
        site=site, since=since, until=until, requests=requests,
        requests_per_minute=round(requests / minutes, 3), errors=errors,
        client_errors=counts.get("4xx", 0),
        error_rate=round(errors / requests, 4) if requests else 0.0,
        latency_ms=LatencyRead(p50=latency["p50"], p95=latency["p95"], p99=latency["p99"]),
        bytes_sent=sent, busy_seconds=round(busy_ms / 1000, 3), cache_hit_ratio=None,
        status_counts=dict(sorted(counts.items())),
        instances=max(instances) if instances else 0,
    )  # fmt: skip
