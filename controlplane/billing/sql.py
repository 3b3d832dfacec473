"""The aggregation query, written once in BigQuery SQL over the standard billing export,
and its DuckDB-native twin (tests prove both return the same rows on the same data).

Net cost = cost + credits (credits are negative). Rows without the tenant label go to the
'platform' bucket. The partition filter bounds the scan: a row is exported at or after its
usage starts, so no partition older than the window's start can hold a row of it, while
late rows for old days are still found in newer partitions.
"""

from __future__ import annotations

import re

TENANT_LABEL = "aipress-tenant-id"
SITE_LABEL = "aipress-site"
PLATFORM = "platform"

BIGQUERY = """
SELECT
  IFNULL((SELECT l.value FROM UNNEST(labels) AS l WHERE l.key = @tenant_label LIMIT 1),
         'platform') AS tenant_id,
  IFNULL((SELECT l.value FROM UNNEST(labels) AS l WHERE l.key = @site_label LIMIT 1),
         '') AS site,
  DATE(usage_start_time) AS day,
  service.description AS service,
  currency,
  SUM(cost) AS cost,
  SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) AS c), 0)) AS credits
FROM `{table}`
WHERE _PARTITIONTIME >= TIMESTAMP(@since)
  AND usage_start_time >= TIMESTAMP(@since)
  AND usage_start_time < TIMESTAMP(@until)
GROUP BY tenant_id, site, day, service, currency
""".strip()

DUCKDB = """
SELECT
  coalesce(list_filter(labels, lambda l: l.key = $tenant_label)[1].value,
           'platform') AS tenant_id,
  coalesce(list_filter(labels, lambda l: l.key = $site_label)[1].value, '') AS site,
  CAST(usage_start_time AS DATE) AS day,
  service.description AS service,
  currency,
  sum(cost) AS cost,
  sum(coalesce(list_sum(list_transform(credits, lambda c: c.amount)), 0)) AS credits
FROM billing_export
WHERE _PARTITIONTIME >= CAST($since AS TIMESTAMP)
  AND usage_start_time >= CAST($since AS TIMESTAMP)
  AND usage_start_time < CAST($until AS TIMESTAMP)
GROUP BY ALL
""".strip()

# The billing export's shape (the columns the aggregation and the metering use), in DuckDB.
DUCKDB_EXPORT_TABLE = """
CREATE TABLE IF NOT EXISTS billing_export (
  billing_account_id VARCHAR,
  service STRUCT(id VARCHAR, description VARCHAR),
  sku STRUCT(id VARCHAR, description VARCHAR),
  usage_start_time TIMESTAMP,
  usage_end_time TIMESTAMP,
  project STRUCT(id VARCHAR),
  labels STRUCT(key VARCHAR, value VARCHAR)[],
  cost DOUBLE,
  currency VARCHAR,
  usage STRUCT(amount DOUBLE, unit VARCHAR),
  credits STRUCT(name VARCHAR, amount DOUBLE, type VARCHAR)[],
  export_time TIMESTAMP,
  _PARTITIONTIME TIMESTAMP
)
""".strip()

_TABLE = re.compile(r"^[a-z][a-z0-9-]{4,61}[a-z0-9]\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_$-]{1,1024}$")


def bigquery_sql(table: str) -> str:
    """The BigQuery query for an export table `project.dataset.table` (validated: a table
    name cannot be a query parameter)."""
    if not _TABLE.match(table):
        raise ValueError(f"billing export table {table!r} must look like project.dataset.table")
    return BIGQUERY.format(table=table)
