"""An in-memory provider for unit tests, with fault injection and optional file persistence.

It is never used to serve sites: `local` and `gcp` are the real providers. Persisting its
state to a JSON file lets the crash tests kill a process and inspect what it left behind.

Like a cloud API, its `create` makes a new resource every time it is called; a step's
`ensure` first looks its resource up and creates only when there is none. A create while the
site already has that resource is a duplicate (a second Cloud Run service, bucket, DNS
record...): it is counted in `duplicates` (persisted beside the state file) so the crash
tests can require zero of them at every boundary.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from controlplane.admin_login import login_key
from controlplane.cron import CronResult
from controlplane.engine.provider import BackupStep, DnsStep, RuntimeStep, SiteContext, SiteStep
from controlplane.observability import (
    LogEntry,
    LogQuery,
    MetricsRead,
    SiteLogs,
    matches,
    metrics_from_access,
)


class InjectedFault(Exception):
    """Raised where a test asked the provider to fail."""


class MemoryProvider:
    """Keeps each site's resources in a dict; `fail_on={"ensure:runtime"}` injects failures."""

    name = "memory"

    def __init__(self, state_file: Path | None = None, fail_on: set[str] | None = None) -> None:
        self._lock = threading.Lock()
        self._state_file = state_file
        self.fail_on: set[str] = set(fail_on or ())
        # Steps that wait for a test to set the event before they act (e.g. "remove:runtime").
        self.gates: dict[str, threading.Event] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        # site id -> step -> creates made while the site already had that step's resource.
        self.duplicates: dict[str, dict[str, int]] = {}
        self.calls: list[str] = []
        if state_file is not None and state_file.exists():
            self.resources = json.loads(state_file.read_text())
        duplicates_file = self._duplicates_file()
        if duplicates_file is not None and duplicates_file.exists():
            self.duplicates = json.loads(duplicates_file.read_text())
        self.database: SiteStep = _Step(self, "database")
        self.secrets: SiteStep = _Step(self, "secrets")
        self.storage: SiteStep = _Step(self, "storage")
        self.runtime: RuntimeStep = _Runtime(self, "runtime")
        self.dns: DnsStep = _Dns(self, "dns")
        self.wordpress: SiteStep = _Step(self, "wordpress")
        self.backups: BackupStep = _Backups(self)
        self.logs: SiteLogs = MemoryLogs()
        self.usage = MemoryUsage()
        self.cron = MemoryCron(self)

    def _duplicates_file(self) -> Path | None:
        if self._state_file is None:
            return None
        return self._state_file.with_name(f"{self._state_file.stem}.duplicates.json")

    def _save(self) -> None:
        duplicates_file = self._duplicates_file()
        if self._state_file is None or duplicates_file is None:
            return
        _write_atomically(duplicates_file, self.duplicates)
        _write_atomically(self._state_file, self.resources)

    def _act(
        self, action: str, step: str, ctx: SiteContext, value: Any = True, create: bool = False
    ) -> None:
        key = f"{action}:{step}"
        gate = self.gates.get(key)
        if gate is not None and not gate.wait(timeout=30):
            raise InjectedFault(f"gate {key} was never opened")
        with self._lock:
            self.calls.append(f"{key}:{ctx.site_name}")
            if key in self.fail_on:
                raise InjectedFault(f"injected failure at {key}")
            site = self.resources.setdefault(ctx.site_id, {})
            if action == "ensure":
                if create and step in site:  # the API makes a second one; the first is orphaned
                    counts = self.duplicates.setdefault(ctx.site_id, {})
                    counts[step] = counts.get(step, 0) + 1
                site[step] = value
                ctx.resources[step] = f"{step}-{ctx.site_name}"
            elif action == "remove":
                site.pop(step, None)
                ctx.resources.pop(step, None)
                if not site:
                    self.resources.pop(ctx.site_id, None)
            else:
                site[step] = value
            self._save()

    def site_resources(self, site_id: str) -> dict[str, Any]:
        """What exists for a site (empty when nothing is left)."""
        with self._lock:
            return dict(self.resources.get(site_id, {}))

    def exists(self, step: str, ctx: SiteContext) -> bool:
        """Whether the site has this step's resource (the lookup by name an `ensure` does)."""
        with self._lock:
            return step in self.resources.get(ctx.site_id, {})

    def ensure(self, step: str, ctx: SiteContext, value: Any) -> None:
        """Look the resource up by its name; create it only when there is none (else update)."""
        self._act("ensure", step, ctx, value, create=not self.exists(step, ctx))


