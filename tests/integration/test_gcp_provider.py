"""The gcp provider with the real client libraries and no network: Cloud Run and Secret
Manager over REST against local fakes that validate requests, GCS against
gcp-storage-emulator, Cloudflare against a fake, and the database step's SQL against a real
MariaDB standing in for the shared Cloud SQL instance. The whole create and delete of a site
runs through the engine, and a failing runtime step rolls back database, secrets and bucket.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import cloudflare
import pymysql
import pytest
import requests
from fastapi.testclient import TestClient
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import secretmanager

from controlplane.api.app import create_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.platform import build_platform
from controlplane.providers.gcp import GcpProvider, GcpUsage
from controlplane.providers.gcp.base import GcpClients
from controlplane.providers.gcp.dns import CloudflareRecords
from controlplane.settings import Settings
from controlplane.stack.mariadb import MariaDB
from tests.conftest import LOG_FILE, wait_for_operation
from tests.dns_server import TxtServer
from tests.integration.gcp_clients import rest_clients, storage_with_bucket
from tests.integration.gcp_fakes import (
    SITES_SUBNET,
    SQL_PRIVATE_IP,
    FakeCloudflare,
    FakeCloudRun,
    FakeFrontDoor,
    FakeGcsKeys,
    FakeIam,
    FakeSecretManager,
    FakeSqlAdmin,
)
from tests.live import serve, serve_many
from tests.tls_certificate import self_signed

pytestmark = pytest.mark.integration
PROJECT = "aipress-test"
IMAGE = "us-central1-docker.pkg.dev/aipress-test/aipress/wordpress:6.6"
RUNTIME_SA = "aipress-t-acme@aipress-test.iam.gserviceaccount.com"  # the tenant's identity
ZONE = "zone123"
LB_IPV4, LB_IPV6 = "203.0.113.10", "2001:db8::10"  # the load balancer's (Terraform outputs)


@dataclass
class Cloud:
    """The fakes, the clients aimed at them, and a control plane using the gcp provider."""

    run: FakeCloudRun
    secrets: FakeSecretManager
    dns: FakeCloudflare
    iam: FakeIam
    front: FakeFrontDoor
    storage: Any
    mariadb: MariaDB
    client: TestClient
    admin: dict[str, str]
    nameserver: TxtServer  # where custom-domain proofs are looked up

    def verify(self, site: str, domain: str) -> dict[str, Any]:
        """Publish the claim's TXT record, verify, and return the finished operation."""
        path = f"/v1/tenants/acme/sites/{site}/domains"
        [claim] = [c for c in self.client.get(path, headers=self.admin).json()
                   if c["domain"] == domain]  # fmt: skip
        record = claim["verification"]
        self.nameserver.records[record["name"]] = [record["value"]]
        response = self.client.post(f"{path}/{domain}/verify", headers=self.admin)
        assert response.status_code == 202, response.text
        op_id = response.json()["operation"]["id"]
        return wait_for_operation(self.client, op_id, self.admin, 60)


def run_twice(step: Any) -> None:
    """Make every `ensure` of the step run twice: the second run must change nothing and
    fail on nothing (idempotence under a resumed operation)."""
    once = step.ensure

    def ensure(ctx: Any) -> None:
        once(ctx)
        once(ctx)

    step.ensure = ensure


ADMIN_USER, ADMIN_PASSWORD = "aipress-admin", secrets.token_urlsafe(16)


def cloudsql_admin(mariadb: MariaDB) -> Any:
    """A connection factory for a stand-in of Cloud SQL's built-in admin user: member of
    cloudsqlsuperuser, which holds every privilege with GRANT OPTION except SUPER, FILE,
    SHUTDOWN (not root, so a statement needing more fails here as it would there)."""
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS %s@'localhost' IDENTIFIED BY %s",
                    (ADMIN_USER, ADMIN_PASSWORD))  # fmt: skip
        cur.execute(
            "GRANT ALL PRIVILEGES ON *.* TO %s@'localhost' WITH GRANT OPTION", (ADMIN_USER,)
        )
        cur.execute("REVOKE SUPER, FILE, SHUTDOWN ON *.* FROM %s@'localhost'", (ADMIN_USER,))
    return lambda: pymysql.connect(unix_socket=str(mariadb.socket), user=ADMIN_USER,
                                   password=ADMIN_PASSWORD, autocommit=False)  # fmt: skip


def cloudsql_user(mariadb: MariaDB) -> Any:
    """(user, password) -> a connection as that database user over TCP, as the connector
    logs a password user in (an import's one-off user)."""
    return lambda user, password: pymysql.connect(
        host="127.0.0.1", port=mariadb.port, user=user, password=password, autocommit=False
    )


