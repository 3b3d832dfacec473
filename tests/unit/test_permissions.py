"""The permission matrix: every role x action x own/other tenant, in the module and the API."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from controlplane.api.app import create_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import InvalidClaims, Principal, Role, principal_from_claims
from controlplane.permissions import Action, Forbidden, NotVisible, authorize
from controlplane.platform import build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.conftest import LOG_FILE, wait_for_operation
from tests.dns_server import TxtServer
from tests.import_fixtures import OLD_URL, good_archive
from tests.live import serve
from tests.package_zips import plugin_zip

# The design table (DESIGN.md), written out independently of MATRIX: Y allowed, N refused.
# Columns: admin, operator, viewer, tenant. "own" = an assigned/own tenant.
EXPECTED_OWN = {
    Action.MANAGE_TENANTS: "YNNN",
    Action.MANAGE_USERS: "YNNN",
    Action.LIST_TENANTS: "YYYY",
    Action.READ_TENANT: "YYYY",
    Action.CHANGE_SITES: "YYNY",
    Action.READ_SITES: "YYYY",
    Action.READ_COSTS: "YYYY",
    Action.READ_COST_SUMMARY: "YNNN",
    Action.WRITE_ENV: "YYNY",
    Action.READ_ENV: "YYYY",
    Action.REVEAL_PASSWORD: "YYNY",
    Action.ADMIN_LOGIN: "YYNY",
    Action.READ_AUDIT: "YYYY",
    Action.BACKUP_SITES: "YYNY",
    Action.RESTORE_SITES: "YYNY",
    Action.DOWNLOAD_BACKUPS: "YNNY",
    Action.READ_DIAGNOSIS: "YYYY",
}
ROLES = [Role.ADMIN, Role.OPERATOR, Role.VIEWER, Role.TENANT]
TENANT_SCOPED = set(Action) - {Action.MANAGE_USERS, Action.LIST_TENANTS, Action.READ_COST_SUMMARY}


@pytest.fixture(scope="module")
def dns_server() -> Iterator[TxtServer]:
    """A nameserver with no records: every domain proof fails at once (NXDOMAIN)."""
    with TxtServer().running() as server:
        yield server


def principal(role: Role) -> Principal:
    tenants = frozenset() if role is Role.ADMIN else frozenset({"acme"})
    return Principal(sub=f"{role}-user", role=role, tenants=tenants)


def test_expected_table_covers_every_action() -> None:
    assert set(EXPECTED_OWN) == set(Action)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("relation", ["own", "other"])
def test_matrix(action: Action, role: Role, relation: str) -> None:
    caller = principal(role)
    allowed_own = EXPECTED_OWN[action][ROLES.index(role)] == "Y"
    tenant = "acme" if relation == "own" else "other"
    if action not in TENANT_SCOPED:
        tenant_arg = None
        expected_allowed = allowed_own
    else:
        tenant_arg = tenant
        expected_allowed = allowed_own and (role is Role.ADMIN or relation == "own")
    if expected_allowed:
        authorize(caller, action, tenant_arg)
        return
    if tenant_arg is not None and relation == "other" and role is not Role.ADMIN:
        with pytest.raises(NotVisible):
            authorize(caller, action, tenant_arg)
    else:
        with pytest.raises(Forbidden):
            authorize(caller, action, tenant_arg)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"sub": "x"}, "role"),
        ({"sub": "x", "role": "superuser"}, "role"),
        ({"sub": "x", "role": "tenant"}, "tenant_id"),
        ({"sub": "x", "role": "operator", "tenants": "acme"}, "list"),
        ({"role": "admin"}, "subject"),
    ],
)
def test_unusable_claims_are_refused(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidClaims, match=message):
        principal_from_claims(claims)


def test_tenant_claim_cannot_widen_itself() -> None:
    # A tenant token that also carries a `tenants` list still sees only its tenant_id.
    p = principal_from_claims(
        {"sub": "x", "role": "tenant", "tenant_id": "acme", "tenants": ["other"]}
    )
    assert p.tenants == frozenset({"acme"})


# --- the same matrix through the HTTP API, one row per route ------------------------------

OWN, OTHER = "acme", "globex"  # "globex" never appears in a message by chance
# Routes outside the permission matrix: they answer without a token.
EXEMPT_ROUTES = frozenset(
    {
        "GET /healthz",
        "GET /openapi.json",
        "GET /docs",
        "GET /docs/oauth2-redirect",
        "GET /redoc",
        # The signed link is the credential (tested in test_backups_api.py).
        "GET /v1/backup-downloads/{token}",
    }
)


@dataclass(frozen=True)
class Row:
    """What one route must answer: `own` is the design table's Y/N per role (admin, operator,
    viewer, tenant) on an own tenant, `ok` the exact status of an allowed call. A tenant-scoped
    route answers another tenant's resource with 404 to everyone but admins."""

    own: str
    ok: int
    body: Any = None
    query: str = ""
    tenant_scoped: bool = True
    # An endless SSE stream: served over real HTTP and read only up to its status line.
    stream: bool = False
    # A multipart upload (a good site archive and its old address) instead of a JSON body.
    form: bool = False
    # A multipart upload of a package zip (the catalogue's `file`).
    package: bool = False


