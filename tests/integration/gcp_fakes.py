"""Local fakes of Google Cloud REST APIs (and Cloudflare's) that check the requests the real
client libraries send. Each records what it received; tests read the records."""

from __future__ import annotations

import base64
import html
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pymysql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Handler = Callable[[Request, dict[str, str], dict[str, Any]], Response]
INSTALL_COMMAND = ["aipress-install"]
# The search-replace job's command, and the file the image's Dockerfile copies to that path.
SEARCH_REPLACE_COMMAND = ["php", "/usr/local/share/aipress/search-replace.php"]
SEARCH_REPLACE_SOURCE = (
    Path(__file__).resolve().parents[2] / "controlplane/providers/local/search_replace.php"
)
# The packages job's command, and the file the Dockerfile copies to that path.
PACKAGES_COMMAND = ["php", "/usr/local/share/aipress/packages.php"]
PACKAGES_SOURCE = Path(__file__).resolve().parents[2] / "runtime/wordpress/aipress-packages.php"
# The site's code in its bucket (runtime.CODE_VOLUMES), and where the catalogue is mounted.
CODE_MOUNTS = {"plugins": ".aipress-code/plugins", "themes": ".aipress-code/themes"}
WP_ROOT = "/var/www/html"
CATALOGUE_MOUNT = "/var/aipress/catalogue"
UNKNOWN_ROUTE = 599  # never a 404: "not found" would read as "absent" to the caller


def error(code: int, status: str, message: str) -> JSONResponse:
    """A Google API error body."""
    return JSONResponse({"error": {"code": code, "status": status, "message": message}}, code)


class Refused(AssertionError):
    """A request the real API would refuse (its body breaks the documented schema)."""


@dataclass(frozen=True)
class Field:
    """One documented field of a request body: its JSON type (or a nested schema), whether
    it is required, and an optional check of its value."""

    kind: type | dict[str, Field]
    required: bool = False
    check: Callable[[Any], bool] | None = None
    items: type | dict[str, Field] | None = None  # the element type of a list


def validate(body: Any, schema: dict[str, Field], where: str = "body") -> None:
    """Check `body` field by field against `schema`: unknown fields, missing required ones,
    wrong types and failed checks are refused (raise Refused) with the field's path."""
    if not isinstance(body, dict):
        raise Refused(f"{where} must be an object, got {type(body).__name__}")
    unknown = set(body) - set(schema)
    if unknown:
        raise Refused(f"{where} has unknown field(s) {sorted(unknown)}")
    for name, field in schema.items():
        path = f"{where}.{name}"
        if name not in body:
            if field.required:
                raise Refused(f"{path} is required")
            continue
        _check_value(body[name], field.kind, path)
        if field.items is not None:
            for i, item in enumerate(body[name]):
                _check_value(item, field.items, f"{path}[{i}]")
        if field.check is not None and not field.check(body[name]):
            raise Refused(f"{path} has an invalid value {body[name]!r}")


