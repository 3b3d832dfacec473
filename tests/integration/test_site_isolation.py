"""A site's PHP is hostile: on the real stack (control plane and chat service listening),
PHP run as a site's user (with its pool's settings, and as a must-use plugin in a real
request through nginx) tries to sign in, to reach every platform port and socket and the
metadata addresses, and to read every platform file. All of it fails, while the same probes
as root succeed (so nothing passes by accident), and the site's own nginx and database
still answer. Without open_basedir, file permissions alone stop the file probes."""

from __future__ import annotations

import errno
import ipaddress
import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatbot.service import create_app as create_chat_app
from chatbot.settings import ChatSettings
from controlplane.api.app import create_app
from controlplane.billing.warehouse import DuckDBWarehouse
from controlplane.kernel.auth import LocalTokenIssuer, load_sign_in_key
from controlplane.kernel.identity import Role
from controlplane.settings import Settings
from controlplane.stack.firewall import SiteFirewall
from controlplane.stack.local import LocalStack
from controlplane.stack.process import CLEAN_ENV
from tests.live import local_stack_home, serve

pytestmark = pytest.mark.integration
PROBE_TOKEN = secrets.token_hex(8)
# The reject answers at once: a refusal, not a timeout that could have any cause.
REFUSED = {errno.ECONNREFUSED, errno.EPERM, errno.EACCES}
METADATA = {
    "metadata-v4": "169.254.169.254:80",
    "metadata-v6": "[fd00:ec2::254]:80",
    "link-local": "169.254.0.1:80",
}

PROBE_PHP = r"""
function aipress_tcp($target) {
    $t0 = microtime(true);
    $s = @stream_socket_client($target, $no, $str, 2);
    if ($s !== false) { fclose($s); }
    return ['ok' => $s !== false, 'errno' => $no, 'error' => $str,
            'ms' => (int) round((microtime(true) - $t0) * 1000)];
}
function aipress_probe($cfg) {
    $out = ['tcp' => [], 'unix' => [], 'read' => [], 'list' => [], 'http' => [], 'mysql' => []];
    foreach ($cfg['tcp'] as $name => $target) { $out['tcp'][$name] = aipress_tcp("tcp://$target"); }
    foreach ($cfg['unix'] as $path) { $out['unix'][$path] = aipress_tcp("unix://$path"); }
    foreach ($cfg['read'] as $path) {
        $h = @fopen($path, 'rb');
        $out['read'][$path] = $h !== false && @fread($h, 64) !== false;
        if ($h) { fclose($h); }
    }
    foreach ($cfg['list'] as $path) { $out['list'][$path] = @scandir($path) !== false; }
    foreach ($cfg['http'] as $name => $req) {
        $s = @stream_socket_client('tcp://' . $req['target'], $no, $str, 3);
        if ($s === false) { $out['http'][$name] = ['status' => null, 'error' => $str]; continue; }
        stream_set_timeout($s, 20);
        fwrite($s, $req['raw']);
        $resp = stream_get_contents($s);
        fclose($s);
        $status = preg_match('#^HTTP/1\.[01] (\d{3})#', $resp, $m) ? (int) $m[1] : null;
        $out['http'][$name] = ['status' => $status, 'token' => strpos($resp, '"token"') !== false];
    }
    mysqli_report(MYSQLI_REPORT_OFF);
    foreach ($cfg['mysql'] as $name => $c) {
        $link = @mysqli_connect($c['host'], $c['user'], $c['password'], $c['db'], $c['port'], $c['socket']);
        $out['mysql'][$name] = $link !== false;
        if ($link) { mysqli_close($link); }
    }
    return $out;
}
"""


@dataclass
class Isolated:
    """The stack, its two services' URLs, and the probing site's names."""

    settings: Settings
    stack: LocalStack
    api: httpx.Client
    control_plane: str
    chat: str
    sites: dict[str, dict[str, Any]]

    def user(self, site: str) -> str:
        return str(self.sites[site]["storage"]["user"])

    def root(self, site: str) -> Path:
        return Path(self.sites[site]["storage"]["root"])