# The expected answers, written out by hand from DESIGN.md (not computed from MATRIX). Each
# caller acts on resources named after its role (site s-<role>, env var KEY_<ROLE>, domain
# <role>.<tenant>.example, user user-<role>), so no cell undoes another's fixture.
SITE_PATH = "/v1/tenants/{tenant_id}/sites/{site}"
ROWS: dict[str, Row] = {
    "POST /v1/tenants": Row("YNNN", 201, {"id": "new-{role}", "name": "N"}, tenant_scoped=False),
    "GET /v1/tenants": Row("YYYY", 200, tenant_scoped=False),
    "GET /v1/tenants/{tenant_id}": Row("YYYY", 200),
    "DELETE /v1/tenants/{tenant_id}": Row("YNNN", 409),  # allowed, but the tenant has sites
    "POST /v1/tenants/{tenant_id}/sites": Row(
        "YYNY", 202, {"name": "new-{role}", "admin_email": "a@example.com"}
    ),
    "GET /v1/tenants/{tenant_id}/sites": Row("YYYY", 200),
    f"GET {SITE_PATH}": Row("YYYY", 200),
    f"DELETE {SITE_PATH}": Row("YYNY", 202),
    f"POST {SITE_PATH}/stop": Row("YYNY", 202),
    f"POST {SITE_PATH}/start": Row("YYNY", 202),
    f"GET {SITE_PATH}/operations": Row("YYYY", 200),
    f"POST {SITE_PATH}/admin-credentials/reveal": Row("YYNY", 200),
    f"POST {SITE_PATH}/admin-login": Row("YYNY", 200),
    f"GET {SITE_PATH}/domains": Row("YYYY", 200),
    f"POST {SITE_PATH}/domains": Row("YYNY", 201, {"domain": "new.{role}.example.com"}),
    # allowed: the claim is checked and fails for a reason other than RBAC (no TXT record)
    f"POST {SITE_PATH}/domains/{{domain}}/verify": Row("YYNY", 400),
    f"DELETE {SITE_PATH}/domains/{{domain}}": Row("YYNY", 200),
    f"GET {SITE_PATH}/logs": Row("YYYY", 200),
    f"GET {SITE_PATH}/metrics": Row("YYYY", 200),
    f"GET {SITE_PATH}/diagnosis": Row("YYYY", 200),
    "GET /v1/operations/{operation_id}": Row("YYYY", 200),
    "GET /v1/operations/{operation_id}/events": Row("YYYY", 200),
    "GET /v1/tenants/{tenant_id}/operations": Row("YYYY", 200),
    "GET /v1/tenants/{tenant_id}/operations/events": Row("YYYY", 200, stream=True),
    "GET /v1/vocabulary": Row("YYYY", 200, tenant_scoped=False),
    "GET /v1/tenants/{tenant_id}/env": Row("YYYY", 200),
    "PUT /v1/tenants/{tenant_id}/env": Row(
        "YYNY", 202, {"vars": {"BULK_{ROLE}": {"value": "bulk-value", "secret": False}}}
    ),
    "GET /v1/tenants/{tenant_id}/env/{name}": Row("YYYY", 200),
    "PUT /v1/tenants/{tenant_id}/env/{name}": Row(
        "YYNY", 202, {"value": "sk_live_matrix_value", "secret": True}
    ),
    "DELETE /v1/tenants/{tenant_id}/env/{name}": Row("YYNY", 202),
    "GET /v1/audit": Row("YYYY", 200, query="tenant_id={tenant_id}"),
    "GET /v1/me": Row("YYYY", 200, tenant_scoped=False),
    "GET /v1/users": Row("YNNN", 200, tenant_scoped=False),
    "GET /v1/users/{uid}": Row("YNNN", 200, tenant_scoped=False),
    "PUT /v1/users/{uid}": Row(
        "YNNN", 200, {"role": "viewer", "tenants": [OWN]}, tenant_scoped=False
    ),
    "GET /v1/tenants/{tenant_id}/billing": Row("YYYY", 200, query="group_by=day"),
    f"POST {SITE_PATH}/backups": Row("YYNY", 202),
    f"GET {SITE_PATH}/backups": Row("YYYY", 200),
    f"GET {SITE_PATH}/backups/{{backup_id}}": Row("YYYY", 200),
    f"POST {SITE_PATH}/backups/{{backup_id}}/restore": Row("YYNY", 202),
    # A backup holds every secret of the site: its owner's and admins' only.
    f"POST {SITE_PATH}/backups/{{backup_id}}/download-link": Row("YNNY", 200),
    "GET /v1/tenants/{tenant_id}/backups": Row("YYYY", 200, query="deleted=true"),
    f"GET {SITE_PATH}/backup-policy": Row("YYYY", 200),
    f"PUT {SITE_PATH}/backup-policy": Row("YYNY", 200, {"hour": 3, "keep_daily": 5}),
    # An import replaces the site's content: RESTORE_SITES, as a restore.
    f"POST {SITE_PATH}/import": Row("YYNY", 202, form=True),
    "GET /v1/billing/summary": Row("YNNN", 200, tenant_scoped=False),
    f"POST {SITE_PATH}/clone": Row("YYNY", 202, {"name": "c-{role}"}),
    # The seeded sites are production sites: allowed, then refused for what they are (the
    # staging side, with real staging sites, is in test_staging_api.py).
    f"GET {SITE_PATH}/drift": Row("YYYY", 409),
    f"POST {SITE_PATH}/promote": Row("YYNY", 409),
    f"POST {SITE_PATH}/rollback": Row("YYNY", 409),  # nothing to roll back
    f"POST {SITE_PATH}/basic-auth/reveal": Row("YYNY", 409),  # no HTTP login
    # A bundle is read as the sites are, changed as they are; the platform default by admins.
    "GET /v1/tenants/{tenant_id}/bundle": Row("YYYY", 200),
    "PUT /v1/tenants/{tenant_id}/bundle": Row("YYNY", 200, {"plugins": [], "themes": []}),
    "DELETE /v1/tenants/{tenant_id}/bundle": Row("YYNY", 200),
    "GET /v1/bundle": Row("YYYY", 200, tenant_scoped=False),
    "PUT /v1/bundle": Row("YNNN", 200, {"plugins": [], "themes": []}, tenant_scoped=False),
    # The catalogue: read by every signed-in role, filled by admins.
    "GET /v1/catalogue": Row("YYYY", 200, tenant_scoped=False),
    "POST /v1/catalogue": Row("YNNN", 201, query="kind=plugin", tenant_scoped=False, package=True),
    f"GET {SITE_PATH}/packages": Row("YYYY", 200),
    # allowed, then refused: the (empty) catalogue has no update for the site
    f"POST {SITE_PATH}/updates": Row("YYNY", 409, {}),
    "POST /v1/tenants/{tenant_id}/bulk": Row(
        "YYNY", 202, {"action": "backup", "sites": ["s-{role}"]}
    ),
    "POST /v1/bulk": Row(
        "YNNN",
        202,
        {"action": "backup", "sites": [{"tenant_id": OWN, "site": "s-admin"}]},
        tenant_scoped=False,
    ),
    # The operation is a site's create, not a bulk: allowed, then refused for what it is
    # (bulk cancels per role and tenant are in test_bulk.py).
    "POST /v1/operations/{operation_id}/cancel": Row("YYNY", 409),
}


