#!/usr/bin/env python
"""Provisioning speed, density and serving speed of the `local` provider (real WordPress sites).

Needs root (site system users, MariaDB, PHP-FPM, nginx). What it does, in order:

0. Makes a fresh, world-traversable (0755) AIPRESS_HOME under /tmp, mints an admin token,
   starts the control plane (uvicorn, AIPRESS_PROVIDER=local) on loopback and starts the
   stack (MariaDB, PHP-FPM, nginx) up front, so the first site does not pay for
   `mariadb-install-db`; the stack's cold start and its empty memory are recorded.
1. `--sites` sites created one at a time: from the POST, the site's homepage is polled every
   `--poll-ms` ms (Host: <site>.<tenant>.localhost:<site-port>, to 127.0.0.1) until the first
   HTTP 200 carrying the site's title. `--templates on` (the default) copies each site from
   the WordPress template installed once (the first site builds it); `--templates off` runs
   the installer for every site (the fallback path): run both to compare. Reports p50/p95
   of POST -> first 200, of the operation's own duration
   (finished_at - created_at) and of every step.
2. `--concurrent-sites` sites created `--concurrency` at a time: sites per minute, counted
   from the first POST until the last of them serves its homepage with HTTP 200.
3. More sites until `--idle-sites` exist; every homepage is fetched once (uncached, so each
   pool forks a worker), then the PSS (/proc/PID/smaps_rollup) of the whole stack is summed:
   at the end of that touch, at its peak (sampled every second during it, since the first
   workers may idle out before the last site answers), and after `--idle-wait` seconds
   (pools are pm=ondemand with a 20 s idle timeout, so the workers exit). The stack is
   mariadbd, php-fpm master + workers, nginx master + workers and the uvicorn control plane.
   The shared opcache is then read through a short-lived probe file in the first site.
4. Requests/s of one site's homepage for `--load-seconds` s each at `--load-concurrency`:
   cached (GET /, nginx fastcgi cache) and uncached (GET /?nocache=<unique>, a query string
   bypasses the cache), with the X-Cache breakdown proving which path was measured. Uses wrk
   (installed with apt-get if missing, unless --no-install), else an httpx/asyncio generator.
5. Deletes every site through the API (`--delete-concurrency` at a time; each delete takes
   a backup first), stops the stack and the control plane, removes leftover site users (only
   those whose home is under our AIPRESS_HOME) and the home directory.

Prints a table and writes JSON (machine info and date included) to `--output`.

Example (full run, then a quick one):
    sudo .venv/bin/python benchmarks/provision.py
    sudo .venv/bin/python benchmarks/provision.py --sites 3 --concurrent-sites 4 \
        --idle-sites 10 --load-seconds 3 --idle-wait 0
    sudo .venv/bin/python benchmarks/provision.py --templates off ...   # the installer path
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import pwd
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import harness
from harness import fmt, stats
from provision_baseline import baseline_rows, phase_baseline
from provision_density import density_names, density_rows, phase_density

from controlplane.providers.local.dns import DEFAULT_SERVER_MARK

TENANT = "provbench"


def title(name: str) -> str:
    """The title a benchmark site is created with (and its first 200 must carry)."""
    return f"Benchmark site {name}"


# --------------------------------------------------------------------------------------
# Arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.parser(
        "provision", "Benchmark real WordPress provisioning with the local provider."
    )
    parser.add_argument("--sites", type=int, default=20, help="sites created one at a time")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="homepage poll interval")
    parser.add_argument(
        "--concurrent-sites", type=int, default=12, help="sites created --concurrency at a time"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent creates")
    parser.add_argument(
        "--templates",
        choices=("on", "off"),
        default="on",
        help="sites copied from the installed-once template (on) or installed each (off)",
    )
    parser.add_argument(
        "--idle-sites", type=int, default=50, help="total sites when memory is measured"
    )
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=25.0,
        help="seconds to wait for idle PHP-FPM workers to exit (pools: 20 s idle timeout)",
    )
    parser.add_argument("--load-seconds", type=float, default=10.0, help="length of each load run")
    parser.add_argument("--load-concurrency", type=int, default=16, help="load connections")
    parser.add_argument(
        "--loadgen", choices=("auto", "wrk", "python"), default="auto", help="load generator"
    )
    parser.add_argument(
        "--no-install", action="store_true", help="do not apt-get install wrk when it is missing"
    )
    parser.add_argument(
        "--delete-concurrency", type=int, default=1, help="concurrent deletes at the end"
    )
    parser.add_argument(
        "--site-port", type=int, default=8093, help="nginx port (AIPRESS_SITE_PORT)"
    )
    parser.add_argument(
        "--mariadb-port", type=int, default=3330, help="MariaDB port (AIPRESS_MARIADB_PORT)"
    )
    parser.add_argument("--api-port", type=int, default=0, help="API port (0 picks a free one)")
    parser.add_argument(
        "--site-timeout", type=float, default=300.0, help="give up on one site after this long"
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="AIPRESS_LOG_FILE for the control plane, at INFO level (step.finished events); "
        "default: WARNING to a file under the home, summarised in the JSON",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep sites, stack and home (for debugging)"
    )
    parser.add_argument(
        "--redraw", type=Path, default=None, help="only print the table of a saved JSON result"
    )
    add_density_baseline_args(parser)
    args = parser.parse_args(argv)
    harness.check_counts(
        parser,
        args,
        positive=("concurrency", "load_concurrency", "delete_concurrency"),
        non_negative=("sites", "concurrent_sites", "idle_sites", "density"),
    )
    if args.density > 9999:
        parser.error("--density: at most 9999 sites")
    if args.baseline_rounds < 1:
        parser.error("--baseline-rounds must be at least 1")
    if args.sites + args.concurrent_sites > 999:
        parser.error("at most 999 sites")
    return args


def add_density_baseline_args(parser: argparse.ArgumentParser) -> None:
    """The options of the density and baseline phases."""
    parser.add_argument(
        "--density",
        type=int,
        default=0,
        help="create this many more sites (d0001..) and "
        "measure the idle stack, create drift and GET .../sites at that count",
    )
    parser.add_argument(
        "--density-seconds",
        type=float,
        default=1800.0,
        help="no density create starts after this many seconds",
    )
    parser.add_argument(
        "--density-list-requests", type=int, default=50, help="GET .../sites requests at N"
    )
    parser.add_argument(
        "--density-teardown",
        choices=("stack", "api"),
        default="stack",
        help="density sites removed with the stack's home (stack) or deleted through the API",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="compare the first site's uncached homepage with a bare WordPress on a plain pool",
    )
    parser.add_argument(
        "--baseline-rounds", type=int, default=200, help="interleaved requests per side"
    )


# --------------------------------------------------------------------------------------
# Small helpers


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_time(start), parse_time(end)
    return (b - a).total_seconds() if a and b else None


def operation_outcome(op: dict[str, Any]) -> dict[str, Any]:
    """An operation's status, its wall seconds and each step's, as the API reports them."""
    return {
        "status": op["status"],
        "operation_seconds": seconds_between(op["created_at"], op["finished_at"]),
        "steps": {
            step["name"]: seconds_between(step["started_at"], step["finished_at"])
            for step in op["steps"]
        },
    }


def versions() -> dict[str, str | None]:
    """The versions of what serves the sites."""
    import httpx

    return {
        "httpx": httpx.__version__,
        "nginx": harness.command_version(["nginx", "-v"]),
        "php-fpm": harness.command_version(["php-fpm8.2", "-v"]),
        "mariadbd": harness.command_version(["mariadbd", "--version"]),
        "wrk": harness.command_version(["wrk", "-v"]) if shutil.which("wrk") else None,
    }


# --------------------------------------------------------------------------------------
# Memory (PSS)


def _rollup(pid: int) -> dict[str, int] | None:
    """kB values of /proc/PID/smaps_rollup (Pss, Rss, Private_*)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[-1] == "kB":
            values[parts[0].rstrip(":")] = int(parts[1])
    return values


