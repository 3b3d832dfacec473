"""Per-tenant costs: the billing-export aggregation (BigQuery or DuckDB), local metering,
apportionment of shared resources, and the reads behind the billing API."""