def _wait(api: httpx.Client, operation: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/v1/operations/{operation}").json()
        if body["status"] in ("succeeded", "failed", "rolled_back"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"operation {operation} did not finish")


def _create(api: httpx.Client, tenant: str, name: str) -> dict[str, Any]:
    made = api.post(
        f"/v1/tenants/{tenant}/sites", json={"name": name, "admin_email": "o@x.example"}
    )
    assert made.status_code == 202, made.text
    return _wait(api, made.json()["operation"]["id"])


def _resources(control_plane: Any, tenant: str, name: str) -> dict[str, Any]:
    from controlplane.models import Site

    with control_plane.state.platform.sessions() as session:
        site = session.query(Site).filter_by(tenant_id=tenant, name=name).one()
        return dict(site.resources)


@pytest.fixture(scope="module")
def isolated() -> Iterator[Isolated]:
    with local_stack_home("iso", billing_schedule=False) as settings:
        yield from _isolated(settings)


def _isolated(settings: Settings) -> Iterator[Isolated]:
    control_plane = create_app(settings)
    with serve(control_plane) as url:
        admin = LocalTokenIssuer(settings).issue("root", Role.ADMIN)
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=60)
        for tenant in ("acme", "globex"):
            api.post("/v1/tenants", json={"id": tenant, "name": tenant})
        api.put("/v1/users/admin", json={"role": "admin", "tenants": []})
        chat_settings = ChatSettings(**settings.shared(), chat_control_plane_url=url)
        with serve(create_chat_app(chat_settings)) as chat_url:
            for tenant, name in (("acme", "prober"), ("globex", "victim"), ("acme", "gone")):
                assert _create(api, tenant, name)["status"] == "succeeded"
            sites = {n: _resources(control_plane, t, n) for t, n in
                     (("acme", "prober"), ("globex", "victim"))}  # fmt: skip
            deleted = api.delete("/v1/tenants/acme/sites/gone")  # leaves a backup behind
            assert _wait(api, deleted.json()["operation"]["id"])["status"] == "succeeded"
            DuckDBWarehouse(settings.billing_duckdb_file).close()  # as the hourly meter would
            stack = control_plane.state.platform.provider.stack
            yield Isolated(settings, stack, api, url, chat_url, sites)
            for tenant, name in (("acme", "prober"), ("globex", "victim")):
                gone = api.delete(f"/v1/tenants/{tenant}/sites/{name}")
                _wait(api, gone.json()["operation"]["id"])
        api.close()


def _listening_ports() -> set[tuple[int, str]]:
    """(port, address to reach it) of every TCP listener on this machine (/proc/net/tcp*)."""
    found: set[tuple[int, str]] = set()
    for path, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        for line in Path(path).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address_hex, port_hex = fields[1].split(":")
            raw = bytes.fromhex(address_hex)
            if family == 4:
                address = ipaddress.IPv4Address(raw[::-1])
            else:
                address = ipaddress.IPv6Address(
                    b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                )
            if address.is_link_local:
                continue  # needs a scope id; nothing of ours listens there
            if address.is_unspecified:
                target = "127.0.0.1" if family == 4 else "[::1]"
            elif family == 6:
                mapped = address.ipv4_mapped  # type: ignore[union-attr]
                target = str(mapped) if mapped else f"[{address}]"
            else:
                target = str(address)
            found.add((int(port_hex, 16), target))
    return found


def _local_addresses() -> list[str]:
    """The host's own non-loopback addresses (their traffic goes through `lo` too)."""
    shown = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True).stdout)
    found = []
    for link in shown:
        for info in link.get("addr_info", []):
            address = ipaddress.ip_address(info["local"])
            if not address.is_loopback and not address.is_link_local:
                found.append(str(address) if address.version == 4 else f"[{address}]")
    return found


def _http(
    target: str, method: str, path: str, headers: dict[str, str], body: str = ""
) -> dict[str, str]:
    host = target
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    return {"target": target, "raw": "\r\n".join(lines) + "\r\n\r\n" + body}


def _wp_config(root: Path) -> dict[str, str]:
    text = (root / "htdocs" / "wp-config.php").read_text()
    return dict(re.findall(r"define\('(DB_NAME|DB_USER|DB_PASSWORD)', '([^']*)'\)", text))


@dataclass
class Plan:
    """What to probe, and which results belong to the platform (must fail) or the site."""

    config: dict[str, Any]
    own: dict[str, Any]


