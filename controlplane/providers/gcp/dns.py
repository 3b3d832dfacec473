"""dns step: the site's names served through the front door (`frontdoor.py`: the load
balancer, or Cloud Run domain mappings for small setups), and the records they need.

Only names under the platform's domain are written, into the platform's zone (Cloudflare or
Cloud DNS, one interface): the preview name `<site>.<tenant>.<platform domain>` and its
certificate's proof. A customer's domain is never written there: the records it needs are
recorded for the customer to create in their own zone."""

from __future__ import annotations

from typing import Any, Protocol

from google.api_core import exceptions

from controlplane.engine.provider import SiteContext
from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.frontdoor import FrontDoor, Record
from controlplane.providers.gcp.naming import labels

MAPPING_TARGET = "ghs.googlehosted.com"  # where Cloud Run domain mappings expect CNAMEs
TTL = 300


class DnsRecords(Protocol):
    """Creates and deletes records (CNAME, A, AAAA) in the platform's zone."""

    def upsert(self, host: str, kind: str, values: list[str]) -> None:
        """Make `values` the records of type `kind` of `host` (idempotent)."""
        ...

    def delete(self, host: str) -> None:
        """Remove every record of `host` (no-op when absent)."""
        ...


class CloudflareRecords:
    """CNAMEs in one Cloudflare zone (DNS only: TLS is Google's managed certificate)."""

    def __init__(self, client: object, zone_id: str) -> None:
        self.client = client
        self.zone_id = zone_id

    def _find(self, host: str) -> list[Any]:
        records = self.client.dns.records.list(zone_id=self.zone_id, name={"exact": host})  # type: ignore[attr-defined]
        return list(records)

    def upsert(self, host: str, kind: str, values: list[str]) -> None:
        """Replace the host's records of `kind` (and a CNAME, which excludes all others)."""
        found = [r for r in self._find(host) if r.type in (kind, "CNAME")]
        if sorted(r.content for r in found) == sorted(values) and all(
            r.type == kind for r in found
        ):
            return
        for record in found:
            self.client.dns.records.delete(record.id, zone_id=self.zone_id)  # type: ignore[attr-defined]
        create = self.client.dns.records.create  # type: ignore[attr-defined]
        for value in values:
            create(zone_id=self.zone_id, name=host, type=kind, content=value, ttl=TTL,
                   proxied=False, comment="aipress")  # fmt: skip

    def upsert_cname(self, host: str, target: str) -> None:
        """Point `host` at `target` by CNAME."""
        self.upsert(host, "CNAME", [target])

    def delete(self, host: str) -> None:
        """Delete every record of the host."""
        for record in self._find(host):
            self.client.dns.records.delete(record.id, zone_id=self.zone_id)  # type: ignore[attr-defined]


class CloudDnsRecords:
    """CNAMEs in a Cloud DNS managed zone (google-cloud-dns)."""

    def __init__(self, client: object, zone: str) -> None:
        self.zone = client.zone(zone)  # type: ignore[attr-defined]

    def _existing(self, host: str, kinds: tuple[str, ...] = ("CNAME", "A", "AAAA")) -> list[object]:
        fqdn = host.rstrip(".") + "."
        return [
            r
            for r in self.zone.list_resource_record_sets()
            if r.name == fqdn and r.record_type in kinds
        ]

    def upsert(self, host: str, kind: str, values: list[str]) -> None:
        """Replace the host's record set of `kind` (and a CNAME) in one change."""
        changes = self.zone.changes()
        for record in self._existing(host, (kind, "CNAME")):
            changes.delete_record_set(record)
        data = [v.rstrip(".") + "." for v in values] if kind == "CNAME" else values
        changes.add_record_set(
            self.zone.resource_record_set(host.rstrip(".") + ".", kind, TTL, data)
        )
        changes.create()

    def upsert_cname(self, host: str, target: str) -> None:
        """Point `host` at `target` by CNAME."""
        self.upsert(host, "CNAME", [target])

    def delete(self, host: str) -> None:
        """Delete the host's CNAME."""
        existing = self._existing(host)
        if existing:
            changes = self.zone.changes()
            for record in existing:
                changes.delete_record_set(record)
            changes.create()


class DomainMappings:
    """Cloud Run domain mappings (the v1 Admin API, over REST): the small-scale front door.
    Google serves each mapped host with a managed certificate once its records (CNAME to
    ghs.googlehosted.com, or A/AAAA for an apex name, as `status.resourceRecords` says) are
    in place. Preview, in a few regions only, and the caller must be a verified owner of the
    domain in Search Console, which a platform never is for its customers' domains: use it for
    the platform's own names, or where each customer's domain was verified by the operator.
    Failures are reported in `status.conditions`, not by the create call.
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

    def status(self, host: str) -> dict[str, Any]:
        """The mapping's status (conditions, resource records)."""
        response = self.session.get(f"{self.base}{self.path}/{host}")
        self._check(response)
        return dict(response.json().get("status") or {})

    def records(self, host: str) -> list[Record]:
        """The records the mapping needs; fail with the mapping's own words if it failed."""
        status = self.status(host)
        for condition in status.get("conditions") or []:
            if condition.get("status") == "False" and condition.get("severity", "Error") == "Error":
                raise ApplyFailed(
                    f"the domain mapping of {host} failed ({condition.get('type')}: "
                    f"{condition.get('message') or condition.get('reason') or 'no detail'})"
                )
        found: dict[str, list[str]] = {}
        for record in status.get("resourceRecords") or []:
            found.setdefault(str(record["type"]), []).append(str(record["rrdata"]).rstrip("."))
        if not found:  # not filled in yet: a subdomain's CNAME is always this one
            found = {"CNAME": [MAPPING_TARGET]}
        return [Record(host, kind, tuple(values)) for kind, values in found.items()]

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