@pytest.fixture
def cloud(
    gcs: str, mariadb: MariaDB, tmp_path: Any, request: pytest.FixtureRequest
) -> Iterator[Cloud]:
    # IAM as documented: a new account is not found for 3 reads and refused in policies for
    # 3 more writes (per API: the project's and Secret Manager's); the control plane may
    # change only the roles terraform's condition lists.
    iam = FakeIam(grantable=set(), invisible_calls=3, unusable_calls=3)
    run, sm, cf = FakeCloudRun(IMAGE), FakeSecretManager(iam), FakeCloudflare(ZONE)
    front = FakeFrontDoor(PROJECT, "us-central1", "aipress-sites", "aipress-sites")
    nameserver = TxtServer()
    run.secrets, run.project = sm, PROJECT
    keys = FakeGcsKeys(gcs)  # customer-supplied keys as Cloud Storage enforces them
    tls = self_signed(tmp_path, "127.0.0.1", ips=("127.0.0.1",), stem="gcs")  # keys need https
    sql = FakeSqlAdmin(PROJECT, "aipress-shared", disk_gb=10)  # the instance's disk (restores)
    with (serve_many(run.app(), sm.app(), cf.app(), iam.app(), front.app(), (keys.app(), tls),
                     sql.app()) as (run_url, sm_url, cf_url, iam_url, front_url, gcs_url, sql_url),
          nameserver.running()):  # fmt: skip
        run.base_url = run_url
        run.database = ("127.0.0.1", mariadb.port)  # where search-replace jobs connect
        storage_client, backups = storage_with_bucket(PROJECT, gcs_url, ca=tls[0])
        clients = rest_clients(
            run_url, sm_url, iam_url, storage_client,
            cloudflare=cloudflare.Cloudflare(api_token="test-token", base_url=f"{cf_url}/client/v4"),
            run_v1=requests.Session(), run_v1_url=run_url,
            rest=requests.Session(), compute_url=front_url, certificates_url=front_url,
            sqladmin_url=sql_url,
            sql_connect=cloudsql_admin(mariadb), sql_connect_as=cloudsql_user(mariadb),
        )  # fmt: skip
        settings = Settings(
            provider="memory", home=tmp_path / "home", log_file=LOG_FILE, gcp_project=PROJECT,
            database_url=f"sqlite:///{tmp_path / 'cp.db'}",
            gcp_location="us-central1", cloudsql_instance=f"{PROJECT}:us-central1:aipress-shared",
            tenant_image=IMAGE, cloudsql_private_ip=SQL_PRIVATE_IP, sites_subnetwork=SITES_SUBNET, backups_bucket=backups,
            platform_domain="sites.example.com", dns_provider="cloudflare", cloudflare_zone_id=ZONE,
            dns_nameservers=nameserver.address,
            front_door=getattr(request, "param", "load_balancer"),
            front_door_ipv4=LB_IPV4, front_door_ipv6=LB_IPV6,
            gcp_iam_retry_seconds=0.01, gcp_iam_propagation_seconds=10,
        )  # fmt: skip
        provider = GcpProvider(settings, clients, CloudflareRecords(clients.cloudflare, ZONE))
        for step in ("database", "secrets", "storage", "runtime", "dns", "wordpress"):
            run_twice(getattr(provider, step))
        provider.wordpress.http.timeout = 5  # type: ignore[attr-defined]
        provider.wordpress.ready_timeout = 4  # type: ignore[attr-defined]
        app = create_app(settings, platform_factory=lambda s: build_platform(s, provider=provider))
        # The storage client's pooled TLS connection is closed before its server stops: a server
        # closing a TLS connection waits for the client's close_notify (asyncio's 30 s).
        with TestClient(app) as client, closing(storage_client):
            admin = {
                "Authorization": f"Bearer {LocalTokenIssuer(settings).issue('root', Role.ADMIN)}"
            }
            client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin)
            yield Cloud(run, sm, cf, iam, front, storage_client, mariadb, client, admin, nameserver)
    for fake in (run, sm, cf, iam, front, keys, sql):  # an unknown route or a refused body fails
        fake.assert_clean()


def _zone(cloud: Cloud) -> set[tuple[str, str, str]]:
    """(name, type, content) of every record in the platform's Cloudflare zone."""
    return {(r["name"], r["type"], r["content"]) for r in cloud.dns.records.values()}


def _databases(mariadb: MariaDB) -> set[str]:
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'wp\\_acme%'")
        return {row[0] for row in cur.fetchall()}


def _create(cloud: Cloud, name: str) -> dict[str, Any]:
    response = cloud.client.post("/v1/tenants/acme/sites", headers=cloud.admin,
                                 json={"name": name, "admin_email": "owner@acme.example",
                                       "domain": f"{name}.acme.example"})  # fmt: skip
    assert response.status_code == 202, response.text
    return wait_for_operation(cloud.client, response.json()["operation"]["id"], cloud.admin, 60)


