#!/usr/bin/env python
"""Latency and throughput of the control-plane API under concurrent clients.

What it does, in order:

1. Seeds a fresh SQLite database (in a temporary AIPRESS_HOME) with `--tenants` tenants of
   `--sites-per-tenant` sites each (status 'ready'), by bulk insert through the models.
2. Starts the real server (uvicorn `--app`, `--workers` processes, default one;
   AIPRESS_PROVIDER=memory) on loopback.
3. Warms up, then measures, with closed-loop keep-alive clients (`--client raw`, a minimal
   asyncio HTTP/1.1 client that leaves the CPUs to the server, or `--client httpx`):
   - `list-serial`: GET /v1/tenants/{t}/sites with one client (the service time),
   - `list`: the same with `--concurrency` clients,
   - `create`: POST /v1/tenants/{t}/sites (the 202 path, unique names) with `--concurrency`
     clients; the memory provider makes provisioning instant, so this measures the API and
     database work (plus the engine's background threads competing for the same CPU).
4. Waits (bounded) for the create operations to drain and counts how they ended.
5. Prints a table and writes JSON (machine info included) to `--output`.

`--profile` runs the server under cProfile in every thread (the sync endpoints run in a
thread pool, which a plain `python -m cProfile` would miss), writes the stats next to the
JSON and prints the hottest functions. Profiled latencies are inflated; compare shapes only.

Example:
    .venv/bin/python benchmarks/api.py
    .venv/bin/python benchmarks/api.py --list-requests 5000 --concurrency 50 --token admin
    .venv/bin/python benchmarks/api.py --profile --create-requests 0
    .venv/bin/python benchmarks/api.py --client httpx --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import harness

ROOT = harness.ROOT
LIST_P95_TARGET_MS = 25.0
INTERNAL_PROFILED_SERVER = "--internal-profiled-server"
APP_FACTORY = harness.CONTROL_PLANE_APP


# --------------------------------------------------------------------------------------
# Arguments and environment


# The numeric options: flag, type, default, help.
NUMBERS: tuple[tuple[str, type[int] | type[float], float, str], ...] = (
    ("--tenants", int, 50, "tenants to seed"),
    ("--sites-per-tenant", int, 20, "ready sites per tenant"),
    ("--concurrency", int, 20, "concurrent clients"),
    ("--list-requests", int, 2000, "timed list requests"),
    ("--create-requests", int, 500, "timed create requests"),
    ("--serial-requests", int, 200,
     "list requests with a single client (service-time baseline); 0 skips"),
    ("--warmup-list", int, 200, "untimed list requests"),
    ("--warmup-create", int, 20, "untimed create requests"),
    ("--max-seconds", float, 120.0, "time limit of each timed phase"),
    ("--drain-timeout", float, 120.0,
     "how long to wait for create operations to finish (0 skips the wait)"),
    ("--port", int, 0, "server port (0 picks a free one)"),
    ("--workers", int, 1, "uvicorn worker processes (not with --profile)"),
    ("--profile-top", int, 30, "functions shown by --profile"),
)  # fmt: skip

# The options with a fixed set of values (the first is the default): flag, values, help.
CHOICES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("--client", ("raw", "httpx"),
     "raw: minimal asyncio HTTP/1.1 keep-alive client (little CPU, so the server keeps the "
     "machine); httpx: httpx.AsyncClient"),
    ("--token", ("tenant", "admin"), "tenant tokens (one per tenant) or one admin token"),
    ("--profile-clock", ("cpu", "wall"),
     "cpu: per-thread CPU time (where the work is); wall: includes waits (GIL, locks, I/O)"),
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser(
        "api", "Benchmark the control-plane API (list sites, create site) on loopback."
    )
    for flag, kind, default, text in NUMBERS:
        parser.add_argument(flag, type=kind, default=default, help=text)
    for flag, choices, text in CHOICES:
        parser.add_argument(flag, choices=choices, default=choices[0], help=text)
    parser.add_argument(
        "--app",
        default=APP_FACTORY,
        help="app factory to serve (module:function), e.g. a patched variant to compare",
    )
    parser.add_argument(
        "--profile", action="store_true", help="run the server under cProfile (all threads)"
    )
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary AIPRESS_HOME")
    args = parser.parse_args(argv)
    harness.check_counts(
        parser,
        args,
        positive=("tenants", "sites_per_tenant", "concurrency"),
        non_negative=(
            "list_requests", "create_requests", "serial_requests", "warmup_list", "warmup_create"
        ),
    )  # fmt: skip
    if args.workers < 1 or (args.profile and args.workers != 1):
        parser.error("--workers must be at least 1, and 1 with --profile")
    if args.workers > 1 and args.create_requests + args.warmup_create > 0:
        print(
            "note: with --workers > 1 every worker has its own memory provider writing the same "
            "state file, so some create operations may fail; the 202 latencies remain valid",
            file=sys.stderr,
        )
    if args.profile and args.output == harness.RESULTS_DIR / "api.json":
        args.output = harness.RESULTS_DIR / "api-profiled.json"
    return args


def versions() -> dict[str, str | None]:
    """The versions of what serves the API."""
    import fastapi
    import httpx
    import pydantic
    import sqlalchemy
    import uvicorn

    return {
        "fastapi": fastapi.__version__,
        "pydantic": pydantic.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "uvicorn": uvicorn.__version__,
        "httpx": httpx.__version__,
    }


# --------------------------------------------------------------------------------------
# Seeding


def seed(tenants: int, sites_per_tenant: int) -> tuple[list[str], float]:
    """Create the schema and bulk-insert tenants and ready sites; returns ids and seconds."""
    from sqlalchemy import insert

    from controlplane.db import make_engine, make_sessionmaker, migrate
    from controlplane.models import Site, Tenant, new_id, utcnow
    from controlplane.settings import Settings

    settings = Settings()
    engine = make_engine(settings)
    try:
        migrate(engine)
        started = time.perf_counter()
        now = utcnow()
        tenant_ids = [f"tenant-{i:03d}" for i in range(tenants)]
        tenant_rows = [
            {
                "id": t,
                "name": f"Tenant {t}",
                "status": "active",
                "created_at": now,
                "created_by": "bench",
            }
            for t in tenant_ids
        ]
        site_rows = [
            {
                "id": new_id(),
                "tenant_id": t,
                "name": f"site-{j:03d}",
                "title": f"Site {j} of {t}",
                "admin_email": f"owner@{t}.example.com",
                "admin_user": "admin",
                "status": "ready",
                "provider": "memory",
                "preview_url": f"http://site-{j:03d}.{t}.memory.invalid/",
                "resources": {"database": f"database-site-{j:03d}"},
                "current_operation_id": None,
                "created_at": now,
                "updated_at": now,
            }
            for t in tenant_ids
            for j in range(sites_per_tenant)
        ]
        with make_sessionmaker(engine)() as session:
            session.execute(insert(Tenant), tenant_rows)
            session.execute(insert(Site), site_rows)
            session.commit()
        return tenant_ids, time.perf_counter() - started
    finally:
        engine.dispose()


def issue_tokens(tenant_ids: list[str], kind: str) -> dict[str, str]:
    """A bearer token per tenant (tenant role), or the same admin token for every tenant."""
    from controlplane.kernel.auth import LocalTokenIssuer
    from controlplane.kernel.identity import Role
    from controlplane.settings import Settings

    issuer = LocalTokenIssuer(Settings())  # creates the signing key the server will load
    if kind == "admin":
        token = issuer.issue("bench-admin", Role.ADMIN, email="admin@bench.example.com")
        return {t: token for t in tenant_ids}
    return {
        t: issuer.issue(f"bench-{t}", Role.TENANT, [t], email=f"owner@{t}.example.com")
        for t in tenant_ids
    }


# --------------------------------------------------------------------------------------
# Server


def profiled_command(port: int, out: Path, clock: str, app: str) -> list[str]:
    """This script as a server under cProfile (see `serve_profiled`)."""
    return [sys.executable, str(Path(__file__).resolve()), INTERNAL_PROFILED_SERVER,
            str(port), str(out), clock, app]  # fmt: skip


def serve_profiled(port: int, out: Path, clock: str, app: str) -> None:
    """Internal: run uvicorn with a cProfile profiler in every thread, dump merged stats.

    With clock "cpu" each thread is timed by its own CPU clock, so waiting for the GIL, a lock
    or the database file does not count; "wall" counts it.
    """
    import cProfile
    import pstats
    import threading

    import uvicorn

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def new_profile() -> cProfile.Profile:
        if clock == "cpu":
            return cProfile.Profile(time.thread_time_ns, 1e-9)
        return cProfile.Profile()

    def start_thread_profile(_frame: Any, _event: str, _arg: Any) -> None:
        sys.setprofile(None)
        profile = new_profile()
        with lock:
            profiles.append(profile)
        profile.enable()

    threading.setprofile(start_thread_profile)
    main = new_profile()
    profiles.append(main)
    main.enable()
    try:
        uvicorn.run(
            app,
            factory=True,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    except KeyboardInterrupt:
        pass
    finally:
        main.disable()
        threading.setprofile(None)
        stats: pstats.Stats | None = None
        with lock:
            for profile in profiles:
                try:
                    if stats is None:
                        stats = pstats.Stats(profile)
                    else:
                        stats.add(profile)
                except TypeError:  # a profile that never recorded anything
                    continue
        if stats is not None:
            stats.dump_stats(str(out))


# --------------------------------------------------------------------------------------
# Load generation


@dataclass
class PhaseResult:
    name: str
    method: str
    path: str
    concurrency: int
    requested: int
    completed: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    status_counts: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    requests_per_second: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    server_cpu_ms_per_request: float | None = None
    client_cpu_ms_per_request: float | None = None
    stopped_by_time_limit: bool = False


@dataclass(frozen=True)
class Call:
    """One HTTP request to send."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    On a small machine the load generator shares the CPUs with the server; httpx spends a few
    milliseconds of CPU per request, this spends a few tens of microseconds, so the server's
    figures are less disturbed by the benchmark itself.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._host_header = f"Host: {host}:{port}\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def send(self, call: Call) -> tuple[int, bytes]:
        reader, writer = await self._connect()
        try:
            head = [f"{call.method} {call.path} HTTP/1.1\r\n", self._host_header]
            head.extend(f"{k}: {v}\r\n" for k, v in call.headers.items())
            if call.body is not None:
                head.append("Content-Type: application/json\r\n")
                head.append(f"Content-Length: {len(call.body)}\r\n")
            head.append("\r\n")
            writer.write("".join(head).encode("latin-1") + (call.body or b""))
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("server closed the connection")
            status = int(status_line.split(b" ", 2)[1])
            length, chunked, close = 0, False, False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    close = b"close" in value.lower()
            if chunked:
                parts = []
                while True:
                    size = int((await reader.readline()).split(b";", 1)[0], 16)
                    if size == 0:
                        await reader.readline()
                        break
                    parts.append(await reader.readexactly(size))
                    await reader.readline()
                body = b"".join(parts)
            else:
                body = await reader.readexactly(length)
            if close:
                await self.close()
            return status, body
        except BaseException:
            await self.close()
            raise