def _check_value(value: Any, kind: type | dict[str, Field], path: str) -> None:
    if isinstance(kind, dict):
        validate(value, kind, path)
    elif (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise Refused(f"{path} must be {kind.__name__}, got {type(value).__name__}")


class Fake:
    """Dispatches requests by (method, regex) and records them. A request no route knows,
    and one a handler refuses (a failed check), answer loudly and are kept in `problems`,
    which `assert_clean` turns into a test failure."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.problems: list[str] = []

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
                try:
                    return handler(request, match.groupdict(), body)
                except AssertionError as exc:  # Refused included
                    self.problems.append(f"{request.method} {path}: {exc}")
                    return error(400, "INVALID_ARGUMENT", f"fake refused the request: {exc}")
        self.problems.append(f"{request.method} {path}: no route in {type(self).__name__}")
        return error(
            UNKNOWN_ROUTE, "UNKNOWN_ROUTE", f"fake has no route for {request.method} {path}"
        )

    def assert_clean(self) -> None:
        """Fail when any request was unknown or refused."""
        assert not self.problems, f"{type(self).__name__}: {self.problems}"

    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(routes=[Route("/{path:path}", self.dispatch,
                                       methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])  # fmt: skip


RESERVED_Z = re.compile(r".*z$")  # Cloud Run's front end keeps some paths ending in "z"
DRS_REFUSAL = (
    "One or more users named in the policy do not belong to a permitted customer, "
    "perhaps due to an organization policy."
)


# The platform's sites network (terraform/): a subnet, its firewall tag, Cloud SQL's address.
SITES_SUBNET = "projects/aipress-test/regions/us-central1/subnetworks/aipress-sites-us-central1"
SITES_TAG = "aipress-site"
SQL_PRIVATE_IP = "10.20.0.3"


class FakeCloudRun(Fake):
    """Cloud Run Admin API v2 services and jobs (long-running operations, returned done), IAM
    under a Domain Restricted Sharing organization policy, the v1 domain mappings, and each
    service's front end and container as Google documents them:

    - the front end answers reserved paths (ending in "z", /_ah/, /eventlog) itself, with a
      404 that never reaches the container, and turns away everything when ingress is
      internal only;
    - the startup probe passes on any 2xx or 3xx; a service is checked by it when created,
      and one that passed while WordPress was not installed is recorded;
    - the container is the tenant image: WordPress answers every page with a 302 to
      install.php until installed, and only the install job (command `aipress-install`)
      installs it;
    - the search-replace job (command `php /usr/local/share/aipress/search-replace.php`)
      really runs that script with php on this machine, with the job's env (secrets
      resolved), against `database` (the MariaDB standing in for Cloud SQL: the image's
      /cloudsql socket becomes its TCP address);
    - the packages job (command `php /usr/local/share/aipress/packages.php`) really runs
      runtime/wordpress/aipress-packages.php with php against `database` and the WordPress
      tree `wordpress_root`, its GCS volumes a directory standing for each bucket: the
      objects are copied there from the GCS emulator (`storage`) before the run and what the
      run changed through a writable mount is written back after it; its input comes in the
      run's overrides (one env var, no args), and nothing it writes may pass a read-only
      mount;
    - a GCS volume needs the second-generation environment, and is root-owned unless
      mounted with uid=33,gid=33 (www-data);
    - Direct VPC egress names a subnetwork that must exist.
    """

    def __init__(self, tenant_image: str) -> None:
        super().__init__()
        self.tenant_image = tenant_image
        self.secrets: FakeSecretManager | None = None  # resolves secret env (maintenance)
        self.project = "aipress-test"
        self.services: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.installed: set[str] = set()  # site keys ("s-<key>" / "i-<key>") with WordPress
        self.served_before_install: list[str] = []  # services whose probe passed uninstalled
        self.fail_create = False
        self.fail_install: str | None = None  # the install's error, when it is to fail
        self.subnetworks = {SITES_SUBNET}  # the project's VPC subnetworks
        self.database: tuple[str, int] | None = None  # (host, port) standing in for Cloud SQL
        self.rewrites: list[dict[str, Any]] = []  # the input of every search-replace run
        self.wordpress_root: Path | None = None  # the tree packages jobs run WordPress from
        self.storage: Any = None  # a storage client on the GCS emulator (the jobs' buckets)
        self.package_runs: list[dict[str, Any]] = []  # the input of every packages run
        self.base_url = ""
        services = r"/v2/(?P<parent>projects/[^/]+/locations/[^/]+)/services"
        self.on("POST", services, self.create)
        self.on("GET", services + r"/(?P<id>[^/:]+)", self.get)
        self.on("PATCH", services + r"/(?P<id>[^/:]+)", self.update)
        self.on("DELETE", services + r"/(?P<id>[^/:]+)", self.delete)
        self.on("GET", services + r"/(?P<id>[^/:]+):getIamPolicy", self.get_policy)
        self.on("POST", services + r"/(?P<id>[^/:]+):getIamPolicy", self.get_policy)
        self.on("POST", services + r"/(?P<id>[^/:]+):setIamPolicy", self.set_policy)
        jobs = r"/v2/(?P<parent>projects/[^/]+/locations/[^/]+)/jobs"
        self.on("POST", jobs, self.create_job)
        self.on("GET", jobs + r"/(?P<id>[^/:]+)", self.get_job)
        self.on("PATCH", jobs + r"/(?P<id>[^/:]+)", self.update_job)
        self.on("DELETE", jobs + r"/(?P<id>[^/:]+)", self.delete_job)
        self.on("POST", jobs + r"/(?P<id>[^/:]+):run", self.run_job)
        self.on("GET", r"/sites/(?P<id>[^/]+)(?P<path>/.*)", self.front_end)
        self.empty_homepages: set[str] = set()  # sites whose WordPress has no theme
        self.mappings: dict[str, dict[str, Any]] = {}
        self.failing_mappings: dict[str, str] = {}  # host -> the condition's message
        mappings = r"/apis/domains.cloudrun.com/v1/namespaces/(?P<p>[^/]+)/domainmappings"
        self.on("POST", mappings, self.map_domain)
        self.on("DELETE", mappings + r"/(?P<host>[^/]+)", self.unmap_domain)
        self.on("GET", mappings + r"/(?P<host>[^/]+)", self.get_mapping)

    @staticmethod
    def key(resource_id: str) -> str:
        """The site key shared by a service "s-<key>" and its install job "i-<key>"."""
        return resource_id.split("-", 1)[1]

    def get_mapping(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        mapping = self.mappings.get(m["host"])
        if not mapping:
            return error(404, "NOT_FOUND", m["host"])
        host = m["host"]
        failure = self.failing_mappings.get(host)
        ready = {"type": "Ready", "status": "False" if failure else "True"}
        if failure:
            ready.update(reason="PermissionDenied", message=failure)
        # Apex names get A/AAAA records, subdomains a CNAME (status.resourceRecords).
        apex = host.count(".") == 1
        records = (
            [
                {"type": "A", "rrdata": "216.239.32.21"},
                {"type": "AAAA", "rrdata": "2001:4860:4802:32::15"},
            ]
            if apex
            else [{"type": "CNAME", "rrdata": "ghs.googlehosted.com."}]
        )
        return JSONResponse(
            {**mapping, "status": {"conditions": [ready], "resourceRecords": records}}
        )

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

    def check_container(self, container: dict[str, Any], volumes: dict[str, Any]) -> None:
        """What the tenant image's container must look like, in a service or a job."""
        # The platform's tenant image, or a tag of it carrying another core version.
        assert container["image"].rsplit(":", 1)[0] == self.tenant_image.rsplit(":", 1)[0]
        env = {e["name"]: e for e in container["env"]}
        for name in ("WORDPRESS_DB_PASSWORD", "WORDPRESS_SALTS", "WORDPRESS_ADMIN_PASSWORD",
                     "AIPRESS_LOGIN_KEY"):  # fmt: skip
            assert "value" not in env[name], f"{name} must be a secret reference"
            assert env[name]["valueSource"]["secretKeyRef"]["version"] == "latest"
        # Cloud SQL's private IP over TLS with the site's password: no Cloud SQL volume, which
        # would need the tenant's identity to hold cloudsql.client on the whole project.
        assert env["WORDPRESS_DB_HOST"]["value"] == f"{SQL_PRIVATE_IP}:3306"
        assert env["WORDPRESS_DB_TLS"]["value"] == "on"
        assert {"uploads", *CODE_MOUNTS} <= set(volumes) <= {"uploads", *CODE_MOUNTS, "catalogue"}
        bucket = volumes["uploads"]["gcs"]["bucket"]
        assert bucket and not volumes["uploads"]["gcs"].get("readOnly")
        for name, prefix in CODE_MOUNTS.items():  # the site's own bucket, nothing else
            assert volumes[name]["gcs"]["bucket"] == bucket
            assert f"only-dir={prefix}" in volumes[name]["gcs"]["mountOptions"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["uploads"] == f"{WP_ROOT}/wp-content/uploads"
        assert all(mounts[n] == f"{WP_ROOT}/wp-content/{n}" for n in CODE_MOUNTS), mounts
        if "catalogue" in volumes:  # the platform's catalogue: read-only, its prefix only
            assert volumes["catalogue"]["gcs"].get("readOnly") is True
            assert "only-dir=catalogue" in volumes["catalogue"]["gcs"]["mountOptions"]
            assert mounts["catalogue"] == CATALOGUE_MOUNT

    def vpc_refusal(self, template: dict[str, Any]) -> Response | None:
        """Direct VPC egress: one interface on a subnetwork that exists (else the API refuses
        the deploy), the sites' firewall tag, private ranges only (the internet direct)."""
        access = template.get("vpcAccess") or {}
        [interface] = access.get("networkInterfaces") or [{}]
        subnet = interface.get("subnetwork", "")
        if subnet not in self.subnetworks:
            return error(400, "INVALID_ARGUMENT", f"Subnetwork '{subnet}' does not exist.")
        assert interface.get("tags") == [SITES_TAG], interface
        assert access.get("egress") in (2, "PRIVATE_RANGES_ONLY"), access
        return None

    @staticmethod
    def gen1_refusal(template: dict[str, Any]) -> Response | None:
        """GCS volumes exist only in the second-generation execution environment."""
        gcs = any("gcs" in v for v in template.get("volumes", []))
        # The client sends enums as numbers ($alt=json;enum-encoding=int): GEN2 is 2.
        if gcs and template.get("executionEnvironment") not in (2, "EXECUTION_ENVIRONMENT_GEN2"):
            return error(400, "INVALID_ARGUMENT", "Cloud Storage volumes are only supported in "
                         "the second generation execution environment.")  # fmt: skip
        return None

    def check(self, service: dict[str, Any]) -> Response | None:
        """What every site's service must look like (or the API's refusal)."""
        template = service["template"]
        container = template["containers"][0]
        self.check_container(container, {v["name"]: v for v in template["volumes"]})
        assert template["scaling"].get("minInstanceCount", 0) == 0
        assert template["scaling"]["maxInstanceCount"] >= 1
        assert container["resources"]["startupCpuBoost"] is True
        assert "command" not in container  # the image's entrypoint serves
        # The service never writes its code: only the tenant's jobs mount it writable.
        assert all(v["gcs"].get("readOnly") for v in template["volumes"] if v["name"] != "uploads")
        assert "catalogue" not in {v["name"] for v in template["volumes"]}
        for labels in (service["labels"], template["labels"]):
            assert {"aipress-tenant-id", "aipress-site"} <= set(labels)
        env = {e["name"]: e for e in container["env"]}
        if "AIPRESS_MAINTENANCE" in env:
            assert env["AIPRESS_MAINTENANCE"]["value"] == "on"
            probe = env["AIPRESS_PROBE_TOKEN"]
            assert "value" not in probe, "the probe token must be a secret reference"
            assert probe["valueSource"]["secretKeyRef"]["version"] == "latest"
        return (self.gen1_refusal(template) or self.vpc_refusal(template)
                or self.check_secret_access(template))  # fmt: skip

    def _operation(self, resource: dict[str, Any], kind: str = "Service") -> JSONResponse:
        return JSONResponse({
            "name": f"{resource['name'].rsplit('/', 2)[0]}/operations/op-{len(self.requests)}",
            "done": True,
            "response": {"@type": f"type.googleapis.com/google.cloud.run.v2.{kind}", **resource},
        })  # fmt: skip

    def container_answer(self, service_id: str, path: str) -> int:
        """The status the tenant image's Apache answers `path` with."""
        installed = self.key(service_id) in self.installed
        if path == "/aipress-probe":  # aliased to the probe script
            return 200 if installed else 503
        return 200 if installed else 302  # WordPress's index.php: to install.php until installed

    def startup_probe(self, service_id: str, service: dict[str, Any]) -> None:
        """Cloud Run probes a new revision's container directly (no front end): 2xx and 3xx
        pass, so a revision that passes while WordPress is not installed starts serving."""
        probe = service["template"]["containers"][0].get("startupProbe", {})
        path = probe.get("httpGet", {}).get("path")
        status = self.container_answer(service_id, path) if path else 200
        if status < 400 and self.key(service_id) not in self.installed:
            self.served_before_install.append(service_id)

    def create(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        service_id = request.query_params["serviceId"]
        refused = self.check(body)
        if refused is not None:
            return refused
        if self.fail_create:
            return error(400, "FAILED_PRECONDITION", "injected: revision failed to start")
        name = f"{m['parent']}/services/{service_id}"
        if name in self.services:
            return error(409, "ALREADY_EXISTS", f"{name} exists")
        service = {**body, "name": name, "uri": f"{self.base_url}/sites/{service_id}"}
        self.services[name] = service
        self.startup_probe(service_id, service)
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
        refused = self.check(body)
        if refused is not None:
            return refused
        old = self.services[name]
        # A service-level change (ingress, invoker check) makes no revision; a template does.
        self.services[name] = {**old, **body, "name": name, "uri": old["uri"]}
        if body["template"] != old["template"]:
            self.startup_probe(m["id"], self.services[name])
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
        members = [x for b in body["policy"].get("bindings", []) for x in b.get("members", [])]
        if "allUsers" in members or "allAuthenticatedUsers" in members:
            # Domain Restricted Sharing (iam.allowedPolicyMemberDomains), on by default in new
            # organisations, refuses public principals in any IAM policy.
            return error(400, "FAILED_PRECONDITION", DRS_REFUSAL)
        self.policies[f"{m['parent']}/services/{m['id']}"] = body["policy"]
        return JSONResponse(body["policy"])

    def check_job(self, job: dict[str, Any]) -> Response | None:
        task = job["template"]["template"]
        container = task["containers"][0]
        self.check_container(container, {v["name"]: v for v in task["volumes"]})
        assert container["command"] in (INSTALL_COMMAND, SEARCH_REPLACE_COMMAND, PACKAGES_COMMAND)
        if container["command"] == PACKAGES_COMMAND:
            # Each run's input comes in its overrides, never in the job's definition.
            assert "AIPRESS_PACKAGES" not in {e["name"] for e in container["env"]}
            assert "args" not in container
            assert int(task.get("maxRetries", 0)) == 0
        if container["command"] == SEARCH_REPLACE_COMMAND:
            # The input names the schema and the addresses only: the connection and the
            # password come from the image's env (the password a secret reference).
            env = {e["name"]: e for e in container["env"]}
            payload = json.loads(env["AIPRESS_SEARCH_REPLACE"]["value"])
            assert set(payload) == {"database", "from", "to", "dry_run", "report_table"}
            assert int(task.get("maxRetries", 0)) == 0, "a retry would rewrite a rewritten schema"
        assert job["template"].get("taskCount", 1) == 1
        assert "ports" not in container and "startupProbe" not in container
        assert {"aipress-tenant-id", "aipress-site"} <= set(job["labels"])
        return self.gen1_refusal(task) or self.vpc_refusal(task)

    def create_job(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"{m['parent']}/jobs/{request.query_params['jobId']}"
        refused = self.check_job(body)
        if refused is not None:
            return refused
        if name in self.jobs:
            return error(409, "ALREADY_EXISTS", f"{name} exists")
        self.jobs[name] = {**body, "name": name}
        return self._operation(self.jobs[name], "Job")

    def get_job(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"{m['parent']}/jobs/{m['id']}"
        job = self.jobs.get(name)
        return JSONResponse(job) if job else error(404, "NOT_FOUND", f"{name} not found")

    def update_job(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"{m['parent']}/jobs/{m['id']}"
        if name not in self.jobs:
            return error(404, "NOT_FOUND", f"{name} not found")
        refused = self.check_job(body)
        if refused is not None:
            return refused
        self.jobs[name] = {**body, "name": name}
        return self._operation(self.jobs[name], "Job")

    def delete_job(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = f"{m['parent']}/jobs/{m['id']}"
        job = self.jobs.pop(name, None)
        return self._operation(job, "Job") if job else error(404, "NOT_FOUND", f"{name} not found")

    def run_job(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        """One execution of a job, finished: the install job installs WordPress, the
        search-replace job runs its script; or it fails."""
        name = f"{m['parent']}/jobs/{m['id']}"
        if name not in self.jobs:
            return error(404, "NOT_FOUND", f"{name} not found")
        execution: dict[str, Any] = {
            "name": f"{name}/executions/{m['id']}-{len(self.requests)}", "taskCount": 1,
            "logUri": "https://console.cloud.google.com/logs/viewer?job",
        }  # fmt: skip
        task = self.jobs[name]["template"]["template"]
        container = task["containers"][0]
        if container["command"] == SEARCH_REPLACE_COMMAND:
            failed = self.search_replace(container)
        elif container["command"] == PACKAGES_COMMAND:
            failed = self.packages(task, body.get("overrides") or {})
        else:
            failed = self.fail_install
        if failed:
            execution.update(failedCount=1, conditions=[
                {"type": "Completed", "state": "CONDITION_FAILED", "message": failed}])  # fmt: skip
        else:
            if container["command"] == INSTALL_COMMAND:
                self.installed.add(self.key(m["id"]))
            execution.update(succeededCount=1, conditions=[
                {"type": "Completed", "state": "CONDITION_SUCCEEDED"}])  # fmt: skip
        return self._operation(execution, "Execution")

    def container_env(self, env_vars: list[dict[str, Any]]) -> dict[str, str]:
        """The env a job's container sees (secrets resolved), its database the test's."""
        assert self.database is not None, "set FakeCloudRun.database to run the script jobs"
        env: dict[str, str] = {"PATH": os.environ["PATH"]}
        for var in env_vars:
            value = var.get("value")
            if value is None:
                secret = self.secret_value(var)
                assert secret is not None, f"{var['name']}: its secret has no version"
                value = secret.decode()
            env[var["name"]] = value
        host, port = self.database
        assert env["WORDPRESS_DB_HOST"] == f"{SQL_PRIVATE_IP}:3306"
        env["WORDPRESS_DB_HOST"] = f"{host}:{port}"  # the test's MariaDB, which takes no TLS
        env.pop("WORDPRESS_DB_TLS")
        return env

    def packages(self, task: dict[str, Any], overrides: dict[str, Any]) -> str | None:
        """Run the packages script as the container would, its volumes directories copied
        from (and written back to) the emulator's buckets; its error, or None."""
        assert self.wordpress_root is not None and self.storage is not None
        [override] = overrides["containerOverrides"]
        assert set(override) <= {"env"}, "a run's input is its env: no args, no other change"
        assert [e["name"] for e in override["env"]] == ["AIPRESS_PACKAGES"]
        assert "valueSource" not in override["env"][0]
        payload = override["env"][0]["value"]
        self.package_runs.append(json.loads(payload))
        container = task["containers"][0]
        env = self.container_env([*container["env"], *override["env"]])
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        with tempfile.TemporaryDirectory() as scratch:
            buckets = BucketDirs(self.storage, Path(scratch))
            for volume in task["volumes"]:
                gcs = volume["gcs"]
                only = next((o.removeprefix("only-dir=") for o in gcs.get("mountOptions", [])
                             if o.startswith("only-dir=")), "")  # fmt: skip
                where = buckets.mount(gcs["bucket"], only, writable=not gcs.get("readOnly"))
                path = mounts[volume["name"]]
                if path == CATALOGUE_MOUNT:
                    env["AIPRESS_CATALOGUE_DIR"] = str(where)
                    continue
                link = self.wordpress_root / Path(path).relative_to(WP_ROOT)
                if link.is_symlink() or link.is_file():
                    link.unlink()
                elif link.is_dir():
                    shutil.rmtree(link)
                link.symlink_to(where, target_is_directory=True)
            env["AIPRESS_WP_ROOT"] = str(self.wordpress_root)  # the image's /var/www/html
            done = subprocess.run(["php", str(PACKAGES_SOURCE)], env=env, capture_output=True,
                                  text=True, timeout=300, check=False)  # fmt: skip
            buckets.write_back()
        if done.returncode != 0:
            return f"Task failed with exit code {done.returncode}: {done.stderr.strip()[-300:]}"
        return None

    def search_replace(self, container: dict[str, Any]) -> str | None:
        """Run the job's script as the container would; its error, or None when it worked."""
        env = self.container_env(container["env"])
        self.rewrites.append(json.loads(env["AIPRESS_SEARCH_REPLACE"]))
        done = subprocess.run(["php", str(SEARCH_REPLACE_SOURCE)], env=env, capture_output=True,
                              text=True, timeout=300, check=False)  # fmt: skip
        if done.returncode != 0:
            return f"Task failed with exit code {done.returncode}: {done.stderr.strip()[-300:]}"
        return None

    def _service(self, service_id: str) -> dict[str, Any] | None:
        return next(
            (s for n, s in self.services.items() if n.endswith(f"/services/{service_id}")), None
        )

    def front_end(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        """A request to the service's run.app URL, through Google's front end."""
        path = m["path"]
        if RESERVED_Z.fullmatch(path) or path.startswith("/_ah/") or path == "/eventlog":
            return Response("<html>Error 404 (Not Found)!!1</html>", status_code=404,
                            media_type="text/html")  # fmt: skip
        service = self._service(m["id"])
        if service is None or not self.public_service(service):
            return Response("Error: Page not found", status_code=404)
        env = {e["name"]: e for e in service["template"]["containers"][0]["env"]}
        if env.get("AIPRESS_MAINTENANCE", {}).get("value") == "on" and path != "/aipress-probe":
            # The image's Apache in maintenance (tests/integration/test_tenant_image_apache.py
            # runs that configuration): 503 unless the request carries the probe token.
            token = self.secret_value(env.get("AIPRESS_PROBE_TOKEN"))
            if not token or request.headers.get("x-aipress-probe", "").encode() != token:
                return Response("<h1>This site is being restored</h1>", status_code=503,
                                headers={"Retry-After": "30", "Cache-Control": "no-store"},
                                media_type="text/html")  # fmt: skip
        status = self.container_answer(m["id"], path)
        if status == 302:
            return Response("", status_code=302, headers={"Location": "/wp-admin/install.php"})
        if path.startswith("/wp-json/") and status == 200:
            return JSONResponse({"name": "WordPress", "namespaces": ["wp/v2"]})
        if path != "/":
            return Response("ok" if status == 200 else "not installed", status_code=status)
        if service["labels"].get("aipress-site") in self.empty_homepages:
            return Response("", status_code=200, media_type="text/html")
        title = html.escape(self.site_title(service))
        return Response(
            f"<!DOCTYPE html><html><head><title>{title}</title>"
            '<meta name="generator" content="WordPress 6.8.3" /></head><body></body></html>',
            media_type="text/html",
        )

    def site_title(self, service: dict[str, Any]) -> str:
        """The title WordPress renders: the `blogname` of the site's database, read with the
        container's own credentials; the install's WORDPRESS_TITLE while there is none."""
        env_vars = service["template"]["containers"][0]["env"]
        installed = {e["name"]: e.get("value") for e in env_vars}["WORDPRESS_TITLE"]
        if self.database is None:
            return str(installed)
        env = self.container_env(env_vars)
        host, port = env["WORDPRESS_DB_HOST"].rsplit(":", 1)
        try:
            with pymysql.connect(host=host, port=int(port), user=env["WORDPRESS_DB_USER"],
                                 password=env["WORDPRESS_DB_PASSWORD"],
                                 database=env["WORDPRESS_DB_NAME"]) as conn, conn.cursor() as cur:  # fmt: skip
                cur.execute("SELECT option_value FROM wp_options WHERE option_name = 'blogname'")
                row = cur.fetchone()
        except pymysql.MySQLError:
            row = None
        return str(row[0]) if row else str(installed)

    def secret_value(self, env: dict[str, Any] | None) -> bytes | None:
        """The latest version of the secret an env var references (as the container sees it)."""
        if not env or self.secrets is None:
            return None
        ref = env["valueSource"]["secretKeyRef"]
        name = (
            ref["secret"]
            if "/" in ref["secret"]
            else f"projects/{self.project}/secrets/{ref['secret']}"
        )
        versions = [v for v in self.secrets.versions.get(name, []) if v is not None]
        return versions[-1] if versions else None

    def check_secret_access(self, template: dict[str, Any]) -> Response | None:
        """Cloud Run checks at deploy that the revision's service account may read each
        secret it references: a missing secret or binding fails the deploy."""
        if self.secrets is None:
            return None
        account = f"serviceAccount:{template.get('serviceAccount')}"
        for env in template["containers"][0]["env"]:
            ref = env.get("valueSource", {}).get("secretKeyRef")
            if not ref or env["name"] != "AIPRESS_PROBE_TOKEN":
                continue
            secret = ref["secret"]
            name = secret if "/" in secret else f"projects/{self.project}/secrets/{secret}"
            if name not in self.secrets.secrets:
                return error(400, "FAILED_PRECONDITION", f"Secret {name} was not found")
            bindings = self.secrets.policies.get(name, {}).get("bindings", [])
            if not any(b["role"] == "roles/secretmanager.secretAccessor"
                       and account in b["members"] for b in bindings):  # fmt: skip
                return error(400, "FAILED_PRECONDITION", f"Permission denied on secret {name} "
                             f"for Revision service account {account}")  # fmt: skip
        return None

    @staticmethod
    def public_service(service: dict[str, Any]) -> bool:
        """Reachable from the internet: invoker check off and ingress open to all."""
        return bool(service.get("invokerIamDisabled")) and service.get("ingress") in (
            None, 1, "INGRESS_TRAFFIC_ALL")  # fmt: skip

    def public(self, name: str) -> bool:
        """Whether anyone on the internet may invoke the service."""
        return self.public_service(self.services[name])

    def www_data_can_write_uploads(self, name: str) -> bool:
        """Cloud Storage FUSE mounts are root-owned (0755) unless uid/gid are mount options."""
        [uploads] = [
            v for v in self.services[name]["template"]["volumes"] if v["name"] == "uploads"
        ]
        options = set(uploads["gcs"].get("mountOptions", []))
        return {"uid=33", "gid=33"} <= options


class BucketDirs:
    """Directories standing for buckets mounted by Cloud Storage FUSE in one job run: the
    objects are copied in from the emulator, and after the run what changed under a
    writable mount goes back (a change under a read-only one fails the test)."""

    def __init__(self, storage: Any, scratch: Path) -> None:
        self.storage = storage
        self.scratch = scratch
        self.before: dict[str, dict[str, bytes]] = {}  # bucket -> object -> content
        self.writable: dict[str, list[str]] = {}  # bucket -> prefixes mounted writable

    def mount(self, bucket: str, only_dir: str, *, writable: bool) -> Path:
        """The directory the mount shows (created, and filled on the bucket's first mount)."""
        root = self.scratch / bucket
        if bucket not in self.before:
            self.before[bucket] = {}
            for blob in self.storage.list_blobs(bucket):
                if blob.name.endswith("/"):
                    continue
                data = blob.download_as_bytes()
                self.before[bucket][blob.name] = data
                target = root / blob.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        if writable:
            self.writable.setdefault(bucket, []).append(only_dir)
        where = root / only_dir
        where.mkdir(parents=True, exist_ok=True)
        return where

    def write_back(self) -> None:
        """Upload new and changed files, delete removed ones, as the mounts would have."""
        for bucket, before in self.before.items():
            root = self.scratch / bucket
            after = {str(p.relative_to(root)): p.read_bytes()
                     for p in root.rglob("*") if p.is_file() and not p.is_symlink()}  # fmt: skip
            changed = {n for n in set(before) | set(after) if before.get(n) != after.get(n)}
            prefixes = self.writable.get(bucket, [])
            outside = [n for n in changed
                       if not any(not p or n.startswith(f"{p}/") for p in prefixes)]  # fmt: skip
            assert not outside, f"written through a read-only mount of {bucket}: {outside}"
            handle = self.storage.bucket(bucket)
            for name in sorted(changed):
                if name in after:
                    handle.blob(name).upload_from_string(after[name])
                else:
                    handle.blob(name).delete()


SA_EMAIL = re.compile(
    r"[a-z][-a-z0-9]{4,28}[a-z0-9]@[a-z][-a-z0-9]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com"
)
HOSTNAME = re.compile(r"([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
SECRET_ROLES = {"roles/secretmanager.secretAccessor"}


def _members_known(policy: dict[str, Any], iam: FakeIam | None, api: str) -> str | None:
    """The first serviceAccount member `api` does not (yet) know, as the API names it."""
    for binding in policy.get("bindings", []):
        for member in binding.get("members", []):
            email = member.removeprefix("serviceAccount:")
            if (
                member.startswith("serviceAccount:")
                and iam is not None
                and not iam.usable(email, api)
            ):
                return f"Service account {email} does not exist."
    return None


class FakeSecretManager(Fake):
    """Secret Manager v1: secrets, versions, IAM. With `iam`, a policy naming a service
    account IAM does not know yet is refused (400), as during IAM propagation."""

    def __init__(self, iam: FakeIam | None = None) -> None:
        super().__init__()
        self.iam = iam
        self.secrets: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[bytes | None]] = {}  # None: destroyed
        self.policies: dict[str, dict[str, Any]] = {}
        secrets = r"/v1/projects/(?P<project>[^/]+)/secrets"
        self.on("POST", secrets, self.create)
        self.on("GET", secrets, self.list_secrets)
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
        validate(body, {"replication": Field({"automatic": Field(dict)}, required=True),
                        "labels": Field(dict)})  # fmt: skip
        if name in self.secrets:
            return error(409, "ALREADY_EXISTS", f"{name} exists")
        assert "automatic" in body["replication"]
        self.secrets[name] = {**body, "name": name}
        return JSONResponse(self.secrets[name])

    def list_secrets(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        """secrets.list with the documented label filter (`labels.KEY=VALUE`, one term here);
        a page of at most `pageSize` (default 25000) with a nextPageToken after it."""
        term = request.query_params.get("filter", "")
        match = re.fullmatch(r"labels\.([a-z][-_a-z0-9]*)=([-_a-z0-9]+)", term)
        assert term == "" or match, f"unsupported filter {term!r}"
        prefix = f"projects/{m['project']}/secrets/"
        found = [s for n, s in sorted(self.secrets.items()) if n.startswith(prefix)
                 and (match is None or s.get("labels", {}).get(match[1]) == match[2])]  # fmt: skip
        size = int(request.query_params.get("pageSize") or 25_000)
        start = int(request.query_params.get("pageToken") or 0)
        page: dict[str, Any] = {"secrets": found[start : start + size], "totalSize": len(found)}
        if start + size < len(found):
            page["nextPageToken"] = str(start + size)
        return JSONResponse(page)

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
        self.policies.pop(name, None)
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
        name = f"projects/{m['project']}/secrets/{m['id']}"
        if name not in self.secrets:
            return error(404, "NOT_FOUND", name)
        for binding in body["policy"].get("bindings", []):
            assert binding["role"] in SECRET_ROLES, f"unexpected role {binding['role']}"
        unknown = _members_known(body["policy"], self.iam, "secretmanager")
        if unknown:
            return error(400, "INVALID_ARGUMENT", unknown)
        self.policies[name] = body["policy"]
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


# Cloudflare's "Create DNS Record" body (API v4; CNAME, A, AAAA, TXT): the documented fields
# only. A record name may hold underscores (a certificate's DNS authorization proof does).
CLOUDFLARE_TTL_AUTO = 1
CLOUDFLARE_TYPES = ("CNAME", "A", "AAAA", "TXT")
DNS_NAME = re.compile(r"([a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
CLOUDFLARE_RECORD = {
    "name": Field(str, required=True, check=lambda v: len(v) <= 255 and bool(DNS_NAME.fullmatch(v))),
    "type": Field(str, required=True, check=lambda v: v in CLOUDFLARE_TYPES),
    "content": Field(str, required=True),
    "ttl": Field(int, check=lambda v: v == CLOUDFLARE_TTL_AUTO or 60 <= v <= 86_400),
    "proxied": Field(bool),
    "comment": Field(str, check=lambda v: len(v) <= 100),
    "tags": Field(list, items=str),
    "settings": Field(dict),
}  # fmt: skip


def validate_record(body: Any) -> None:
    """A DNS record body field by field, then the content its type takes: a CNAME's is a bare
    host name (no scheme, path, port or trailing dot), an A's an IPv4 address, an AAAA's an
    IPv6 one, a TXT's any text."""
    validate(body, CLOUDFLARE_RECORD)
    kind, content = body["type"], body["content"]
    if kind == "CNAME":
        ok = bool(DNS_NAME.fullmatch(content))
    elif kind == "A":
        ok = _is_ip(content, ipaddress.IPv4Address)
    elif kind == "AAAA":
        ok = _is_ip(content, ipaddress.IPv6Address)
    else:
        ok = 0 < len(content) <= 2048
    if not ok:
        raise Refused(f"body.content is not a valid {kind} content: {content!r}")


def _is_ip(text: str, kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


class FakeCloudflare(Fake):
    """Cloudflare API v4 DNS records of one zone; each body is checked field by field."""

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

    @staticmethod
    def failed(code: int, message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"success": False, "errors": [{"code": code, "message": message}],
                             "messages": [], "result": None}, status)  # fmt: skip

    def list(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        name = request.query_params.get("name.exact") or request.query_params.get("name")
        if int(request.query_params.get("page", "1")) > 1:
            return self.ok([])  # one page holds everything
        return self.ok([r for r in self.records.values() if name in (None, r["name"])])

    def create(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        validate_record(body)
        assert body["proxied"] is False, "TLS is Google's: the record must be DNS only"
        same_name = [r for r in self.records.values() if r["name"] == body["name"]]
        if any("CNAME" in (r["type"], body["type"]) for r in same_name):
            # A CNAME cannot share its name with any other record.
            return self.failed(81053, "An A, AAAA, or CNAME record with that host already exists.")
        if any((r["type"], r["content"]) == (body["type"], body["content"]) for r in same_name):
            return self.failed(81058, "An identical record already exists.")
        record = {**body, "id": f"rec{len(self.requests)}"}
        self.records[record["id"]] = record
        return self.ok(record)

    def update(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        validate_record(body)
        if m["id"] not in self.records:
            return self.failed(81044, "Record does not exist.", 404)
        self.records[m["id"]] = {**body, "id": m["id"]}
        return self.ok(self.records[m["id"]])

    def delete(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        if self.records.pop(m["id"], None) is None:
            return self.failed(81044, "Record does not exist.", 404)
        return self.ok({"id": m["id"]})


# The subset of the Logging query language the provider sends: comparisons joined by AND.
LOG_TERM = re.compile(r'(?P<field>[a-z_.]+)\s*(?P<op>>=|<=|=)\s*"(?P<value>[^"]*)"')
LOG_FIELDS = {"resource.type", "resource.labels.service_name", "timestamp", "severity"}


def parse_log_filter(text: str) -> list[tuple[str, str, str]]:
    """(field, operator, value) of each AND-ed term; anything else is refused (Refused)."""
    terms = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        match = LOG_TERM.fullmatch(part.strip())
        if not match or match["field"] not in LOG_FIELDS:
            raise Refused(f"the fake's Logging filter subset does not cover {part!r}")
        terms.append((match["field"], match["op"], match["value"]))
    return terms


def _log_value(entry: dict[str, Any], field: str) -> str:
    value: Any = entry
    for key in field.split("."):
        value = value.get(key, {}) if isinstance(value, dict) else {}
    return value if isinstance(value, str) else ""


def _log_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class FakeLogging(Fake):
    """Cloud Logging v2 entries:list over the entries a test sets, applying the filter."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []
        self.on("POST", r"/v2/entries:list", self.list)

    def _matches(self, entry: dict[str, Any], terms: list[tuple[str, str, str]]) -> bool:
        for field, op, value in terms:
            if field == "timestamp":
                have, want = _log_time(entry["timestamp"]), _log_time(value)
                if (op == ">=" and have < want) or (op == "<=" and have > want):
                    return False
                if op == "=" and have != want:
                    return False
            elif op != "=" or _log_value(entry, field) != value:
                return False
        return True

    def list(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        terms = parse_log_filter(body["filter"])
        assert {"resource.type", "timestamp"} <= {f for f, _o, _v in terms}, "unbounded query"
        found = [e for e in self.entries if self._matches(e, terms)]
        if body.get("orderBy") == "timestamp desc":
            found.sort(key=lambda e: _log_time(e["timestamp"]), reverse=True)
        return JSONResponse({"entries": found[: int(body.get("pageSize") or 1000)]})


# IAM's "projects.serviceAccounts.create" body: accountId and the writable fields of
# ServiceAccount (name, email, uniqueId, etag... are output only).
ACCOUNT_ID = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
CREATE_ACCOUNT = {
    "accountId": Field(str, required=True,
                       check=lambda v: 6 <= len(v) <= 30 and bool(ACCOUNT_ID.fullmatch(v))),
    "serviceAccount": Field({"displayName": Field(str, check=lambda v: len(v) <= 100),
                             "description": Field(str, check=lambda v: len(v) <= 256)}),
}  # fmt: skip
POLICY_PRINCIPAL_LIMIT = 1_500  # principal occurrences in one allow policy (IAM quotas)


class FakeIam(Fake):
    """IAM service accounts (iam v1) and the project's IAM policy (resourcemanager v3), with
    the documented behaviour: a new account is not found for its first `invisible_calls`
    reads and refused in policies for its first `unusable_calls` writes naming it (eventual
    consistency); a policy written with a stale etag is refused 409 ABORTED
    (`concurrent_writes` other writers change it after a read); a policy over 1,500
    principal occurrences is refused; and the control plane may change only the roles in
    `grantable` (the IAM condition terraform puts on its projectIamAdmin)."""

    def __init__(self, grantable: set[str] | None = None, invisible_calls: int = 0,
                 unusable_calls: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.accounts: dict[str, dict[str, Any]] = {}
        self.invisible: dict[str, int] = {}  # account -> reads that still answer 404
        self.unusable: dict[tuple[str, str], int] = {}  # (account, api) -> writes refused
        self.invisible_calls, self.unusable_calls = invisible_calls, unusable_calls
        self.refused = {"not_found": 0, "unusable": 0}
        self.grantable = grantable
        self.concurrent_writes = 0
        self.etag_conflicts = 0
        self.project_policy: dict[str, Any] = {"etag": "BwY0", "bindings": []}
        self.on("GET", r"/v1/projects/(?P<p>[^/]+)/serviceAccounts/(?P<email>[^/]+)", self.get)
        self.on("POST", r"/v1/projects/(?P<p>[^/]+)/serviceAccounts", self.create)
        self.on("POST", r"/v3/projects/(?P<p>[^/:]+):getIamPolicy", self.get_policy)
        self.on("POST", r"/v3/projects/(?P<p>[^/:]+):setIamPolicy", self.set_policy)

    def usable(self, email: str, api: str) -> bool:
        """Whether `api` accepts a policy naming `email` yet (each API learns of a new
        account on its own; each refusal counts down)."""
        if self.unusable.get((email, api), 0) > 0:
            self.unusable[(email, api)] -= 1
            self.refused["unusable"] += 1
            return False
        return email in self.accounts or not email.startswith("aipress-t-")

    def get(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        email = m["email"]
        if self.invisible.get(email, 0) > 0:
            self.invisible[email] -= 1
            self.refused["not_found"] += 1
            return error(404, "NOT_FOUND", f"Unknown service account {email}")
        if email not in self.accounts:
            return error(404, "NOT_FOUND", f"Unknown service account {email}")
        return JSONResponse(self.accounts[email])

    def create(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        validate(body, CREATE_ACCOUNT)
        email = f"{body['accountId']}@{m['p']}.iam.gserviceaccount.com"
        if email in self.accounts:
            return error(409, "ALREADY_EXISTS", email)
        self.accounts[email] = {**body.get("serviceAccount", {}), "email": email,
                                "name": f"projects/{m['p']}/serviceAccounts/{email}"}  # fmt: skip
        self.invisible[email] = self.invisible_calls
        for api in ("resourcemanager", "secretmanager"):
            self.unusable[(email, api)] = self.unusable_calls
        return JSONResponse(self.accounts[email])

    def _new_etag(self) -> None:
        # An etag is bytes (base64 in JSON): a fresh one on every change.
        tag = base64.b64encode(f"policy-{len(self.requests)}".encode()).decode()
        self.project_policy = {**self.project_policy, "etag": tag}

    def get_policy(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        answer = JSONResponse(self.project_policy)
        if self.concurrent_writes > 0:  # someone else writes between our read and write
            self.concurrent_writes -= 1
            self._new_etag()
        return answer

    def set_policy(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        policy = body["policy"]
        if policy.get("etag") != self.project_policy["etag"]:
            self.etag_conflicts += 1
            return error(409, "ABORTED", "There were concurrent policy changes. Please retry "
                                         "the whole read-modify-write with exponential backoff.")  # fmt: skip
        roles = {b["role"] for b in policy.get("bindings", [])}
        assert not roles & {"roles/owner", "roles/editor"}
        if self.grantable is not None:
            changed = _changed_roles(self.project_policy, policy)
            refused = changed - self.grantable
            if refused:
                return error(403, "PERMISSION_DENIED", f"Policy update access denied for "
                                                       f"{sorted(refused)} (IAM condition).")  # fmt: skip
        principals = sum(len(b.get("members", [])) for b in policy.get("bindings", []))
        if principals > POLICY_PRINCIPAL_LIMIT:
            return error(400, "INVALID_ARGUMENT", f"The number of members in the policy "
                                                  f"({principals}) is larger than the maximum "
                                                  f"allowed size {POLICY_PRINCIPAL_LIMIT}.")  # fmt: skip
        unknown = _members_known(policy, self, "resourcemanager")
        if unknown:
            return error(400, "INVALID_ARGUMENT", unknown)
        self.project_policy = {**policy}
        self._new_etag()
        return JSONResponse(self.project_policy)


def _changed_roles(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """Roles whose members differ between two policies (modifiedGrantsByRole)."""

    def members(policy: dict[str, Any]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for b in policy.get("bindings", []):
            key = b["role"] + str(b.get("condition") or "")
            found.setdefault(key, set()).update(b.get("members", []))
        return found

    old, new = members(before), members(after)
    return {key.split("{", 1)[0] for key in set(old) | set(new) if old.get(key) != new.get(key)}


class FakeFrontDoor(Fake):
    """Compute Engine v1 (regional serverless NEGs, global backend services, the URL map the
    platform's Terraform made) and Certificate Manager v1 (DNS authorizations, certificates,
    the certificate map's entries), validated field by field as their REST references say:
    a serverless NEG names a Cloud Run service and takes no port; a backend of serverless NEGs
    takes no health check; a URL map patch must carry the current fingerprint (412 otherwise)
    and every host rule's path matcher must exist; a managed certificate's DNS authorizations
    must exist and cover its domain; an entry's certificate must exist and its hostname be
    unique in the map; a path matcher's service is a backend service that exists (Terraform
    made the stopped page's, of its serverless NEG; there is no backend bucket: one needs an
    allUsers grant, which Domain Restricted Sharing refuses); a cache invalidation names a
    path (and a host). Operations are returned done."""

    def __init__(self, project: str, region: str, url_map: str, certificate_map: str,
                 stopped: str = "aipress-stopped") -> None:  # fmt: skip
        super().__init__()
        self.project, self.region = project, region
        where = f"projects/{project}/regions/{region}/networkEndpointGroups/{stopped}"
        self.negs: dict[str, dict[str, Any]] = {  # terraform/frontdoor.tf's
            stopped: {
                "name": stopped,
                "networkEndpointType": "SERVERLESS",
                "cloudRun": {"service": stopped},
            }
        }
        self.backends: dict[str, dict[str, Any]] = {
            stopped: {
                "name": stopped,
                "loadBalancingScheme": "EXTERNAL_MANAGED",
                "enableCDN": False,
                "backends": [{"group": where}],
            }
        }
        # (host, path, where the URL map routed the host when the invalidation came)
        self.invalidations: list[tuple[str | None, str, str | None]] = []
        self.url_map: dict[str, Any] = {"name": url_map, "fingerprint": "fp-0",
                                        "defaultService": "platform-default"}  # fmt: skip
        self.authorizations: dict[str, dict[str, Any]] = {}
        self.certificates: dict[str, dict[str, Any]] = {}
        self.entries: dict[str, dict[str, Any]] = {}
        self.stale_fingerprints = 0  # patches to answer 412 to, as if another site raced
        compute = f"/compute/v1/projects/{project}"
        negs = rf"{compute}/regions/{region}/networkEndpointGroups"
        backends = rf"{compute}/global/backendServices"
        self.on("POST", negs, self.create_neg)
        self.on("GET", negs + r"/(?P<id>[^/]+)", self.getter(self.negs))
        self.on("DELETE", negs + r"/(?P<id>[^/]+)", self.delete_neg)
        self.on("POST", backends, self.create_backend)
        self.on("GET", backends + r"/(?P<id>[^/]+)", self.getter(self.backends))
        self.on("DELETE", backends + r"/(?P<id>[^/]+)", self.delete_backend)
        self.on(
            "GET",
            rf"{compute}/global/urlMaps/{url_map}",
            lambda r, m, b: JSONResponse(self.url_map),
        )
        self.on("PATCH", rf"{compute}/global/urlMaps/{url_map}", self.patch_url_map)
        self.on("POST", rf"{compute}/global/urlMaps/{url_map}/invalidateCache", self.invalidate)
        cm = rf"/v1/projects/{project}/locations/global"
        self.on("POST", cm + "/dnsAuthorizations", self.create_authorization)
        self.on("GET", cm + r"/dnsAuthorizations/(?P<id>[^/]+)", self.getter(self.authorizations))
        self.on(
            "DELETE", cm + r"/dnsAuthorizations/(?P<id>[^/]+)", self.deleter(self.authorizations)
        )
        self.on("POST", cm + "/certificates", self.create_certificate)
        self.on("GET", cm + r"/certificates/(?P<id>[^/]+)", self.getter(self.certificates))
        self.on("DELETE", cm + r"/certificates/(?P<id>[^/]+)", self.delete_certificate)
        entries = cm + rf"/certificateMaps/{certificate_map}/certificateMapEntries"
        self.on("POST", entries, self.create_entry)
        self.on("GET", entries + r"/(?P<id>[^/]+)", self.getter(self.entries))
        self.on("DELETE", entries + r"/(?P<id>[^/]+)", self.deleter(self.entries))

    def compute_op(self, regional: bool = False) -> JSONResponse:
        op: dict[str, Any] = {"kind": "compute#operation", "name": f"op-{len(self.requests)}",
                              "status": "DONE"}  # fmt: skip
        if regional:
            op["region"] = self.region
        return JSONResponse(op)

    def cm_op(self) -> JSONResponse:
        name = f"projects/{self.project}/locations/global/operations/op-{len(self.requests)}"
        return JSONResponse({"name": name, "done": True, "response": {}})

    @staticmethod
    def getter(store: dict[str, dict[str, Any]]) -> Handler:
        def get(request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
            found = store.get(m["id"])
            return JSONResponse(found) if found else error(404, "NOT_FOUND", m["id"])

        return get

    def deleter(self, store: dict[str, dict[str, Any]]) -> Handler:
        def delete(request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
            if store.pop(m["id"], None) is None:
                return error(404, "NOT_FOUND", m["id"])
            return self.cm_op()

        return delete

    def create_neg(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        if body.get("networkEndpointType") != "SERVERLESS" or not body.get("cloudRun", {}).get(
            "service"
        ):
            return error(400, "INVALID_ARGUMENT", "a serverless NEG needs cloudRun.service")
        if "defaultPort" in body or "network" in body:
            return error(400, "INVALID_ARGUMENT", "serverless NEGs take no port or network")
        if body["name"] in self.negs:
            return error(409, "ALREADY_EXISTS", body["name"])
        self.negs[body["name"]] = body
        return self.compute_op(regional=True)

    def delete_neg(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        if any(m["id"] in g["group"] for b in self.backends.values() for g in b["backends"]):
            return error(400, "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", f"{m['id']} is in use")
        if self.negs.pop(m["id"], None) is None:
            return error(404, "NOT_FOUND", m["id"])
        return self.compute_op(regional=True)

    def create_backend(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        if body.get("loadBalancingScheme") != "EXTERNAL_MANAGED":
            return error(400, "INVALID_ARGUMENT", "the global external ALB is EXTERNAL_MANAGED")
        if body.get("healthChecks") or body.get("portName") or body.get("timeoutSec"):
            return error(400, "INVALID_ARGUMENT", "serverless NEG backends take no health "
                         "check, port name or timeout")  # fmt: skip
        for backend in body["backends"]:
            if backend["group"].rsplit("/", 1)[1] not in self.negs:
                return error(400, "INVALID_ARGUMENT", f"{backend['group']} does not exist")
        assert isinstance(body.get("enableCDN"), bool)
        assert body["cdnPolicy"]["cacheMode"] in (
            "CACHE_ALL_STATIC",
            "USE_ORIGIN_HEADERS",
            "FORCE_CACHE_ALL",
        )
        if body["name"] in self.backends:
            return error(409, "ALREADY_EXISTS", body["name"])
        self.backends[body["name"]] = body
        return self.compute_op()

    def delete_backend(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        if any(
            p["defaultService"].endswith(f"/{m['id']}")
            for p in self.url_map.get("pathMatchers", [])
        ):
            return error(400, "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", f"{m['id']} is in the URL map")
        if self.backends.pop(m["id"], None) is None:
            return error(404, "NOT_FOUND", m["id"])
        return self.compute_op()

    def patch_url_map(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        if self.stale_fingerprints:
            self.stale_fingerprints -= 1
            self.url_map["fingerprint"] += "x"  # someone else's change landed first
        if body.get("fingerprint") != self.url_map["fingerprint"]:
            return error(412, "FAILED_PRECONDITION", "Invalid fingerprint")
        matchers = {p["name"]: p for p in body.get("pathMatchers", [])}
        for rule in body.get("hostRules", []):
            if rule["pathMatcher"] not in matchers:
                return error(400, "INVALID_ARGUMENT", f"no path matcher {rule['pathMatcher']}")
        for matcher in matchers.values():
            kind, _, rid = matcher["defaultService"].rpartition("/")
            if not kind.endswith("/global/backendServices") or rid not in self.backends:
                return error(400, "INVALID_ARGUMENT", f"{matcher['defaultService']} does not exist")
        hosts = [h for r in body.get("hostRules", []) for h in r["hosts"]]
        if len(hosts) != len(set(hosts)):
            return error(400, "INVALID_ARGUMENT", "a host is in two host rules")
        self.url_map = {**self.url_map, **body, "fingerprint": f"fp-{len(self.requests)}"}
        return self.compute_op()

    def invalidate(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        """urlMaps.invalidateCache: a CacheInvalidationRule (path required, host optional)."""
        validate(body, {"path": Field(str, required=True, check=lambda v: v.startswith("/")),
                        "host": Field(str, check=lambda v: bool(HOSTNAME.fullmatch(v))),
                        "cacheTags": Field(list, items=str)})  # fmt: skip
        host = body.get("host")
        self.invalidations.append((host, body["path"], self.served_hosts().get(host or "")))
        return self.compute_op()

    def create_authorization(
        self, request: Request, m: dict[str, str], body: dict[str, Any]
    ) -> Response:
        rid = request.query_params["dnsAuthorizationId"]
        if rid in self.authorizations:
            return error(409, "ALREADY_EXISTS", rid)
        domain = body["domain"]
        self.authorizations[rid] = {**body, "name": f"projects/{self.project}/locations/global/dnsAuthorizations/{rid}",
                                    "dnsResourceRecord": {"name": f"_acme-challenge_ab12.{domain}.", "type": "CNAME",
                                                          "data": f"{rid}.authorize.certificatemanager.goog."}}  # fmt: skip
        return self.cm_op()

    def create_certificate(
        self, request: Request, m: dict[str, str], body: dict[str, Any]
    ) -> Response:
        rid = request.query_params["certificateId"]
        managed = body["managed"]
        if not managed.get("domains"):
            return error(400, "INVALID_ARGUMENT", "managed.domains is required")
        for name in managed.get("dnsAuthorizations", []):
            authorization = self.authorizations.get(name.rsplit("/", 1)[1])
            if authorization is None:
                return error(400, "INVALID_ARGUMENT", f"{name} does not exist")
            if not all(d == authorization["domain"] or d.endswith("." + authorization["domain"])
                       for d in managed["domains"]):  # fmt: skip
                return error(400, "INVALID_ARGUMENT", f"{name} does not cover {managed['domains']}")
        assert "aipress-tenant-id" in body["labels"]
        if rid in self.certificates:
            return error(409, "ALREADY_EXISTS", rid)
        self.certificates[rid] = {
            **body,
            "name": rid,
            "managed": {**managed, "state": "PROVISIONING"},
        }
        return self.cm_op()

    def delete_certificate(
        self, request: Request, m: dict[str, str], body: dict[str, Any]
    ) -> Response:
        if any(e["certificates"][0].endswith(f"/{m['id']}") for e in self.entries.values()):
            return error(400, "FAILED_PRECONDITION", f"{m['id']} is used by a map entry")
        return self.deleter(self.certificates)(request, m, body)

    def create_entry(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        rid = request.query_params["certificateMapEntryId"]
        [certificate] = body["certificates"]
        if certificate.rsplit("/", 1)[1] not in self.certificates:
            return error(400, "INVALID_ARGUMENT", f"{certificate} does not exist")
        if any(e["hostname"] == body["hostname"] for e in self.entries.values()):
            return error(409, "ALREADY_EXISTS", f"{body['hostname']} has an entry")
        if rid in self.entries:
            return error(409, "ALREADY_EXISTS", rid)
        self.entries[rid] = body
        return self.cm_op()

    def served_hosts(self) -> dict[str, str]:
        """Host -> backend service, as the URL map routes them."""
        matchers = {
            p["name"]: p["defaultService"].rsplit("/", 1)[1]
            for p in self.url_map.get("pathMatchers", [])
        }
        return {
            h: matchers[r["pathMatcher"]]
            for r in self.url_map.get("hostRules", [])
            for h in r["hosts"]
        }


CSEK_HEADERS = ("x-goog-encryption-algorithm", "x-goog-encryption-key",
                "x-goog-encryption-key-sha256")  # fmt: skip
SOURCE_CSEK_HEADERS = tuple(h.replace("x-goog-", "x-goog-copy-source-") for h in CSEK_HEADERS)
BAD_KEY = ("Missing an encryption key, or it is not base64 encoded, or it does not meet the "
           "required length of the encryption algorithm.")  # fmt: skip
NEEDS_KEY = "The target object is encrypted by a customer-supplied encryption key."
WRONG_KEY = "The provided encryption key is incorrect."
PLAIN_HTTP = "Customer-supplied encryption keys must be sent over HTTPS."
_OBJECT = re.compile(r"/(?:download/)?storage/v1/b/(?P<b>[^/]+)/o/(?P<o>.+?)"
                     r"(?:/(?P<verb>rewriteTo|copyTo)/b/(?P<db>[^/]+)/o/(?P<do>.+))?")  # fmt: skip
_UPLOAD = re.compile(r"/upload/storage/v1/b/(?P<b>[^/]+)/o")
_LIST = re.compile(r"/storage/v1/b/(?P<b>[^/]+)/o")


class FakeGcsKeys:
    """Customer-supplied encryption keys, as Cloud Storage documents them, in front of
    gcp-storage-emulator (which ignores the headers): a proxy that keeps, per object, the
    SHA-256 of the key it was written with. A key's three headers must agree (AES256, 32
    bytes, its hash); reading the data of a CSEK object, or rewriting it, needs its key (400
    without, 400 with another); metadata and listings without the key carry no crc32c or
    md5Hash; a rewrite re-encrypts with the destination's key (or none); listing and
    deleting need no key. A key is taken over HTTPS only (served with a certificate the client
    trusts: `tests.live.serve(..., tls=...)`); over plain HTTP a request carrying one is refused.
    Requests refused for a bad key header are kept in `problems`, and the ones whose key
    headers arrived, as (method, path, key sha256), in `keyed`."""

    def __init__(self, emulator: str) -> None:
        self.emulator = emulator
        self.keys: dict[tuple[str, str], str] = {}  # (bucket, object) -> key sha256 (b64)
        self.sessions: dict[str, str | None] = {}  # resumable upload id -> key sha256
        self.requests: list[tuple[str, str]] = []
        self.keyed: list[tuple[str, str, str]] = []
        self.problems: list[str] = []
        self.client: Any = None

    @staticmethod
    def key_hash(headers: Any, names: tuple[str, str, str]) -> str | None:
        """The key's hash from one set of CSEK headers; Refused when they do not agree."""
        algorithm, key, digest = (headers.get(n) for n in names)
        if algorithm is None and key is None and digest is None:
            return None
        try:
            raw = base64.b64decode(key or "", validate=True)
        except ValueError:
            raw = b""
        import hashlib

        if algorithm != "AES256" or len(raw) != 32:
            raise Refused(BAD_KEY)
        if base64.b64encode(hashlib.sha256(raw).digest()).decode() != digest:
            raise Refused("The provided encryption key does not match the SHA256 hash.")
        return str(digest)

    def _readable(self, bucket: str, name: str, given: str | None) -> Response | None:
        stored = self.keys.get((bucket, name))
        if stored is None:
            return None
        if given is None:
            return error(400, "BAD_REQUEST", NEEDS_KEY)
        if given != stored:
            return error(400, "BAD_REQUEST", WRONG_KEY)
        return None

    def _hide(self, resource: dict[str, Any], given: str | None) -> dict[str, Any]:
        stored = self.keys.get((resource.get("bucket", ""), resource.get("name", "")))
        if stored is None:
            return resource
        resource = {**resource, "customerEncryption": {"encryptionAlgorithm": "AES256",
                                                       "keySha256": stored}}  # fmt: skip
        if given != stored:
            resource.pop("crc32c", None)
            resource.pop("md5Hash", None)
        return resource

    async def dispatch(self, request: Request) -> Response:
        from urllib.parse import unquote, unquote_plus

        import httpx

        path, query = request.url.path, request.url.query
        self.requests.append((request.method, path))
        try:
            given = self.key_hash(request.headers, CSEK_HEADERS)
            source_key = self.key_hash(request.headers, SOURCE_CSEK_HEADERS)  # type: ignore[arg-type]
            if (given or source_key) and request.url.scheme != "https":
                raise Refused(PLAIN_HTTP)
        except Refused as exc:
            self.problems.append(f"{request.method} {path}: {exc}")
            return error(400, "BAD_REQUEST", str(exc))
        for sent in {given, source_key} - {None}:
            self.keyed.append((request.method, path, str(sent)))
        params = request.query_params
        found = _OBJECT.fullmatch(path)
        write: tuple[str, str] | None = None
        if found and request.method in ("GET", "POST"):
            bucket, name = found["b"], unquote(found["o"])
            key = source_key if found["verb"] else given
            media = params.get("alt") == "media" or path.startswith("/download/")
            if found["verb"] == "copyTo" and (bucket, name) in self.keys:
                return error(400, "BAD_REQUEST", "Use rewrite to copy an object encrypted "
                             "with a customer-supplied encryption key.")  # fmt: skip
            if media or found["verb"] or given is not None:
                refused = self._readable(bucket, name, key)
                if refused is not None and (media or found["verb"] or given is not None):
                    return refused
            if found["verb"] == "rewriteTo":
                write = (found["db"], unquote(found["do"]))
        upload = _UPLOAD.fullmatch(path)
        body = await request.body()
        if upload and "upload_id" not in params:
            name = params.get("name") or ""
            if not name and body and params.get("uploadType") == "resumable":
                name = json.loads(body).get("name", "")
            if not name and params.get("uploadType") == "multipart":
                found_name = re.search(rb'"name"\s*:\s*"([^"]+)"', body)
                name = found_name.group(1).decode() if found_name else ""
            write = (upload["b"], name)
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("content-length", "transfer-encoding")}  # fmt: skip
        if self.client is None:  # one pool (a client per request would load CA certs each time)
            self.client = httpx.AsyncClient(timeout=60)
        answer = await self.client.request(request.method, f"{self.emulator}{path}",
                                           params=query, content=body, headers=headers)  # fmt: skip
        content = answer.content
        out_headers = {k: v for k, v in answer.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                            "content-encoding", "date", "server")}  # fmt: skip
        if request.url.scheme == "https":  # the emulator writes its links (mediaLink too) http
            plain, tls = f"http://{request.url.netloc}", f"https://{request.url.netloc}"
            if "location" in out_headers:
                out_headers["location"] = out_headers["location"].replace(plain, tls)
            resource = params.get("alt") != "media" and not path.startswith("/download/")
            if resource and answer.headers.get("content-type", "").startswith("application/json"):
                content = content.replace(plain.encode(), tls.encode())
        if upload and params.get("uploadType") == "resumable" and "upload_id" not in params:
            location = answer.headers.get("location", "")
            upload_id = re.search(r"upload_id=([^&]+)", location)
            if upload_id:
                self.sessions[unquote_plus(upload_id.group(1))] = given
            write = None
        if upload and "upload_id" in params and answer.status_code in (200, 201):
            resource = json.loads(content)
            self._record((resource["bucket"], resource["name"]),
                         self.sessions.get(params["upload_id"]))  # fmt: skip
        elif write is not None and answer.status_code in (200, 201):
            self._record(write, given)
        media = params.get("alt") == "media" or path.startswith("/download/")
        kind = answer.headers.get("content-type", "").startswith("application/json")
        if kind and content and not media:  # a resource, not an object's own bytes
            data = json.loads(content)
            if data.get("kind") == "storage#object":
                data = self._hide(data, given)
            elif data.get("kind") == "storage#rewriteResponse":
                data["resource"] = self._hide(data["resource"], given)
            elif data.get("kind") == "storage#objects":
                data["items"] = [self._hide(i, None) for i in data.get("items", [])]
            content = json.dumps(data).encode()
        return Response(content, status_code=answer.status_code, headers=out_headers)

    def _record(self, target: tuple[str, str], key: str | None) -> None:
        if key is None:
            self.keys.pop(target, None)
        else:
            self.keys[target] = key

    def assert_clean(self) -> None:
        """Fail when a request carried key headers that do not agree."""
        assert not self.problems, f"FakeGcsKeys: {self.problems}"

    def app(self) -> Starlette:
        """The ASGI app."""
        return Starlette(routes=[Route("/{path:path}", self.dispatch,
                                       methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])  # fmt: skip


class FakeSqlAdmin(Fake):
    """Cloud SQL Admin API v1 `instances.get`: the instance's settings (its data disk's size in
    GB, as a string: an int64 in JSON; storage auto-resize and its limit)."""

    def __init__(self, project: str, instance: str, disk_gb: int) -> None:
        super().__init__()
        self.settings: dict[str, Any] = {"dataDiskSizeGb": str(disk_gb), "tier": "db-custom-1-3840",
                                         "storageAutoResize": False}  # fmt: skip
        self.on("GET", rf"/v1/projects/{project}/instances/{instance}", self.get)

    def get(self, request: Request, m: dict[str, str], body: dict[str, Any]) -> Response:
        return JSONResponse({"kind": "sql#instance", "name": m.get("i", ""), "state": "RUNNABLE",
                             "databaseVersion": "MYSQL_8_0", "settings": self.settings})  # fmt: skip