def _plan(env: Isolated, extra_listener: int) -> Plan:
    home, stack = env.settings.home, env.stack
    cp_port = int(env.control_plane.rsplit(":", 1)[1])
    chat_port = int(env.chat.rsplit(":", 1)[1])
    site_port, db_port = env.settings.site_port, env.settings.mariadb_port
    tcp = {"control-plane": f"127.0.0.1:{cp_port}", "chat": f"127.0.0.1:{chat_port}",
           "chat-v6-mapped": f"[::ffff:127.0.0.1]:{chat_port}",
           "extra-v4": f"127.0.0.1:{extra_listener}", "extra-v6": f"[::1]:{extra_listener}"}  # fmt: skip
    for address in _local_addresses():  # the host's own addresses reach local listeners too
        tcp[f"extra-at-{address}"] = f"{address}:{extra_listener}"
    for port, target in sorted(_listening_ports()):
        if port not in (site_port, db_port):
            tcp[f"listener-{target}:{port}"] = f"{target}:{port}"
    victim, prober = env.root("victim"), env.root("prober")
    nginx_logs = stack.nginx.log_dir
    backups = [p for p in stack.backups_dir.rglob("*") if p.is_file()]
    assert backups, "the deleted site left no backup"
    read = [
        *(str(p) for p in sorted(env.settings.keys_dir.iterdir())),
        str(home / "controlplane.db"), str(home / "chat.db"), str(env.settings.billing_duckdb_file),
        str(stack.nginx.conf), *(str(p) for p in sorted(stack.nginx.sites_dir.iterdir())),
        *(str(p) for p in sorted(nginx_logs.iterdir()) if "prober" not in p.name),
        str(stack.phpfpm.conf), *(str(p) for p in sorted(stack.phpfpm.pool_dir.iterdir())),
        str(stack.phpfpm.base / "php-fpm.log"), str(stack.mariadb.error_log),
        str(stack.mariadb.datadir / "ibdata1"), str(victim / "htdocs" / "wp-config.php"),
        str(victim / "htdocs" / "index.php"), *(str(p) for p in backups),
    ]  # fmt: skip
    listed = [str(home), str(stack.sites_dir), str(stack.sites_dir / "globex"),
              str(stack.sites_dir / "acme"), str(stack.backups_dir), str(stack.mariadb.datadir),
              str(stack.nginx.sites_dir), str(nginx_logs), str(stack.phpfpm.pool_dir),
              str(stack.phpfpm.socket_dir), str(env.settings.keys_dir), str(victim)]  # fmt: skip
    unix = [str(stack.mariadb.socket), *(str(p) for p in sorted(stack.phpfpm.socket_dir.iterdir()))]
    chat = f"127.0.0.1:{chat_port}"
    token_body = json.dumps({"uid": "admin"})
    json_type = {"Content-Type": "application/json"}
    http = {
        "users-no-key": _http(chat, "GET", "/auth/local/users", {}),
        "token-no-key": _http(chat, "POST", "/auth/local/token", json_type, token_body),
        "token-guessed-key": _http(
            chat,
            "POST",
            "/auth/local/token",
            {**json_type, "X-AIPress-Sign-In-Key": "admin"},
            token_body,
        ),
        "token-spoofed-host": _http("localhost", "POST", "/auth/local/token", json_type, token_body)
        | {"target": chat},
        "control-plane-me": _http(f"127.0.0.1:{cp_port}", "GET", "/v1/me", {}),
        # The MCP endpoint and its authorization server live on the chat port too.
        "mcp-no-token": _http(chat, "POST", "/mcp", json_type, '{"jsonrpc":"2.0","id":1}'),
        "oauth-metadata": _http(chat, "GET", "/.well-known/oauth-authorization-server", {}),
        "oauth-token-exchange": _http(
            chat,
            "POST",
            "/oauth/token",
            {"Content-Type": "application/x-www-form-urlencoded"},
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange",
        ),
    }
    db = _wp_config(prober)
    mysql = {
        "root-over-tcp": {"host": "127.0.0.1", "user": "root", "password": "", "db": "",
                          "port": db_port, "socket": None},
        "root-over-socket": {"host": "localhost", "user": "root", "password": "", "db": "",
                             "port": 0, "socket": str(stack.mariadb.socket)},
    }  # fmt: skip
    own = {
        "tcp": {"own-nginx": f"127.0.0.1:{site_port}", "own-mariadb": f"127.0.0.1:{db_port}"},
        "http": {"own-site": _http(f"127.0.0.1:{site_port}", "GET", "/", {})
                 | {"raw": f"GET / HTTP/1.1\r\nHost: prober.acme.localhost:{site_port}\r\n"
                           "Connection: close\r\n\r\n"}},
        "mysql": {"own-db": {"host": "127.0.0.1", "user": db["DB_USER"],
                             "password": db["DB_PASSWORD"], "db": db["DB_NAME"], "port": db_port,
                             "socket": None}},
    }  # fmt: skip
    config = {"tcp": tcp, "unix": unix, "read": read, "list": listed, "http": http, "mysql": mysql}
    return Plan(config, own)