def stack_memory(stack: Any, api_pid: int | None) -> dict[str, Any]:
    """PSS / RSS / USS (MB) and process counts per component of the stack."""
    children = harness.process_children()
    groups = {
        "mariadbd": harness.process_tree(stack.mariadb.running_pid(), children),
        "php-fpm": harness.process_tree(stack.phpfpm.pid(), children),
        "nginx": harness.process_tree(stack.nginx.pid(), children),
        "control plane (uvicorn)": harness.process_tree(api_pid, children),
    }
    out: dict[str, Any] = {"components": {}}
    total = {"pss_mb": 0.0, "rss_mb": 0.0, "uss_mb": 0.0, "processes": 0}
    for name, pids in groups.items():
        pss = rss = uss = 0
        alive = 0
        for pid in pids:
            roll = _rollup(pid)
            if roll is None:
                continue
            alive += 1
            pss += roll.get("Pss", 0)
            rss += roll.get("Rss", 0)
            uss += roll.get("Private_Clean", 0) + roll.get("Private_Dirty", 0)
        entry = {
            "pss_mb": round(pss / 1024, 1),
            "rss_mb": round(rss / 1024, 1),
            "uss_mb": round(uss / 1024, 1),
            "processes": alive,
        }
        out["components"][name] = entry
        for key in total:
            total[key] += entry[key]
    out["total"] = {k: round(v, 1) if isinstance(v, float) else v for k, v in total.items()}
    return out


# --------------------------------------------------------------------------------------
# API and site helpers


class Bench:
    """The clients and the state shared by the phases."""

    def __init__(self, api_url: str, token: str, site_port: int, poll_s: float, timeout: float):
        import httpx

        from controlplane.providers.readiness import page_title

        self.api = httpx.AsyncClient(
            base_url=api_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30.0,
            trust_env=False,
        )
        self.web = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{site_port}",
            timeout=30.0,
            trust_env=False,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self.site_port = site_port
        self.poll_s = poll_s
        self.timeout = timeout
        self.created: list[str] = []  # sites whose create succeeded
        self.page_title = page_title

    async def close(self) -> None:
        await self.api.aclose()
        await self.web.aclose()

    def host(self, name: str) -> str:
        return f"{name}.{TENANT}.localhost:{self.site_port}"

    async def get_home(self, name: str, path: str = "/") -> Any:
        return await self.web.get(path, headers={"Host": self.host(name)})

    async def wait_operation(self, op_id: str, interval: float, deadline: float) -> dict[str, Any]:
        while True:
            response = await self.api.get(f"/v1/operations/{op_id}")
            response.raise_for_status()
            op: dict[str, Any] = response.json()
            if op["status"] in ("succeeded", "failed", "rolled_back"):
                return op
            if time.perf_counter() > deadline:
                op["status"] = f"timeout ({op['status']})"
                return op
            await asyncio.sleep(interval)

    async def watch_home(
        self, name: str, t0: float, interval: float, deadline: float, seen: Counter[str]
    ) -> dict[str, Any] | None:
        """Poll the homepage until HTTP 200; None at the deadline."""
        import httpx

        while time.perf_counter() < deadline:
            try:
                response = await self.get_home(name)
                code = str(response.status_code)
                if response.status_code == 404 and DEFAULT_SERVER_MARK in response.text:
                    code = "404 (no vhost yet)"
                if response.status_code == 200 and self.page_title(response.text) != title(name):
                    code = "200 (not the site's title)"
                seen[code] += 1
                if code == "200":
                    return {
                        "seconds": time.perf_counter() - t0,
                        "x_cache": response.headers.get("x-cache"),
                        "bytes": len(response.content),
                        "is_wordpress": "wp-content" in response.text
                        or "wp-includes" in response.text,
                    }
            except httpx.HTTPError as exc:
                seen[type(exc).__name__] += 1
            await asyncio.sleep(interval)
        return None

    async def create(self, name: str, *, poll_home_from_post: bool) -> dict[str, Any]:
        """POST a site, wait for its operation and its first homepage 200."""
        record: dict[str, Any] = {"name": name}
        seen: Counter[str] = Counter()
        t0 = time.perf_counter()
        deadline = t0 + self.timeout
        home_task: asyncio.Task[dict[str, Any] | None] | None = None
        if poll_home_from_post:
            home_task = asyncio.create_task(self.watch_home(name, t0, self.poll_s, deadline, seen))
        try:
            response = await self.api.post(
                f"/v1/tenants/{TENANT}/sites",
                json={
                    "name": name,
                    "admin_email": f"owner@{name}.example.com",
                    "title": title(name),
                },
            )
            record["accepted_seconds"] = round(time.perf_counter() - t0, 4)
            if response.status_code != 202:
                record["error"] = f"POST answered {response.status_code}: {response.text[:300]}"
                return record
            body = response.json()
            record["preview_url"] = body["site"].get("preview_url")
            op = await self.wait_operation(
                body["operation"]["id"], 0.05 if poll_home_from_post else 0.1, deadline
            )
            record["op_seen_seconds"] = round(time.perf_counter() - t0, 4)
            record.update(operation_outcome(op))
            if op["status"] != "succeeded":
                record["error"] = op.get("error") or op["status"]
                return record
            self.created.append(name)
            if home_task is None:
                home_task = asyncio.create_task(
                    self.watch_home(name, t0, self.poll_s, deadline, seen)
                )
            first = await home_task
            home_task = None
            if first is None:
                record["error"] = f"homepage never answered 200 (seen {dict(seen)})"
            else:
                record["first_200_seconds"] = round(first["seconds"], 4)
                record["first_200_x_cache"] = first["x_cache"]
                record["first_200_is_wordpress"] = first["is_wordpress"]
                record["first_200_before_op_seen"] = first["seconds"] < record["op_seen_seconds"]
            return record
        except Exception as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            return record
        finally:
            if home_task is not None:
                home_task.cancel()
            record["homepage_polls"] = dict(seen)

    async def create_many(
        self, names: list[str], concurrency: int
    ) -> tuple[list[dict[str, Any]], float]:
        """Create `names` with at most `concurrency` in flight; (records, wall seconds)."""
        semaphore = asyncio.Semaphore(concurrency)

        async def one(name: str) -> dict[str, Any]:
            async with semaphore:
                return await self.create(name, poll_home_from_post=False)

        started = time.perf_counter()
        records = await asyncio.gather(*(one(n) for n in names))
        return list(records), time.perf_counter() - started

    async def delete(self, name: str) -> dict[str, Any]:
        record: dict[str, Any] = {"name": name}
        t0 = time.perf_counter()
        try:
            response = await self.api.delete(f"/v1/tenants/{TENANT}/sites/{name}")
            if response.status_code != 202:
                record["error"] = f"DELETE answered {response.status_code}: {response.text[:300]}"
                return record
            op = await self.wait_operation(
                response.json()["operation"]["id"], 0.05, t0 + self.timeout
            )
            record["op_seen_seconds"] = round(time.perf_counter() - t0, 4)
            record.update(operation_outcome(op))
            if op["status"] != "succeeded":
                record["error"] = op.get("error") or op["status"]
                return record
            gone = await self.get_home(name)
            record["after_delete_status"] = gone.status_code
            record["after_delete_default_server"] = DEFAULT_SERVER_MARK in gone.text
        except Exception as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        return record