class _Step:
    def __init__(self, provider: MemoryProvider, name: str) -> None:
        self._p = provider
        self._name = name

    def ensure(self, ctx: SiteContext) -> None:
        value: Any = True
        if self._name == "database":
            user, _password = ctx.credentials.get_or_create("database", f"wp_{ctx.site_name}")
            value = {"user": user}
        if self._name == "wordpress":
            user, _password = ctx.credentials.get_or_create("wordpress_admin", ctx.admin_user)
            login_key(ctx.credentials)
            value = {"admin": user, "title": ctx.title}
        self._p.ensure(self._name, ctx, value)

    def remove(self, ctx: SiteContext) -> None:
        self._p._act("remove", self._name, ctx)


class _Runtime(_Step):
    def start(self, ctx: SiteContext) -> None:
        self._p._act("set", "runtime", ctx, "running")

    def stop(self, ctx: SiteContext) -> None:
        self._p._act("set", "runtime", ctx, "stopped")

    def apply_env(self, contexts: list[SiteContext]) -> None:
        for ctx in contexts:
            self._p._act("set", "env", ctx, sorted(ctx.tenant_env))


class _Dns(_Step):
    def ensure(self, ctx: SiteContext) -> None:
        self._p.ensure("dns", ctx, {"domains": sorted(ctx.domains)})

    def preview_url(self, ctx: SiteContext) -> str:
        return f"http://{ctx.site_name}.{ctx.tenant_id}.memory.invalid/"


class _Backups:
    def __init__(self, provider: MemoryProvider) -> None:
        self._p = provider

    def backup(self, ctx: SiteContext, label: str) -> str:
        key = "backup:backup"
        with self._p._lock:
            self._p.calls.append(f"{key}:{ctx.site_name}")
            if key in self._p.fail_on:
                raise InjectedFault(f"injected failure at {key}")
        return f"memory://backups/{ctx.tenant_id}/{ctx.site_name}/{label}"


class MemoryCron:
    """Records each run (site, start, end); `delay` makes a run take time, `fail` fails it."""

    def __init__(self, provider: MemoryProvider) -> None:
        self._p = provider
        self.delay = 0.0
        self.fail: set[str] = set()
        self.runs: list[tuple[str, float, float]] = []

    def run_due(self, ctx: SiteContext) -> CronResult:
        """Pretend to run one due event."""
        started = time.monotonic()
        time.sleep(self.delay)
        with self._p._lock:
            self.runs.append((ctx.site_name, started, time.monotonic()))
        if ctx.site_name in self.fail:
            raise InjectedFault(f"injected cron failure on {ctx.site_name}")
        return CronResult(ok=True, detail="1 due, 1 run", events_run=1)


class MemoryUsage:
    """Storage and database sizes a test sets (by site id and database name)."""

    def __init__(self) -> None:
        self.storage: dict[str, int] = {}
        self.databases: dict[str, int] = {}

    def storage_bytes(self, ctx: SiteContext) -> int:
        return self.storage.get(ctx.site_id, 0)

    def database_bytes(self) -> dict[str, int]:
        return dict(self.databases)


class MemoryLogs:
    """Log entries a test puts in, per site id."""

    def __init__(self) -> None:
        self.entries: dict[str, list[LogEntry]] = {}

    def read_logs(self, ctx: SiteContext, query: LogQuery) -> tuple[list[LogEntry], bool]:
        found = sorted(
            (e for e in self.entries.get(ctx.site_id, []) if matches(e, query)),
            key=lambda e: e.time,
            reverse=True,
        )
        return found[: query.limit], len(found) > query.limit

    def metrics(self, ctx: SiteContext, since: datetime, until: datetime) -> MetricsRead:
        return metrics_from_access(ctx.site_name, self.entries.get(ctx.site_id, []), since, until)


def _write_atomically(path: Path, data: Any) -> None:
    """Replace a JSON file so a process killed mid-write leaves the old one or the new one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