def _merged(plan: Plan, metadata: bool) -> dict[str, Any]:
    config = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in plan.config.items()}
    for kind in ("tcp", "http", "mysql"):
        config[kind].update(plan.own[kind])
    if metadata:
        config["tcp"].update(METADATA)
        config["tcp"]["metadata-by-name"] = "metadata.google.internal:80"
    return config


def _script(config: dict[str, Any]) -> str:
    literal = json.dumps(json.dumps(config))
    return f"<?php\n{PROBE_PHP}\necho json_encode(aipress_probe(json_decode({literal}, true)));\n"


def _pool_flags(env: Isolated, site: str, open_basedir: bool) -> list[str]:
    """The pool's php_admin settings (as pool.conf.j2 wrote them) as php -d flags."""
    pool = env.stack.phpfpm.pool_file(env.user(site)).read_text()
    flags = []
    for name, value in re.findall(r"^php_admin_(?:value|flag)\[([^\]]+)\] = (.*)$", pool, re.M):
        if name == "open_basedir" and not open_basedir:
            continue
        flags += ["-d", f"{name}={value}"]
    assert open_basedir == any(f.startswith("open_basedir=") for f in flags)
    assert any(f.startswith("disable_functions=exec,") for f in flags)
    return flags


def _run_php(config: dict[str, Any], user: str | None, flags: list[str]) -> dict[str, Any]:
    prefix = ["runuser", "-u", user, "--"] if user else []
    result = subprocess.run(
        [*prefix, "php", *flags], input=_script(config), capture_output=True, text=True,
        timeout=600, env=CLEAN_ENV, cwd="/",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def _as_plugin(env: Isolated, config: dict[str, Any]) -> dict[str, Any]:
    """Drop a must-use plugin into the site and trigger it with a real request via nginx."""
    mu = env.root("prober") / "htdocs" / "wp-content" / "mu-plugins"
    user = env.user("prober")
    if not mu.exists():
        mu.mkdir()
        shutil.chown(mu, user, "www-data")
    plugin = mu / "aipress-isolation-probe.php"
    literal = json.dumps(json.dumps(config))
    plugin.write_text(
        f"<?php\nif (($_GET['aipress_probe'] ?? '') !== '{PROBE_TOKEN}') {{ return; }}\n"
        f"{PROBE_PHP}\nheader('Content-Type: application/json');\n"
        f"echo json_encode(aipress_probe(json_decode({literal}, true)));\nexit;\n"
    )
    shutil.chown(plugin, user, "www-data")
    port = env.settings.site_port
    try:
        response = httpx.get(
            f"http://127.0.0.1:{port}/?aipress_probe={PROBE_TOKEN}",
            headers={"Host": f"prober.acme.localhost:{port}"}, timeout=300,
        )  # fmt: skip
    finally:
        plugin.unlink()
    assert response.status_code == 200, response.text[:1000]
    parsed: dict[str, Any] = response.json()
    return parsed


def _assert_platform_unreachable(seen: dict[str, Any], plan: Plan, files_only: bool) -> None:
    for path, readable in seen["read"].items():
        assert not readable, f"a site's PHP read {path}"
    for path, listable in seen["list"].items():
        assert not listable, f"a site's PHP listed {path}"
    if files_only:
        return
    for name, result in seen["tcp"].items():
        if name in plan.own["tcp"]:
            continue
        assert not result["ok"], f"a site's PHP connected to {name}"
        if name != "metadata-by-name":  # may not resolve here at all
            assert result["errno"] in REFUSED and result["ms"] < 1500, (name, result)
    for path, result in seen["unix"].items():
        assert not result["ok"], f"a site's PHP connected to the socket {path}"
    for name, result in seen["http"].items():
        if name not in plan.own["http"]:
            assert result["status"] is None, f"{name} answered a site's PHP: {result}"
    assert not seen["mysql"]["root-over-tcp"] and not seen["mysql"]["root-over-socket"]
    # What the site needs still works: its own nginx (loopback requests) and its database.
    assert seen["tcp"]["own-nginx"]["ok"] and seen["tcp"]["own-mariadb"]["ok"]
    assert seen["http"]["own-site"]["status"] in (200, 301, 302)
    assert seen["mysql"]["own-db"]


@pytest.fixture
def extra_listener() -> Iterator[int]:
    """A root-owned listener on every address, as any other service of the machine."""
    import socket
    import threading

    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", 0))
    server.listen(64)
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_a_sites_php_reaches_nothing_of_the_platform(
    isolated: Isolated, extra_listener: int
) -> None:
    env = isolated
    plan = _plan(env, extra_listener)
    key = load_sign_in_key(env.settings)
    chat = plan.config["http"]["users-no-key"]["target"]

    # Positive control: the same probes as root reach everything (metadata left out: not
    # every machine has a metadata server, and the site's refusals are checked by errno).
    control = _merged(plan, metadata=False)
    control["http"]["token-real-key"] = _http(
        chat, "POST", "/auth/local/token",
        {"Content-Type": "application/json", "X-AIPress-Sign-In-Key": key}, '{"uid": "admin"}',
    )  # fmt: skip
    as_root = _run_php(control, None, [])
    still_listening = {f"listener-{t}:{p}" for p, t in _listening_ports()}
    for name, result in as_root["tcp"].items():
        if name.startswith("listener-") and name not in still_listening:
            continue  # another test's server that stopped meanwhile
        assert result["ok"], f"root could not connect to {name}: {result}"
    assert all(r["ok"] for r in as_root["unix"].values()), as_root["unix"]
    assert all(as_root["read"].values()) and all(as_root["list"].values())
    # The sign-in key is a second wall: even where the port is reachable, no key, no token.
    statuses = {name: r["status"] for name, r in as_root["http"].items()}
    assert statuses["users-no-key"] == 401 and statuses["token-no-key"] == 401
    assert statuses["token-guessed-key"] == 403 and statuses["token-spoofed-host"] == 401
    assert statuses["control-plane-me"] == 401
    assert statuses["mcp-no-token"] == 401 and statuses["oauth-metadata"] == 200
    assert statuses["oauth-token-exchange"] == 400
    assert statuses["token-real-key"] == 200 and as_root["http"]["token-real-key"]["token"]
    assert as_root["mysql"]["root-over-socket"] and as_root["mysql"]["own-db"]
    assert not any(r["token"] for n, r in as_root["http"].items() if n != "token-real-key")

    user = env.user("prober")
    probes = _merged(plan, metadata=True)
    with_pool = _run_php(probes, user, _pool_flags(env, "prober", open_basedir=True))
    _assert_platform_unreachable(with_pool, plan, files_only=False)
    through_nginx = _as_plugin(env, probes)
    _assert_platform_unreachable(through_nginx, plan, files_only=False)
    # A plugin that escapes open_basedir: file permissions alone keep it out.
    no_basedir = _run_php(probes, user, _pool_flags(env, "prober", open_basedir=False))
    _assert_platform_unreachable(no_basedir, plan, files_only=False)
    own_log = str(env.stack.nginx.log_dir / "acme--prober.access.json")
    assert _run_php({**_empty(), "read": [own_log]}, user, [])["read"][own_log]


def _empty() -> dict[str, Any]:
    return {"tcp": {}, "unix": [], "read": [], "list": [], "http": {}, "mysql": {}}


def test_modes_and_the_fence_follow_the_sites(isolated: Isolated) -> None:
    env, stack = isolated, isolated.stack
    home = env.settings.home
    for path, mode in ((home, 0o711), (stack.sites_dir, 0o711), (stack.backups_dir, 0o700),
                       (env.settings.billing_duckdb_file.parent, 0o700),
                       (env.settings.billing_duckdb_file, 0o600), (stack.mariadb.base, 0o700),
                       (stack.phpfpm.base, 0o710), (stack.phpfpm.conf, 0o600),
                       (stack.nginx.sites_dir, 0o700), (stack.nginx.conf, 0o600),
                       (stack.nginx.log_dir / "nginx-error.log", 0o600)):  # fmt: skip
        assert path.stat().st_mode & 0o777 == mode, (path, oct(path.stat().st_mode))
    import grp

    for name in ("acme--prober.access.json", "acme--prober.error.log"):
        log = stack.nginx.log_dir / name
        assert log.stat().st_mode & 0o777 == 0o640
        assert (log.stat().st_uid, log.stat().st_gid) == (
            0,
            grp.getgrnam(env.user("prober")).gr_gid,
        )
    fence = stack.firewall
    assert fence.members() == fence.site_uids() and len(fence.members()) == 2
    assert not (stack.nginx.log_dir / "acme--gone.access.json").exists()  # removed with it

    # Without nftables no site is made (and nothing of it is left behind).
    working = stack.firewall
    stack.firewall = SiteFirewall(
        home=home, sites_dir=stack.sites_dir, site_port=1, site_listen="127.0.0.1",
        mariadb_port=2, nft="/nonexistent/nft",
    )  # fmt: skip
    try:
        final = _create(env.api, "acme", "unfenced")
    finally:
        stack.firewall = working
    assert final["status"] == "rolled_back", final
    assert "nftables" in json.dumps(final)
    assert not (stack.sites_dir / "acme" / "unfenced").exists()
    assert fence.members() == fence.site_uids()


def _as_site_user(user: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user, "--", *command], capture_output=True,
                          text=True, env=CLEAN_ENV, check=False)  # fmt: skip