# --------------------------------------------------------------------------------------
# Load generation

WRK_LUA = r"""
local names = {"HIT", "MISS", "BYPASS", "EXPIRED", "STALE", "UPDATING", "REVALIDATED", "none"}
local threads = {}
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end
function init(args)
  for _, n in ipairs(names) do _G["xc_" .. n] = 0 end
  xc_other = 0; st_2 = 0; st_3 = 0; st_4 = 0; st_5 = 0; st_x = 0; counter = 0
  math.randomseed(os.time() * 100 + tid)
end
UNCACHED_REQUEST
function response(status, headers, body)
  local c = headers["X-Cache"] or headers["x-cache"] or "none"
  local key = "xc_" .. c
  if _G[key] ~= nil then _G[key] = _G[key] + 1 else xc_other = xc_other + 1 end
  local k = "st_" .. tostring(math.floor(status / 100))
  if _G[k] ~= nil then _G[k] = _G[k] + 1 else st_x = st_x + 1 end
end
local function sum(name)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get(name) or 0) end
  return total
end
function done(summary, latency, requests)
  local xc = {}
  for _, n in ipairs(names) do table.insert(xc, string.format('"%s":%d', n, sum("xc_" .. n))) end
  table.insert(xc, string.format('"other":%d', sum("xc_other")))
  local st = {}
  for _, n in ipairs({"2", "3", "4", "5", "x"}) do
    table.insert(st, string.format('"%sxx":%d', n, sum("st_" .. n)))
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"mean":%.3f,"max":%.3f},' ..
    '"x_cache":{%s},"status":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.mean / 1000, latency.max / 1000,
    table.concat(xc, ","), table.concat(st, ",")))
end
"""

WRK_UNCACHED = r"""
function request()
  counter = counter + 1
  local n = math.random(1, 1000000000)
  return wrk.format("GET", "/?nocache=" .. tid .. "-" .. counter .. "-" .. n)
end
"""


def ensure_wrk(mode: str, allow_install: bool) -> tuple[str | None, str]:
    """The wrk binary to use, or None for the python generator; and how it was chosen."""
    if mode == "python":
        return None, "python generator (requested)"
    found = shutil.which("wrk")
    if found:
        return found, "wrk (already installed)"
    if allow_install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"],
            capture_output=True, text=True, env=env, timeout=600, check=False,
        )  # fmt: skip
        if result.returncode != 0:  # a stale package list: update once and retry
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env,
                           timeout=600, check=False)  # fmt: skip
            result = subprocess.run(
                ["apt-get", "install", "-y", "-q", "wrk"],
                capture_output=True, text=True, env=env, timeout=600, check=False,
            )  # fmt: skip
        found = shutil.which("wrk")
        if found:
            return found, "wrk (installed by this run with apt-get)"
        reason = f"apt-get install wrk failed: {result.stderr.strip()[-200:]}"
    else:
        reason = "wrk not installed and installing is disabled or impossible"
    if mode == "wrk":
        raise SystemExit(f"--loadgen wrk: {reason}")
    return None, f"python generator ({reason})"


def run_wrk(
    wrk: str, host: str, port: int, path_mode: str, seconds: float, connections: int, workdir: Path
) -> dict[str, Any]:
    script = workdir / f"wrk-{path_mode}.lua"
    script.write_text(
        WRK_LUA.replace("UNCACHED_REQUEST", WRK_UNCACHED if path_mode == "uncached" else "")
    )
    threads = max(1, min(os.cpu_count() or 1, connections))
    cmd = [
        wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
        "--timeout", "10s", "-H", f"Host: {host}", "-s", str(script),
        f"http://127.0.0.1:{port}/",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    match = re.search(r"^WRKJSON (.*)$", result.stdout, re.M)
    if result.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr[-500:]}")
    data = json.loads(match.group(1))
    wall = data["duration_us"] / 1e6
    errors = sum(data["errors"].values())
    return {
        "tool": "wrk",
        "command": " ".join(cmd),
        "seconds": round(wall, 3),
        "connections": connections,
        "threads": threads,
        "requests": data["requests"],
        "requests_per_second": round(data["requests"] / wall, 1) if wall else 0.0,
        "latency_ms": data["latency_ms"],
        "x_cache": {k: v for k, v in data["x_cache"].items() if v},
        "status": {k: v for k, v in data["status"].items() if v},
        "errors": {k: v for k, v in data["errors"].items() if v},
        "error_count": errors,
        "mb_per_second": round(data["bytes"] / wall / 1e6, 2) if wall else 0.0,
    }


