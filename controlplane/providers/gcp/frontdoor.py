"""The front door: how the world reaches a site's Cloud Run service, with TLS.

`LoadBalancerFrontDoor` (the default) puts every site behind the platform's global external
HTTPS load balancer (terraform/frontdoor.tf: address, URL map, target proxy, certificate map):
per site a serverless NEG, a backend service with Cloud CDN, and a host rule in the shared URL
map; per name a Certificate Manager certificate and certificate-map entry. The preview name is
proven by a DNS authorization in the platform's zone; a customer's domain, only once the
control plane has checked its TXT proof (`controlplane/services/domains.py`), gets a
certificate by load-balancer authorization: it is issued when the customer's A/AAAA records
point at the load balancer. Nothing of a customer's domain is written into the platform's zone.

Compute Engine and Certificate Manager are called over REST with an authorized session.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Protocol

from google.api_core import exceptions

from controlplane.engine.provider import SiteContext
from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.base import GcpStep
from controlplane.providers.gcp.naming import labels

OPERATION_TIMEOUT = 300.0
URL_MAP_RETRIES = 5  # the URL map is shared: a concurrent change makes the fingerprint stale


@dataclass(frozen=True)
class Record:
    """A DNS record a name needs (in the platform's zone, or the customer's)."""

    name: str
    type: str
    values: tuple[str, ...]


class FrontDoor(Protocol):
    """Serves a site's names from its Cloud Run service."""

    def ensure(self, ctx: SiteContext, service: str, hosts: list[str]) -> list[Record]:
        """Serve `hosts` (the first is the preview name); return the records they need."""
        ...

    def remove(self, ctx: SiteContext, service: str, hosts: list[str]) -> list[str]:
        """Stop serving `hosts`; return the names whose records may be deleted."""
        ...

    def stop(self, ctx: SiteContext, service: str, hosts: list[str]) -> None:
        """Serve the platform's stopped page for `hosts`, none of the site's (cached) pages."""
        ...

    def start(self, ctx: SiteContext, service: str, hosts: list[str]) -> None:
        """Serve `hosts` from the site again."""
        ...


def host_key(host: str) -> str:
    """A short stable id part for a host name (resource ids cannot hold dots)."""
    return hashlib.sha256(host.encode()).hexdigest()[:10]


class Rest:
    """JSON over a requests-like session; errors become google.api_core exceptions."""

    def __init__(self, session: Any, base: str) -> None:
        self.session = session
        self.base = base.rstrip("/")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             params: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        """One request; the decoded answer."""
        response = self.session.request(method, f"{self.base}{path}", json=body, params=params)
        if response.status_code >= 400:
            raise exceptions.from_http_response(response)  # type: ignore[no-untyped-call]
        return dict(response.json()) if response.content else {}

    def get(self, path: str) -> dict[str, Any] | None:
        """The resource, or None when it does not exist."""
        try:
            return self.call("GET", path)
        except exceptions.NotFound:
            return None