def test_a_site_user_cannot_turn_the_platforms_own_work_against_it(isolated: Isolated) -> None:
    """The second review's findings: root writing through a link the site planted, FFI in
    the platform's php-cli runs, nginx following a link into another site, cron env names."""
    env = isolated
    user, root, victim = env.user("prober"), env.root("prober"), env.root("victim")
    # 1. The site root is root's: htdocs (where root writes wp-config.php) cannot be swapped.
    assert (root.stat().st_uid, root.stat().st_mode & 0o777) == (0, 0o750)
    assert _as_site_user(user, "ls", str(root)).returncode != 0  # traverse only, via its ACL
    assert _as_site_user(user, "test", "-r", str(root / "htdocs" / "index.php")).returncode == 0
    swapped = _as_site_user(user, "mv", str(root / "htdocs"), str(root / "htdocs.mine"))
    assert swapped.returncode != 0 and (root / "htdocs" / "wp-config.php").exists()
    planted = _as_site_user(user, "ln", "-s", "/etc/shadow", str(root / "htdocs" / "wp-config.tmp"))
    assert planted.returncode != 0
    # 2. No FFI in php-cli runs of the site's code (the cron runner, the installer): a plugin
    #    calling C directly would bypass disable_functions and open_basedir.
    from controlplane.providers.local.cron import CLI_LOCKDOWN, pool_settings

    pool = env.stack.phpfpm.pool_file(user)
    flags, _ = pool_settings(pool)
    probe = ('try { FFI::cdef("int getpid(void);", "libc.so.6")->getpid(); echo "ffi-ran"; }'
             ' catch (Throwable $e) { echo "refused"; }')  # fmt: skip
    ran = _as_site_user(user, "php", *flags, *CLI_LOCKDOWN, "-r", probe)
    assert ran.stdout.strip() == "refused", ran.stdout + ran.stderr
    bare = _as_site_user(user, "php", "-r", probe)  # the positive control: php-cli's default
    assert bare.stdout.strip() == "ffi-ran", bare.stdout + bare.stderr
    # 3. nginx (which may read every site's wp-content) follows no link into another site.
    secret = victim / "htdocs" / "wp-content" / "uploads" / "private.txt"
    secret.write_text("victim-secret")
    shutil.chown(secret, env.user("victim"), "www-data")
    link = root / "htdocs" / "wp-content" / "uploads" / "leak.txt"
    assert _as_site_user(user, "ln", "-sf", str(secret), str(link)).returncode == 0
    port = env.settings.site_port
    leaked = httpx.get(f"http://127.0.0.1:{port}/wp-content/uploads/leak.txt",
                       headers={"Host": f"prober.acme.localhost:{port}"})  # fmt: skip
    assert leaked.status_code in (403, 404) and "victim-secret" not in leaked.text
    own = victim / "htdocs" / "wp-content" / "uploads" / "private.txt"
    served = httpx.get(f"http://127.0.0.1:{port}/wp-content/uploads/private.txt",
                       headers={"Host": f"victim.globex.localhost:{port}"})  # fmt: skip
    assert served.text == "victim-secret"  # the victim's own file is served to its own site
    own.unlink()
    link.unlink()
    # 4. The cron runner gives PHP the env names the pool has, without their quotes.
    put = env.api.put("/v1/tenants/acme/env/CRON_CHECK", json={"value": "v1"})
    assert put.status_code == 202, put.text
    assert _wait(env.api, put.json()["operation"]["id"])["status"] == "succeeded"
    _, pool_env = pool_settings(pool)
    assert pool_env.get("CRON_CHECK") == "v1" and not any('"' in k for k in pool_env)
    _wait(env.api, env.api.delete("/v1/tenants/acme/env/CRON_CHECK").json()["operation"]["id"])
