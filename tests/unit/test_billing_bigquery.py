"""The BigQuery path with the real google-cloud-bigquery client over REST, against a local
fake endpoint that checks the SQL text, parameters and labels it receives. No network: what
is not exercised is BigQuery itself (planning, partition pruning, billing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from controlplane.billing.aggregate import run_aggregation
from controlplane.billing.warehouse import BigQueryWarehouse
from controlplane.models import BillingRun, TenantCost
from controlplane.platform import Platform
from tests.live import serve

TABLE = "acme-billing.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9"
FIELDS = [("tenant_id", "STRING"), ("site", "STRING"), ("day", "DATE"), ("service", "STRING"),
          ("currency", "STRING"), ("cost", "FLOAT"), ("credits", "FLOAT")]  # fmt: skip
ROWS = [
    ("acme", "crumbs", "2026-11-10", "Cloud Run", "USD", "12.5", "-2.25"),
    ("platform", "", "2026-11-10", "Networking", "USD", "1.0", "0"),
]


class FakeBigQuery:
    """jobs.query (query_and_wait) and jobs.insert (dry runs), recording each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []

    async def handle(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body() or b"{}")
        self.requests.append((request.method, request.url.path, body))
        job = {"projectId": "aipress-prod", "jobId": "job-1", "location": "US"}
        if request.url.path.endswith("/jobs"):  # jobs.insert: the dry run
            assert body["configuration"]["dryRun"] is True
            return JSONResponse({
                "kind": "bigquery#job", "id": "aipress-prod:US.job-1", "jobReference": job,
                "configuration": body["configuration"], "status": {"state": "DONE"},
                "statistics": {"totalBytesProcessed": "73400320",
                               "query": {"totalBytesProcessed": "73400320"}},
            })  # fmt: skip
        return JSONResponse({
            "kind": "bigquery#queryResponse", "jobComplete": True, "jobReference": job,
            "schema": {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in FIELDS]},
            "rows": [{"f": [{"v": v} for v in row]} for row in ROWS],
            "totalRows": str(len(ROWS)),
        })  # fmt: skip


@pytest.fixture
def fake() -> Iterator[tuple[FakeBigQuery, bigquery.Client]]:
    fake = FakeBigQuery()
    app = Starlette(routes=[Route("/{path:path}", fake.handle, methods=["GET", "POST"])])
    with serve(app) as url:
        client = bigquery.Client(
            project="aipress-prod",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": url},
        )
        yield fake, client
        client.close()


def test_aggregation_through_the_bigquery_client(
    fake: tuple[FakeBigQuery, bigquery.Client], platform: Platform
) -> None:
    server, client = fake
    warehouse = BigQueryWarehouse(client, TABLE)
    result = run_aggregation(platform.sessions, warehouse, since=date(2026, 11, 6),
                             until=date(2026, 11, 11), database_sizes={},
                             shared_services=("Cloud SQL",))  # fmt: skip

    assert result.bytes_scanned == 73400320
    dry_run = next(body for method, path, body in server.requests if path.endswith("/jobs"))
    query = next(body for method, path, body in server.requests if path.endswith("/queries"))
    for sent in (dry_run["configuration"]["query"], query):
        text = sent["query"]
        assert f"FROM `{TABLE}`" in text
        assert "WHERE _PARTITIONTIME >= TIMESTAMP(@since)" in text  # the partition filter
        assert "usage_start_time < TIMESTAMP(@until)" in text
        assert sent["useLegacySql"] is False
        params = {p["name"]: (p["parameterType"]["type"], p["parameterValue"]["value"])
                  for p in sent["queryParameters"]}  # fmt: skip
        assert params == {
            "tenant_label": ("STRING", "aipress-tenant-id"), "site_label": ("STRING", "aipress-site"),
            "since": ("DATE", "2026-11-06"), "until": ("DATE", "2026-11-11"),
        }  # fmt: skip
    assert query["labels"] == {"aipress-job": "billing-aggregate"}
    assert dry_run["configuration"]["labels"] == {"aipress-job": "billing-aggregate"}

    with platform.sessions() as session:
        rows = {(c.tenant_id, c.site, c.day, c.service, Decimal(c.net).quantize(Decimal("0.01")))
                for c in session.scalars(select(TenantCost))}  # fmt: skip
        run = session.scalars(select(BillingRun)).one()
    assert rows == {
        ("acme", "crumbs", date(2026, 11, 10), "Cloud Run", Decimal("10.25")),
        ("platform", "", date(2026, 11, 10), "Networking", Decimal("1.00")),
    }
    assert (run.source, run.status, run.bytes_scanned) == ("bigquery", "succeeded", 73400320)