def app_routes() -> set[str]:
    """Every "METHOD path" the app serves (HEAD, which Starlette adds to GET, left out)."""
    app = create_app(Settings(provider="memory", home=Path("/nonexistent/aipress-routes")))
    return {
        f"{method} {route.path}"
        for route in iter_route_contexts(app.routes)
        for method in route.methods or ()
        if method != "HEAD"
    }


def test_every_route_has_a_row() -> None:
    """A new route fails here until the expected answers of every role are written down."""
    served = app_routes()
    missing = sorted(served - set(ROWS) - EXEMPT_ROUTES)
    assert not missing, f"routes without a row in ROWS (or EXEMPT_ROUTES): {missing}"
    stale = sorted((set(ROWS) | EXEMPT_ROUTES) - served)
    assert not stale, f"rows for routes the app does not serve: {stale}"


@dataclass
class Seeded:
    """A home with tenants acme and globex, each with one ready site per role and its
    fixtures; every API test starts from a copy of it."""

    home: Path
    operations: dict[tuple[str, str], str]  # (tenant, site) -> id of the site's create operation
    backups: dict[tuple[str, str], str]  # (tenant, site) -> id of a backup of the site
    markers: dict[str, set[str]]  # tenant -> strings only that tenant's data contains


def _fixture_settings(home: Path, dns: TxtServer) -> Settings:
    return Settings(
        provider="memory", home=home, log_file=LOG_FILE, max_parallel_operations=4,
        dns_nameservers=dns.address,
    )  # fmt: skip