async def run_python_load(
    bench: Bench, name: str, path_mode: str, seconds: float, connections: int
) -> dict[str, Any]:
    import httpx

    x_cache: Counter[str] = Counter()
    status: Counter[str] = Counter()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    counter = iter(range(10**12))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{bench.site_port}",
        headers={"Host": bench.host(name)},
        limits=limits,
        timeout=10.0,
        trust_env=False,
    ) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                path = (
                    "/" if path_mode == "cached" else f"/?nocache={next(counter)}-{random.random()}"
                )
                t0 = time.perf_counter()
                try:
                    response = await client.get(path)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                status[f"{response.status_code // 100}xx"] += 1
                x_cache[response.headers.get("x-cache", "none")] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        wall = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    return {
        "tool": "python (httpx.AsyncClient, one process)",
        "seconds": round(wall, 3),
        "connections": connections,
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / wall, 1) if wall else 0.0,
        "latency_ms": stats(ms),
        "x_cache": dict(x_cache),
        "status": dict(status),
        "errors": dict(errors),
        "error_count": sum(errors.values()),
    }


# --------------------------------------------------------------------------------------
# Control plane process


def summarize_log(path: Path) -> dict[str, Any]:
    """Counts of the control plane's warning/error events, and a few samples."""
    counts: Counter[str] = Counter()
    samples: list[str] = []
    step_seconds: dict[str, list[float]] = {}
    if not path.exists():
        return {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            if line.strip():
                counts["non-json"] += 1
                if len(samples) < 8:
                    samples.append(line[:300])
            continue
        if not isinstance(event, dict):
            continue
        if event.get("event") == "step.finished" and "seconds" in event:
            step_seconds.setdefault(str(event.get("step")), []).append(float(event["seconds"]))
        level = str(event.get("level", ""))
        if level in ("warning", "error", "critical"):
            counts[f"{level}:{event.get('event')}"] += 1
            if len(samples) < 8:
                samples.append(line[:400])
    out: dict[str, Any] = {"counts": dict(counts), "samples": samples}
    if step_seconds:
        out["step_finished_seconds"] = {k: stats(v) for k, v in step_seconds.items()}
    return out


def remove_leftover_users(home: Path) -> list[str]:
    """Delete system users whose home directory lies under our AIPRESS_HOME (failed deletes)."""
    removed = []
    prefix = str(home.resolve()) + os.sep
    for entry in pwd.getpwall():
        if entry.pw_dir.startswith(prefix) and entry.pw_name.startswith("wp-"):
            subprocess.run(["pkill", "-KILL", "-u", entry.pw_name], check=False)
            subprocess.run(["userdel", entry.pw_name], capture_output=True, check=False)
            removed.append(entry.pw_name)
    return removed


# --------------------------------------------------------------------------------------
# The phases


def step_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    names: dict[str, list[float]] = {}
    for record in records:
        for step, seconds in (record.get("steps") or {}).items():
            if seconds is not None:
                names.setdefault(step, []).append(seconds)
    return {step: stats(values) for step, values in names.items()}


def phase_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if "error" not in r]
    summary: dict[str, Any] = {
        "requested": len(records),
        "succeeded": len(ok),
        "failed": [{"name": r["name"], "error": r["error"]} for r in records if "error" in r],
        "operation_seconds": stats(
            [r["operation_seconds"] for r in ok if r.get("operation_seconds") is not None]
        ),
        "accepted_seconds": stats(
            [r["accepted_seconds"] for r in records if "accepted_seconds" in r], 4
        ),
        "steps_seconds": step_stats(ok),
    }
    if any("first_200_seconds" in r for r in ok):
        summary["post_to_first_200_seconds"] = stats(
            [r["first_200_seconds"] for r in ok if "first_200_seconds" in r]
        )
        summary["first_200_x_cache"] = dict(Counter(str(r.get("first_200_x_cache")) for r in ok))
        summary["first_200_not_wordpress"] = sum(
            1 for r in ok if not r.get("first_200_is_wordpress", True)
        )
    return summary


def access_log_facts(stack: Any, name: str) -> dict[str, Any]:
    """From the site's nginx access log: how the homepage answered while the site was built."""
    path = stack.nginx.log_dir / f"{TENANT}--{name}.access.json"
    facts: dict[str, Any] = {}
    if not path.exists():
        return facts
    seen: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("method") != "GET" or event.get("uri") != "/":
            continue
        if event.get("status") == 200:
            facts["first_200_request_seconds"] = event.get("request_time")
            facts["first_200_cache"] = event.get("cache") or None
            break
        seen[f"{event.get('status')} {event.get('cache') or '-'}"] += 1
    facts["homepage_before_first_200"] = dict(seen)
    return facts


OPCACHE_PROBE = """<?php
header('Content-Type: application/json');
$s = opcache_get_status(true);
$per_site = [];
foreach (($s['scripts'] ?? []) as $path => $info) {
    $key = preg_match('#/sites/[^/]+/([^/]+)/#', $path, $m) ? $m[1] : '(outside sites)';
    $per_site[$key] = ($per_site[$key] ?? 0) + 1;
}
unset($s['scripts']);
$c = opcache_get_configuration();
$size = $c['directives']['opcache.memory_consumption'] ?? null;
echo json_encode(['status' => $s, 'memory_consumption' => $size, 'per_site' => $per_site]);
"""


async def opcache_status(bench: Bench, stack: Any, name: str) -> dict[str, Any]:
    """The shared opcache of the PHP-FPM master, read through a short-lived probe file."""
    htdocs = stack.sites_dir / TENANT / name / "htdocs"
    probe = htdocs / f"aipress-bench-opcache-{random.randrange(10**9)}.php"
    try:
        probe.write_text(OPCACHE_PROBE)
        probe.chmod(0o644)
        response = await bench.get_home(name, f"/{probe.name}")
        data = response.json()
    except ValueError:
        # The platform closes the opcache API to sites (opcache.restrict_api and
        # disable_functions), so a probe inside a site cannot read it any more.
        return {"skipped": "opcache API closed to sites"}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        probe.unlink(missing_ok=True)
    status = data.get("status") or {}
    per_site: dict[str, int] = data.get("per_site") or {}
    memory = status.get("memory_usage") or {}
    statistics = status.get("opcache_statistics") or {}
    strings = status.get("interned_strings_usage") or {}
    return {
        "enabled": status.get("opcache_enabled"),
        "cache_full": status.get("cache_full"),
        "memory_consumption_mb": round((data.get("memory_consumption") or 0) / 2**20, 1),
        "used_mb": round(memory.get("used_memory", 0) / 2**20, 1),
        "free_mb": round(memory.get("free_memory", 0) / 2**20, 1),
        "wasted_mb": round(memory.get("wasted_memory", 0) / 2**20, 1),
        "interned_strings_used_mb": round(strings.get("used_memory", 0) / 2**20, 1),
        "interned_strings_free_mb": round(strings.get("free_memory", 0) / 2**20, 1),
        "cached_scripts": statistics.get("num_cached_scripts"),
        "hits": statistics.get("hits"),
        "misses": statistics.get("misses"),
        "oom_restarts": statistics.get("oom_restarts"),
        "hash_restarts": statistics.get("hash_restarts"),
        "sites_with_cached_scripts": len([k for k in per_site if not k.startswith("(")]),
        "scripts_of_probed_site": per_site.get(name, 0),
        "scripts_per_site": per_site,
    }


