"""provision.py's `--density N` phase: N more sites, then their idle cost and the API at N.

Sites d0001.. are created `--concurrency` at a time (the create phase's code) until N exist
or `--density-seconds` have passed (no create starts after that). Then, after `--idle-wait`
seconds (longer than the pools' idle timeout, so their workers have exited), the whole
stack's PSS by process kind, the create time of the first 50 against the last 50, and
`GET /v1/tenants/<tenant>/sites` latency at that count. The sites are removed with the rest
at the end: through the API (`--density-teardown api`) or, the default, with the stack's
teardown (every site's user, pool, server block, database and files live under the
benchmark's AIPRESS_HOME, which is stopped and removed).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from collections.abc import Callable
from typing import Any

from harness import fmt, stats

Rows = list[tuple[str, str]]
EDGE = 50  # sites compared at each end


def density_names(count: int) -> list[str]:
    """The density phase's site names."""
    return [f"d{i + 1:04d}" for i in range(count)]


def edge_comparison(records: list[dict[str, Any]], key: str, edge: int = EDGE) -> dict[str, Any]:
    """p50/p95 of `key` over the first and the last `edge` successful creates (by start)."""
    ok = sorted((r for r in records if r.get(key) is not None), key=lambda r: r["started"])
    first, last = ok[:edge], ok[-edge:]
    out: dict[str, Any] = {
        "first": stats([r[key] for r in first]),
        "last": stats([r[key] for r in last]),
        "first_n": len(first),
        "last_n": len(last),
        "overlap": max(0, 2 * edge - len(ok)),
    }
    if out["first"].get("p50") and out["last"].get("p50"):
        out["ratio_p50"] = round(out["last"]["p50"] / out["first"]["p50"], 3)
    return out


def idle_per_site(empty_mb: float, idle_mb: float, sites: int) -> float | None:
    """What one more idle site adds to the stack's PSS (MB)."""
    return round((idle_mb - empty_mb) / sites, 3) if sites else None


