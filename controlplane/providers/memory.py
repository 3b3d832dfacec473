"""An in-memory provider for unit tests, with fault injection and optional file persistence.

It is never used to serve sites: `local` and `gcp` are the real providers. Persisting its
state to a JSON file lets the crash tests kill a process and inspect what it left behind.

Backups (`backups`) keep a copy of each site's content (a database text and a files text the
wordpress step writes and a test may change) per tenant, keyed by backup id, with the
staged, swapped-out and maintenance state of a restore beside it (`<state>.backups.json`).
The content's parts stand for tables and files: `database` is the table `wp_options` (the
title and address live there), `table:<name>` any other table a test writes (one row a
line), `files` the whole of wp-content (one file, `content.txt`).

Like a cloud API, its `create` makes a new resource every time it is called; a step's
`ensure` first looks its resource up and creates only when there is none. A create while the
site already has that resource is a duplicate (a second Cloud Run service, bucket, DNS
record...): it is counted in `duplicates` (persisted beside the state file) so the crash
tests can require zero of them at every boundary.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from controlplane.admin_login import login_key
from controlplane.cron import CronResult
from controlplane.diagnosis import SiteEvidence
from controlplane.engine.packages import (
    CORE_SLUG,
    HealthResult,
    InstalledPackage,
    PackageArchive,
    PackagesStep,
)
from controlplane.engine.provider import (
    ALL,
    AS_TAKEN,
    SITE_TABLE_PREFIX,
    BackupInvalid,
    BackupRecord,
    BackupStep,
    CopyScope,
    DnsStep,
    Fingerprint,
    ImportSource,
    ImportStaged,
    RewriteReport,
    RuntimeStep,
    SiteContext,
    SiteStep,
    Staging,
    TablePrint,
)
from controlplane.kernel.vocabulary import PackageKind
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
    """Keeps each site's resources in a dict; `fail_on={"ensure:runtime"}` injects failures
    (`"backup:backup:blog"`: only on the site named blog)."""

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
        # Bytes a restore may stage (None: no limit); check_space refuses a bigger backup.
        self.free_bytes: int | None = None
        # store: tenant -> backup id -> {"site_id", "content", "password"}; live, staged,
        # previous: site id -> {"database": text, "files": text}; maintenance: site ids.
        self.backup_state: dict[str, Any] = _empty_backup_state()
        if state_file is not None and state_file.exists():
            self.resources = json.loads(state_file.read_text())
        duplicates_file = self._duplicates_file()
        if duplicates_file is not None and duplicates_file.exists():
            self.duplicates = json.loads(duplicates_file.read_text())
        backups_file = self._backups_file()
        if backups_file is not None and backups_file.exists():
            self.backup_state = {**_empty_backup_state(), **json.loads(backups_file.read_text())}
        self.database: SiteStep = _Step(self, "database")
        self.secrets: SiteStep = _Step(self, "secrets")
        self.storage: SiteStep = _Step(self, "storage")
        self.runtime: RuntimeStep = _Runtime(self, "runtime")
        self.dns: DnsStep = _Dns(self, "dns")
        self.wordpress: SiteStep = _Step(self, "wordpress")
        self.backups: BackupStep = _Backups(self)
        # The same object twice: `packages` as the engine sees it, `package_state` for tests.
        self.package_state = MemoryPackages(self)
        self.packages: PackagesStep = self.package_state
        self.logs: SiteLogs = MemoryLogs()
        self.usage = MemoryUsage()
        self.cron = MemoryCron(self)

    def _duplicates_file(self) -> Path | None:
        if self._state_file is None:
            return None
        return self._state_file.with_name(f"{self._state_file.stem}.duplicates.json")

    def _backups_file(self) -> Path | None:
        if self._state_file is None:
            return None
        return self._state_file.with_name(f"{self._state_file.stem}.backups.json")

    def _save(self) -> None:
        duplicates_file = self._duplicates_file()
        backups_file = self._backups_file()
        if self._state_file is None or duplicates_file is None or backups_file is None:
            return
        _write_atomically(duplicates_file, self.duplicates)
        _write_atomically(backups_file, self.backup_state)
        _write_atomically(self._state_file, self.resources)

    def _enter(self, key: str, subject: str) -> None:
        """A call's gate, record and injected fault (the caller holds the lock after)."""
        gate = self.gates.get(key)
        if gate is not None and not gate.wait(timeout=30):
            raise InjectedFault(f"gate {key} was never opened")
        self.calls.append(f"{key}:{subject}")
        if key in self.fail_on or f"{key}:{subject}" in self.fail_on:
            raise InjectedFault(f"injected failure at {key}")

    def content(self, site_id: str, where: str = "live") -> dict[str, str]:
        """A site's content ("live", "staged" or "previous"); empty when there is none."""
        with self._lock:
            return dict(self.backup_state[where].get(site_id, {}))

    def write_content(self, site_id: str, part: str, text: str) -> None:
        """Change a live site's database or files text (what a user's edit would do)."""
        with self._lock:
            self.backup_state["live"].setdefault(site_id, {})[part] = text
            self._save()

    def in_maintenance(self, site_id: str) -> bool:
        """Whether the site answers visitors with the maintenance page."""
        with self._lock:
            return site_id in self.backup_state["maintenance"]

    def stored_backups(self, tenant_id: str) -> dict[str, dict[str, Any]]:
        """The backups kept for a tenant, by id."""
        with self._lock:
            return copy.deepcopy(self.backup_state["store"].get(tenant_id, {}))

    def corrupt(self, tenant_id: str, backup_id: str) -> None:
        """Change a stored backup's bytes (a bit flip in storage): verification must fail."""
        with self._lock:
            entry = self.backup_state["store"][tenant_id][backup_id]
            entry["content"]["database"] = entry["content"].get("database", "") + "\x00"
            self._save()

    def _act(
        self, action: str, step: str, ctx: SiteContext, value: Any = True, create: bool = False
    ) -> None:
        key = f"{action}:{step}"
        gate = self.gates.get(key)
        if gate is not None and not gate.wait(timeout=30):
            raise InjectedFault(f"gate {key} was never opened")
        with self._lock:
            self.calls.append(f"{key}:{ctx.site_name}")
            if key in self.fail_on or f"{key}:{ctx.site_name}" in self.fail_on:
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

    def _first_content(self, ctx: SiteContext) -> None:
        """A freshly installed site's content: its title and address are in the database."""
        with self._lock:
            live = self.backup_state["live"].setdefault(ctx.site_id, {})
            url = f"http://{ctx.site_name}.{ctx.tenant_id}.memory.invalid/"
            live.setdefault("database", f"blogname={ctx.title}; home={url}")
            live.setdefault("files", f"wp-content of {ctx.site_name}")
            self._save()

    def _drop_content(self, site_id: str, part: str) -> None:
        """A removed database or storage takes its live, staged and previous copies along."""
        with self._lock:
            for where in ("live", "staged", "previous"):
                parts = self.backup_state[where].get(site_id)
                if parts is not None:
                    parts.pop(part, None)
                    if not parts:
                        del self.backup_state[where][site_id]
            if part == "files" and site_id in self.backup_state["maintenance"]:
                self.backup_state["maintenance"].remove(site_id)
            if part == "files":
                self.backup_state["packages"].pop(site_id, None)
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
        if self._name == "wordpress":
            self._p._first_content(ctx)

    def remove(self, ctx: SiteContext) -> None:
        self._p._act("remove", self._name, ctx)
        part = {"database": "database", "storage": "files"}.get(self._name)
        if part is not None:
            self._p._drop_content(ctx.site_id, part)


