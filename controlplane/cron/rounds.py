"""One cron round: every ready site once, each at its offset in the interval, a few at a time."""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from controlplane.cron import CronResult, CronRunner
from controlplane.engine.provider import SiteContext
from controlplane.kernel import clock
from controlplane.kernel.logs import get_logger
from controlplane.models import Site, SiteCronRun
from controlplane.platform import Platform

log = get_logger("aipress.cron")


def site_offset(site_id: str, interval: float) -> float:
    """Seconds into each interval at which the site runs: stable, spread evenly by its id."""
    digest = hashlib.sha256(site_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * interval


def round_start(now: float, interval: float) -> float:
    """The start of the interval that holds `now` (aligned to the epoch, so every process and
    every job execution agrees on when each site's turn is)."""
    return now - (now % interval)


def runner_of(platform: Platform) -> CronRunner | None:
    """The provider's cron runner, if it has one."""
    runner: CronRunner | None = getattr(platform.provider, "cron", None)
    return runner


def ready_contexts(platform: Platform) -> list[SiteContext]:
    """Every ready site (stopped, failed, building and deleting sites are skipped)."""
    with platform.sessions() as session:
        sites = session.scalars(select(Site).where(Site.status == "ready")).all()
        return [platform.engine.read_context(session, site) for site in sites]


def still_ready(platform: Platform, site_id: str) -> bool:
    """Whether the site is ready right now (it may have been stopped since the round began)."""
    with platform.sessions() as session:
        status = session.scalar(select(Site.status).where(Site.id == site_id))
    return status == "ready"


def record_run(
    platform: Platform, site_id: str, result: CronResult, *, at: datetime, duration_ms: int
) -> None:
    """Keep the site's last run (time, outcome, events) for the API."""
    values: dict[str, Any] = {
        "last_run_at": at,
        "status": "ok" if result.ok else "failed",
        "detail": result.detail[:500],
        "events_run": result.events_run,
        "duration_ms": duration_ms,
    }
    with platform.sessions() as session:
        for _attempt in range(2):  # another process may insert the first row at the same time
            changed = session.execute(  # type: ignore[attr-defined]
                update(SiteCronRun)
                .where(SiteCronRun.site_id == site_id)
                .values(**values, runs=SiteCronRun.runs + 1)
            ).rowcount
            if changed:
                session.commit()
                return
            if session.get(Site, site_id) is None:
                return  # deleted meanwhile
            session.add(SiteCronRun(site_id=site_id, runs=1, **values))
            try:
                session.commit()
                return
            except IntegrityError:
                session.rollback()


def run_site(platform: Platform, runner: CronRunner, ctx: SiteContext) -> CronResult | None:
    """Run one site's due events and record the outcome (None: skipped, no longer ready)."""
    if not still_ready(platform, ctx.site_id):
        return None
    at = clock.now()
    started = time.monotonic()
    try:
        result = runner.run_due(ctx)
    except Exception as exc:  # one site's failure is recorded; the round goes on
        result = CronResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:500])
    duration_ms = int((time.monotonic() - started) * 1000)
    try:
        record_run(platform, ctx.site_id, result, at=at, duration_ms=duration_ms)
    except Exception as exc:
        log.error("cron.record_failed", site=ctx.site_name, error_type=type(exc).__name__)
    event = "cron.site_ran" if result.ok else "cron.site_failed"
    log.info(event, tenant_id=ctx.tenant_id, site=ctx.site_name, detail=result.detail,
             events_run=result.events_run, duration_ms=duration_ms)  # fmt: skip
    return result


def run_round(
    platform: Platform, *, started: float, stop: threading.Event | None = None
) -> dict[str, CronResult | None]:
    """Run every ready site once, each when `started` + its offset comes; returns the results
    by site id. Sites whose offset has already passed (a late start) run at once."""
    runner = runner_of(platform)
    if runner is None:
        return {}
    settings = platform.settings
    interval = settings.cron_interval_seconds
    stop = stop or threading.Event()
    plan = sorted(
        ((site_offset(ctx.site_id, interval), ctx) for ctx in ready_contexts(platform)),
        key=lambda item: item[0],
    )
    futures = {}
    with ThreadPoolExecutor(
        max_workers=settings.cron_concurrency, thread_name_prefix="cron"
    ) as pool:
        for offset, ctx in plan:
            if stop.wait(max(0.0, started + offset - time.time())):
                break
            futures[ctx.site_id] = pool.submit(run_site, platform, runner, ctx)
    return {site_id: future.result() for site_id, future in futures.items()}