def shm_resident_mb(pid: int | None, min_mb: int = 64) -> float | None:
    """Resident MB of a process's large anonymous shared mappings (PHP-FPM's OPcache).

    PSS misses these pages once the workers that touched them have exited (the master never
    touches them itself): they are counted here with mincore() on a read-only mapping of the
    same memory, which faults nothing in."""
    if pid is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    c_int = ctypes.c_int
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, c_int, c_int, c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    page = os.sysconf("SC_PAGE_SIZE")
    resident = 0
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()  # noqa: SIM115
    except OSError:
        return None
    for line in maps:
        parts = line.split()
        if len(parts) < 6 or "s" not in parts[1] or not parts[5].startswith("/dev/zero"):
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        size = end - start
        if size < min_mb << 20:
            continue
        fd = os.open(f"/proc/{pid}/map_files/{parts[0]}", os.O_RDONLY)
        try:
            addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        finally:
            os.close(fd)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            raise OSError(ctypes.get_errno(), "mmap of the shared segment failed")
        try:
            vector = (ctypes.c_ubyte * (size // page))()
            if libc.mincore(addr, size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            resident += sum(v & 1 for v in vector) * page
        finally:
            libc.munmap(addr, size)
    return round(resident / 2**20, 1)


async def create_bounded(
    bench: Any, names: list[str], concurrency: int, deadline: float
) -> list[dict[str, Any]]:
    """Create `names`, `concurrency` in flight; none starts after `deadline` (perf_counter)."""
    semaphore = asyncio.Semaphore(concurrency)
    t0 = time.perf_counter()
    done = 0

    async def one(name: str) -> dict[str, Any]:
        nonlocal done
        async with semaphore:
            started = time.perf_counter()
            if started > deadline:
                return {"name": name, "skipped": True}
            record: dict[str, Any] = await bench.create(name, poll_home_from_post=False)
            record["started"] = round(started - t0, 3)
            done += 1
            if done % 50 == 0:
                print(f"      {done} density sites after {started - t0:.0f} s", flush=True)
            return record

    return list(await asyncio.gather(*(one(n) for n in names)))


async def list_latency(bench: Any, tenant: str, requests: int) -> dict[str, Any]:
    """`GET /v1/tenants/<tenant>/sites`, one at a time: seconds, and the count it returned."""
    seconds: list[float] = []
    counts: set[int] = set()
    for _ in range(requests):
        t0 = time.perf_counter()
        response = await bench.api.get(f"/v1/tenants/{tenant}/sites")
        seconds.append(time.perf_counter() - t0)
        response.raise_for_status()
        counts.add(len(response.json()))
    return {"seconds": stats(seconds, 4), "requests": requests, "sites_listed": sorted(counts)}


async def phase_density(
    args: Any,
    bench: Any,
    tenant: str,
    measure: Callable[[], dict[str, Any]],
    empty: dict[str, Any],
    fpm_pid: Callable[[], int | None] = lambda: None,
) -> dict[str, Any]:
    """N sites (bounded in time), the idle stack's PSS by kind, create drift, the list API."""
    names = density_names(args.density)
    print(
        f"[density] creating {len(names)} sites, {args.concurrency} at a time, "
        f"for at most {args.density_seconds:.0f} s ...",
        flush=True,
    )
    t0 = time.perf_counter()
    records = await create_bounded(bench, names, args.concurrency, t0 + args.density_seconds)
    wall = time.perf_counter() - t0
    made = [r for r in records if not r.get("skipped")]
    ok = [r for r in made if "first_200_seconds" in r]
    print(
        f"      {len(ok)}/{len(names)} in {wall:.0f} s; idling {args.idle_wait:.0f} s", flush=True
    )
    await asyncio.sleep(args.idle_wait)
    idle = await asyncio.to_thread(measure)
    opcache_resident = await asyncio.to_thread(shm_resident_mb, fpm_pid())
    total_sites = len(bench.created)
    result: dict[str, Any] = {
        "requested": len(names),
        "created": len(ok),
        "failed": [{"name": r["name"], "error": r["error"]} for r in made if "error" in r][:10],
        "skipped_by_deadline": len(records) - len(made),
        "density_seconds": args.density_seconds,
        "create_wall_seconds": round(wall, 1),
        "sites_total": total_sites,
        "idle_wait_seconds": args.idle_wait,
        "idle": idle,
        "opcache_resident_mb": opcache_resident,
        "idle_pss_mb_per_site": idle_per_site(
            empty["total"]["pss_mb"], idle["total"]["pss_mb"], total_sites
        ),
        "post_to_first_200": edge_comparison(ok, "first_200_seconds"),
        "operation": edge_comparison(ok, "operation_seconds"),
        "list_sites": await list_latency(bench, tenant, args.density_list_requests),
        "teardown": args.density_teardown,
        "names": [r["name"] for r in ok],
    }
    print(
        f"      idle PSS {idle['total']['pss_mb']} MB at {total_sites} sites; "
        f"list p95 {fmt(result['list_sites']['seconds'].get('p95'), ' s', 4)}",
        flush=True,
    )
    return result


def density_rows(den: dict[str, Any]) -> Rows:
    """The density phase's rows."""
    idle = den["idle"]
    kinds = ", ".join(
        f"{k.split(' ')[0]} {v['pss_mb']} ({v['processes']}p)"
        for k, v in idle["components"].items()
    )
    rows: Rows = [
        (
            f"density: {den['created']}/{den['requested']} created in "
            f"{den['create_wall_seconds']:.0f} s",
            f"{den['skipped_by_deadline']} not started (--density-seconds "
            f"{den['density_seconds']:.0f}); {len(den['failed'])} failed",
        ),
        (
            f"  stack PSS, {den['sites_total']} sites, after {den['idle_wait_seconds']:.0f} s idle",
            f"{idle['total']['pss_mb']} MB  [{kinds}]",
        ),
        ("  derived: idle PSS per extra site", fmt(den.get("idle_pss_mb_per_site"), " MB", 3)),
        (
            "  + PHP-FPM's OPcache segment resident (in no process's PSS once workers exit)",
            fmt(den.get("opcache_resident_mb"), " MB", 1),
        ),
    ]
    for label, key in (("POST -> first 200", "post_to_first_200"), ("operation", "operation")):
        edge = den[key]
        rows.append(
            (
                f"  {label} p50, first {edge['first_n']} vs last {edge['last_n']}",
                f"{fmt(edge['first'].get('p50'), ' s')} vs {fmt(edge['last'].get('p50'), ' s')}"
                f" = {fmt(edge.get('ratio_p50'), 'x', 3)}",
            )
        )
    listed = den["list_sites"]
    rows.append(
        (
            f"  GET .../sites at {listed['sites_listed']} sites, {listed['requests']} requests "
            "p50 / p95",
            f"{fmt(listed['seconds'].get('p50'), ' s', 4)} / "
            f"{fmt(listed['seconds'].get('p95'), ' s', 4)}",
        )
    )
    return rows