class _Runtime(_Step):
    def start(self, ctx: SiteContext) -> None:
        self._p._act("set", "runtime", ctx, "running")

    def stop(self, ctx: SiteContext) -> None:
        self._p._act("set", "runtime", ctx, "stopped")

    def maintenance(self, ctx: SiteContext, on: bool) -> None:
        with self._p._lock:
            self._p._enter("maintenance:runtime", ctx.site_name)
            held = self._p.backup_state["maintenance"]
            if on and ctx.site_id not in held:
                held.append(ctx.site_id)
            elif not on and ctx.site_id in held:
                held.remove(ctx.site_id)
            self._p._save()

    def apply_env(self, contexts: list[SiteContext]) -> None:
        for ctx in contexts:
            self._p._act("set", "env", ctx, sorted(ctx.tenant_env))


class _Dns(_Step):
    def ensure(self, ctx: SiteContext) -> None:
        self._p.ensure("dns", ctx, {"domains": sorted(ctx.domains)})

    def preview_url(self, ctx: SiteContext) -> str:
        return f"http://{ctx.site_name}.{ctx.tenant_id}.memory.invalid/"


def _empty_backup_state() -> dict[str, Any]:
    # packages: site id -> what it has; packages_aside: key -> site id -> what it had.
    return {"store": {}, "live": {}, "staged": {}, "previous": {}, "maintenance": [],
            "packages": {}, "packages_aside": {}}  # fmt: skip


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