def test_create_and_delete_a_site_through_the_engine(cloud: Cloud) -> None:
    final = _create(cloud, "crumbs")
    assert final["status"] == "succeeded", final.get("error")
    site = cloud.client.get("/v1/tenants/acme/sites/crumbs", headers=cloud.admin).json()
    assert site["preview_url"] == "https://crumbs.acme.sites.example.com/"
    # Ready meant serving: the homepage had the title and the generator tag it reports.
    assert site["wordpress_version"] == "6.8.3"
    assert ("GET", f"/sites/{_service_id(cloud)}/", {}) in cloud.run.requests

    # Cloud SQL: a database and a user granted that database only (never cloudsqlsuperuser).
    [database] = _databases(cloud.mariadb)
    with cloud.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT user FROM mysql.db WHERE db = %s", (database.replace("_", "\\_"),))
        [(user,)] = cur.fetchall()
        cur.execute("SHOW GRANTS FOR %s@'%%'", (user,))
        grants = " ".join(row[0] for row in cur.fetchall())
        # One site cannot take the shared instance's connections (the control plane's too).
        cur.execute("SELECT max_user_connections FROM mysql.user WHERE User = %s", (user,))
        assert cur.fetchone() == (40,)
    assert f"ON `{database.replace('_', chr(92) + '_')}`.*" in grants
    assert "ON *.*" not in grants.replace("GRANT USAGE ON *.*", "")
    assert "cloudsqlsuperuser" not in grants

    # Secret Manager: four secrets (database and admin passwords, salts, the sign-in key),
    # labelled, readable by the runtime account only.
    assert len(cloud.secrets.secrets) == 4
    assert any(name.endswith("-wp-login-key") for name in cloud.secrets.secrets)
    for name, secret in cloud.secrets.secrets.items():
        assert secret["labels"] == {
            "app": "aipress",
            "aipress-tenant-id": "acme",
            "aipress-site": "crumbs",
        }
        [binding] = cloud.secrets.policies[name]["bindings"]
        assert binding == {"role": "roles/secretmanager.secretAccessor",
                           "members": [f"serviceAccount:{RUNTIME_SA}"]}  # fmt: skip
    # GCS: the uploads bucket, uniform access, labelled, written by the runtime account.
    [bucket] = [b for b in cloud.storage.list_buckets() if "crumbs" in b.name]
    assert (
        bucket.labels["aipress-tenant-id"] == "acme" and bucket.labels["aipress-site"] == "crumbs"
    )
    assert bucket.iam_configuration.uniform_bucket_level_access_enabled
    # Cloud Run: one public service (the fake validated its body), running as the tenant's
    # own service account, which was made once and given only the runtime's project roles.
    # Public with the invoker check off: no allUsers binding (Domain Restricted Sharing).
    [service] = cloud.run.services
    assert cloud.run.public(service) and cloud.run.policies == {}
    # WordPress was installed by the job before the service existed: its startup probe never
    # passed on an uninstalled WordPress, and the probe path is not one Google's front end keeps.
    assert list(cloud.run.jobs) == [service.replace("/services/s-", "/jobs/i-")]
    assert cloud.run.served_before_install == []
    probe = cloud.run.services[service]["template"]["containers"][0]["startupProbe"]
    assert probe["httpGet"]["path"] == "/aipress-probe"
    uri = cloud.run.services[service]["uri"]
    assert requests.get(f"{uri}/aipress-probe", timeout=5).status_code == 200
    # www-data (uid 33) can create uploads/YYYY/MM on the GCS volume.
    assert cloud.run.www_data_can_write_uploads(service)
    template = cloud.run.services[service]["template"]
    assert template["maxInstanceRequestConcurrency"] == 4
    env = {e["name"]: e.get("value") for e in template["containers"][0]["env"]}
    assert (env["APACHE_MAX_WORKERS"], env["PHP_MEMORY_LIMIT"], env["PHP_UPLOAD_LIMIT"]) == (
        "4", "96M", "32M")  # fmt: skip
    assert cloud.run.services[service]["template"]["serviceAccount"] == RUNTIME_SA
    assert list(cloud.iam.accounts) == [RUNTIME_SA]
    # No project-level role for the tenant (the database is reached by password over the
    # sites' VPC): the project's policy is never written, so it caps no number of tenants.
    assert cloud.iam.project_policy["bindings"] == []
    assert not [r for r in cloud.iam.requests if "IamPolicy" in r[1] and "/v3/projects/" in r[1]]
    # The new account was used only once IAM showed it: every refusal was retried.
    assert cloud.iam.refused == {"not_found": 3, "unusable": 3}
    # The front door: the service behind the load balancer (serverless NEG, a backend with
    # Cloud CDN, a host rule in the shared URL map), a certificate proven by DNS authorization
    # for the preview name; the platform's zone has the preview name's A/AAAA and the proof.
    backend = "b-" + _service_id(cloud).removeprefix("s-")
    assert cloud.front.served_hosts() == {"crumbs.acme.sites.example.com": backend}
    assert cloud.front.backends[backend]["enableCDN"] is True
    assert cloud.run.mappings == {}
    preview = "crumbs.acme.sites.example.com"
    proof = f"_acme-challenge_ab12.{preview}"
    assert _zone(cloud) == {(preview, "A", LB_IPV4), (preview, "AAAA", LB_IPV6),
                            (proof, "CNAME", next(iter(cloud.front.authorizations.values()))[
                                "dnsResourceRecord"]["data"].rstrip("."))}  # fmt: skip
    assert {r["ttl"] for r in cloud.dns.records.values()} == {300}
    [preview_cert] = cloud.front.certificates.values()
    assert preview_cert["managed"]["dnsAuthorizations"]
    # The custom domain is only claimed: no certificate, no route, until it is proven. Another
    # site's change lands on the shared URL map first: the stale fingerprint is retried.
    cloud.front.stale_fingerprints = 1
    assert cloud.verify("crumbs", "crumbs.acme.example")["status"] == "succeeded"
    assert cloud.front.stale_fingerprints == 0
    assert cloud.front.served_hosts() == {preview: backend, "crumbs.acme.example": backend}
    [custom] = [c for c in cloud.front.certificates.values()
                if c["managed"]["domains"] == ["crumbs.acme.example"]]  # fmt: skip
    assert "dnsAuthorizations" not in custom["managed"]  # load-balancer authorization
    assert sorted(e["hostname"] for e in cloud.front.entries.values()) == [
        "crumbs.acme.example", preview]  # fmt: skip
    # Never written into the platform's zone: the customer points it at the load balancer.
    assert {name for name, _, _ in _zone(cloud)} == {preview, proof}
    # A removed domain loses its route, certificate and entry; the preview name keeps its own.
    removed = cloud.client.delete("/v1/tenants/acme/sites/crumbs/domains/crumbs.acme.example",
                                  headers=cloud.admin).json()  # fmt: skip
    assert wait_for_operation(cloud.client, removed["operation"]["id"], cloud.admin, 60)[
        "status"] == "succeeded"  # fmt: skip
    assert cloud.front.served_hosts() == {preview: backend}
    assert [e["hostname"] for e in cloud.front.entries.values()] == [preview]
    assert list(cloud.front.certificates.values()) == [preview_cert]
    readded = cloud.client.post("/v1/tenants/acme/sites/crumbs/domains",
                                json={"domain": "crumbs.acme.example"}, headers=cloud.admin)  # fmt: skip
    assert readded.status_code == 201, readded.text
    assert cloud.verify("crumbs", "crumbs.acme.example")["status"] == "succeeded"
    bucket.blob("2026/11/cake.jpg").upload_from_string(b"jpeg bytes")

    response = cloud.client.delete("/v1/tenants/acme/sites/crumbs", headers=cloud.admin)
    deleted = wait_for_operation(cloud.client, response.json()["operation"]["id"], cloud.admin, 60)
    assert deleted["status"] == "succeeded", deleted
    # The pre-delete backup (tests/integration/test_gcp_backups.py checks its content): the
    # dump, the upload and the manifest written last, under the backup's id.
    backup_bucket = next(b.name for b in cloud.storage.list_buckets()
                         if b.name.startswith("aipress-backups-"))  # fmt: skip
    saved = sorted(b.name for b in cloud.storage.list_blobs(backup_bucket, prefix="acme/crumbs/"))
    assert len(saved) == 3, saved
    prefix = saved[0].rsplit("/", 1)[0] + "/"
    assert saved == [f"{prefix}database.sql.gz", f"{prefix}files/2026/11/cake.jpg",
                     f"{prefix}manifest.json"]  # fmt: skip
    assert _databases(cloud.mariadb) == set()
    assert cloud.secrets.secrets == {} and cloud.run.services == {} and cloud.dns.records == {}
    assert cloud.run.mappings == {} and cloud.run.jobs == {}
    # Only Terraform's (the stopped page's) are left.
    assert set(cloud.front.negs) == set(cloud.front.backends) == {"aipress-stopped"}
    assert cloud.front.entries == {}
    assert cloud.front.certificates == {} and cloud.front.authorizations == {}
    assert cloud.front.served_hosts() == {}
    assert not [b for b in cloud.storage.list_buckets() if "crumbs" in b.name]


