"""dns step: the preview name `<site>.<tenant>.<platform domain>` and custom domains as
CNAMEs to Cloud Run's domain-mapping host, in Cloudflare or Cloud DNS (one interface)."""

from __future__ import annotations

from typing import Protocol

from controlplane.engine.provider import SiteContext
from controlplane.providers.gcp.base import GcpStep

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


class SiteDns(GcpStep):
    """The site's names: preview and custom domains."""

    def __init__(self, settings: object, clients: object, records: DnsRecords) -> None:
        super().__init__(settings, clients)  # type: ignore[arg-type]
        self.records = records

    def _hosts(self, ctx: SiteContext) -> list[str]:
        return [self.names(ctx).preview_host, *ctx.domains]

    def ensure(self, ctx: SiteContext) -> None:
        """CNAME every name of the site."""
        for host in self._hosts(ctx):
            self.records.upsert_cname(host, MAPPING_TARGET)
        ctx.resources["dns"] = {"hosts": self._hosts(ctx)}

    def remove(self, ctx: SiteContext) -> None:
        """Remove the names (the recorded ones: domains may have changed since)."""
        for host in (ctx.resources.get("dns") or {}).get("hosts") or self._hosts(ctx):
            self.records.delete(host)
        ctx.resources.pop("dns", None)

    def preview_url(self, ctx: SiteContext) -> str:
        """https://<site>.<tenant>.<platform domain>/"""
        return f"https://{self.names(ctx).preview_host}/"