async def run_phase(
    *,
    name: str,
    method: str,
    path: str,
    base_url: str,
    client_kind: str,
    make_call: Callable[[int], Call],
    expected_status: int,
    total: int,
    concurrency: int,
    max_seconds: float,
    server_pid: int | None,
) -> PhaseResult:
    """Closed loop: `concurrency` clients each send their next request as soon as one ends."""
    import httpx

    result = PhaseResult(name, method, path, concurrency, total)
    if total == 0:
        return result
    latencies: list[float] = []
    counter = itertools.count()
    url = httpx.URL(base_url)
    host, port = url.host, url.port or 80
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    raw_connections = [RawConnection(host, port) for _ in range(concurrency)]
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=30.0, trust_env=False
    ) as client:

        async def send(worker_id: int, call: Call) -> tuple[int, bytes]:
            if client_kind == "raw":
                return await asyncio.wait_for(raw_connections[worker_id].send(call), 30.0)
            headers = call.headers
            if call.body is not None:
                headers = {**headers, "Content-Type": "application/json"}
            response = await client.request(
                call.method, call.path, headers=headers, content=call.body
            )
            return response.status_code, response.content

        # Open the connections before the clock starts.
        health = Call("GET", "/healthz", {})
        await asyncio.gather(*(send(w, health) for w in range(concurrency)))
        deadline = time.perf_counter() + max_seconds

        async def worker(worker_id: int) -> None:
            while True:
                i = next(counter)
                if i >= total:
                    return
                if time.perf_counter() > deadline:
                    result.stopped_by_time_limit = True
                    return
                call = make_call(i)
                t0 = time.perf_counter()
                try:
                    status_code, body = await send(worker_id, call)
                    status = str(status_code)
                except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    status_code, body, status = 0, b"", type(exc).__name__
                elapsed = time.perf_counter() - t0
                result.status_counts[status] = result.status_counts.get(status, 0) + 1
                if status_code == expected_status:
                    latencies.append(elapsed)
                else:
                    result.errors += 1
                    if len(result.error_samples) < 5:
                        text = body[:300].decode("utf-8", "replace")
                        result.error_samples.append(f"{status}: {text}")

        server_cpu0 = harness.process_cpu_seconds(server_pid) if server_pid else None
        client_cpu0 = time.process_time()
        started = time.perf_counter()
        try:
            await asyncio.gather(*(worker(w) for w in range(concurrency)))
        finally:
            result.wall_seconds = time.perf_counter() - started
            client_cpu = time.process_time() - client_cpu0
            server_cpu1 = harness.process_cpu_seconds(server_pid) if server_pid else None
            await asyncio.gather(*(c.close() for c in raw_connections))

    done = len(latencies) + result.errors
    result.completed = len(latencies)
    result.requests_per_second = (
        round(done / result.wall_seconds, 1) if result.wall_seconds else 0.0
    )
    result.latency_ms = harness.stats(latencies, scale=1000)
    if done:
        result.client_cpu_ms_per_request = round(client_cpu * 1000 / done, 3)
        if server_cpu0 is not None and server_cpu1 is not None:
            result.server_cpu_ms_per_request = round((server_cpu1 - server_cpu0) * 1000 / done, 3)
    result.wall_seconds = round(result.wall_seconds, 3)
    return result