async def phase_sequential(args: argparse.Namespace, bench: Bench, stack: Any) -> dict[str, Any]:
    """1. Sites one at a time, each homepage polled from before its POST."""
    print(f"[1/5] creating {args.sites} sites one at a time ...", flush=True)
    meter = harness.CpuMeter()
    records = []
    for i in range(args.sites):
        record = await bench.create(f"s{i + 1:03d}", poll_home_from_post=True)
        if "error" not in record:
            site = await bench.api.get(f"/v1/tenants/{TENANT}/sites/{record['name']}")
            record["preview_url_after"] = site.json().get("preview_url")
        records.append(record)
        mark = record.get("error") or (
            f"first 200 after {record['first_200_seconds']:.2f} s, "
            f"operation {record['operation_seconds']:.2f} s"
        )
        print(f"      {record['name']}: {mark}", flush=True)
    await asyncio.sleep(0.5)  # nginx logs a request after it has answered it
    for record in records:
        if "error" not in record:
            record.update(access_log_facts(stack, record["name"]))
    summary = phase_summary(records)
    ok = [r for r in records if "first_200_seconds" in r]
    summary["first_200_request_seconds"] = stats(
        [
            float(r["first_200_request_seconds"])
            for r in ok
            if r.get("first_200_request_seconds") is not None
        ]
    )
    summary["first_200_after_op_seen_seconds"] = stats(
        [r["first_200_seconds"] - r["op_seen_seconds"] for r in ok]
    )
    summary["cached_302_hits_while_building"] = sum(
        v
        for r in ok
        for k, v in (r.get("homepage_before_first_200") or {}).items()
        if k == "302 HIT"
    )
    summary["preview_urls_match_host"] = all(
        (r.get("preview_url_after") or "").startswith(f"http://{bench.host(r['name'])}/")
        for r in ok
    )
    summary["cpu"] = meter.result()
    return {"summary": summary, "sites": records}


async def phase_batch(names: list[str], concurrency: int, bench: Bench) -> dict[str, Any]:
    """2 and 3. Sites `concurrency` at a time: sites per minute until the last one serves."""
    meter = harness.CpuMeter()
    records, wall = await bench.create_many(names, concurrency)
    summary = phase_summary(records)
    summary["wall_seconds"] = round(wall, 3)
    summary["concurrency"] = concurrency
    summary["sites_per_minute"] = round(summary["succeeded"] / wall * 60, 2) if wall else 0.0
    summary["cpu"] = meter.result()
    print(
        f"      {summary['succeeded']}/{len(names)} in {wall:.1f} s = "
        f"{summary['sites_per_minute']} sites/min",
        flush=True,
    )
    return {"summary": summary, "sites": records}


async def phase_memory(
    args: argparse.Namespace, bench: Bench, stack: Any, api_pid: int, empty: dict[str, Any]
) -> dict[str, Any]:
    """3. Every homepage once (uncached), then the stack's PSS: at the end, at peak, idle."""
    print(
        f"      {len(bench.created)} sites exist; touching every homepage (uncached) ...",
        flush=True,
    )
    memory: dict[str, Any] = {}
    semaphore = asyncio.Semaphore(args.concurrency)
    touched: Counter[str] = Counter()
    touch_seconds: list[float] = []

    async def touch(name: str) -> None:
        async with semaphore:
            t0 = time.perf_counter()
            try:
                response = await bench.get_home(name, f"/?touch={random.random()}")
                touched[f"{response.status_code} {response.headers.get('x-cache')}"] += 1
                touch_seconds.append(time.perf_counter() - t0)
            except Exception as exc:
                touched[type(exc).__name__] += 1

    # Workers of the first sites touched may idle out before the last one answers (20 s), so
    # the stack is sampled during the touch too and the sample with the most PSS is kept.
    samples: list[dict[str, Any]] = []
    touching = True

    async def sample() -> None:
        while touching:
            samples.append(await asyncio.to_thread(stack_memory, stack, api_pid))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    t0 = time.perf_counter()
    await asyncio.gather(*(touch(n) for n in bench.created))
    memory["sites"] = len(bench.created)
    memory["touch"] = {
        "status": dict(touched),
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "request_seconds": stats(touch_seconds),
    }
    memory["warm"] = stack_memory(stack, api_pid)
    touching = False
    await sampler
    samples.append(memory["warm"])
    memory["peak"] = max(samples, key=lambda m: float(m["total"]["pss_mb"]))
    memory["peak_php_fpm_processes"] = max(
        int(m["components"]["php-fpm"]["processes"]) for m in samples
    )
    print(
        f"      warm: {memory['warm']['total']['pss_mb']} MB PSS at the end of the touch, "
        f"peak {memory['peak']['total']['pss_mb']} MB; idling {args.idle_wait:.0f} s ...",
        flush=True,
    )
    await asyncio.sleep(args.idle_wait)
    memory["idle_wait_seconds"] = args.idle_wait
    memory["idle"] = stack_memory(stack, api_pid)
    print(f"      idle: {memory['idle']['total']['pss_mb']} MB PSS", flush=True)
    # Derived: what one more idle site costs, and what one warm PHP-FPM worker costs.
    if memory["sites"]:
        memory["idle_pss_mb_per_site"] = round(
            (memory["idle"]["total"]["pss_mb"] - empty["total"]["pss_mb"]) / memory["sites"], 2
        )
    fpm_peak = memory["peak"]["components"]["php-fpm"]
    fpm_idle = memory["idle"]["components"]["php-fpm"]
    workers = fpm_peak["processes"] - fpm_idle["processes"]
    if workers > 0:
        memory["pss_mb_per_warm_fpm_worker"] = round(
            (fpm_peak["pss_mb"] - fpm_idle["pss_mb"]) / workers, 2
        )
    return memory