OPTIONS_TABLE, TABLE_PART, FILES_PART = "wp_options", "table:", "files"


def table_of(part: str) -> str | None:
    """The table a content part stands for (None: the files)."""
    if part == FILES_PART:
        return None
    return OPTIONS_TABLE if part == "database" else part.removeprefix(TABLE_PART)


def _rewritten(content: dict[str, str], old: str, new: str) -> tuple[dict[str, str], RewriteReport]:
    """`old` replaced by `new` in every part, and the report the search-replace script would
    give: per part (its table) the lines changed, as cells of one `text` column."""
    changed: dict[str, dict[str, int]] = {}
    for part, text in content.items():
        lines = sum(old in line for line in text.splitlines())
        if lines:
            changed[part.removeprefix("table:")] = {"text": lines}
    cells = sum(c["text"] for c in changed.values())
    report = RewriteReport(tables=changed, rows=cells, cells=cells)
    return {part: text.replace(old, new) for part, text in content.items()}, report


def part_of(table: str) -> str:
    """The content part that holds `table`."""
    return "database" if table == OPTIONS_TABLE else f"{TABLE_PART}{table}"


def _in_scope(part: str, scope: CopyScope) -> bool:
    table = table_of(part)
    return scope.files if table is None else scope.covers(table)


def _table_print(text: str) -> TablePrint:
    rows = len([line for line in text.splitlines() if line])
    return TablePrint(rows=rows, checksum=zlib.crc32(text.encode()) if rows else 0)


def _backup_id(record: BackupRecord) -> str:
    """The id in a memory location, `memory:<tenant>/<backup id>`."""
    return record.location.rsplit("/", 1)[-1]