def wait_for_operations(timeout: float) -> dict[str, Any]:
    """Poll the database until no create operation is active (bounded); count outcomes."""
    from sqlalchemy import func, select

    from controlplane.db import make_engine
    from controlplane.kernel.vocabulary import ACTIVE_STATUSES
    from controlplane.models import Operation
    from controlplane.settings import Settings

    engine = make_engine(Settings())
    started = time.perf_counter()
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(Operation.status, func.count()).group_by(Operation.status)
                ).all()
            counts = {status: n for status, n in rows}
            active = sum(counts.get(s, 0) for s in ACTIVE_STATUSES)
            elapsed = time.perf_counter() - started
            if active == 0 or elapsed >= timeout:
                return {
                    "drained": active == 0,
                    "seconds_after_last_create": round(elapsed, 2),
                    "operations_by_status": counts,
                }
            time.sleep(0.25)
    finally:
        engine.dispose()


async def run_benchmark(
    args: argparse.Namespace,
    base_url: str,
    tenant_ids: list[str],
    tokens: dict[str, str],
    server_pid: int,
) -> tuple[list[PhaseResult], dict[str, Any]]:
    headers = {t: {"Authorization": f"Bearer {tokens[t]}"} for t in tenant_ids}
    n_tenants = len(tenant_ids)
    list_path = "/v1/tenants/{t}/sites"

    def list_call(i: int) -> Call:
        t = tenant_ids[i % n_tenants]
        return Call("GET", f"/v1/tenants/{t}/sites", headers[t])

    def create_call(prefix: str) -> Callable[[int], Call]:
        def make(i: int) -> Call:
            t = tenant_ids[i % n_tenants]
            body = {"name": f"{prefix}-{i:05d}", "admin_email": f"owner@{t}.example.com"}
            return Call("POST", f"/v1/tenants/{t}/sites", headers[t], json.dumps(body).encode())

        return make

    common = {
        "base_url": base_url,
        "client_kind": args.client,
        "max_seconds": args.max_seconds,
        "server_pid": server_pid,
    }
    checks: dict[str, Any] = {}

    # Warm-up (untimed): imports, pools, caches; and a correctness check of the list endpoint.
    import httpx

    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=30.0) as client:
        first = list_call(0)
        sample = await client.get(first.path, headers=first.headers)
        if sample.status_code != 200 or len(sample.json()) != args.sites_per_tenant:
            raise RuntimeError(f"list check failed: {sample.status_code} {sample.text[:300]}")
        checks["list_items_per_response"] = len(sample.json())
        checks["list_response_bytes"] = len(sample.content)
    warm_list = await run_phase(
        name="warmup-list", method="GET", path=list_path, make_call=list_call,
        expected_status=200, total=args.warmup_list, concurrency=args.concurrency, **common,
    )  # fmt: skip
    warm_create = await run_phase(
        name="warmup-create", method="POST", path=list_path, make_call=create_call("warm"),
        expected_status=202, total=args.warmup_create, concurrency=args.concurrency, **common,
    )  # fmt: skip
    for warm in (warm_list, warm_create):
        if warm.errors:
            raise RuntimeError(f"{warm.name} had {warm.errors} errors: {warm.error_samples}")
    if args.warmup_create:
        wait_for_operations(min(args.drain_timeout, 60.0))  # start the timed phases idle

    phases = [
        await run_phase(
            name="list-serial", method="GET", path=list_path, make_call=list_call,
            expected_status=200, total=args.serial_requests, concurrency=1, **common,
        ),
        await run_phase(
            name="list", method="GET", path=list_path, make_call=list_call,
            expected_status=200, total=args.list_requests, concurrency=args.concurrency, **common,
        ),
        await run_phase(
            name="create", method="POST", path=list_path, make_call=create_call("new"),
            expected_status=202, total=args.create_requests, concurrency=args.concurrency,
            **common,
        ),
    ]  # fmt: skip
    phases = [p for p in phases if p.requested]
    if args.create_requests and args.drain_timeout > 0:
        checks["create_drain"] = wait_for_operations(args.drain_timeout)
    return phases, checks


