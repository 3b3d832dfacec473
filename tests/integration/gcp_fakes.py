"""Local fakes of Google Cloud REST APIs (and Cloudflare's) that check the requests the real
client libraries send. Each records what it received; tests read the records."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Handler = Callable[[Request, dict[str, str], dict[str, Any]], Response]


def error(code: int, status: str, message: str) -> JSONResponse:
    """A Google API error body."""
    return JSONResponse({"error": {"code": code, "status": status, "message": message}}, code)


class Fake:
    """Dispatches requests by (method, regex) and records them."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[tuple[str, str, dict[str, Any]]] = []

    def on(self, method: str, pattern: str, handler: Handler) -> None:
        """Register a handler."""
        self.routes.append((method, re.compile(pattern + "$"), handler))

    async def dispatch(self, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw.strip() else {}
        path = request.url.path
        self.requests.append((request.method, path, body))
        for method, pattern, handler in self.routes:
            match = pattern.match(path)
            if match and method == request.method:
                return handler(request, match.groupdict(), body)
        return error(404, "NOT_FOUND", f"fake has no route for {request.method} {path}")

    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(routes=[Route("/{path:path}", self.dispatch,
                                       methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])  # fmt: skip


class FakeCloudRun(Fake):
    """Cloud Run Admin API v2 services: create/get/update/delete (long-running operations,
    returned done) and IAM; also serves each service's /healthz, as the deployed site would."""

    def __init__(self, tenant_image: str) -> None:
        super().__init__()
        self.tenant_image = tenant_image
        self.services: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.fail_create = False
        self.base_url = ""
        services = r"/v2/(?P<parent>projects/[^/]+/locations/[^/]+)/services"
        self.on("POST", services, self.create)
        self.on("GET", services + r"/(?P<id>[^/:]+)", self.get)
        self.on("PATCH", services + r"/(?P<id>[^/:]+)", self.update)
        self.on("DELETE", services + r"/(?P<id>[^/:]+)", self.delete)
        self.on("GET", services + r"/(?P<id>[^/:]+):getIamPolicy", self.get_policy)
        self.on("POST", services + r"/(?P<id>[^/:]+):getIamPolicy", self.get_policy)
        self.on("POST", services + r"/(?P<id>[^/:]+):setIamPolicy", self.set_policy)
        self.on("GET", r"/sites/(?P<id>[^/]+)/healthz", self.health)
        self.on("GET", r"/sites/(?P<id>[^/]+)/", self.homepage)
        self.empty_homepages: set[str] = set()  # sites whose WordPress has no theme
        self.mappings: dict[str, dict[str, Any]] = {}
        mappings = r"/apis/domains.cloudrun.com/v1/namespaces/(?P<p>[^/]+)/domainmappings"
        self.on("POST", mappings, self.map_domain)
        self.on("DELETE", mappings + r"/(?P<host>[^/]+)", self.unmap_domain)
        self.on("GET", mappings + r"/(?P<host>[^/]+)", self.get_mapping)

    def get_mapping(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        mapping = self.mappings.get(m["host"])
        return JSONResponse(mapping) if mapping else error(404, "NOT_FOUND", m["host"])

    def map_domain(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        assert body["kind"] == "DomainMapping" and body["spec"]["certificateMode"] == "AUTOMATIC"
        assert "aipress-tenant-id" in body["metadata"]["labels"]
        host = body["metadata"]["name"]
        if host in self.mappings:
            return error(409, "ALREADY_EXISTS", host)
        self.mappings[host] = body
        return JSONResponse(body)

    def unmap_domain(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        if self.mappings.pop(m["host"], None) is None:
            return error(404, "NOT_FOUND", m["host"])
        return JSONResponse({"status": "Success"})

    def check(self, service: dict[str, Any]) -> None:
        """What every site's service must look like."""
        template = service["template"]
        container = template["containers"][0]
        assert container["image"] == self.tenant_image
        env = {e["name"]: e for e in container["env"]}
        for name in ("WORDPRESS_DB_PASSWORD", "WORDPRESS_SALTS", "WORDPRESS_ADMIN_PASSWORD",
                     "AIPRESS_LOGIN_KEY"):  # fmt: skip
            assert "value" not in env[name], f"{name} must be a secret reference"
            assert env[name]["valueSource"]["secretKeyRef"]["version"] == "latest"
        assert env["WORDPRESS_DB_HOST"]["value"].startswith("localhost:/cloudsql/")
        volumes = {v["name"]: v for v in template["volumes"]}
        assert volumes["cloudsql"]["cloudSqlInstance"]["instances"]
        assert volumes["uploads"]["gcs"]["bucket"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts == {"cloudsql": "/cloudsql", "uploads": "/var/www/html/wp-content/uploads"}
        assert template["scaling"].get("minInstanceCount", 0) == 0
        assert template["scaling"]["maxInstanceCount"] >= 1
        assert container["resources"]["startupCpuBoost"] is True
        for labels in (service["labels"], template["labels"]):
            assert {"aipress-tenant-id", "aipress-site"} <= set(labels)

    def _operation(self, service: dict[str, Any]) -> JSONResponse:
        return JSONResponse({
            "name": f"{service['name'].rsplit('/services/', 1)[0]}/operations/op-{len(self.requests)}",
            "done": True,
            "response": {"@type": "type.googleapis.com/google.cloud.run.v2.Service", **service},
        })  # fmt: skip

    def create(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        service_id = request.query_params["serviceId"]
        self.check(body)
        if self.fail_create:
            return error(400, "FAILED_PRECONDITION", "injected: revision failed to start")
        name = f"{m['parent']}/services/{service_id}"
        if name in self.services:
            return error(409, "ALREADY_EXISTS", f"{name} exists")
        service = {**body, "name": name, "uri": f"{self.base_url}/sites/{service_id}"}
        self.services[name] = service
        return self._operation(service)

    def get(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"{m['parent']}/services/{m['id']}"
        if name not in self.services:
            return error(404, "NOT_FOUND", f"{name} not found")
        return JSONResponse(self.services[name])

    def update(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"{m['parent']}/services/{m['id']}"
        if name not in self.services:
            return error(404, "NOT_FOUND", f"{name} not found")
        self.check(body)
        self.services[name] = {**self.services[name], **body, "name": name}
        return self._operation(self.services[name])

    def delete(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"{m['parent']}/services/{m['id']}"
        service = self.services.pop(name, None)
        if service is None:
            return error(404, "NOT_FOUND", f"{name} not found")
        self.policies.pop(name, None)
        return self._operation(service)

    def get_policy(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        return JSONResponse(
            self.policies.get(f"{m['parent']}/services/{m['id']}", {"etag": "BwYA"})
        )

    def set_policy(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        self.policies[f"{m['parent']}/services/{m['id']}"] = body["policy"]
        return JSONResponse(body["policy"])

    def health(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        known = any(name.endswith(f"/services/{m['id']}") for name in self.services)
        return Response("ok" if known else "gone", status_code=200 if known else 404)

    def homepage(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        """The homepage the tenant image's WordPress renders from the service's env."""
        service = next(
            (s for n, s in self.services.items() if n.endswith(f"/services/{m['id']}")), None
        )
        if service is None:
            return Response("gone", status_code=404)
        if service["labels"].get("aipress-site") in self.empty_homepages:
            return Response("", status_code=200, media_type="text/html")
        env = {e["name"]: e.get("value") for e in service["template"]["containers"][0]["env"]}
        title = html.escape(env["WORDPRESS_TITLE"])
        return Response(
            f"<!DOCTYPE html><html><head><title>{title}</title>"
            '<meta name="generator" content="WordPress 6.8.3" /></head><body></body></html>',
            media_type="text/html",
        )

    def public(self, name: str) -> bool:
        """Whether allUsers may invoke the service."""
        policy = self.policies.get(name, {})
        return any("allUsers" in b.get("members", []) for b in policy.get("bindings", []))


class FakeSecretManager(Fake):
    """Secret Manager v1: secrets, versions, IAM."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[bytes | None]] = {}  # None: destroyed
        self.policies: dict[str, dict[str, Any]] = {}
        secrets = r"/v1/projects/(?P<project>[^/]+)/secrets"
        self.on("POST", secrets, self.create)
        self.on("GET", secrets + r"/(?P<id>[^/:]+)", self.get)
        self.on("DELETE", secrets + r"/(?P<id>[^/:]+)", self.delete)
        self.on("POST", secrets + r"/(?P<id>[^/:]+):addVersion", self.add_version)
        self.on("GET", secrets + r"/(?P<id>[^/:]+)/versions/latest:access", self.access)
        self.on("GET", secrets + r"/(?P<id>[^/:]+)/versions", self.list_versions)
        self.on("POST", secrets + r"/(?P<id>[^/:]+)/versions/(?P<n>\d+):destroy", self.destroy)
        self.on("GET", secrets + r"/(?P<id>[^/:]+):getIamPolicy", self.get_policy)
        self.on("POST", secrets + r"/(?P<id>[^/:]+):getIamPolicy", self.get_policy)
        self.on("POST", secrets + r"/(?P<id>[^/:]+):setIamPolicy", self.set_policy)

    def create(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"projects/{m['project']}/secrets/{request.query_params['secretId']}"
        if name in self.secrets:
            return error(409, "ALREADY_EXISTS", f"{name} exists")
        assert "automatic" in body["replication"]
        self.secrets[name] = {**body, "name": name}
        return JSONResponse(self.secrets[name])

    def get(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"projects/{m['project']}/secrets/{m['id']}"
        return (
            JSONResponse(self.secrets[name])
            if name in self.secrets
            else error(404, "NOT_FOUND", name)
        )

    def delete(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"projects/{m['project']}/secrets/{m['id']}"
        if self.secrets.pop(name, None) is None:
            return error(404, "NOT_FOUND", name)
        self.versions.pop(name, None)
        return JSONResponse({})

    def add_version(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"projects/{m['project']}/secrets/{m['id']}"
        if name not in self.secrets:
            return error(404, "NOT_FOUND", name)
        self.versions.setdefault(name, []).append(base64.b64decode(body["payload"]["data"]))
        return JSONResponse(
            {"name": f"{name}/versions/{len(self.versions[name])}", "state": "ENABLED"}
        )

    def get_policy(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        return JSONResponse(
            self.policies.get(f"projects/{m['project']}/secrets/{m['id']}", {"etag": "BwYA"})
        )

    def set_policy(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        self.policies[f"projects/{m['project']}/secrets/{m['id']}"] = body["policy"]
        return JSONResponse(body["policy"])

    def enabled(self, name: str) -> list[int]:
        """Numbers (1-based) of the secret's versions that are not destroyed."""
        return [i + 1 for i, v in enumerate(self.versions.get(name, [])) if v is not None]

    def access(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"projects/{m['project']}/secrets/{m['id']}"
        live = self.enabled(name)
        if not live:
            return error(404, "NOT_FOUND", f"{name} has no enabled version")
        data = self.versions[name][live[-1] - 1]
        assert data is not None
        return JSONResponse({"name": f"{name}/versions/{live[-1]}",
                             "payload": {"data": base64.b64encode(data).decode()}})  # fmt: skip

    def list_versions(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"projects/{m['project']}/secrets/{m['id']}"
        assert request.query_params.get("filter") == "state:ENABLED"
        return JSONResponse({"versions": [{"name": f"{name}/versions/{n}", "state": "ENABLED"}
                                          for n in self.enabled(name)]})  # fmt: skip

    def destroy(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"projects/{m['project']}/secrets/{m['id']}"
        self.versions[name][int(m["n"]) - 1] = None
        return JSONResponse({"name": f"{name}/versions/{m['n']}", "state": "DESTROYED"})


class FakeCloudflare(Fake):
    """Cloudflare API v4 DNS records of one zone."""

    def __init__(self, zone_id: str) -> None:
        super().__init__()
        self.records: dict[str, dict[str, Any]] = {}
        records = rf"/client/v4/zones/{zone_id}/dns_records"
        self.on("GET", records, self.list)
        self.on("POST", records, self.create)
        self.on("PUT", records + r"/(?P<id>[^/]+)", self.update)
        self.on("DELETE", records + r"/(?P<id>[^/]+)", self.delete)

    @staticmethod
    def ok(result: Any) -> JSONResponse:
        info = {"page": 1, "per_page": 100, "count": 1, "total_count": 1, "total_pages": 1}
        return JSONResponse({"success": True, "errors": [], "messages": [], "result": result,
                             "result_info": info})  # fmt: skip

    def list(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = request.query_params.get("name.exact") or request.query_params.get("name")
        if int(request.query_params.get("page", "1")) > 1:
            return self.ok([])  # one page holds everything
        return self.ok([r for r in self.records.values() if name in (None, r["name"])])

    def create(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        assert body["type"] == "CNAME" and body["proxied"] is False
        record = {**body, "id": f"rec{len(self.records) + 1}"}
        self.records[record["id"]] = record
        return self.ok(record)

    def update(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        self.records[m["id"]] = {**body, "id": m["id"]}
        return self.ok(self.records[m["id"]])

    def delete(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        self.records.pop(m["id"], None)
        return self.ok({"id": m["id"]})


class FakeLogging(Fake):
    """Cloud Logging v2 entries:list, answering with entries a test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []
        self.on("POST", r"/v2/entries:list", self.list)

    def list(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        text = body["filter"]
        assert 'resource.type="cloud_run_revision"' in text and "timestamp>=" in text
        return JSONResponse({"entries": self.entries})


class FakeIam(Fake):
    """IAM service accounts (iam v1) and the project's IAM policy (resourcemanager v3)."""

    def __init__(self) -> None:
        super().__init__()
        self.accounts: dict[str, dict[str, Any]] = {}
        self.project_policy: dict[str, Any] = {"etag": "BwYA", "bindings": []}
        self.on("GET", r"/v1/projects/(?P<p>[^/]+)/serviceAccounts/(?P<email>[^/]+)", self.get)
        self.on("POST", r"/v1/projects/(?P<p>[^/]+)/serviceAccounts", self.create)
        self.on("POST", r"/v3/projects/(?P<p>[^/:]+):getIamPolicy", self.get_policy)
        self.on("POST", r"/v3/projects/(?P<p>[^/:]+):setIamPolicy", self.set_policy)

    def get(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        account = self.accounts.get(m["email"])
        return JSONResponse(account) if account else error(404, "NOT_FOUND", m["email"])

    def create(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        account_id = body["accountId"]
        assert 6 <= len(account_id) <= 30
        email = f"{account_id}@{m['p']}.iam.gserviceaccount.com"
        if email in self.accounts:
            return error(409, "ALREADY_EXISTS", email)
        self.accounts[email] = {**body["serviceAccount"], "email": email,
                                "name": f"projects/{m['p']}/serviceAccounts/{email}"}  # fmt: skip
        return JSONResponse(self.accounts[email])

    def get_policy(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        return JSONResponse(self.project_policy)

    def set_policy(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        roles = {b["role"] for b in body["policy"]["bindings"]}
        assert not roles & {"roles/owner", "roles/editor"}
        self.project_policy = body["policy"]
        return JSONResponse(self.project_policy)
