"""OpenAPI-driven fuzzing of the whole control-plane API (schemathesis + hypothesis).

Every operation of the app's own OpenAPI document (except the SSE stream, checked on its own
below) is fuzzed with schemathesis' coverage and fuzzing phases. Each generated request is sent
three times: as admin (the caller that reaches deepest), as one of operator of 'acme', viewer of
'acme', tenant 'acme', tenant 'other', and with one invalid token (missing, garbage, expired,
signed by another key); the two rotating callers are picked from the request's content, so every
caller gets its share of each operation and a replay picks the same ones.

Before the run the API seeds tenants 'acme' and 'other', a ready site 'crumbs' in each, env vars
(one of them secret) and a user; path parameters (and a few body fields) are often swapped for
these real names, so requests reach the handlers rather than stopping at "not found".

For every answer:
  * never a 5xx (schemathesis' not_a_server_error), and 2xx bodies conform to the schema;
  * a 4xx is a problem+json document, and it changed nothing: all tables but `audit_events`
    (denials are audited by design) and the memory provider's resources and calls are identical
    before and after; a GET changes nothing either, whatever its status;
  * an invalid token never gets a 2xx (nor a 403, which would mean it was accepted); a viewer never
    changes anything; only admins manage tenants and users;
  * every non-admin caller (operator, viewer and tenant of 'acme', tenant 'other') asking for a
    tenant it cannot see gets exactly 404 (or a request-validation 422), and no answer of any
    status, 409s included, holds another tenant's names, ids or domain that it did not send.
After an accepted change the run waits for the engine and restores the seed, so background
operations never overlap a measured request and the next caller finds the same fixtures. The app
and its seed are shared by the whole module: one seed instead of one per operation, which with
derandomized generation and a modest example count keeps the run around a minute.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from sqlalchemy import Table, func, select

from controlplane.api.app import create_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.kernel.vocabulary import ACTIVE_STATUSES
from controlplane.models import Base, EnvVar, Operation, Site, Tenant, User
from controlplane.platform import Platform, build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.schemas import Problem
from controlplane.settings import Settings
from tests.conftest import LOG_FILE, wait_for_operation

pytestmark = pytest.mark.integration

# Fuzzing-phase examples per operation (each sent by three callers); the coverage phase adds its
# deterministic cases. Raise it for a deeper local run: AIPRESS_FUZZ_MAX_EXAMPLES=200.
MAX_EXAMPLES = int(os.environ.get("AIPRESS_FUZZ_MAX_EXAMPLES", "25"))
BASE_URL = "http://testserver"
EVENTS_PATH = "/v1/operations/{operation_id}/events"
PUBLIC_PATHS = frozenset({"/healthz"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What the router answers before any handler runs: unparseable body, method, request validation.
ROUTER_STATUSES = frozenset({400, 405, 422})
IGNORED_TABLES = frozenset({"audit_events"})  # denied attempts are audited by design
# The engine's own bookkeeping (its lease on an operation) moves in the background.
IGNORED_COLUMNS = frozenset({("operations", "worker_id"), ("operations", "lease_expires_at")})
ROW, COLUMN = "\x1e", "\x1f"  # separators of the snapshot's rows and columns


def _table_query(table: Table) -> str:
    """One string per table, built by SQLite (the run uses the embedded default's database):
    far cheaper than turning thousands of rows into Python tuples before and after each request."""
    row = " || char(31) || ".join(
        f'quote("{column.name}")'
        for column in table.columns
        if (table.name, column.name) not in IGNORED_COLUMNS
    )
    order = ", ".join(f'"{column.name}"' for column in table.primary_key.columns)
    return (
        f"SELECT coalesce(group_concat(r, char(30)), '') "
        f'FROM (SELECT {row} AS r FROM "{table.name}" ORDER BY {order})'
    )


SNAPSHOT_QUERIES = {
    table.name: _table_query(table)
    for table in Base.metadata.sorted_tables
    if table.name not in IGNORED_TABLES
}

TENANTS = {"acme": "Acme Bakery", "other": "Other Corp"}
SITE = "crumbs"
ACME_DOMAIN = "shop.acme.example"
SEED_ENV = {
    "STRIPE_PUBLIC_KEY": {"value": "pk_test_fuzz", "secret": False},
    "STRIPE_API_KEY": {"value": "sk_test_fuzz_secret", "secret": True},
}
SEED_USER = "alice"
# Edge values of the audit log's `since` (date-time) that generated RFC 3339 strings rarely hit:
# no offset, and offsets that push the instant out of datetime's range when converted to UTC.
SINCE_EDGES = (
    "2020-01-01T00:00:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2020-01-01T00:00:00Z",
)

# name -> (role, tenants, e-mail); the operator and tenant tokens carry an e-mail (a site's
# default admin e-mail), the admin's does not (a site then needs an explicit admin_email).
VALID = {
    "admin": (Role.ADMIN, [], None),
    "operator-acme": (Role.OPERATOR, ["acme"], "op@acme.example"),
    "viewer-acme": (Role.VIEWER, ["acme"], None),
    "tenant-acme": (Role.TENANT, ["acme"], "owner@acme.example"),
    "tenant-other": (Role.TENANT, ["other"], "owner@other.example"),
}
NON_ADMIN = tuple(name for name in VALID if name != "admin")
SEES = {name: frozenset(tenants) for name, (_, tenants, _) in VALID.items() if name != "admin"}
INVALID = ("missing", "garbage", "expired", "foreign-key")
GARBAGE = (
    "Bearer not-a-token",
    "Bearer eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl",
    "Basic YWRtaW46YWRtaW4=",
    "Bearer",
    "bearer ..",
)

STATS: Counter[tuple[str, str, str]] = Counter()  # (operation, caller, status class)


def _openapi() -> dict[str, Any]:
    """The app's OpenAPI document (building it needs no platform, so no lifespan)."""
    home = Path(tempfile.gettempdir()) / "aipress-fuzz-openapi-unused"
    return create_app(Settings(provider="memory", home=home)).openapi()


schema = schemathesis.openapi.from_dict(
    _openapi(),
    config=schemathesis.Config.from_dict(
        {"generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"}}
    ),
).exclude(path=EVENTS_PATH)