async def phase_load(
    args: argparse.Namespace, bench: Bench, stack: Any, api_pid: int, workdir: Path
) -> dict[str, Any]:
    """4. Requests/s of the first site's homepage, cached and uncached."""
    name = bench.created[0]
    wrk, how = ensure_wrk(args.loadgen, not args.no_install)
    print(f"[4/5] load on {name} ({how}), {args.load_seconds:.0f} s x 2 ...", flush=True)
    warm = [await bench.get_home(name) for _ in range(3)]
    load: dict[str, Any] = {
        "site": name,
        "host": bench.host(name),
        "generator": how,
        "warmup_x_cache": [r.headers.get("x-cache") for r in warm],
    }
    for mode in ("cached", "uncached"):
        meter = harness.CpuMeter()
        if wrk:
            load[mode] = await asyncio.to_thread(
                run_wrk, wrk, bench.host(name), args.site_port, mode,
                args.load_seconds, args.load_concurrency, workdir,
            )  # fmt: skip
        else:
            load[mode] = await run_python_load(
                bench, name, mode, args.load_seconds, args.load_concurrency
            )
        load[mode]["cpu"] = meter.result()
        print(
            f"      {mode}: {load[mode]['requests_per_second']} req/s, "
            f"X-Cache {load[mode]['x_cache']}",
            flush=True,
        )
    load["memory_after"] = stack_memory(stack, api_pid)
    load["opcache_after"] = await opcache_status(bench, stack, name)
    return load


async def run_phases(
    args: argparse.Namespace,
    bench: Bench,
    stack: Any,
    api_pid: int,
    results: dict[str, Any],
    workdir: Path,
) -> None:
    """Phases 1 to 4, each result stored under its name as soon as it is known."""
    if args.sites:
        results["sequential"] = await phase_sequential(args, bench, stack)
    if args.concurrent_sites:
        print(
            f"[2/5] creating {args.concurrent_sites} sites, {args.concurrency} at a time ...",
            flush=True,
        )
        names = [f"s{args.sites + i + 1:03d}" for i in range(args.concurrent_sites)]
        results["concurrent"] = await phase_batch(names, args.concurrency, bench)
    missing = max(0, args.idle_sites - len(bench.created))
    if missing:
        print(f"[3/5] creating {missing} more sites ({args.concurrency} at a time) ...", flush=True)
        first_free = args.sites + args.concurrent_sites + 1
        names = [f"s{first_free + i:03d}" for i in range(missing)]
        results["fill"] = await phase_batch(names, args.concurrency, bench)
    else:
        print("[3/5] no more sites needed for the memory measurement", flush=True)
    results["memory"] = await phase_memory(args, bench, stack, api_pid, results["memory_empty"])
    if bench.created:
        # Read after the idle measurement: the probe itself forks a worker.
        results["opcache"] = await opcache_status(bench, stack, bench.created[0])
    if args.baseline and bench.created:
        results["baseline"] = await run_baseline(args, bench, stack)
    if args.load_seconds > 0 and bench.created:
        results["load"] = await phase_load(args, bench, stack, api_pid, workdir)
    else:
        print("[4/5] load skipped", flush=True)
    if args.density:
        results["density"] = await phase_density(
            args,
            bench,
            TENANT,
            lambda: stack_memory(stack, api_pid),
            results["memory_empty"],
            stack.phpfpm.pid,
        )


async def run_baseline(args: argparse.Namespace, bench: Bench, stack: Any) -> dict[str, Any]:
    """The bare-pool baseline beside the first site."""
    from controlplane.settings import Settings

    root = stack.sites_dir / TENANT / bench.created[0]
    return await phase_baseline(args, bench, stack, root, Settings().php_max_children)


def kept_for_teardown(args: argparse.Namespace) -> set[str]:
    """Sites the final delete leaves to the stack's teardown (density sites by default)."""
    if args.density_teardown != "stack":
        return set()
    return set(density_names(args.density))