# --------------------------------------------------------------------------------------
# Output


def table_rows(phases: list[PhaseResult]) -> list[list[str]]:
    """One row per timed phase."""
    rows = []
    for p in phases:
        lat = p.latency_ms
        rows.append(
            [
                f"{p.method} {p.name}",
                str(p.concurrency),
                str(p.completed),
                str(p.errors),
                f"{p.requests_per_second:.1f}",
                *(harness.fmt(lat.get(k)) for k in ("p50", "p95", "p99", "max")),
                harness.fmt(p.server_cpu_ms_per_request),
            ]
        )
    return rows


COLUMNS = ["phase", "conc", "ok", "err", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
           "srv cpu ms/req"]  # fmt: skip


def print_profile(path: Path, top: int, clock: str) -> dict[str, Any]:
    """Hottest functions by own time and by cumulative time, and own time per area."""
    import pstats

    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0

    def label(func: tuple[str, int, str]) -> str:
        filename, line, name = func
        for marker in ("site-packages/", "lib/python3"):
            if marker in filename:
                filename = filename.split(marker, 1)[1]
                break
        filename = filename.replace(str(ROOT) + "/", "")
        return f"{filename}:{line}({name})"

    def area(filename: str) -> str:
        if str(ROOT / "controlplane") in filename:
            return "controlplane"
        if "site-packages/" in filename:
            return filename.split("site-packages/", 1)[1].split("/", 1)[0].split(".", 1)[0]
        if filename.startswith("~") or filename.startswith("<"):
            return "builtins/C"
        return "stdlib"

    by_area: dict[str, float] = {}
    for func, (_cc, _nc, tt, _ct, _callers) in raw.items():
        key = area(func[0])
        by_area[key] = by_area.get(key, 0.0) + tt
    own = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)
    cumulative = sorted(raw.items(), key=lambda kv: kv[1][3], reverse=True)
    report: dict[str, Any] = {
        "total_own_seconds": round(total, 3),
        "own_time_by_area": {
            k: round(v, 3) for k, v in sorted(by_area.items(), key=lambda kv: -kv[1])
        },
        "top_own": [
            {"function": label(f), "calls": v[1], "own_s": round(v[2], 4), "cum_s": round(v[3], 4)}
            for f, v in own[:top]
        ],
        "top_cumulative_controlplane": [
            {"function": label(f), "calls": v[1], "own_s": round(v[2], 4), "cum_s": round(v[3], 4)}
            for f, v in cumulative
            if str(ROOT / "controlplane") in f[0]
        ][:top],
    }
    print(f"\ncProfile of the server (all threads, {clock} clock), {path}:")
    print(f"  own time by area (total {total:.2f}s):")
    for k, v in list(report["own_time_by_area"].items())[:12]:
        print(f"    {k:<28} {v:8.3f}s  {100 * v / total:5.1f}%")
    print(f"  top {top} by own time:")
    for row in report["top_own"]:
        print(
            f"    {row['own_s']:8.3f}s own {row['cum_s']:8.3f}s cum {row['calls']:>9} calls  "
            f"{row['function']}"
        )
    print("  controlplane functions by cumulative time:")
    for row in report["top_cumulative_controlplane"]:
        print(f"    {row['cum_s']:8.3f}s cum {row['calls']:>9} calls  {row['function']}")
    return report


# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="aipress-bench-"))
    env = harness.aipress_environment(provider="memory", home=str(home), log_level="WARNING")
    profile_out = args.output.with_suffix(".prof") if args.profile else None
    info = harness.machine_info(versions())
    print(f"AIPRESS_HOME={home}  cpus={info['cpu_count']}  python={info['python']}")

    tenant_ids, seed_seconds = seed(args.tenants, args.sites_per_tenant)
    tokens = issue_tokens(tenant_ids, args.token)
    n_sites = args.tenants * args.sites_per_tenant
    print(f"seeded {args.tenants} tenants / {n_sites} sites in {seed_seconds:.2f}s")

    port = args.port or harness.free_port()
    server = harness.Server(
        env,
        home / "server.log",
        port=port,
        app=args.app,
        workers=args.workers,
        command=None
        if profile_out is None
        else profiled_command(port, profile_out, args.profile_clock, args.app),
    )
    with server:
        print(f"server pid {server.pid} ready on {server.url} in {server.startup_seconds:.2f}s")
        phases, checks = asyncio.run(
            run_benchmark(args, server.url, tenant_ids, tokens, server.pid)
        )
    log_text = server.log_tail(10**9)
    harness.close_machine_info(info)

    list_phase = next((p for p in phases if p.name == "list"), None)
    target_met = (
        bool(list_phase.latency_ms and list_phase.latency_ms["p95"] <= LIST_P95_TARGET_MS)
        if list_phase
        else None
    )
    title = (
        f"AIPress API, {args.tenants} tenants x {args.sites_per_tenant} sites, "
        f"{args.token} tokens, {args.client} client, {args.workers} worker(s), "
        f"{info['cpu_count']} CPU"
        f"{' (PROFILED)' if args.profile else ''}"
    )
    print()
    harness.print_table(title, COLUMNS, table_rows(phases))
    if list_phase and list_phase.latency_ms:
        verdict = "met" if target_met else "NOT met"
        p95 = list_phase.latency_ms["p95"]
        print(f"list p95 {p95:.2f} ms vs target {LIST_P95_TARGET_MS:.0f} ms: {verdict}")
    if "create_drain" in checks:
        d = checks["create_drain"]
        print(
            f"create operations drained={d['drained']} {d['seconds_after_last_create']}s after the "
            f"last 202; by status {d['operations_by_status']}"
        )
        unfinished = {k: v for k, v in d["operations_by_status"].items() if k != "succeeded"}
        if unfinished:
            print(f"  warning: not every create operation succeeded: {unfinished}")
    for p in phases:
        for sample in p.error_samples:
            print(f"  {p.name} error: {sample}")

    result: dict[str, Any] = {
        "benchmark": "controlplane-api",
        "machine": info,
        "parameters": harness.parameters(args),
        "server": {
            "command": f"uvicorn {args.app} --factory --workers {args.workers}"
            + (" under cProfile" if args.profile else ""),
            "provider": "memory",
            "database": "sqlite (WAL) in a temporary AIPRESS_HOME",
            "startup_seconds": round(server.startup_seconds, 3),
        },
        "seed": {"tenants": args.tenants, "sites": n_sites, "seconds": round(seed_seconds, 3)},
        "checks": checks,
        "target": {"list_p95_ms": LIST_P95_TARGET_MS, "met": target_met},
        "phases": {p.name: asdict(p) for p in phases},
    }
    if profile_out is not None and profile_out.exists():
        result["profile"] = print_profile(profile_out, args.profile_top, args.profile_clock)
        result["profile"]["clock"] = args.profile_clock
        result["profile"]["stats_file"] = str(profile_out)
    if "Traceback" in log_text:
        result["server_log_tail"] = log_text[-4000:]
        print("\nthe server log holds a traceback; tail saved in the JSON")
    harness.write_json(args.output, result)
    if args.keep_home:
        print(f"kept {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    failed = any(p.errors for p in phases)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == INTERNAL_PROFILED_SERVER:
        serve_profiled(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], sys.argv[5])
        sys.exit(0)
    sys.exit(main())