def test_a_control_plane_start_brings_existing_site_users_to_the_connection_limit(
    cloud: Cloud,
) -> None:
    """A site user made before the limit (or before it changed) gets it when the control
    plane starts, not only when its database step runs again; other users are left alone."""
    assert _create(cloud, "crumbs")["status"] == "succeeded"
    [database] = _databases(cloud.mariadb)

    def limits() -> dict[str, int]:
        with cloud.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT User, max_user_connections FROM mysql.user WHERE Host = '%'")
            return {str(user): int(limit) for user, limit in cur.fetchall()}

    with cloud.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT user FROM mysql.db WHERE db = %s", (database.replace("_", "\\_"),))
        [(user,)] = cur.fetchall()
        cur.execute("ALTER USER %s@'%%' WITH MAX_USER_CONNECTIONS 0", (user,))  # as before
        cur.execute("CREATE USER 'not_a_site'@'%' IDENTIFIED BY 'x'")  # e.g. an IAM user
    try:
        assert limits()[user] == 0
        app = cloud.client.app
        running = app.state.platform  # type: ignore[attr-defined]
        with TestClient(app):  # a second start of the control plane, on the same records
            pass
        app.state.platform = running  # type: ignore[attr-defined]
        assert limits()[user] == 40
        assert limits()["not_a_site"] == 0
    finally:
        with cloud.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS 'not_a_site'@'%'")
        _act(cloud, "crumbs", method="DELETE")