class LoadBalancerFrontDoor(GcpStep):
    """Per-site serverless NEG + CDN backend + URL-map host rule; per-name certificates."""

    def __init__(self, settings: Any, clients: Any) -> None:
        super().__init__(settings, clients)
        self.compute = Rest(clients.rest, clients.compute_url)
        self.certs = Rest(clients.rest, clients.certificates_url)

    # names
    def _global(self) -> str:
        return f"/compute/v1/projects/{self.project}/global"

    def _region(self) -> str:
        return f"/compute/v1/projects/{self.project}/regions/{self.settings.gcp_location}"

    def _cm(self) -> str:
        return f"/v1/projects/{self.project}/locations/global"

    @staticmethod
    def ids(service: str) -> dict[str, str]:
        """The site's Compute resource names, beside the service's ("s-<key>")."""
        key = service.removeprefix("s-")
        return {"neg": f"n-{key}", "backend": f"b-{key}", "matcher": f"m-{key}",
                "authorization": f"a-{key}"}  # fmt: skip

    # operations
    def _wait_compute(self, operation: dict[str, Any]) -> None:
        deadline = time.monotonic() + OPERATION_TIMEOUT
        where = (
            f"{self._region()}/operations"
            if operation.get("region")
            else f"{self._global()}/operations"
        )
        while operation.get("status") != "DONE":
            if time.monotonic() > deadline:
                raise ApplyFailed(f"Compute operation {operation.get('name')} did not finish")
            operation = self.compute.call("POST", f"{where}/{operation['name']}/wait")
        errors = (operation.get("error") or {}).get("errors") or []
        if errors:
            raise ApplyFailed("; ".join(str(e.get("message")) for e in errors))

    def _wait_cm(self, operation: dict[str, Any]) -> None:
        deadline = time.monotonic() + OPERATION_TIMEOUT
        while not operation.get("done"):
            if time.monotonic() > deadline:
                raise ApplyFailed(
                    f"Certificate Manager operation {operation['name']} did not finish"
                )
            time.sleep(1)
            operation = self.certs.call("GET", f"/v1/{operation['name']}")
        if operation.get("error"):
            raise ApplyFailed(str(operation["error"].get("message")))

    def _create_compute(self, collection: str, body: dict[str, Any]) -> None:
        if self.compute.get(f"{collection}/{body['name']}") is None:
            self._wait_compute(self.compute.call("POST", collection, body))

    def _create_cm(self, collection: str, id_param: str, rid: str, body: dict[str, Any]) -> None:
        if self.certs.get(f"{collection}/{rid}") is None:
            self._wait_cm(self.certs.call("POST", collection, body, params={id_param: rid}))

    def _delete(self, rest: Rest, path: str, compute: bool) -> None:
        try:
            operation = rest.call("DELETE", path)
        except exceptions.NotFound:
            return
        if compute:
            self._wait_compute(operation)
        else:
            self._wait_cm(operation)

    # bodies (also what the dry run shows)
    def neg_body(self, service: str) -> dict[str, Any]:
        """A serverless NEG that points at the site's Cloud Run service."""
        return {"name": self.ids(service)["neg"], "networkEndpointType": "SERVERLESS",
                "cloudRun": {"service": service}}  # fmt: skip

    def backend_body(self, service: str) -> dict[str, Any]:
        """The site's backend: its NEG, Cloud CDN caching static files (uploads among them)
        always and pages when WordPress (its page cache plugin) marks them public."""
        ids = self.ids(service)
        return {
            "name": ids["backend"], "loadBalancingScheme": "EXTERNAL_MANAGED",
            "protocol": "HTTPS",
            "backends": [{"group": f"projects/{self.project}/regions/"
                                   f"{self.settings.gcp_location}/networkEndpointGroups/{ids['neg']}"}],
            "enableCDN": True,
            "cdnPolicy": {"cacheMode": "CACHE_ALL_STATIC", "defaultTtl": 3600,
                          "clientTtl": 3600, "maxTtl": 86400, "negativeCaching": True,
                          "serveWhileStale": 86400,
                          "cacheKeyPolicy": {"includeProtocol": True, "includeHost": True,
                                             "includeQueryString": True}},
        }  # fmt: skip

    def certificate_body(
        self, ctx: SiteContext, host: str, preview: bool, service: str
    ) -> dict[str, Any]:
        """A Google-managed certificate: by DNS authorization for the platform's own name,
        by load-balancer authorization for a customer's (proven) domain."""
        managed: dict[str, Any] = {"domains": [host]}
        if preview:
            managed["dnsAuthorizations"] = [
                f"projects/{self.project}/locations/global/dnsAuthorizations/"
                f"{self.ids(service)['authorization']}"
            ]
        return {"managed": managed, "labels": labels(ctx)}

    def entry_body(self, ctx: SiteContext, host: str, service: str) -> dict[str, Any]:
        """The certificate-map entry that presents the name's certificate."""
        rid = self.entry_id(service, host)
        cert = f"projects/{self.project}/locations/global/certificates/c-{rid}"
        return {"hostname": host, "certificates": [cert], "labels": labels(ctx)}

    def entry_id(self, service: str, host: str) -> str:
        """Certificate and entry ids of one name of one site."""
        return f"{service.removeprefix('s-')}-{host_key(host)}"

    # the URL map
    def _url_map(self) -> str:
        return f"{self._global()}/urlMaps/{self.settings.front_door_url_map}"

    def _update_url_map(self, service: str, hosts: list[str], stopped: bool = False) -> None:
        """Set the site's host rule to `hosts` (none: remove it), under the fingerprint; a
        stopped site's rule leads to the platform's stopped page instead of its backend."""
        ids = self.ids(service)
        path = self._url_map()
        backend = f"projects/{self.project}/global/backendServices/{ids['backend']}"
        if stopped:
            backend = f"projects/{self.project}/global/{self.settings.front_door_stopped_backend}"
        for _ in range(URL_MAP_RETRIES):
            current = self.compute.call("GET", path)
            rules = [
                r for r in current.get("hostRules", []) if r.get("pathMatcher") != ids["matcher"]
            ]
            matchers = [
                m for m in current.get("pathMatchers", []) if m.get("name") != ids["matcher"]
            ]
            if hosts:
                rules.append({"hosts": hosts, "pathMatcher": ids["matcher"]})
                matchers.append({"name": ids["matcher"], "defaultService": backend})
            if rules == current.get("hostRules", []) and matchers == current.get(
                "pathMatchers", []
            ):
                return
            body = {"hostRules": rules, "pathMatchers": matchers,
                    "fingerprint": current.get("fingerprint")}  # fmt: skip
            try:
                self._wait_compute(self.compute.call("PATCH", path, body))
                return
            except exceptions.PreconditionFailed:
                continue  # another site changed the map: read it again
        raise ApplyFailed("the load balancer's URL map kept changing; retry the operation")

    def ensure(self, ctx: SiteContext, service: str, hosts: list[str]) -> list[Record]:
        """NEG, backend, host rule; a certificate and map entry per name; the records."""
        ids = self.ids(service)
        if not self.settings.front_door_ipv4:
            raise ApplyFailed("the load balancer front door needs AIPRESS_FRONT_DOOR_IPV4 "
                              "(terraform output frontdoor_ipv4)")  # fmt: skip
        self._create_compute(f"{self._region()}/networkEndpointGroups", self.neg_body(service))
        self._create_compute(f"{self._global()}/backendServices", self.backend_body(service))
        recorded = ctx.resources.get("frontdoor") or {}
        stopped = bool(recorded.get("stopped"))  # a stopped site's new name stays stopped
        self._update_url_map(service, hosts, stopped)
        preview = hosts[0]
        proof_body = {"domain": preview, "labels": labels(ctx)}
        self._create_cm(f"{self._cm()}/dnsAuthorizations", "dnsAuthorizationId",
                        ids["authorization"], proof_body)  # fmt: skip
        authorization = self.certs.call(
            "GET", f"{self._cm()}/dnsAuthorizations/{ids['authorization']}"
        )
        proof = authorization.get("dnsResourceRecord") or {}
        address = [("A", (self.settings.front_door_ipv4,))]
        if self.settings.front_door_ipv6:
            address.append(("AAAA", (self.settings.front_door_ipv6,)))
        # Bare names (no trailing dot): Cloudflare takes them so; Cloud DNS adds the dot back.
        records = [Record(str(proof["name"]).rstrip("."), str(proof.get("type", "CNAME")),
                          (str(proof["data"]).rstrip("."),))] if proof else []  # fmt: skip
        certmap = f"{self._cm()}/certificateMaps/{self.settings.front_door_certificate_map}"
        for host in hosts:
            rid = self.entry_id(service, host)
            self._create_cm(f"{self._cm()}/certificates", "certificateId", f"c-{rid}",
                            self.certificate_body(ctx, host, host == preview, service))  # fmt: skip
            self._create_cm(f"{certmap}/certificateMapEntries", "certificateMapEntryId", f"e-{rid}",
                            self.entry_body(ctx, host, service))  # fmt: skip
            records += [Record(host, kind, values) for kind, values in address]
        for host in recorded.get("hosts") or []:
            if host not in hosts:
                self._remove_host(service, host)
        ctx.resources["frontdoor"] = {"hosts": hosts, "backend": ids["backend"], "neg": ids["neg"],
                                      "stopped": stopped}  # fmt: skip
        return records

    def stop(self, ctx: SiteContext, service: str, hosts: list[str]) -> None:
        """Route the site's names to the stopped page, then drop Cloud CDN's copies of its
        pages under each name: a cached page would otherwise be served until its TTL ends."""
        recorded = dict(ctx.resources.get("frontdoor") or {})
        hosts = list(recorded.get("hosts") or hosts)
        self._update_url_map(service, hosts, stopped=True)
        for host in hosts:
            self._wait_compute(
                self.compute.call("POST", f"{self._url_map()}/invalidateCache",
                                  {"host": host, "path": "/*"})
            )  # fmt: skip
        ctx.resources["frontdoor"] = {**recorded, "hosts": hosts, "stopped": True}

    def start(self, ctx: SiteContext, service: str, hosts: list[str]) -> None:
        """Route the site's names to its own backend again (the stopped page is not cached:
        nothing to invalidate)."""
        recorded = dict(ctx.resources.get("frontdoor") or {})
        hosts = list(recorded.get("hosts") or hosts)
        self._update_url_map(service, hosts, stopped=False)
        ctx.resources["frontdoor"] = {**recorded, "hosts": hosts, "stopped": False}

    def _remove_host(self, service: str, host: str) -> None:
        rid = self.entry_id(service, host)
        certmap = f"{self._cm()}/certificateMaps/{self.settings.front_door_certificate_map}"
        self._delete(self.certs, f"{certmap}/certificateMapEntries/e-{rid}", compute=False)
        self._delete(self.certs, f"{self._cm()}/certificates/c-{rid}", compute=False)

    def remove(self, ctx: SiteContext, service: str, hosts: list[str]) -> list[str]:
        """Everything ensure made, in reverse order (no-op when gone)."""
        ids = self.ids(service)
        recorded = (ctx.resources.get("frontdoor") or {}).get("hosts") or hosts
        for host in recorded:
            self._remove_host(service, host)
        authorization = self.certs.get(f"{self._cm()}/dnsAuthorizations/{ids['authorization']}")
        proof = (authorization or {}).get("dnsResourceRecord") or {}
        self._delete(
            self.certs, f"{self._cm()}/dnsAuthorizations/{ids['authorization']}", compute=False
        )
        self._update_url_map(service, [])
        self._delete(
            self.compute, f"{self._global()}/backendServices/{ids['backend']}", compute=True
        )
        self._delete(
            self.compute, f"{self._region()}/networkEndpointGroups/{ids['neg']}", compute=True
        )
        ctx.resources.pop("frontdoor", None)
        return [*recorded, *([str(proof["name"]).rstrip(".")] if proof else [])]