class _Backups:
    """Backups kept in the provider's state, one store per tenant guarded by its key."""

    def __init__(self, provider: MemoryProvider) -> None:
        self._p = provider

    def _store(self, tenant_id: str, password: str) -> dict[str, Any]:
        """The tenant's store; a key other than the one it was first written with is refused
        (like a restic repository's password)."""
        if not password:
            raise BackupInvalid("no backup key was given")
        stores = self._p.backup_state["store"]
        store: dict[str, Any] = stores.setdefault(tenant_id, {})
        for entry in store.values():
            if entry["password"] != _sha256(password):
                raise BackupInvalid(f"wrong backup key for tenant {tenant_id}")
            break
        return store

    def _entry(self, tenant_id: str, password: str, record: BackupRecord) -> dict[str, Any]:
        entry: dict[str, Any] | None = self._store(tenant_id, password).get(_backup_id(record))
        if entry is None:
            raise BackupInvalid(f"backup {record.location} is not in storage")
        got = {part: _sha256(text) for part, text in entry["content"].items()}
        if got != record.checksums:
            raise BackupInvalid(f"backup {record.location} does not match its checksums")
        return entry

    def backup(self, ctx: SiteContext, backup_id: str) -> BackupRecord:
        with self._p._lock:
            self._p._enter("backup:backup", ctx.site_name)
            store = self._store(ctx.tenant_id, ctx.backup_password)
            location = f"memory:{ctx.tenant_id}/{backup_id}"
            entry = store.get(backup_id)
            if entry is None:
                content = dict(self._p.backup_state["live"].get(ctx.site_id, {}))
                known = {
                    _sha256(text) for other in store.values() for text in other["content"].values()
                }
                added = sum(len(t) for t in content.values() if _sha256(t) not in known)
                entry = {
                    "site_id": ctx.site_id,
                    "content": content,
                    "password": _sha256(ctx.backup_password),
                    "added_bytes": added,
                }
                store[backup_id] = entry
                self._p._save()
            checksums = {part: _sha256(text) for part, text in entry["content"].items()}
            record = BackupRecord(
                location=location,
                size_bytes=sum(len(t) for t in entry["content"].values()),
                added_bytes=int(entry["added_bytes"]),
                checksums=checksums,
            )
            self._entry(ctx.tenant_id, ctx.backup_password, record)  # verified after writing
            return record

    def verify(self, ctx: SiteContext, record: BackupRecord) -> None:
        with self._p._lock:
            self._p._enter("verify:backup", ctx.site_name)
            self._entry(ctx.tenant_id, ctx.backup_password, record)

    def check_space(self, ctx: SiteContext, record: BackupRecord) -> None:
        with self._p._lock:
            self._p._enter("check_space:backup", ctx.site_name)
            free = self._p.free_bytes
            if free is not None and record.size_bytes > free:
                raise ValueError(
                    f"restoring needs {record.size_bytes} bytes and {free} are free: "
                    "free some space first"
                )

    def stage(
        self, ctx: SiteContext, record: BackupRecord, how: Staging = AS_TAKEN
    ) -> RewriteReport | None:
        rewrite_from, scope = how.rewrite_from, how.scope
        report = None
        with self._p._lock:
            self._p._enter("stage:backup", ctx.site_name)
            content = dict(self._entry(ctx.tenant_id, ctx.backup_password, record)["content"])
            for table in scope.tables or ():
                if part_of(table) not in content:
                    raise ValueError(f"the copy has no table {table}")
            content = {part: text for part, text in content.items() if _in_scope(part, scope)}
            if rewrite_from:
                url = f"http://{ctx.site_name}.{ctx.tenant_id}.memory.invalid/"
                content, report = _rewritten(content, rewrite_from, url)
            self._p.backup_state["staged"][ctx.site_id] = content
            self._p._save()
        return report

    def stage_import(self, ctx: SiteContext, source: ImportSource) -> ImportStaged:
        """The dump's text as the database (its old address rewritten), the names in the
        content archive as the files (the live files kept without one)."""
        raw = source.dump.read_bytes()
        dumped = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
        url = f"http://{ctx.site_name}.{ctx.tenant_id}.memory.invalid/"
        rewritten, report = _rewritten(
            {"database": dumped}, source.rewrite_from.rstrip("/"), url.rstrip("/")
        )
        database = rewritten["database"]
        if source.table_prefix != SITE_TABLE_PREFIX:
            database = database.replace(source.table_prefix, SITE_TABLE_PREFIX)
        if source.reset_admin:
            database += f"; administrator={ctx.admin_user}"
        files: str | None = None
        if source.content is not None:
            with tarfile.open(source.content, mode="r:gz") as tar:
                names = sorted(m.name for m in tar if m.name.startswith("wp-content/"))
            files = "files: " + ", ".join(names)
        with self._p._lock:
            self._p._enter("stage_import:backup", ctx.site_name)
            live = self._p.backup_state["live"].get(ctx.site_id, {})
            staged = {"database": database, "files": files or live.get("files", "")}
            self._p.backup_state["staged"][ctx.site_id] = staged
            self._p._save()
        found = re.search(r"'blogname','([^']*)'", database)
        return ImportStaged(found.group(1) if found else "", report)

    def unstage(self, ctx: SiteContext) -> None:
        with self._p._lock:
            self._p._enter("unstage:backup", ctx.site_name)
            self._p.backup_state["staged"].pop(ctx.site_id, None)
            self._p._save()

    def swap(self, ctx: SiteContext, scope: CopyScope = ALL) -> None:
        self._exchange(ctx, scope, "swap", incoming="staged", outgoing="previous")

    def unswap(self, ctx: SiteContext, scope: CopyScope = ALL) -> None:
        self._exchange(ctx, scope, "unswap", incoming="previous", outgoing="staged")

    def _exchange(
        self, ctx: SiteContext, scope: CopyScope, step: str, *, incoming: str, outgoing: str
    ) -> None:
        """The `incoming` copy goes live and the live parts in `scope` go to `outgoing`; every
        other part stays live. Nothing without an `incoming` copy (done already, or the
        unswap of a swap that never happened)."""
        with self._p._lock:
            self._p._enter(f"{step}:backup", ctx.site_name)
            state = self._p.backup_state
            arriving = state[incoming].pop(ctx.site_id, None)
            if arriving is None:
                return
            live = state["live"].get(ctx.site_id, {})
            state[outgoing][ctx.site_id] = {p: t for p, t in live.items() if _in_scope(p, scope)}
            kept = {p: t for p, t in live.items() if not _in_scope(p, scope)}
            state["live"][ctx.site_id] = {**kept, **arriving}
            self._p._save()

    def fingerprint(self, ctx: SiteContext) -> Fingerprint:
        with self._p._lock:
            self._p._enter("fingerprint:backup", ctx.site_name)
            live = dict(self._p.backup_state["live"].get(ctx.site_id, {}))
        tables: dict[str, TablePrint] = {}
        files: dict[str, str] = {}
        for part, text in live.items():
            table = table_of(part)
            if table is None:
                files["content.txt"] = _sha256(text)
            else:
                tables[table] = _table_print(text)
        return Fingerprint(tables=tables, files=files)

    def discard_previous(self, ctx: SiteContext) -> None:
        with self._p._lock:
            self._p._enter("discard_previous:backup", ctx.site_name)
            self._p.backup_state["previous"].pop(ctx.site_id, None)
            self._p._save()

    def forget(self, tenant_id: str, backup_password: str, records: list[BackupRecord]) -> None:
        with self._p._lock:
            self._p._enter("forget:backup", tenant_id)
            store = self._store(tenant_id, backup_password)
            for record in records:
                store.pop(_backup_id(record), None)
            self._p._save()

    def archive(
        self, tenant_id: str, backup_password: str, record: BackupRecord
    ) -> Iterator[bytes]:
        with self._p._lock:
            self._p._enter("archive:backup", tenant_id)
            content = dict(self._entry(tenant_id, backup_password, record)["content"])
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name, text in (
                ("database.sql", content.get("database", "")),
                ("wp-content/content.txt", content.get("files", "")),
            ):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        data = buffer.getvalue()
        for start in range(0, len(data), 64 * 1024):
            yield data[start : start + 64 * 1024]