def _digest(case: schemathesis.Case) -> bytes:
    """Stable bytes derived from the generated request: the per-case choices come from it."""
    material = json.dumps(
        [case.method, case.path, case.path_parameters, case.query, case.body, dict(case.headers)],
        sort_keys=True,
        default=repr,
    )
    return hashlib.blake2b(material.encode("utf-8", "surrogatepass"), digest_size=32).digest()


class Fuzzer:
    """The app under test, its seed, the callers' headers, snapshots and the checks."""

    def __init__(
        self,
        client: TestClient,
        memory_provider: MemoryProvider,
        issuer: LocalTokenIssuer,
        home: Path,
    ) -> None:
        self.client = client
        self.provider = memory_provider
        self.platform: Platform = client.app.state.platform  # type: ignore[attr-defined]
        # Schemathesis' in-process transport; never entered, so it starts no second lifespan:
        # the TestClient above owns the app's start-up and shut-down.
        self.http = ASGIClient(client.app)
        tokens = {
            name: issuer.issue(f"fuzz-{name}", role, tenants, email=email)
            for name, (role, tenants, email) in VALID.items()
        }
        tokens["expired"] = issuer.issue("fuzz-expired", Role.ADMIN, [], ttl_seconds=-120)
        foreign = LocalTokenIssuer(Settings(provider="memory", home=home / "foreign-home"))
        tokens["foreign-key"] = foreign.issue("fuzz-forged", Role.ADMIN, [])
        self.headers = {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()}
        self.headers["missing"] = {}
        self.headers["garbage"] = {"Authorization": GARBAGE[0]}  # the fuzz run rotates GARBAGE
        self.operation_ids: list[str] = []
        self.operation_tenant: dict[str, str] = {}
        # tenant -> strings only that tenant's data holds (names, ids, domain): no answer to a
        # caller who cannot see the tenant may contain one it did not send itself.
        self.markers: dict[str, set[str]] = {t: {name} for t, name in TENANTS.items()}
        self.markers["acme"].add(ACME_DOMAIN)
        self.state: dict[str, str] | None = None  # the last snapshot, while it is still current
        self.seed()

    # -- seed ----------------------------------------------------------------------------------

    def api(self, method: str, url: str, caller: str = "admin", **kwargs: Any) -> Any:
        response = self.client.request(method, url, headers=self.headers[caller], **kwargs)
        assert response.status_code < 300, (
            f"seed {method} {url}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    def put_seed_env(self, tenant: str) -> None:
        accepted = self.api("PUT", f"/v1/tenants/{tenant}/env", json={"vars": SEED_ENV})
        final = wait_for_operation(self.client, accepted["operation"]["id"], self.headers["admin"])
        assert final["status"] == "succeeded", final

    def create_site(self, tenant: str) -> str:
        body: dict[str, Any] = {"name": SITE, "admin_email": f"owner@{tenant}.example"}
        if tenant == "acme":
            body["domain"] = ACME_DOMAIN
        accepted = self.api("POST", f"/v1/tenants/{tenant}/sites", json=body)
        op_id: str = accepted["operation"]["id"]
        self.operation_tenant[op_id] = tenant
        self.markers[tenant] |= {op_id, accepted["site"]["id"]}
        final = wait_for_operation(self.client, op_id, self.headers["admin"])
        assert final["status"] == "succeeded", final
        return op_id

    def seed(self) -> None:
        for tenant, name in TENANTS.items():
            self.api("POST", "/v1/tenants", json={"id": tenant, "name": name})
            self.operation_ids.append(self.create_site(tenant))
            self.put_seed_env(tenant)
        self.api("PUT", f"/v1/users/{SEED_USER}", json={"role": "operator", "tenants": ["acme"]})

    def restore(self) -> None:
        """After an accepted change: let the engine finish, then put back what the seed had."""
        self.wait_idle()
        with self.platform.sessions() as session:
            tenants = set(session.scalars(select(Tenant.id)))
            rows = session.execute(select(Site.tenant_id, Site.name, Site.status))
            sites = {(r.tenant_id, r.name): r.status for r in rows}
            env = {
                tuple(r)
                for r in session.execute(select(EnvVar.tenant_id, EnvVar.name, EnvVar.secret))
            }
            user = session.get(User, SEED_USER)
        for tenant, name in TENANTS.items():
            if tenant not in tenants:
                self.api("POST", "/v1/tenants", json={"id": tenant, "name": name})
            status = sites.get((tenant, SITE))
            if status is None:
                self.create_site(tenant)
            elif status == "stopped":
                accepted = self.api("POST", f"/v1/tenants/{tenant}/sites/{SITE}/start")
                wait_for_operation(self.client, accepted["operation"]["id"], self.headers["admin"])
            if any((tenant, n, v["secret"]) not in env for n, v in SEED_ENV.items()):
                self.put_seed_env(tenant)
        if user is None:
            self.api(
                "PUT", f"/v1/users/{SEED_USER}", json={"role": "operator", "tenants": ["acme"]}
            )
        self.wait_idle()

    def wait_idle(self, timeout: float = 20) -> None:
        """Block while the engine has unfinished operations (they would change the snapshots)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.platform.sessions() as session:
                active = session.scalar(
                    select(func.count())
                    .select_from(Operation)
                    .where(Operation.status.in_(ACTIVE_STATUSES))
                )
            if not active:
                return
            assert time.monotonic() < deadline, (
                f"{active} operation(s) still running after {timeout} s"
            )
            time.sleep(0.005)

    # -- state ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, str]:
        """Every row of every table (but the audit log), and the memory provider's state."""
        with self.platform.sessions() as session:
            connection = session.connection()
            state = {
                name: connection.exec_driver_sql(query).scalar_one()
                for name, query in SNAPSHOT_QUERIES.items()
            }
        state["provider.resources"] = json.dumps(
            self.provider.resources, sort_keys=True, default=repr
        )
        state["provider.calls"] = ROW.join(self.provider.calls)
        return state

    # -- one generated case ----------------------------------------------------------------------

    def realize(self, case: schemathesis.Case, digest: bytes) -> None:
        """Often swap generated names for real ones, so requests reach past 'not found'."""
        pools: dict[str, list[str]] = {
            "tenant_id": list(TENANTS),
            "site": [SITE],
            "operation_id": self.operation_ids,
            "name": list(SEED_ENV),
            "uid": [SEED_USER],
        }
        params = dict(case.path_parameters)
        for i, key in enumerate(sorted(params)):
            if key in pools and digest[i] % 3:
                params[key] = pools[key][digest[8 + i] % len(pools[key])]
        if params != case.path_parameters:
            case.path_parameters = params
        if isinstance(case.query, dict) and "tenant_id" in case.query and digest[16] % 2:
            case.query = {**case.query, "tenant_id": list(TENANTS)[digest[17] % 2]}
        if isinstance(case.query, dict) and "since" in case.query and digest[23] % 2:
            case.query = {**case.query, "since": SINCE_EDGES[digest[24] % len(SINCE_EDGES)]}
        if isinstance(case.body, dict) and case.method == "POST" and digest[18] % 3 == 0:
            if case.path == "/v1/tenants" and "id" in case.body:
                case.body = {**case.body, "id": "acme"}  # already exists: 409
            elif case.path == "/v1/tenants/{tenant_id}/sites":
                if "name" in case.body:
                    case.body = {**case.body, "name": SITE}  # already exists: 409
                if "domain" in case.body and digest[19] % 2:
                    case.body = {**case.body, "domain": ACME_DOMAIN}  # acme's claim: blocks nobody

    def run(self, case: schemathesis.Case) -> None:
        digest = _digest(case)  # of the generated request, before real names (random ids) go in
        self.realize(case, digest)
        for caller in (
            "admin",
            NON_ADMIN[digest[20] % len(NON_ADMIN)],
            INVALID[digest[22] % len(INVALID)],
        ):
            headers = dict(self.headers[caller])
            if caller == "garbage":
                headers = {"Authorization": GARBAGE[digest[21] % len(GARBAGE)]}
            self.exchange(case, caller, headers)

    def exchange(self, case: schemathesis.Case, caller: str, headers: dict[str, str]) -> None:
        # Nothing runs between two requests unless one was an accepted change (then `restore`
        # waited for the engine and dropped the state), so the last snapshot is still current.
        before = self.state if self.state is not None else self.snapshot()
        response = case.call(base_url=BASE_URL, session=self.http, headers=headers)
        after = self.state = self.snapshot()
        status = response.status_code
        STATS[(f"{case.method} {case.path}", caller, f"{status // 100}xx")] += 1

        # Every documented answer, errors included (problem+json), must match the document.
        case.validate_response(
            response,
            checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
            headers=headers,
        )

        where = _describe(case, caller, response)
        if 400 <= status < 500:
            _assert_problem(response, where)
            _assert_unchanged(before, after, f"state changed on a rejected request\n{where}")
        if case.method.upper() in SAFE_METHODS:
            _assert_unchanged(before, after, f"state changed on a {case.method} request\n{where}")
        self.assert_authorization(case, caller, response, before, after, where)
        if status < 300 and case.method.upper() not in SAFE_METHODS:
            self.state = None
            self.restore()

    def assert_authorization(
        self,
        case: schemathesis.Case,
        caller: str,
        response: schemathesis.Response,
        before: dict[str, str],
        after: dict[str, str],
        where: str,
    ) -> None:
        if case.path in PUBLIC_PATHS:
            return
        status = response.status_code
        accepted = status < 300
        if caller in INVALID:
            assert not accepted and status != 403, f"invalid token ({caller}) was accepted\n{where}"
            return
        changes = case.method.upper() not in SAFE_METHODS
        if caller == "viewer-acme" and changes:
            assert not accepted, f"a viewer changed something\n{where}"
            _assert_unchanged(before, after, f"a viewer changed state\n{where}")
        admin_only = case.path.startswith("/v1/users") or (
            case.path.startswith("/v1/tenants") and case.path.count("/") <= 3 and changes
        )
        if caller != "admin" and admin_only:
            assert not accepted, f"{caller} used an admin-only operation\n{where}"
        if caller not in SEES:
            return
        if self.named_tenants(case) - SEES[caller]:
            # Exactly 404, or what a tenant that does not exist gets (the router's 400, 405 or
            # 422, decided before any lookup): nothing tells the tenant's resources exist.
            router = status in ROUTER_STATUSES and status == self.status_without_tenants(
                case, caller
            )
            assert status == 404 or router, (
                f"{caller} was told something of a tenant it cannot see\n{where}"
            )
        sent = json.dumps(
            [case.path_parameters, case.query, case.body], default=repr, ensure_ascii=False
        )
        text = response.content.decode("utf-8", "replace")
        for tenant in set(TENANTS) - SEES[caller]:
            leaked = sorted(m for m in self.markers[tenant] if m in text and m not in sent)
            assert not leaked, f"{caller} was told {tenant!r}'s {leaked}\n{where}"

    def status_without_tenants(self, case: schemathesis.Case, caller: str) -> int:
        """The status of the same request with every seeded tenant (and operation) it names
        swapped for ones that never existed."""
        params, query = case.path_parameters, case.query
        missing = {**TENANTS, **dict.fromkeys(self.operation_tenant)}
        case.path_parameters = {
            k: ("0" * 32 if k == "operation_id" else "never-a-tenant") if v in missing else v
            for k, v in params.items()
        }
        if isinstance(query, dict) and query.get("tenant_id") in TENANTS:
            case.query = {**query, "tenant_id": "never-a-tenant"}
        try:
            before = self.snapshot()
            response = case.call(base_url=BASE_URL, session=self.http, headers=self.headers[caller])
            _assert_unchanged(before, self.snapshot(), "a request for no tenant changed state")
        finally:
            case.path_parameters, case.query = params, query
        return response.status_code

    def named_tenants(self, case: schemathesis.Case) -> set[str]:
        """The seeded tenants whose resources the request names (path, operation, query)."""
        named = {case.path_parameters.get("tenant_id")}
        named.add(self.operation_tenant.get(str(case.path_parameters.get("operation_id"))))
        if isinstance(case.query, dict):
            named.add(case.query.get("tenant_id"))
        return {t for t in named if t in TENANTS}


def _describe(case: schemathesis.Case, caller: str, response: schemathesis.Response) -> str:
    request = response.request
    body = (
        request.body.decode("utf-8", "replace") if isinstance(request.body, bytes) else request.body
    )
    return (
        f"  caller:   {caller}\n"
        f"  request:  {request.method} {request.url}\n"
        f"  body:     {body!r}\n"
        f"  response: {response.status_code} {(response.headers.get('content-type') or [''])[0]} "
        f"{response.content[:600]!r}"
    )


def _assert_problem(response: schemathesis.Response, where: str) -> None:
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/problem+json"), f"4xx is not problem+json\n{where}"
    problem = Problem.model_validate_json(response.content)
    assert problem.status == response.status_code, f"problem status differs\n{where}"
    assert problem.detail.strip(), f"problem without detail\n{where}"
    if response.status_code == 401:
        assert response.headers.get("www-authenticate"), f"401 without WWW-Authenticate\n{where}"


def _assert_unchanged(before: dict[str, str], after: dict[str, str], message: str) -> None:
    if before == after:
        return
    diff = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key, ""), after.get(key, "")
        if key == "provider.resources":
            if old != new:
                diff.append(f"  {key}: {old[:800]} -> {new[:800]}")
            continue
        old_rows, new_rows = set(old.split(ROW)), set(new.split(ROW))
        if old_rows == new_rows:
            continue  # same rows, another order
        gone = sorted(r.replace(COLUMN, " | ") for r in old_rows - new_rows)
        added = sorted(r.replace(COLUMN, " | ") for r in new_rows - old_rows)
        diff.append(f"  {key}: removed {gone!r:.800} added {added!r:.800}")
    if diff:
        raise AssertionError(message + "\n" + "\n".join(diff))


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    """One seeded app (memory provider, like conftest's `client`) shared by the module."""
    home = tmp_path_factory.mktemp("api-fuzz")
    settings = Settings(
        provider="memory",
        home=home / "home",
        database_url=None,  # the embedded SQLite database, whatever the environment says
        log_file=LOG_FILE,
        log_level="DEBUG",
        max_parallel_operations=4,
    )
    provider = MemoryProvider()
    app = create_app(settings, platform_factory=lambda s: build_platform(s, provider=provider))
    with TestClient(app) as client:
        fuzzer = Fuzzer(client, provider, LocalTokenIssuer(settings), home)
        yield fuzzer
        fuzzer.wait_idle()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_api_fuzz(case: schemathesis.Case, fuzz: Fuzzer) -> None:
    """No 5xx, schema-conformant 2xx, and rejected requests change nothing, for every caller."""
    fuzz.run(case)