def test_a_failing_runtime_step_rolls_back_database_secrets_and_bucket(cloud: Cloud) -> None:
    cloud.run.fail_create = True
    final = _create(cloud, "broken")
    assert final["status"] == "rolled_back", final
    assert "revision failed to start" in final["error"]
    assert _databases(cloud.mariadb) == set()
    assert cloud.secrets.secrets == {}
    assert not [b for b in cloud.storage.list_buckets() if "broken" in b.name]
    assert cloud.run.services == {} and cloud.dns.records == {}


def test_a_failed_install_job_rolls_the_site_back_before_any_service(cloud: Cloud) -> None:
    cloud.run.fail_install = "Error establishing a database connection"
    final = _create(cloud, "unborn")
    assert final["status"] == "rolled_back", final
    assert "install job failed (Error establishing a database connection)" in final["error"]
    # No service was made, so nothing was ever public; the job went with the rollback.
    assert not any(method == "POST" and path.endswith("/services")
                   for method, path, _ in cloud.run.requests)  # fmt: skip
    assert cloud.run.jobs == {} and cloud.run.services == {}
    assert _databases(cloud.mariadb) == set() and cloud.secrets.secrets == {}


def _service_id(cloud: Cloud) -> str:
    [service] = cloud.run.services
    return service.rsplit("/", 1)[1]


def test_a_site_that_renders_an_empty_page_is_not_ready_and_rolls_back(cloud: Cloud) -> None:
    cloud.run.empty_homepages.add("blank")
    final = _create(cloud, "blank")
    assert final["status"] == "rolled_back", final
    assert "/aipress-probe" not in final["error"]  # healthy, yet not serving the site
    assert "the site renders an empty page: no theme is installed" in final["error"]
    assert _databases(cloud.mariadb) == set()
    assert cloud.secrets.secrets == {} and cloud.run.services == {} and cloud.dns.records == {}
    assert cloud.run.mappings == {}
    assert not [b for b in cloud.storage.list_buckets() if "blank" in b.name]


def test_stop_and_start_toggle_public_access(cloud: Cloud) -> None:
    assert _create(cloud, "pies")["status"] == "succeeded"
    [service] = cloud.run.services
    uri = cloud.run.services[service]["uri"]
    for action, public in (("stop", False), ("start", True)):
        response = cloud.client.post(f"/v1/tenants/acme/sites/pies/{action}", headers=cloud.admin)
        assert (
            wait_for_operation(cloud.client, response.json()["operation"]["id"], cloud.admin)[
                "status"
            ]
            == "succeeded"
        )
        assert cloud.run.public(service) is public
        # By ingress, not IAM: no request reaches the site while it is stopped.
        assert requests.get(f"{uri}/", timeout=5).status_code == (200 if public else 404)
    assert cloud.run.policies == {}
    assert cloud.run.served_before_install == []
    response = cloud.client.delete("/v1/tenants/acme/sites/pies", headers=cloud.admin)
    wait_for_operation(cloud.client, response.json()["operation"]["id"], cloud.admin, 60)


def _act(cloud: Cloud, path: str, method: str = "POST", **body: Any) -> None:
    response = cloud.client.request(method, f"/v1/tenants/acme/sites/{path}",
                                    headers=cloud.admin, **body)  # fmt: skip
    assert response.status_code in (201, 202), response.text
    if "operation" in response.json():
        done = wait_for_operation(cloud.client, response.json()["operation"]["id"], cloud.admin, 60)
        assert done["status"] == "succeeded", done


def test_a_stopped_site_is_not_served_from_the_cdn(cloud: Cloud) -> None:
    """Cloud CDN sits in front of every site: stopping the service alone left its cached
    pages served under its names. Stop routes the names to the stopped page and empties the
    cache of them; start routes them back."""
    assert _create(cloud, "pies")["status"] == "succeeded"
    preview, domain = "pies.acme.sites.example.com", "pies.acme.example"
    backend = "b-" + _service_id(cloud).removeprefix("s-")
    assert cloud.verify("pies", domain)["status"] == "succeeded"
    assert cloud.front.served_hosts() == {preview: backend, domain: backend}
    assert cloud.front.invalidations == []

    _act(cloud, "pies/stop")
    assert cloud.front.served_hosts() == {preview: "aipress-stopped", domain: "aipress-stopped"}
    # Each name emptied from the cache, once it no longer led to the site.
    assert sorted(cloud.front.invalidations) == [(domain, "/*", "aipress-stopped"),
                                                 (preview, "/*", "aipress-stopped")]  # fmt: skip
    # Terraform's shared stopped-page service, uncached, behind its own serverless NEG.
    stopped = cloud.front.backends["aipress-stopped"]
    assert stopped["enableCDN"] is False
    assert stopped["backends"][0]["group"].endswith("/networkEndpointGroups/aipress-stopped")

    _act(cloud, "pies/start")
    assert cloud.front.served_hosts() == {preview: backend, domain: backend}
    assert len(cloud.front.invalidations) == 2  # the stopped page is never cached
    _act(cloud, "pies", method="DELETE")


