"""Cloud DNS records through google-cloud-dns (its JSON API) against a local fake."""

from __future__ import annotations

from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.cloud import dns  # type: ignore[attr-defined]
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controlplane.providers.gcp.dns import CloudDnsRecords
from tests.integration.gcp_fakes import Fake
from tests.live import serve


class FakeCloudDns(Fake):
    """rrsets list and changes create of one managed zone."""

    def __init__(self) -> None:
        super().__init__()
        self.rrsets: dict[tuple[str, str], dict[str, Any]] = {}
        zone = r"/dns/v1/projects/(?P<p>[^/]+)/managedZones/(?P<zone>[^/]+)"
        self.on("GET", zone + "/rrsets", self.list)
        self.on("POST", zone + "/changes", self.change)

    def list(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        return JSONResponse({"rrsets": list(self.rrsets.values())})

    def change(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        for record in body.get("deletions", []):
            assert self.rrsets.pop((record["name"], record["type"]), None) is not None
        for record in body.get("additions", []):
            assert record["name"].endswith(".") and record["type"] == "CNAME"
            self.rrsets[(record["name"], record["type"])] = record
        return JSONResponse({**body, "id": str(len(self.requests)), "status": "done"})


def test_cname_upsert_and_delete() -> None:
    fake = FakeCloudDns()
    with serve(fake.app()) as url:
        client = dns.Client(project="p", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                            client_options={"api_endpoint": url})  # fmt: skip
        records = CloudDnsRecords(client, "sites")
        records.upsert_cname("crumbs.acme.sites.example.com", "ghs.googlehosted.com")
        records.upsert_cname("crumbs.acme.sites.example.com", "ghs.googlehosted.com")  # again
        assert list(fake.rrsets.values()) == [{
            "name": "crumbs.acme.sites.example.com.", "type": "CNAME", "ttl": "300",
            "rrdatas": ["ghs.googlehosted.com."]}]  # fmt: skip
        records.delete("crumbs.acme.sites.example.com")
        records.delete("crumbs.acme.sites.example.com")  # a no-op when gone
    assert fake.rrsets == {}
    changes = [body for method, path, body in fake.requests if path.endswith("/changes")]
    assert len(changes) == 3  # add; replace (delete + add) in one change; delete
    assert changes[1]["deletions"] and changes[1]["additions"]