def test_operation_events_stream(fuzz: Fuzzer) -> None:
    """The SSE stream, left out of the fuzz run (it streams until its operation ends).

    Only finished operations are asked for, so every stream ends; the checks are the fuzz run's:
    no 5xx, the right caller sees the events, the others get 401/404, and nothing changes.
    """
    acme_op, other_op = fuzz.operation_ids
    sees = {
        acme_op: {"admin", "operator-acme", "viewer-acme", "tenant-acme"},
        other_op: {"admin", "tenant-other"},
    }
    # "\u00b2" (superscript two; 0xB2 in Latin-1, as headers are decoded) passes str.isdigit()
    # but not int(); the long id overflows a 64-bit column. The admin sends every variant.
    resume_ids = (None, "2", "garbage", "\u00b2", "99999999999999999999")
    for op_id in (acme_op, other_op, "0" * 32, "not-an-operation"):
        for caller in (*VALID, *INVALID):
            for last_event_id in resume_ids if caller == "admin" else resume_ids[:2]:
                headers = dict(fuzz.headers[caller])
                if last_event_id is not None:
                    headers["Last-Event-ID"] = last_event_id
                fuzz.wait_idle()
                before = fuzz.snapshot()
                # Schemathesis' client sends header bytes as given (the TestClient re-encodes them
                # as UTF-8) and bounds an event stream by its event count and the timeout.
                r = fuzz.http.get(
                    f"{BASE_URL}/v1/operations/{op_id}/events", headers=headers, timeout=10
                )
                body = r.text
                after = fuzz.snapshot()
                STATS[(f"GET {EVENTS_PATH}", caller, f"{r.status_code // 100}xx")] += 1
                where = (
                    f"  caller: {caller}, operation: {op_id}, Last-Event-ID: {last_event_id}\n"
                    f"  response: {r.status_code} {body[:300]!r}"
                )
                assert r.status_code < 500, where
                _assert_unchanged(before, after, f"the event stream changed state\n{where}")
                if caller in INVALID:
                    assert r.status_code == 401, where
                elif caller in sees.get(op_id, ()):
                    assert r.status_code == 200, where
                    assert r.headers["content-type"].startswith("text/event-stream"), where
                    if last_event_id != "99999999999999999999":  # resumes after every event
                        assert "event: operation_succeeded" in body, where
                else:
                    assert r.status_code == 404, where
                    assert r.headers["content-type"].startswith("application/problem+json"), where


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many requests each caller sent and how they were answered."""
    yield
    if not STATS:
        return
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    by_caller: Counter[tuple[str, str]] = Counter()
    operations = set()
    for (operation, caller, status), count in STATS.items():
        by_caller[(caller, status)] += count
        operations.add(operation)
    total = sum(STATS.values())
    lines = ["", f"API fuzz: {total} requests over {len(operations)} method/path pairs"]
    for caller in (*VALID, *INVALID):
        counts = {
            s: by_caller[(caller, s)]
            for s in ("2xx", "3xx", "4xx", "5xx")
            if by_caller[(caller, s)]
        }
        lines.append(f"  {caller:14} {counts}")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else nullcontext():
        for line in lines:
            reporter.write_line(line)