MEMORY_CORE_VERSION = "6.7.1"
MEMORY_THEME = "twentytwentyfour"


class MemoryPackages:
    """Each site's core, plugins and themes as data. A test makes a version fail the health
    probe (`broken.add("plugin:demo:1.2")`: a PHP fatal), or a call fail (`fail_on`
    "install:packages", "restore_previous:packages", ...)."""

    def __init__(self, provider: MemoryProvider) -> None:
        self._p = provider
        self.broken: set[str] = set()

    def _site(self, ctx: SiteContext) -> dict[str, Any]:
        """The site's package state (the lock held), made on first use as a fresh install."""
        sites: dict[str, dict[str, Any]] = self._p.backup_state["packages"]
        return sites.setdefault(ctx.site_id, {
            "core": MEMORY_CORE_VERSION, "db_version": MEMORY_CORE_VERSION, "plugin": {},
            "theme": {MEMORY_THEME: {"version": "1.0", "name": "Twenty Twenty-Four"}},
            "stylesheet": MEMORY_THEME,
        })  # fmt: skip

    def installed(self, ctx: SiteContext) -> list[InstalledPackage]:
        with self._p._lock:
            self._p._enter("installed:packages", ctx.site_name)
            site = copy.deepcopy(self._site(ctx))
        found = [InstalledPackage(PackageKind.CORE, CORE_SLUG, site["core"], True, "WordPress")]
        for slug, item in sorted(site["plugin"].items()):
            found.append(InstalledPackage(PackageKind.PLUGIN, slug, item["version"],
                                          bool(item.get("active")), item["name"]))  # fmt: skip
        for slug, item in sorted(site["theme"].items()):
            found.append(InstalledPackage(PackageKind.THEME, slug, item["version"],
                                          slug == site["stylesheet"], item["name"]))  # fmt: skip
        return found

    def install(
        self, ctx: SiteContext, archives: list[PackageArchive], *, key: str, activate: bool
    ) -> None:
        with self._p._lock:
            self._p._enter("install:packages", ctx.site_name)
            site = self._site(ctx)
            aside = self._p.backup_state["packages_aside"].setdefault(key, {})
            aside.setdefault(ctx.site_id, copy.deepcopy(site))  # a repeat keeps the first
            for archive in archives:
                if archive.kind is PackageKind.CORE:
                    site["core"] = archive.version
                    continue
                kind = str(archive.kind)
                before = site[kind].get(archive.slug, {})
                site[kind][archive.slug] = {
                    "version": archive.version,
                    "name": before.get("name", archive.slug.title()),
                    "active": bool(before.get("active")) or (activate and kind == "plugin"),
                }
                if activate and archive.kind is PackageKind.THEME:
                    site["stylesheet"] = archive.slug
            self._p._save()

    def restore_previous(self, ctx: SiteContext, *, key: str) -> None:
        with self._p._lock:
            self._p._enter("restore_previous:packages", ctx.site_name)
            aside = self._p.backup_state["packages_aside"].get(key, {})
            before = aside.pop(ctx.site_id, None)
            if before is not None:
                self._p.backup_state["packages"][ctx.site_id] = before
            if not aside:
                self._p.backup_state["packages_aside"].pop(key, None)
            self._p._save()

    def discard_previous(self, ctx: SiteContext, *, key: str) -> None:
        with self._p._lock:
            self._p._enter("discard_previous:packages", ctx.site_name)
            aside = self._p.backup_state["packages_aside"].get(key, {})
            aside.pop(ctx.site_id, None)
            if not aside:
                self._p.backup_state["packages_aside"].pop(key, None)
            self._p._save()

    def upgrade_database(self, ctx: SiteContext) -> None:
        with self._p._lock:
            self._p._enter("upgrade_database:packages", ctx.site_name)
            site = self._site(ctx)
            site["db_version"] = site["core"]
            self._p._save()

    def log_mark(self, ctx: SiteContext) -> str:
        with self._p._lock:
            self._p._enter("log_mark:packages", ctx.site_name)
            return "0"

    def health(self, ctx: SiteContext, since_mark: str) -> HealthResult:
        with self._p._lock:
            self._p._enter("health:packages", ctx.site_name)
            site = copy.deepcopy(self._site(ctx))
        for kind in ("plugin", "theme"):
            for slug, item in sorted(site[kind].items()):
                if f"{kind}:{slug}:{item['version']}" in self.broken:
                    return HealthResult(
                        "php_fatal", f"PHP Fatal error in {kind} {slug} {item['version']}"
                    )
        if f"core:{CORE_SLUG}:{site['core']}" in self.broken:
            return HealthResult("homepage", f"the homepage answers HTTP 500 on {site['core']}")
        return HealthResult(None, "homepage, login, REST API answer; no new PHP fatal")

    def aside(self) -> dict[str, Any]:
        """What installs set aside, by key then site (tests)."""
        with self._p._lock:
            return copy.deepcopy(self._p.backup_state["packages_aside"])


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
        self.extra: dict[str, SiteEvidence] = {}

    def read_logs(self, ctx: SiteContext, query: LogQuery) -> tuple[list[LogEntry], bool]:
        found = sorted(
            (e for e in self.entries.get(ctx.site_id, []) if matches(e, query)),
            key=lambda e: e.time,
            reverse=True,
        )
        return found[: query.limit], len(found) > query.limit

    def metrics(self, ctx: SiteContext, since: datetime, until: datetime) -> MetricsRead:
        return metrics_from_access(ctx.site_name, self.entries.get(ctx.site_id, []), since, until)

    def evidence(self, ctx: SiteContext, since: datetime, until: datetime) -> SiteEvidence:
        """The site's entries, plus what a test put in `extra` (slow requests, queries...)."""
        entries = [e for e in self.entries.get(ctx.site_id, []) if since <= e.time <= until]
        extra = self.extra.get(ctx.site_id, SiteEvidence(requests=[], php=[]))
        return extra.model_copy(update={
            "requests": [e for e in entries if e.source == "access"],
            "php": [e for e in entries if e.source == "php"],
        })  # fmt: skip


def _write_atomically(path: Path, data: Any) -> None:
    """Replace a JSON file so a process killed mid-write leaves the old one or the new one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