def test_a_dry_run_describes_every_call_and_makes_none(cloud: Cloud) -> None:
    response = cloud.client.post(
        "/v1/tenants/acme/sites", params={"dry_run": "true"}, headers=cloud.admin,
        json={"name": "plan", "admin_email": "o@acme.example", "domain": "plan.acme.example"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["provider"] == "gcp" and plan["site"] == "plan"
    apis = [c["api"] for c in plan["calls"]]
    assert apis.count("secretmanager.projects.secrets.create") == 4
    assert "storage.buckets.insert" in apis and "run.projects.locations.services.create" in apis
    [create] = [c for c in plan["calls"] if c["api"] == "run.projects.locations.services.create"]
    container = create["body"]["template"]["containers"][0]
    assert container["image"] == IMAGE
    secret_env = {e["name"] for e in container["env"] if "value_source" in e}
    assert {"WORDPRESS_DB_PASSWORD", "WORDPRESS_SALTS", "WORDPRESS_ADMIN_PASSWORD",
            "AIPRESS_LOGIN_KEY"} <= secret_env  # fmt: skip
    for call in plan["calls"]:
        if "labels" in str(call.get("body", "")):
            assert "aipress-tenant-id" in str(call["body"])
    # WordPress is installed by the job, run before the service is created (and so public).
    order = [c["api"].split(" ")[0] for c in plan["calls"]]
    assert order.index("run.projects.locations.jobs.create") < order.index(
        "run.projects.locations.jobs.run") < order.index("run.projects.locations.services.create")  # fmt: skip
    assert create["body"]["invoker_iam_disabled"] is True
    assert not any("setIamPolicy" in api and "services" in api for api in apis)
    # The front door: the site's NEG, CDN backend and host rule, and certificates: the preview
    # name's now, the claimed custom domain's once its proof is verified.
    for api in ("compute.regionNetworkEndpointGroups.insert", "compute.backendServices.insert",
                "certificatemanager.dnsAuthorizations.create"):  # fmt: skip
        assert api in apis
    certificates = {c["body"]["managed"]["domains"][0]: c for c in plan["calls"]
                    if c["api"] == "certificatemanager.certificates.create"}  # fmt: skip
    assert set(certificates) == {"plan.acme.sites.example.com", "plan.acme.example"}
    assert "when" not in certificates["plan.acme.sites.example.com"]
    assert certificates["plan.acme.example"]["when"] == "after the domain's TXT proof is verified"
    entries = [c["body"]["hostname"] for c in plan["calls"]
               if c["api"] == "certificatemanager.certificateMapEntries.create"]  # fmt: skip
    assert sorted(entries) == ["plan.acme.example", "plan.acme.sites.example.com"]
    # Only platform names go into the platform's zone.
    assert {c["target"] for c in plan["calls"] if "dns_records" in c["api"]} == {
        "plan.acme.sites.example.com", "<the authorization's CNAME for plan.acme.sites.example.com>"}  # fmt: skip
    # Nothing was called and nothing recorded.
    assert cloud.run.requests == [] and cloud.secrets.requests == [] and cloud.dns.requests == []
    assert cloud.front.requests == []
    assert cloud.client.get("/v1/tenants/acme/sites", headers=cloud.admin).json() == []
    assert _databases(cloud.mariadb) == set()
    taken = cloud.client.post("/v1/tenants/acme/sites", params={"dry_run": "true"},
                              headers=cloud.admin, json={"name": "Bad Name!"})  # fmt: skip
    assert taken.status_code == 422


def test_tenant_names_never_share_an_account_or_a_secret() -> None:
    from controlplane.providers.gcp.identity import account_id
    from controlplane.providers.gcp.runtime import tenant_secret_id

    long_ids = ["northwind-traders-eu", "northwind-traders-eu-west", "abcdefghijklmnopqrs",
                "abcdefghijklmnopqrs-x", "acme", "a" * 30]  # fmt: skip
    ids = [account_id(t) for t in long_ids]
    assert len(set(ids)) == len(ids) and all(6 <= len(i) <= 30 for i in ids)
    assert tenant_secret_id("acme", "APP_ENV_KEY") != tenant_secret_id("acme-env-app", "KEY")


@pytest.mark.parametrize("cloud", ["domain_mappings"], indirect=True)
def test_a_name_mapped_to_another_service_is_refused_and_left_alone(cloud: Cloud) -> None:
    cloud.run.mappings["taken.acme.example"] = {"spec": {"routeName": "someone-elses-service"}}
    response = cloud.client.post("/v1/tenants/acme/sites", headers=cloud.admin,
                                 json={"name": "taken", "admin_email": "o@acme.example",
                                       "domain": "taken.acme.example"})  # fmt: skip
    final = wait_for_operation(cloud.client, response.json()["operation"]["id"], cloud.admin, 60)
    assert final["status"] == "succeeded"  # the domain is only claimed
    final = cloud.verify("taken", "taken.acme.example")
    assert final["status"] == "failed"
    assert "already mapped to another service" in final["error"]
    assert cloud.run.mappings["taken.acme.example"] == {
        "spec": {"routeName": "someone-elses-service"}
    }
    assert "taken.acme.example" not in [r["name"] for r in cloud.dns.records.values()]
    response = cloud.client.delete("/v1/tenants/acme/sites/taken", headers=cloud.admin)
    final = wait_for_operation(cloud.client, response.json()["operation"]["id"], cloud.admin, 60)
    assert final["status"] == "succeeded", final.get("error")
    assert cloud.run.mappings == {
        "taken.acme.example": {"spec": {"routeName": "someone-elses-service"}}
    }
    assert cloud.run.services == {} and cloud.secrets.secrets == {}


def test_secret_versions_are_added_only_on_change_and_old_ones_destroyed(tmp_path: Any) -> None:
    from controlplane.providers.gcp.secrets import SecretManagerSecrets

    fake = FakeSecretManager()
    with serve(fake.app()) as url:
        client = secretmanager.SecretManagerServiceClient(
            credentials=AnonymousCredentials(), transport="rest",  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=url))  # fmt: skip
        secrets_step = SecretManagerSecrets(
            Settings(provider="memory", home=tmp_path, gcp_project=PROJECT),
            GcpClients(secrets=client),
        )
        labels = {"app": "aipress", "aipress-tenant-id": "acme"}
        for value in ("v1", "v1", "v2"):
            secrets_step.put("aipress-acme--env--API_KEY", value, labels, RUNTIME_SA)
    versions = fake.versions[f"projects/{PROJECT}/secrets/aipress-acme--env--API_KEY"]
    assert versions == [None, b"v2"]  # v1 once (not twice), then destroyed when v2 came


def _claim(cloud: Cloud, site: str, domain: str) -> dict[str, Any]:
    response = cloud.client.post(f"/v1/tenants/acme/sites/{site}/domains",
                                 json={"domain": domain}, headers=cloud.admin)  # fmt: skip
    assert response.status_code == 201, response.text
    return cloud.verify(site, domain)


@pytest.mark.parametrize("cloud", ["domain_mappings"], indirect=True)
def test_domain_mappings_read_their_conditions_and_keep_customers_names_out_of_the_zone(
    cloud: Cloud,
) -> None:
    assert _create(cloud, "tarts")["status"] == "succeeded"
    preview = "tarts.acme.sites.example.com"
    assert _zone(cloud) == {(preview, "CNAME", "ghs.googlehosted.com")}
    # An apex name needs A/AAAA records (status.resourceRecords): the customer's to make in
    # their own zone, never written into the platform's.
    assert _claim(cloud, "tarts", "tarts.example")["status"] == "succeeded"
    assert "tarts.example" in cloud.run.mappings
    assert _zone(cloud) == {(preview, "CNAME", "ghs.googlehosted.com")}
    # A mapping Google refuses reports it in status.conditions, not in the create's answer.
    cloud.run.failing_mappings["bad.acme.example"] = (
        "Caller is not authorized to administer the domain bad.acme.example"
    )
    failed = _claim(cloud, "tarts", "bad.acme.example")
    assert failed["status"] == "failed"
    assert (
        "the domain mapping of bad.acme.example failed (Ready: Caller is not authorized"
        in failed["error"]
    )
    response = cloud.client.delete("/v1/tenants/acme/sites/tarts", headers=cloud.admin)
    final = wait_for_operation(cloud.client, response.json()["operation"]["id"], cloud.admin, 60)
    assert final["status"] == "succeeded", final
    assert cloud.dns.records == {} and cloud.run.mappings == {}


def test_a_full_project_policy_does_not_stop_new_tenants(cloud: Cloud) -> None:
    """A project's policy holds 1,500 principals; tenants add none to it."""
    members = [f"user:u{i}@example.com" for i in range(1_500)]
    cloud.iam.project_policy["bindings"].append({"role": "roles/viewer", "members": members})
    assert _create(cloud, "first")["status"] == "succeeded"
    cloud.client.post("/v1/tenants", json={"id": "globex", "name": "Globex"}, headers=cloud.admin)
    response = cloud.client.post("/v1/tenants/globex/sites", headers=cloud.admin,
                                 json={"name": "next", "admin_email": "o@globex.example"})  # fmt: skip
    final = wait_for_operation(cloud.client, response.json()["operation"]["id"], cloud.admin, 60)
    assert final["status"] == "succeeded", final.get("error")
    assert len(cloud.iam.accounts) == 2


def test_the_platforms_iam_database_users_are_granted_their_database(mariadb: MariaDB) -> None:
    """Cloud SQL makes an IAM database user with no privilege; the admin grants each its own."""
    from controlplane.db import migrate
    from controlplane.providers.gcp.database import grant_platform_users, mysql_iam_user

    owner = mysql_iam_user("aipress-control-plane@aipress-test.iam.gserviceaccount.com")
    job = mysql_iam_user("aipress-billing@aipress-test.iam.gserviceaccount.com")
    assert (owner, job) == ("aipress-control-plane", "aipress-billing")
    database, password = f"aipress_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    tenant_db = f"wp_acme_sizes_{secrets.token_hex(3)}"
    admin = cloudsql_admin(mariadb)
    with mariadb.connect() as conn, conn.cursor() as cur:
        for user in (owner, job):  # as google_sql_user makes them: no privilege at all
            cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))

    def engine_as(user: str) -> Any:
        from sqlalchemy import create_engine

        return create_engine(f"mysql+pymysql://{user}:{password}@127.0.0.1:{mariadb.port}/"
                             f"{database}?charset=utf8mb4")  # fmt: skip

    try:
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            pymysql.connect(host="127.0.0.1", port=mariadb.port, user=owner, password=password,
                            database=database)  # fmt: skip
        grant_platform_users(admin, database, owner, (job,))
        grant_platform_users(admin, database, owner, (job,))  # idempotent
        migrate(engine_as(owner))  # the whole schema, as the control plane's IAM user
        with engine_as(job).begin() as conn:
            conn.exec_driver_sql("INSERT INTO tenants (id, name, status, created_at, created_by) "
                                 "VALUES ('t1', 'T', 'active', '2026-01-01', 'job')")  # fmt: skip
            assert conn.exec_driver_sql("SELECT count(*) FROM tenants").scalar() == 1
        with pytest.raises(Exception, match="command denied"), engine_as(job).begin() as conn:
            conn.exec_driver_sql("DROP TABLE tenants")  # the jobs never change the schema

        # Billing sizes every tenant database from InnoDB's statistics, reading no row of it.
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{tenant_db}`")
            cur.execute(f"CREATE TABLE `{tenant_db}`.wp_posts (id INT PRIMARY KEY, body TEXT)")
            cur.execute(f"INSERT INTO `{tenant_db}`.wp_posts VALUES (1, 'private')")
            cur.execute(f"ANALYZE TABLE `{tenant_db}`.wp_posts")
        usage = GcpUsage(Settings(provider="memory"), GcpClients(own_connect=lambda: pymysql.connect(
            host="127.0.0.1", port=mariadb.port, user=job, password=password)))  # fmt: skip
        sizes = usage.database_bytes()
        assert sizes[tenant_db] >= 16_384 and sizes[database] > 0  # at least a page each
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            pymysql.connect(host="127.0.0.1", port=mariadb.port, user=job, password=password,
                            database=tenant_db)  # fmt: skip
        with pytest.raises(ValueError, match="Cloud SQL has no database user 'aipress-cron'"):
            grant_platform_users(admin, database, owner, ("aipress-cron",))
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
            cur.execute(f"DROP DATABASE IF EXISTS `{tenant_db}`")
            for user in (owner, job):
                cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))


def test_an_unset_env_var_leaves_no_secret_behind(cloud: Cloud) -> None:
    """Every tenant env var travels as a Secret Manager secret; unsetting one rolled the sites
    to revisions without it but kept the secret, value and all, for ever."""
    assert _create(cloud, "crumbs")["status"] == "succeeded"
    put = cloud.client.put("/v1/tenants/acme/env", headers=cloud.admin, json={"vars": {
        "STRIPE_KEY": {"value": "sk_live_1", "secret": True}, "REGION": {"value": "eu"}}})  # fmt: skip
    assert put.status_code == 202, put.text
    done = wait_for_operation(cloud.client, put.json()["operation"]["id"], cloud.admin, 60)
    assert done["status"] == "succeeded", done
    site_secrets = {n for n in cloud.secrets.secrets if "--env--" not in n}
    prefix = f"projects/{PROJECT}/secrets/aipress-acme--env--"
    assert set(cloud.secrets.secrets) - site_secrets == {f"{prefix}REGION", f"{prefix}STRIPE_KEY"}

    unset = cloud.client.delete("/v1/tenants/acme/env/STRIPE_KEY", headers=cloud.admin)
    assert unset.status_code == 202, unset.text
    done = wait_for_operation(cloud.client, unset.json()["operation"]["id"], cloud.admin, 60)
    assert done["status"] == "succeeded", done
    assert set(cloud.secrets.secrets) == site_secrets | {f"{prefix}REGION"}
    assert f"{prefix}STRIPE_KEY" not in cloud.secrets.versions  # no version of the value left
    [service] = cloud.run.services.values()
    refs = [e["valueSource"]["secretKeyRef"]["secret"]
            for e in service["template"]["containers"][0]["env"] if "valueSource" in e]  # fmt: skip
    assert not [r for r in refs if r.endswith("STRIPE_KEY")]
