"""Google Cloud list prices the embedded default meters with (one dated table).

Taken from the public pricing pages (us-central1, tier 1, USD) as of PRICES_AS_OF; they
let a local user see what each site would cost on Google Cloud. They are list prices:
no free tier, committed-use or negotiated discounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

PRICES_AS_OF = date(2025, 6, 1)
CURRENCY = "USD"
HOURS_PER_MONTH = 730  # Google's own convention for monthly prices


@dataclass(frozen=True)
class Price:
    """One SKU: what the export would call it and what a unit costs."""

    service_id: str
    service: str
    sku_id: str
    sku: str
    unit: str
    usd_per_unit: float


CLOUD_RUN_CPU = Price(
    "152E-C115-5142",
    "Cloud Run",
    "CR-CPU-T1",
    "CPU Allocation Time (tier 1)",
    "vCPU-second",
    0.000024,
)
CLOUD_RUN_MEMORY = Price(
    "152E-C115-5142",
    "Cloud Run",
    "CR-MEM-T1",
    "Memory Allocation Time (tier 1)",
    "GiB-second",
    0.0000025,
)
CLOUD_RUN_REQUESTS = Price(
    "152E-C115-5142", "Cloud Run", "CR-REQ", "Requests", "request", 0.40 / 1_000_000
)
EGRESS = Price(
    "E505-1604-58F8",
    "Networking",
    "NET-EGRESS-PREMIUM",
    "Network Internet Egress (Premium, 0-1 TiB)",
    "GiB",
    0.12,
)
GCS_STANDARD = Price(
    "95FF-2EF5-5EA1",
    "Cloud Storage",
    "GCS-STD-US-CENTRAL1",
    "Standard Storage us-central1",
    "GiB-hour",
    0.020 / HOURS_PER_MONTH,
)
CLOUD_SQL_VCPU = Price(
    "9662-B51E-5089",
    "Cloud SQL",
    "SQL-MYSQL-VCPU",
    "Cloud SQL for MySQL: vCPU (Enterprise)",
    "vCPU-hour",
    0.0413,
)
CLOUD_SQL_MEMORY = Price(
    "9662-B51E-5089",
    "Cloud SQL",
    "SQL-MYSQL-RAM",
    "Cloud SQL for MySQL: RAM (Enterprise)",
    "GiB-hour",
    0.0070,
)
CLOUD_SQL_STORAGE = Price(
    "9662-B51E-5089",
    "Cloud SQL",
    "SQL-MYSQL-SSD",
    "Cloud SQL for MySQL: SSD storage",
    "GiB-hour",
    0.17 / HOURS_PER_MONTH,
)

# What a Cloud Run instance of a site has: one vCPU and half a GiB while serving requests
# (request-based billing charges instance time only while requests are being handled).
SITE_VCPU = 1.0
SITE_MEMORY_GIB = 0.5
# The shared Cloud SQL instance the sites' databases live in (1 vCPU, 3.75 GiB).
SHARED_SQL_VCPU = 1.0
SHARED_SQL_MEMORY_GIB = 3.75
GIB = 1024**3