async def phase_delete(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    """5. Every site deleted through the API, `--delete-concurrency` at a time."""
    response = await bench.api.get(f"/v1/tenants/{TENANT}/sites")
    response.raise_for_status()
    names = [s["name"] for s in response.json() if s["name"] not in kept_for_teardown(args)]
    print(f"[5/5] deleting {len(names)} sites, {args.delete_concurrency} at a time ...", flush=True)
    semaphore = asyncio.Semaphore(args.delete_concurrency)

    async def one(name: str) -> dict[str, Any]:
        async with semaphore:
            return await bench.delete(name)

    meter = harness.CpuMeter()
    started = time.perf_counter()
    records = list(await asyncio.gather(*(one(n) for n in names)))
    wall = time.perf_counter() - started
    ok = [r for r in records if "error" not in r]
    return {
        "summary": {
            "cpu": meter.result(),
            "requested": len(records),
            "succeeded": len(ok),
            "concurrency": args.delete_concurrency,
            "wall_seconds": round(wall, 3),
            "failed": [{"name": r["name"], "error": r["error"]} for r in records if "error" in r],
            "operation_seconds": stats(
                [r["operation_seconds"] for r in ok if r.get("operation_seconds") is not None]
            ),
            "steps_seconds": step_stats(ok),
            "homepage_after_delete": dict(
                Counter(
                    f"{r.get('after_delete_status')}"
                    + (" default server" if r.get("after_delete_default_server") else "")
                    for r in ok
                )
            ),
        },
        "sites": records,
    }


# --------------------------------------------------------------------------------------
# The table, drawn from the results

Rows = list[tuple[str, str]]


def _cpu(summary: dict[str, Any]) -> str:
    cpu = summary.get("cpu") or {}
    if not cpu:
        return ""
    busy = fmt(cpu.get("machine_cpu_busy_pct"), "%", 0)
    return f"  [machine CPU busy {busy}, load {cpu.get('loadavg_1m_at_end')}]"


def _ok(summary: dict[str, Any]) -> str:
    return f"{summary['succeeded']}/{summary['requested']} ok"


def _steps(summary: dict[str, Any]) -> str:
    return ", ".join(f"{k} {fmt(v.get('p50'))}" for k, v in summary["steps_seconds"].items())


def _p50_p95(values: dict[str, Any]) -> str:
    return f"{fmt(values.get('p50'), ' s')} / {fmt(values.get('p95'), ' s')}"


def machine_rows(results: dict[str, Any]) -> Rows:
    """The machine and the empty stack."""
    machine = results.get("machine", {})
    rows = [
        (
            "machine",
            f"{machine.get('cpu_count')} CPU, {machine.get('mem_total_mb')} MB; "
            f"load 1/5/15 min at start {machine.get('loadavg_at_start')}, "
            f"at end {machine.get('loadavg_at_end')}; "
            f"stacks running at start {machine.get('stacks_running_at_start')}",
        )
    ]
    templates = (results.get("settings") or {}).get("site_templates")
    if templates is not None:
        rows.append(
            (
                "site templates (--templates)",
                "on: copied from WordPress installed once (site 1 builds it)"
                if templates
                else "off: the installer runs for every site",
            )
        )
    if "stack_start_seconds" in results:
        rows.append(
            (
                "stack cold start (MariaDB init + PHP-FPM + nginx)",
                fmt(results["stack_start_seconds"], " s"),
            )
        )
    if "memory_empty" in results:
        rows.append(
            (
                "stack PSS, 0 sites (incl. control plane)",
                fmt(results["memory_empty"]["total"]["pss_mb"], " MB", 1),
            )
        )
    return rows


def sequential_rows(seq: dict[str, Any]) -> Rows:
    """Phase 1: one at a time."""
    first = seq.get("post_to_first_200_seconds", {})
    cold = seq.get("first_200_request_seconds", {})
    after = seq.get("first_200_after_op_seen_seconds", {})
    return [
        (
            f"create 1 at a time ({_ok(seq)}): POST -> first 200 with the title p50 / p95",
            f"{_p50_p95(first)}  (min {fmt(first.get('min'), ' s')}, "
            f"max {fmt(first.get('max'), ' s')})" + _cpu(seq),
        ),
        ("  operation duration p50 / p95", _p50_p95(seq["operation_seconds"])),
        ("  step p50 (s)", _steps(seq)),
        (
            "  first 200: its own request time p50 / p95 (nginx)",
            f"{_p50_p95(cold)}; after op seen done p50 {fmt(after.get('p50'), ' s')}; "
            f"X-Cache {seq.get('first_200_x_cache')}; "
            f"cached 302s served while building: {seq.get('cached_302_hits_while_building')}",
        ),
    ]


def concurrent_rows(conc: dict[str, Any]) -> Rows:
    """Phase 2: `concurrency` at a time."""
    first = conc.get("post_to_first_200_seconds", {})
    return [
        (
            f"create {conc['concurrency']} at a time ({_ok(conc)})",
            f"{fmt(conc['sites_per_minute'], ' sites/min')} "
            f"({fmt(conc['wall_seconds'], ' s')} wall)" + _cpu(conc),
        ),
        (
            "  operation p50 / p95; POST -> 200 p50",
            f"{_p50_p95(conc['operation_seconds'])}; {fmt(first.get('p50'), ' s')}",
        ),
        ("  step p50 (s)", _steps(conc)),
    ]


def fill_rows(fill: dict[str, Any]) -> Rows:
    """Phase 3's creates."""
    return [
        (
            f"fill, {fill['concurrency']} at a time ({_ok(fill)})",
            f"{fmt(fill['sites_per_minute'], ' sites/min')}, operation p50 "
            f"{fmt(fill['operation_seconds'].get('p50'), ' s')}" + _cpu(fill),
        )
    ]


def memory_rows(mem: dict[str, Any]) -> Rows:
    """Phase 3's memory."""
    touch = mem.get("touch", {})
    rows = [
        (
            "touch every homepage once (uncached)",
            f"{touch.get('status')}, request p50 "
            f"{fmt(touch.get('request_seconds', {}).get('p50'), ' s')}",
        )
    ]
    labels = {
        "warm": "at the end of the touch",
        "peak": "peak during the touch",
        "idle": f"after {mem['idle_wait_seconds']:.0f} s idle",
    }
    for state, label in labels.items():
        detail = ", ".join(
            f"{k.split(' ')[0]} {v['pss_mb']} ({v['processes']}p)"
            for k, v in mem[state]["components"].items()
        )
        rows.append(
            (
                f"stack PSS, {mem['sites']} sites, {label}",
                f"{mem[state]['total']['pss_mb']} MB  [{detail}]",
            )
        )
    rows.append(
        (
            "  derived: idle PSS per extra site; PSS per warm FPM worker",
            f"{fmt(mem.get('idle_pss_mb_per_site'), ' MB')}; "
            f"{fmt(mem.get('pss_mb_per_warm_fpm_worker'), ' MB')}",
        )
    )
    return rows


def opcache_rows(label: str, oc: dict[str, Any]) -> Rows:
    """The shared opcache, or why it could not be read."""
    if "skipped" in oc:
        return [(label, oc["skipped"])]
    if "error" in oc:
        return [(label, oc["error"])]
    return [
        (
            label,
            f"{oc['used_mb']}/{oc['memory_consumption_mb']} MB used, "
            f"{oc['cached_scripts']} scripts of {oc['sites_with_cached_scripts']} sites, "
            f"{oc['scripts_of_probed_site']} of the probed site; "
            f"full {oc['cache_full']}, oom restarts {oc['oom_restarts']}",
        )
    ]


def load_rows(load: dict[str, Any]) -> Rows:
    """Phase 4."""
    rows: Rows = []
    for mode in ("cached", "uncached"):
        run = load.get(mode)
        if run:
            rows.append(
                (
                    f"homepage {mode}, {run['connections']} conns, {run['seconds']:.0f} s",
                    f"{fmt(run['requests_per_second'], ' req/s', 1)}, "
                    f"p50 {fmt(run['latency_ms'].get('p50'), ' ms')}, "
                    f"p99 {fmt(run['latency_ms'].get('p99'), ' ms')}, X-Cache {run['x_cache']}, "
                    f"status {run['status']}, errors {run['errors'] or 0}" + _cpu(run),
                )
            )
    rows.append(("  load generator", load["generator"]))
    if "memory_after" in load:
        rows.append(
            ("  stack PSS right after the load", f"{load['memory_after']['total']['pss_mb']} MB")
        )
    if load.get("opcache_after"):
        rows += opcache_rows("opcache after the load", load["opcache_after"])
    return rows


def delete_rows(dele: dict[str, Any]) -> Rows:
    """Phase 5."""
    return [
        (
            f"delete {dele['concurrency']} at a time ({_ok(dele)}) p50 / p95",
            f"{_p50_p95(dele['operation_seconds'])}; homepage after: "
            f"{dele.get('homepage_after_delete')}" + _cpu(dele),
        ),
        ("  step p50 (s)", _steps(dele)),
    ]


def outcome_rows(results: dict[str, Any]) -> Rows:
    """Cleanup, the control plane's warnings and the first failures of each phase."""
    rows: Rows = []
    cleanup = results.get("cleanup", {})
    if cleanup:
        rows.append(("cleanup", ", ".join(f"{k}: {v}" for k, v in cleanup.items())))
    log = results.get("controlplane_log") or {}
    if log.get("counts"):
        rows.append(("control-plane warnings/errors", str(log["counts"])))
    for section in ("sequential", "concurrent", "fill", "delete"):
        for failure in (results.get(section, {}).get("summary", {}).get("failed") or [])[:3]:
            rows.append((f"FAILED ({section}) {failure['name']}", str(failure["error"])[:200]))
    if results.get("error"):
        rows.append(("ERROR", results["error"]))
    return rows


def table(results: dict[str, Any]) -> Rows:
    """Every row of the table, from the results alone (so a saved JSON can be drawn again)."""

    def summary(name: str) -> dict[str, Any]:
        found: dict[str, Any] = (results.get(name) or {}).get("summary") or {}
        return found

    rows = machine_rows(results)
    for name, draw in (
        ("sequential", sequential_rows),
        ("concurrent", concurrent_rows),
        ("fill", fill_rows),
    ):
        if summary(name):
            rows += draw(summary(name))
    if results.get("memory"):
        rows += memory_rows(results["memory"])
    if results.get("opcache"):
        rows += opcache_rows("opcache after the idle wait", results["opcache"])
    if results.get("baseline"):
        rows += baseline_rows(results["baseline"])
    if results.get("load"):
        rows += load_rows(results["load"])
    if results.get("density"):
        rows += density_rows(results["density"])
    if summary("delete"):
        rows += delete_rows(summary("delete"))
    return rows + outcome_rows(results)


# --------------------------------------------------------------------------------------
# Main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.redraw:
        harness.print_facts("Provisioning (redrawn)", table(json.loads(args.redraw.read_text())))
        return 0
    if os.geteuid() != 0:
        raise SystemExit("the local provider needs root (system users, MariaDB, PHP-FPM, nginx)")
    for binary in ("mariadbd", "nginx", "php-fpm8.2", "php", "useradd"):
        if not shutil.which(binary) and not Path(f"/usr/sbin/{binary}").exists():
            raise SystemExit(f"{binary} is not installed (run `make up`)")
    api_port = args.api_port or harness.free_port()
    for label, port in (
        ("site", args.site_port),
        ("mariadb", args.mariadb_port),
        ("api", api_port),
    ):
        if not harness.port_free(port):
            raise SystemExit(f"{label} port {port} is in use; pick another with --{label}-port")

    home = Path(tempfile.mkdtemp(prefix="aipress-bench-provision-", dir="/tmp"))
    home.chmod(0o755)
    workdir = Path(tempfile.mkdtemp(prefix="aipress-bench-provision-work-"))
    server_log = args.log_file or (workdir / "controlplane.log")
    env = harness.aipress_environment(
        provider="local",
        home=str(home),
        mariadb_port=str(args.mariadb_port),
        site_port=str(args.site_port),
        port=str(api_port),
        log_level="INFO" if args.log_file else "WARNING",
        log_file=str(server_log),
        site_templates="true" if args.templates == "on" else "false",
    )

    from controlplane.kernel.auth import LocalTokenIssuer
    from controlplane.kernel.identity import Role
    from controlplane.kernel.logs import configure_logging
    from controlplane.settings import Settings
    from controlplane.stack.local import LocalStack

    configure_logging("WARNING", None, json=False)  # this process: quiet, on stderr
    settings = Settings()
    stack = LocalStack.from_settings(settings)
    results: dict[str, Any] = {
        "benchmark": "provision",
        "machine": harness.machine_info(versions()),
        "parameters": harness.parameters(args),
        "settings": {
            "home": str(home),
            "site_port": args.site_port,
            "mariadb_port": args.mariadb_port,
            "api_port": api_port,
            "site_templates": settings.site_templates,
            "php_max_children": settings.php_max_children,
            "max_parallel_operations": settings.max_parallel_operations,
        },
        "notes": [
            "percentiles interpolate linearly between ranks",
            "POST -> first 200: homepage polled from before the POST, one request at a time, "
            "sleeping --poll-ms between responses",
            "operation_seconds = operation finished_at - created_at as the API reports it",
            "the load generator runs on the same machine and competes for the same CPUs",
        ],
    }
    print(
        f"home {home}, API :{api_port}, sites :{args.site_port}, MariaDB :{args.mariadb_port}",
        flush=True,
    )
    server = harness.Server(env, workdir / "uvicorn.out", port=api_port)
    exit_code = 0
    try:
        token = LocalTokenIssuer(settings).issue("bench", Role.ADMIN, email="bench@example.com")
        server.start()
        results["api_start_seconds"] = round(server.startup_seconds, 3)
        t0 = time.perf_counter()
        stack.ensure_running()
        results["stack_start_seconds"] = round(time.perf_counter() - t0, 3)
        results["memory_empty"] = stack_memory(stack, server.pid)

        async def go() -> None:
            bench = Bench(server.url, token, args.site_port, args.poll_ms / 1000, args.site_timeout)
            try:
                response = await bench.api.post(
                    "/v1/tenants", json={"id": TENANT, "name": "Provisioning benchmark"}
                )
                if response.status_code != 201:
                    raise RuntimeError(f"tenant create: {response.status_code} {response.text}")
                try:
                    await run_phases(args, bench, stack, server.pid, results, workdir)
                finally:
                    if not args.keep:
                        results["delete"] = await phase_delete(args, bench)
            finally:
                await bench.close()

        asyncio.run(go())
    except BaseException as exc:
        results["error"] = f"{type(exc).__name__}: {exc}"
        exit_code = 130 if isinstance(exc, KeyboardInterrupt) else 1
    finally:
        cleanup: dict[str, Any] = {}
        if server.process is not None:
            if args.keep:
                cleanup["control plane"] = f"left running (pid {server.pid})"
            else:
                server.stop()
                cleanup["control plane"] = f"stopped (exit {server.process.returncode})"
        harness.close_machine_info(results["machine"])
        if not args.keep:
            t0 = time.perf_counter()
            try:
                stack.stop()
                cleanup["stack"] = f"stopped in {time.perf_counter() - t0:.1f} s"
            except Exception as exc:
                cleanup["stack"] = f"stop failed: {exc}"
            leftover = remove_leftover_users(home)
            cleanup["leftover users removed"] = len(leftover)
            shutil.rmtree(home, ignore_errors=True)
            cleanup["home removed"] = not home.exists()
        else:
            cleanup["home kept"] = str(home)
        results["cleanup"] = cleanup
        results["controlplane_log"] = summarize_log(server_log)
        tail = server.log_tail(3000)
        if tail:
            results["controlplane_stdout_tail"] = tail
        if not args.keep and args.log_file is None:
            shutil.rmtree(workdir, ignore_errors=True)
        harness.write_json(args.output, results)
        harness.print_facts("Provisioning, the local provider", table(results))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
