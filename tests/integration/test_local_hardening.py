"""Issue 11 on the real local stack: env names PHP's INI parser cannot reinterpret, a broken
pool or server block rolled back as one unit, concurrent creates and deletes, and the cost
of the logs API on a log the site filled itself."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from controlplane.models import Site
from controlplane.providers.local.runtime import RuntimeStep
from controlplane.stack.process import StackError
from tests.conftest import wait_for_operation
from tests.integration.test_local_sites import EMAIL, LocalEnv, local  # noqa: F401

pytestmark = pytest.mark.integration

# (name, accepted): accepted names must reach PHP exactly as written.
ENV_NAMES = [
    ("NULL", True), ("FALSE", True), ("TRUE", True), ("ON", True), ("OFF", True),
    ("YES", True), ("NO", True), ("NONE", True),  # INI keywords
    ("E_ALL", True), ("M_PI", True), ("MYSQLI_ASSOC", True), ("PHP_EOL", False),  # constants
    ("PHP_VERSION", False), ("LD_PRELOAD", False),  # reserved prefixes
    ("null", False), ("False", False), ("A[B]", False), ("A]", False), ("A=B", False),
    ("A;B", False), ("A B", False), ("A\"B", False), ("A$B", False), ("${HOME}", False),
    ("ÄPFEL", False), ("1ABC", False), ("A" * 65, False), ("FOO\n", False), ("FOO\r\nX", False),
    ("_", True), ("A" * 64, True), ("STRIPE_API_KEY", True),
]  # fmt: skip


def _probe(env: LocalEnv, tenant: str, site: str, name: str, php: str) -> str:
    """A PHP file in the site's wp-content, owned by the site's user; its URL path."""
    with env.client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        record = session.query(Site).filter_by(tenant_id=tenant, name=site).one()
        root, user = Path(record.resources["storage"]["root"]), record.resources["storage"]["user"]
    path = root / "htdocs" / "wp-content" / name
    path.write_text(php)
    shutil.chown(path, user, "www-data")
    return f"/wp-content/{name}"


def _fpm_test_passes(env: LocalEnv) -> None:
    env.stack.phpfpm.test_config()  # raises StackError with php-fpm's output


def test_env_names_never_break_php_fpm(local: LocalEnv) -> None:  # noqa: F811
    tenant = "inikeys"
    local.client.post("/v1/tenants", json={"id": tenant, "name": tenant}, headers=local.admin)
    local.create("keys", tenant=tenant)
    host = f"keys.{tenant}.localhost"
    probe = _probe(local, tenant, "keys", "allenv.php",
                   "<?php header('Content-Type: application/json'); echo json_encode(getenv());")  # fmt: skip
    try:
        for i, (name, accepted) in enumerate(ENV_NAMES):
            value = f"value-{i}"
            url = f"/v1/tenants/{tenant}/env/{quote(name, safe='')}"
            answer = local.change_env("PUT", url, json={"value": value})
            if accepted:
                assert answer.status_code == 202, (name, answer.text)
            else:
                assert answer.status_code in (404, 422), (name, answer.text)
                if answer.status_code == 422:
                    assert (
                        "A-Z, 0-9 and '_'" in answer.json()["detail"]
                        or "reserved" in (answer.json()["detail"])
                    )
            _fpm_test_passes(local)
            seen = local.site_get(host, probe).json()
            if accepted:
                assert seen.get(name) == value, (
                    name,
                    {k: v for k, v in seen.items() if v == value},
                )
            else:
                assert value not in seen.values(), name
        stored = {
            v["name"]
            for v in local.client.get(f"/v1/tenants/{tenant}/env", headers=local.admin).json()
        }
        assert stored == {name for name, accepted in ENV_NAMES if accepted}
        # A pool file never holds an unquoted key PHP could rewrite.
        pool = local.stack.phpfpm.pool_file(local.resources("keys", tenant)["storage"]["user"])
        assert 'env["E_ALL"] = "value-' in pool.read_text()
        assert "env[32767]" not in pool.read_text()
    finally:
        local.delete("keys", tenant=tenant)


def test_a_broken_pool_or_vhost_is_rolled_back_and_the_platform_still_reloads(
    local: LocalEnv,  # noqa: F811
) -> None:
    local.create("steady")
    host = "steady.acme.localhost"
    user = local.resources("steady")["storage"]["user"]
    phpfpm, nginx = local.stack.phpfpm, local.stack.nginx
    pool, vhost = phpfpm.pool_file(user), nginx.site_file("acme--steady")
    pool_before, vhost_before = pool.read_bytes(), vhost.read_bytes()
    master = phpfpm.pid()

    # The runtime step itself, with settings that render a pool php-fpm refuses.
    platform = local.client.app.state.platform  # type: ignore[attr-defined]
    broken = RuntimeStep(
        local.stack, local.settings.model_copy(update={"php_memory_limit": "64M\n[broken"})
    )
    with platform.sessions() as session:
        record = session.query(Site).filter_by(tenant_id="acme", name="steady").one()
        ctx = platform.engine.read_context(session, record)
    with pytest.raises(StackError):
        broken.apply_env([ctx])
    assert pool.read_bytes() == pool_before
    assert oct(pool.stat().st_mode & 0o777) == "0o600"
    assert phpfpm.pid() == master  # never reloaded onto the broken file

    # Several files at once: a new one is removed again, a changed one restored.
    extra = phpfpm.pool_dir / "wp-injected.conf"
    with pytest.raises(StackError):
        phpfpm.apply({pool: pool_before.decode() + "\nnot an ini line [", extra: "[x]\n"})
    assert pool.read_bytes() == pool_before and not extra.exists()
    with pytest.raises(StackError):
        nginx.apply({vhost: "server { listen broken; }", nginx.site_file("zz-new"): "x"})
    assert vhost.read_bytes() == vhost_before and not nginx.site_file("zz-new").exists()
    nginx.test_config()
    _fpm_test_passes(local)

    # Everything still changes and reloads: the site serves, env reaches PHP, a new site works.
    assert local.site_get(host).status_code == 200
    probe = _probe(local, "acme", "steady", "one.php", "<?php echo getenv('AFTER_ROLLBACK');")
    put = local.change_env(
        "PUT", "/v1/tenants/acme/env/AFTER_ROLLBACK", json={"value": "still-here"}
    )
    assert put.status_code == 202, put.text
    assert local.site_get(host, probe).text == "still-here"
    local.create("after")
    assert local.site_get("after.acme.localhost").status_code == 200
    local.change_env("DELETE", "/v1/tenants/acme/env/AFTER_ROLLBACK")
    local.delete("after")
    local.delete("steady")


def test_concurrent_creates_and_deletes_all_succeed(local: LocalEnv) -> None:  # noqa: F811
    assert local.settings.max_parallel_operations >= 4  # they really run side by side
    tenants = [f"burst{i}" for i in range(5)]
    for tenant in tenants:
        local.client.post("/v1/tenants", json={"id": tenant, "name": tenant}, headers=local.admin)
    sites = [(tenant, f"s{j}") for tenant in tenants for j in range(4)]

    def create(pair: tuple[str, str]) -> str:
        tenant, name = pair
        answer = local.client.post(f"/v1/tenants/{tenant}/sites",
                                   json={"name": name, "admin_email": EMAIL}, headers=local.admin)  # fmt: skip
        assert answer.status_code == 202, answer.text
        return str(answer.json()["operation"]["id"])

    def delete(pair: tuple[str, str]) -> str:
        tenant, name = pair
        answer = local.client.delete(f"/v1/tenants/{tenant}/sites/{name}", headers=local.admin)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["operation"]["id"])

    def wait(op: str) -> dict[str, object]:
        return wait_for_operation(local.client, op, local.admin, timeout=600)

    first, second = sites[::2], sites[1::2]
    with ThreadPoolExecutor(len(sites)) as pool:
        created = list(pool.map(wait, list(pool.map(create, first))))
        assert [op["status"] for op in created] == ["succeeded"] * len(first), created
        # 20 at once: each tenant loses two sites while two others are built.
        ops = list(pool.map(lambda job: job[0](job[1]),
                            [(delete, s) for s in first] + [(create, s) for s in second]))  # fmt: skip
        mixed = list(pool.map(wait, ops))
        assert [op["status"] for op in mixed] == ["succeeded"] * len(ops), mixed
        for tenant, name in second:
            assert local.site_get(f"{name}.{tenant}.localhost").status_code == 200
        deleted = list(pool.map(wait, list(pool.map(delete, second))))
    assert [op["status"] for op in deleted] == ["succeeded"] * len(second), deleted
    for tenant in tenants:
        assert local.client.get(f"/v1/tenants/{tenant}/sites", headers=local.admin).json() == []
    leftovers = [p.name for p in local.stack.phpfpm.pool_dir.glob("*.conf") if "burst" in p.name]
    assert leftovers == []
    _fpm_test_passes(local)
    assert local.stack.phpfpm.pid() is not None and local.stack.nginx.pid() is not None


def _rchar() -> int:
    """Bytes this process has read so far (files; the TestClient uses no sockets)."""
    line = next(x for x in Path("/proc/self/io").read_text().splitlines() if x.startswith("rchar"))
    return int(line.split()[1])


def test_logs_of_a_flooded_php_log_cost_bounded_reads(local: LocalEnv) -> None:  # noqa: F811
    local.create("noisy")
    res = local.resources("noisy")
    log = Path(res["storage"]["root"]) / "logs" / "php-error.log"
    end = datetime(2030, 1, 1, tzinfo=UTC)
    with log.open("w") as out:  # what a plugin logging in a loop leaves: 390,000 lines
        for i in range(390_000):
            when = end - timedelta(seconds=390_000 - i)
            kind = "Fatal error" if i % 10_000 == 0 else "Warning"
            out.write(f"[{when:%d-%b-%Y %H:%M:%S} UTC] PHP {kind}:  entry {i} in /p.php:1\n")
    shutil.chown(log, res["storage"]["user"], res["storage"]["user"])
    assert log.stat().st_size > 20 * 2**20
    url = "/v1/tenants/acme/sites/noisy/logs"
    window = {"since": (end - timedelta(days=30)).isoformat(), "until": end.isoformat()}

    def read(**params: object) -> tuple[dict[str, object], int]:
        before = _rchar()
        answer = local.client.get(url, params={**window, **params}, headers=local.admin)
        assert answer.status_code == 200, answer.text
        return answer.json(), _rchar() - before

    newest, cost = read(limit=50)
    assert [e["message"].split()[3] for e in newest["entries"]] == [
        str(i) for i in range(389_999, 389_949, -1)
    ]
    assert newest["truncated"] is True
    assert cost < 2**20  # the old read took the last 16 MB of every file

    budget = local.settings.log_read_budget_bytes
    fatal, cost = read(severity="critical", limit=3)
    assert [e["message"].split()[4] for e in fatal["entries"]] == ["380000", "370000", "360000"]
    assert cost < budget + 2**20

    nothing, cost = read(q="never logged")
    assert nothing["entries"] == [] and nothing["truncated"] is True  # the budget ended it
    assert budget <= cost < budget + 2**20
    os.unlink(log)
    local.delete("noisy")


def test_a_sites_database_user_holds_at_most_its_connection_limit(
    local: LocalEnv,  # noqa: F811
) -> None:
    """One site's PHP (or code it runs) opening connections in a loop must leave the shared
    server's others, the control plane's included, free: its user is capped."""
    import pymysql

    from controlplane.credentials import DatabaseVault

    local.create("hog")
    limit = local.settings.site_db_max_connections
    platform = local.client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        site = session.query(Site).filter_by(tenant_id="acme", name="hog").one()
        user, password = DatabaseVault(session, platform.keyring, site.id).get("database") or ("", "")  # fmt: skip
    database = local.resources("hog")["database"]["name"]

    def connect() -> pymysql.Connection:
        return pymysql.connect(host="127.0.0.1", port=local.settings.mariadb_port, user=user,
                               password=password, database=database)  # fmt: skip

    held = []
    try:
        for _ in range(limit):
            held.append(connect())
        with pytest.raises(pymysql.err.OperationalError) as refused:
            held.append(connect())
        assert refused.value.args[0] == 1226  # ER_USER_LIMIT_REACHED: max_user_connections
        with local.stack.mariadb.connect() as conn, conn.cursor() as cur:  # others still get in
            cur.execute("SELECT max_user_connections FROM mysql.user WHERE User = %s", (user,))
            assert cur.fetchone() == (limit,)
        assert local.client.get("/v1/tenants/acme/sites", headers=local.admin).status_code == 200
    finally:
        for conn in held:
            conn.close()
    # A user made before the limit gets it at the next control-plane start.
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("ALTER USER %s@'127.0.0.1' WITH MAX_USER_CONNECTIONS 0", (user,))
    running = local.client.app.state.platform  # type: ignore[attr-defined]
    with TestClient(local.client.app):
        pass
    local.client.app.state.platform = running  # type: ignore[attr-defined]
    with local.stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT max_user_connections FROM mysql.user WHERE User = %s", (user,))
        assert cur.fetchone() == (limit,)
    local.delete("hog")