def _memory(home: Path) -> MemoryProvider:
    return MemoryProvider(state_file=home / "memory-provider.json")


@contextmanager
def _running(settings: Settings) -> Iterator[TestClient]:
    provider = _memory(settings.home)
    app = create_app(settings, platform_factory=lambda s: build_platform(s, provider=provider))
    with TestClient(app) as client:
        yield client


@contextmanager
def _served(settings: Settings) -> Iterator[httpx.Client]:
    """The app over real HTTP (TestClient waits for a response's end, a stream has none)."""
    provider = _memory(settings.home)
    app = create_app(settings, platform_factory=lambda s: build_platform(s, provider=provider))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def _answer(client: httpx.Client, row: Row, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """The response; of an endless stream, its status and headers (and an error's body)."""
    if not row.stream:
        return client.request(method, url, **kwargs)
    with client.stream(method, url, **kwargs) as response:
        if response.status_code >= 400:
            response.read()
        return response


def _checked(response: Any, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, dns_server: TxtServer) -> Seeded:
    """Built once per module through the API, as an admin."""
    home = tmp_path_factory.mktemp("matrix") / "home"
    settings = _fixture_settings(home, dns_server)
    admin = {"Authorization": f"Bearer {LocalTokenIssuer(settings).issue('seed', Role.ADMIN)}"}
    operations: dict[tuple[str, str], str] = {}
    backups: dict[tuple[str, str], str] = {}
    markers: dict[str, set[str]] = {}
    with _running(settings) as client:
        for tenant in (OWN, OTHER):
            env_ops: list[str] = []
            name = f"{tenant.title()} Holdings"
            _checked(
                client.post("/v1/tenants", json={"id": tenant, "name": name}, headers=admin), 201
            )
            markers[tenant] = {tenant, name}  # and below: ids, domains, env values
            for role in ROLES:
                site = f"s-{role}"
                body = {"name": site, "admin_email": f"{role}@{tenant}.example"}
                accepted = _checked(
                    client.post(f"/v1/tenants/{tenant}/sites", json=body, headers=admin), 202
                )
                operations[(tenant, site)] = accepted["operation"]["id"]
                markers[tenant] |= {accepted["operation"]["id"], accepted["site"]["id"]}
                path = f"/v1/tenants/{tenant}/sites/{site}/domains"
                domain = {"domain": f"{role}.{tenant}.example.com"}
                _checked(client.post(path, json=domain, headers=admin), 201)
                markers[tenant].add(domain["domain"])
                value = f"value-of-{role}-in-{tenant}"
                env = {"value": value, "secret": False}
                put = client.put(
                    f"/v1/tenants/{tenant}/env/KEY_{role.upper()}", json=env, headers=admin
                )
                env_ops.append(_checked(put, 202)["operation"]["id"])
                markers[tenant].add(value)
            for op_id in [op for (t, _), op in operations.items() if t == tenant] + env_ops:
                final = wait_for_operation(client, op_id, admin)
                assert final["status"] == "succeeded", final
        for tenant, site in list(operations):
            taken = _checked(
                client.post(f"/v1/tenants/{tenant}/sites/{site}/backups", headers=admin), 202
            )
            backups[(tenant, site)] = taken["backup"]["id"]
            markers[tenant] |= {taken["backup"]["id"], taken["operation"]["id"]}
            final = wait_for_operation(client, taken["operation"]["id"], admin)
            assert final["status"] == "succeeded", final
        for role in ROLES:
            user = {"role": "viewer", "tenants": [OWN]}
            _checked(client.put(f"/v1/users/user-{role}", json=user, headers=admin), 200)
    return Seeded(home=home, operations=operations, backups=backups, markers=markers)


def _cells(route: str) -> list[tuple[Role, str]]:
    relations = ("own", "other") if ROWS[route].tenant_scoped else ("own",)
    return [(role, relation) for relation in relations for role in ROLES]


def _expected(row: Row, role: Role, relation: str) -> int:
    """The one status the design table gives this caller."""
    if relation == "other" and role is not Role.ADMIN:
        return 404  # another tenant's resource: not even its existence is told
    return row.ok if row.own[ROLES.index(role)] == "Y" else 403


def _request(route: str, row: Row, role: Role, tenant: str, seeded: Seeded) -> tuple[str, str, Any]:
    method, template = route.split(" ", 1)
    site = f"s-{role}"
    values = {
        "tenant_id": tenant,
        "site": site,
        "domain": f"{role}.{tenant}.example.com",
        "name": f"KEY_{role.upper()}",
        "uid": f"user-{role}",
        "operation_id": seeded.operations[(tenant, site)],
        "backup_id": seeded.backups[(tenant, site)],
        "role": role.value,
        "ROLE": role.value.upper(),
    }
    url = template.format(**values)
    if row.query:
        url += "?" + row.query.format(**values)
    body = json.loads(
        json.dumps(row.body).replace("{role}", role.value).replace("{ROLE}", role.value.upper())
    )
    return method, url, body


def _caller_headers(settings: Settings, role: Role) -> dict[str, str]:
    tenants = [] if role is Role.ADMIN else [OWN]
    token = LocalTokenIssuer(settings).issue(f"{role}-user", role, tenants)
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("route", sorted(ROWS))
def test_api_matrix(route: str, seeded: Seeded, tmp_path: Path, dns_server: TxtServer) -> None:
    """Every role, own and other tenant, gets exactly the status the table gives."""
    home = tmp_path / "home"
    shutil.copytree(seeded.home, home)
    settings = _fixture_settings(home, dns_server)
    row = ROWS[route]
    wrong: list[str] = []
    with _served(settings) if row.stream else _running(settings) as client:
        for role, relation in _cells(route):
            tenant = OWN if relation == "own" else OTHER
            method, url, body = _request(route, row, role, tenant, seeded)
            payload: dict[str, Any] = {"json": body}
            if row.form:
                payload = {"files": {"archive": ("site.tar.gz", good_archive())},
                        "data": {"old_url": OLD_URL}}  # fmt: skip
            if row.package:
                payload = {"files": {"file": ("demo.zip", plugin_zip("1.0"))}}
            response = _answer(
                client, row, method, url, **payload, headers=_caller_headers(settings, role)
            )
            cell = f"{role.value}/{relation}: {method} {url}"
            expected = _expected(row, role, relation)
            if response.status_code != expected:
                wrong.append(f"{cell} answered {response.status_code}, expected {expected}: "
                             f"{response.text[:300]}")  # fmt: skip
                continue
            if expected >= 400 and not response.headers["content-type"].startswith(
                "application/problem+json"
            ):
                wrong.append(f"{cell}: a {expected} that is not problem+json")
            if role is not Role.ADMIN and not (row.stream and expected < 400):
                sent = url + json.dumps(body)  # echoing what the caller sent tells nothing
                leaked = sorted(
                    m for m in seeded.markers[OTHER] if m in response.text and m not in sent
                )
                if leaked:
                    wrong.append(f"{cell} ({response.status_code}) reveals {OTHER}'s {leaked}")
    assert not wrong, "\n".join(wrong)


@pytest.fixture
def seeded_client(
    seeded: Seeded, tmp_path: Path, dns_server: TxtServer
) -> Iterator[tuple[TestClient, Settings]]:
    """The app over a fresh copy of the seeded home."""
    home = tmp_path / "home"
    shutil.copytree(seeded.home, home)
    settings = _fixture_settings(home, dns_server)
    with _running(settings) as client:
        yield client, settings


@pytest.mark.parametrize("role", ROLES)
def test_lists_are_filtered(seeded_client: tuple[TestClient, Settings], role: Role) -> None:
    client, settings = seeded_client
    headers = _caller_headers(settings, role)
    tenants = {t["id"] for t in client.get("/v1/tenants", headers=headers).json()}
    audit_tenants = [e["tenant_id"] for e in client.get("/v1/audit", headers=headers).json()]
    # The seed wrote audit entries for both tenants: an empty list would be a failure too.
    if role is Role.ADMIN:
        assert tenants == {OWN, OTHER}
        assert set(audit_tenants) == {OWN, OTHER, None}  # None: user changes
    else:
        assert tenants == {OWN}
        assert audit_tenants and set(audit_tenants) == {OWN}


def test_denied_changes_are_audited(seeded_client: tuple[TestClient, Settings]) -> None:
    client, settings = seeded_client
    token = LocalTokenIssuer(settings).issue("vera", Role.VIEWER, [OWN])
    viewer = {"Authorization": f"Bearer {token}"}
    assert client.delete(f"/v1/tenants/{OWN}/sites/s-viewer", headers=viewer).status_code == 403
    events = client.get(
        f"/v1/audit?tenant_id={OWN}", headers=_caller_headers(settings, Role.ADMIN)
    ).json()
    denied = [e for e in events if e["outcome"] == "denied"]
    assert denied and denied[0]["actor"] == "vera"
    assert denied[0]["detail"]["reason"] == "forbidden"


def test_identity_is_issuer_subject_and_tenant_scope() -> None:
    firebase = "https://securetoken.google.com/aipress-prod"
    alice = principal_from_claims(
        {"sub": "u1", "iss": firebase, "role": "tenant", "tenant_id": "acme"}
    )
    assert alice.issuer == firebase and alice.scope == "tenant:acme"
    same = principal_from_claims(
        {"sub": "u1", "iss": firebase, "role": "tenant", "tenant_id": "acme", "email": "a@x.io"}
    )
    others = [
        {"sub": "u1", "iss": "aipress-local", "role": "tenant", "tenant_id": "acme"},
        {"sub": "u1", "iss": firebase, "role": "tenant", "tenant_id": "globex"},
        {"sub": "u1", "iss": firebase, "role": "operator", "tenants": ["acme"]},
        {"sub": "u1", "iss": firebase, "role": "admin"},
        {"sub": "u2", "iss": firebase, "role": "tenant", "tenant_id": "acme"},
        # no separator in a subject or issuer can make two identities meet
        {"sub": "u1|tenant:acme", "iss": firebase, "role": "admin"},
    ]
    assert same.key == alice.key
    keys = {principal_from_claims(c).key for c in others}
    assert len(keys) == len(others) and alice.key not in keys