class MappedFrontDoor:
    """The FrontDoor of Cloud Run domain mappings (small setups; see DomainMappings)."""

    def __init__(self, mappings: DomainMappings) -> None:
        self.mappings = mappings

    def ensure(self, ctx: SiteContext, service: str, hosts: list[str]) -> list[Record]:
        """Map every name to the service; the records each mapping asks for."""
        records: list[Record] = []
        for host in hosts:
            self.mappings.ensure(host, service, labels(ctx))
            try:
                records += self.mappings.records(host)
            except ApplyFailed:
                self.mappings.remove(host, service)  # a failed mapping serves nothing: ours to undo
                raise
        # A domain removed since the last run: unmapped, if it is still ours.
        for host in (ctx.resources.get("dns") or {}).get("hosts") or []:
            if host not in hosts:
                self.mappings.remove(host, service)
        return records

    def remove(self, ctx: SiteContext, service: str, hosts: list[str]) -> list[str]:
        """Unmap the names; a name now mapped to another site's service is left alone."""
        return [host for host in hosts if self.mappings.remove(host, service)]

    def stop(self, ctx: SiteContext, service: str, hosts: list[str]) -> None:
        """Nothing here: a mapping serves straight from the service, with no cache in front,
        and the service's internal ingress turns requests away."""

    def start(self, ctx: SiteContext, service: str, hosts: list[str]) -> None:
        """Nothing here (see stop)."""


class SiteDns(GcpStep):
    """The site's names: preview and (proven) custom domains, served with TLS."""

    def __init__(
        self, settings: object, clients: object, records: DnsRecords, front: FrontDoor
    ) -> None:
        super().__init__(settings, clients)  # type: ignore[arg-type]
        self.records = records
        self.front = front

    def _hosts(self, ctx: SiteContext) -> list[str]:
        return [self.names(ctx).preview_host, *ctx.domains]

    def _platform(self, host: str) -> bool:
        """A name under the platform's domain: the only ones written into its zone."""
        return host.rstrip(".").endswith("." + self.settings.platform_domain)

    def _service(self, ctx: SiteContext) -> str:
        service = (ctx.resources.get("runtime") or {}).get("service", "").rsplit("/", 1)[-1]
        return str(service or self.names(ctx).service)

    def ensure(self, ctx: SiteContext) -> None:
        """Serve every name of the site; write the platform's records, note the customer's."""
        hosts = self._hosts(ctx)
        records = self.front.ensure(ctx, self._service(ctx), hosts)
        for record in records:
            if self._platform(record.name):
                self.records.upsert(record.name, record.type, list(record.values))
        written = sorted({r.name for r in records if self._platform(r.name)})
        # A platform name no longer needed (a domain removed since the last run).
        for name in (ctx.resources.get("dns") or {}).get("records") or []:
            if name not in written:
                self.records.delete(name)
        customer = {h: [{"type": r.type, "values": list(r.values)} for r in records if r.name == h]
                    for h in hosts if not self._platform(h)}  # fmt: skip
        ctx.resources["dns"] = {"hosts": hosts, "records": written, "customer_records": customer}

    def remove(self, ctx: SiteContext) -> None:
        """Remove the names (the recorded ones: domains may have changed since) and the
        platform's records of those the front door let go."""
        recorded = ctx.resources.get("dns") or {}
        hosts = recorded.get("hosts") or self._hosts(ctx)
        released = self.front.remove(ctx, self._service(ctx), hosts)
        for name in {*released, *(recorded.get("records") or [])}:
            if self._platform(name) and (name in released or name not in hosts):
                self.records.delete(name)
        ctx.resources.pop("dns", None)

    def stop(self, ctx: SiteContext) -> None:
        """The front door serves the stopped page for every name of the site."""
        hosts = (ctx.resources.get("dns") or {}).get("hosts") or self._hosts(ctx)
        self.front.stop(ctx, self._service(ctx), hosts)

    def start(self, ctx: SiteContext) -> None:
        """The front door serves the site's names from the site again."""
        hosts = (ctx.resources.get("dns") or {}).get("hosts") or self._hosts(ctx)
        self.front.start(ctx, self._service(ctx), hosts)

    def preview_url(self, ctx: SiteContext) -> str:
        """https://<site>.<tenant>.<platform domain>/"""
        return f"https://{self.names(ctx).preview_host}/"
