"""dns step: the preview name `<site>.<tenant>.<platform domain>` and custom domains as
CNAMEs to Cloud Run's domain-mapping host, in Cloudflare or Cloud DNS (one interface)."""

from __future__ import annotations

from typing import Any, Protocol

from google.api_core import exceptions

from controlplane.engine.provider import SiteContext
from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.naming import labels

MAPPING_TARGET = "ghs.googlehosted.com"  # where Cloud Run domain mappings expect CNAMEs
TTL = 300


class DnsRecords(Protocol):
    """Creates and deletes CNAME records."""

    def upsert_cname(self, host: str, target: str) -> None:
        """Point `host` at `target` (idempotent)."""
        ...

    def delete(self, host: str) -> None:
        """Remove the record of `host` (no-op when absent)."""
        ...


class CloudflareRecords:
    """CNAMEs in one Cloudflare zone (DNS only: TLS is Google's managed certificate)."""

    def __init__(self, client: object, zone_id: str) -> None:
        self.client = client
        self.zone_id = zone_id

    def _find(self, host: str) -> list[object]:
        records = self.client.dns.records.list(zone_id=self.zone_id, name={"exact": host})  # type: ignore[attr-defined]
        return list(records)

    def upsert_cname(self, host: str, target: str) -> None:
        """Create or update the CNAME."""
        found = self._find(host)
        body = {"zone_id": self.zone_id, "name": host, "type": "CNAME", "content": target,
                "ttl": TTL, "proxied": False, "comment": "aipress"}  # fmt: skip
        if found:
            self.client.dns.records.update(found[0].id, **body)  # type: ignore[attr-defined]
        else:
            self.client.dns.records.create(**body)  # type: ignore[attr-defined]

    def delete(self, host: str) -> None:
        """Delete every record of the host."""
        for record in self._find(host):
            self.client.dns.records.delete(record.id, zone_id=self.zone_id)  # type: ignore[attr-defined]


class CloudDnsRecords:
    """CNAMEs in a Cloud DNS managed zone (google-cloud-dns)."""

    def __init__(self, client: object, zone: str) -> None:
        self.zone = client.zone(zone)  # type: ignore[attr-defined]

    def _existing(self, host: str) -> list[object]:
        fqdn = host.rstrip(".") + "."
        return [
            r
            for r in self.zone.list_resource_record_sets()
            if r.name == fqdn and r.record_type == "CNAME"
        ]

    def upsert_cname(self, host: str, target: str) -> None:
        """Replace the host's CNAME in one change."""
        changes = self.zone.changes()
        for record in self._existing(host):
            changes.delete_record_set(record)
        changes.add_record_set(
            self.zone.resource_record_set(host.rstrip(".") + ".", "CNAME", TTL, [target + "."])
        )
        changes.create()

    def delete(self, host: str) -> None:
        """Delete the host's CNAME."""
        existing = self._existing(host)
        if existing:
            changes = self.zone.changes()
            for record in existing:
                changes.delete_record_set(record)
            changes.create()


class DomainMappings:
    """Cloud Run domain mappings (the v1 Admin API, over REST): Google serves each mapped
    host with a managed TLS certificate once its CNAME points at ghs.googlehosted.com.
    `session` is a google.auth AuthorizedSession (or any requests-like session)."""

    def __init__(
        self, session: Any, project: str, region: str, base_url: str | None = None
    ) -> None:
        self.session = session
        self.base = (base_url or f"https://{region}-run.googleapis.com").rstrip("/")
        self.path = f"/apis/domains.cloudrun.com/v1/namespaces/{project}/domainmappings"
        self.project = project

    def _check(self, response: Any) -> None:
        if response.status_code >= 400:
            raise exceptions.from_http_response(response)  # type: ignore[no-untyped-call]

    def mapped_to(self, host: str) -> str | None:
        """The service `host` is mapped to, or None."""
        response = self.session.get(f"{self.base}{self.path}/{host}")
        if response.status_code == 404:
            return None
        self._check(response)
        return str(response.json().get("spec", {}).get("routeName") or "")

    def ensure(self, host: str, service: str, labels: dict[str, str]) -> None:
        """Map `host` to the Cloud Run service (its certificate is provisioned by Google);
        a host mapped to another service is refused, never taken over."""
        current = self.mapped_to(host)
        if current == service:
            return
        if current is not None:
            raise ApplyFailed(f"{host} is already mapped to another service ({current})")
        body = {
            "apiVersion": "domains.cloudrun.com/v1", "kind": "DomainMapping",
            "metadata": {"name": host, "namespace": self.project, "labels": labels},
            "spec": {"routeName": service, "certificateMode": "AUTOMATIC"},
        }  # fmt: skip
        self._check(self.session.post(f"{self.base}{self.path}", json=body))

    def remove(self, host: str, service: str) -> bool:
        """Unmap `host` if it is mapped to `service`; return whether it was ours."""
        current = self.mapped_to(host)
        if current is None:
            return True
        if current != service:
            return False
        response = self.session.delete(f"{self.base}{self.path}/{host}")
        if response.status_code != 404:
            self._check(response)
        return True


class SiteDns(GcpStep):
    """The site's names: preview and custom domains, each mapped to the service with TLS."""

    def __init__(
        self, settings: object, clients: object, records: DnsRecords, mappings: DomainMappings
    ) -> None:
        super().__init__(settings, clients)  # type: ignore[arg-type]
        self.records = records
        self.mappings = mappings

    def _hosts(self, ctx: SiteContext) -> list[str]:
        return [self.names(ctx).preview_host, *ctx.domains]

    def ensure(self, ctx: SiteContext) -> None:
        """Map every name of the site to its service and CNAME it to Google's front end."""
        service = (ctx.resources.get("runtime") or {}).get("service", "").rsplit("/", 1)[-1]
        service = service or self.names(ctx).service
        hosts = self._hosts(ctx)
        for host in hosts:
            self.mappings.ensure(host, service, labels(ctx))
            self.records.upsert_cname(host, MAPPING_TARGET)
        # A domain removed since the last run: unmapped (if it is still ours) and unrecorded.
        for host in (ctx.resources.get("dns") or {}).get("hosts") or []:
            if host not in hosts and self.mappings.remove(host, service):
                self.records.delete(host)
        ctx.resources["dns"] = {"hosts": hosts}

    def remove(self, ctx: SiteContext) -> None:
        """Remove the names (the recorded ones: domains may have changed since); a name now
        mapped to another site's service is left alone, record and all."""
        service = (ctx.resources.get("runtime") or {}).get("service", "").rsplit("/", 1)[-1]
        for host in (ctx.resources.get("dns") or {}).get("hosts") or self._hosts(ctx):
            if self.mappings.remove(host, service or self.names(ctx).service):
                self.records.delete(host)
        ctx.resources.pop("dns", None)

    def preview_url(self, ctx: SiteContext) -> str:
        """https://<site>.<tenant>.<platform domain>/"""
        return f"https://{self.names(ctx).preview_host}/"
