"""SIGKILL the control plane at every boundary of a real site's create, delete and rollback.

Each case runs tests/integration/crash_worker.py (`--provider local`) against one shared
real stack (MariaDB, PHP-FPM, nginx, WordPress); the worker kills itself at one boundary,
including `after-call:` ones, where the provider has acted and nothing is committed. A
restart in this process recovers the operation, and the end state must be the one the
EXPECTED table pins for that boundary: the operation's status, the site row, what the
homepage answers, and for a site that is gone, no trace of it anywhere (database and its
user, vault rows, vhost, page cache, pool file, socket, PHP processes, system user, site
directory, firewall set, cron state).

Sites are shared to keep the run short: each resumed create hands its ready site to the
next delete case, which would otherwise build one first.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from controlplane.credentials import tenant_backup_password
from controlplane.cron.rounds import run_site, runner_of
from controlplane.engine.backup_steps import record_of
from controlplane.engine.catalogue import CATALOGUE
from controlplane.engine.provider import SiteContext
from controlplane.kernel.vocabulary import OperationKind
from controlplane.models import Backup, Credential, Operation, Site, SiteCronRun
from controlplane.platform import build_platform
from controlplane.providers.local.backups import TAG_ID
from controlplane.providers.local.backups import BackupStep as LocalBackups
from controlplane.providers.local.dns import DEFAULT_SERVER_MARK
from controlplane.providers.local.naming import SiteNames, site_names
from controlplane.providers.readiness import homepage_problem
from controlplane.settings import Settings
from controlplane.stack.local import LocalStack
from tests.integration import crash_worker
from tests.live import local_stack_home

pytestmark = pytest.mark.integration
TENANT = "crash"
FAULT = "ensure:wordpress"  # after the real install: the undo has everything to clean up

CREATE_STEPS = CATALOGUE[OperationKind.CREATE_SITE].step_names
DELETE_STEPS = CATALOGUE[OperationKind.DELETE_SITE].step_names
FORWARD = ("before", "after-call", "after")
UNDO = ("before-undo", "after-undo-call", "after-undo")
CREATE_BOUNDARIES = [f"{when}:{step}" for step in CREATE_STEPS for when in FORWARD]
DELETE_BOUNDARIES = [f"{when}:{step}" for step in DELETE_STEPS for when in FORWARD]
# wordpress fails after its call: every step is undone, wordpress first.
ROLLBACK_BOUNDARIES = [f"{when}:{step}" for step in reversed(CREATE_STEPS) for when in UNDO]
# On the real stack (about 20 s a case on 2 cores) the undo boundaries run where a half-done
# undo leaves real things behind: after each call that removes processes, files, users or the
# database, and before the first undo. The memory provider's crash tests cover every one.
ROLLBACK_ON_STACK = [
    "before-undo:wordpress",
    "after-undo-call:runtime",
    "after-undo-call:storage",
    "after-undo-call:database",
]


@dataclass(frozen=True)
class Expected:
    """The one end state a boundary may lead to."""

    outcome: str  # "ready" | "rolled_back" | "deleted"
    operation: str  # the operation's final status
    site: str | None  # the site row's status; None: no row
    homepage: int  # HTTP status of http://<site>.<tenant>.localhost/


READY = Expected("ready", "succeeded", "ready", 200)
ROLLED_BACK = Expected("rolled_back", "rolled_back", None, 404)
DELETED = Expected("deleted", "succeeded", None, 404)

# Nothing failed in a create, so every crash resumes forward; a create that failed rolls back
# even when the restart has no fault; a delete always finishes.
# The steps as this table pins them: the catalogue's kinds must still name them so, in order.
PINNED_CREATE = ("database", "secrets", "storage", "runtime", "dns", "wordpress")
PINNED_DELETE = ("backup", "wordpress", "dns", "runtime", "storage", "secrets", "database")
EXPECTED: dict[str, dict[str, Expected]] = {
    "create": {f"{when}:{step}": READY for step in PINNED_CREATE for when in FORWARD},
    "rollback": {f"{when}:{step}": ROLLED_BACK for step in PINNED_CREATE[::-1] for when in UNDO},
    "delete": {f"{when}:{step}": DELETED for step in PINNED_DELETE for when in FORWARD},
}


@dataclass(frozen=True)
class ReadySite:
    """A site a resumed create left ready, for a delete case to kill."""

    name: str
    site_id: str


@dataclass
class CrashStack:
    """The shared stack and the ready sites handed from create cases to delete cases."""

    settings: Settings
    ready: list[ReadySite]


@pytest.fixture(scope="module")
def crash_stack() -> Iterator[CrashStack]:
    with local_stack_home("crash") as settings:
        env = CrashStack(settings, [])
        yield env
        for site in env.ready:
            done = _worker(settings, "delete", site.name, "never")
            assert done.returncode == 0, done.stderr[-2000:]
        platform = build_platform(settings)
        with platform.sessions() as session:
            leftovers = session.scalar(select(func.count()).select_from(Site))
        platform.close()
    assert leftovers == 0, "a test left a site behind"


@dataclass
class Died:
    """What a worker printed before it killed itself."""

    site_id: str
    operation_id: str


_SERVER = crash_worker.fork_server()


def _worker(
    settings: Settings, mode: str, site: str, kill_at: str, fail: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    (settings.home / crash_worker.TRAIL_FILE).unlink(missing_ok=True)
    faults = [arg for fault in fail for arg in ("--fail", fault)]
    argv = [mode, "--home", str(settings.home), "--kill-at", kill_at,
            "--provider", "local", "--tenant", TENANT, "--site", site, *faults,
            "--mariadb-port", str(settings.mariadb_port), "--site-port", str(settings.site_port)]  # fmt: skip
    # Forked from a server that imported the platform once (a new interpreter: ~1.5 s more).
    worker = crash_worker.ForkedWorker(_SERVER, dict(os.environ), settings.home, argv)
    try:
        stdout, stderr = worker.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise
    assert worker.returncode is not None
    return subprocess.CompletedProcess(argv, worker.returncode, stdout, stderr)


def _kill(
    settings: Settings, mode: str, site: str, boundary: str, fail: tuple[str, ...] = ()
) -> Died:
    """Run a worker that must die by SIGKILL at `boundary` (the last boundary it passed)."""
    run = _worker(settings, mode, site, boundary, fail)
    assert run.returncode == -signal.SIGKILL, (run.returncode, run.stderr[-3000:])
    trail = (settings.home / crash_worker.TRAIL_FILE).read_text().split()
    assert trail[-1] == boundary, trail
    info = json.loads(run.stdout.splitlines()[0])
    return Died(info["site_id"], info["operation_ids"][0])


def _restart(settings: Settings) -> dict[str, str]:
    """A new control-plane process: recover and wait; return each operation's final status."""
    platform = build_platform(settings)
    try:
        for op_id in platform.engine.recover():
            platform.engine.wait(op_id, timeout=180)
        with platform.sessions() as session:
            return {o.id: o.status for o in session.query(Operation)}
    finally:
        platform.close()


class _NoVault:
    """Names need no credentials."""

    def get_or_create(self, kind: str, username: str) -> tuple[str, str]:
        raise AssertionError("naming needs no credentials")

    def get(self, kind: str) -> tuple[str, str] | None:
        return None


def _names(settings: Settings, name: str, site_id: str) -> SiteNames:
    ctx = SiteContext(
        tenant_id=TENANT, site_id=site_id, site_name=name, title="", admin_email="",
        admin_user="", domains=[], credentials=_NoVault(),
    )  # fmt: skip
    return site_names(ctx, LocalStack.from_settings(settings).sites_dir, settings.platform_domain)


def _site_uid(names: SiteNames) -> int | None:
    try:
        return pwd.getpwnam(names.system_user).pw_uid
    except KeyError:
        return None


def _homepage(settings: Settings, name: str) -> httpx.Response:
    port = settings.site_port
    return httpx.get(
        f"http://127.0.0.1:{port}/",
        headers={"Host": f"{name}.{TENANT}.localhost:{port}"},
        timeout=30,
    )


def _unowned(uid: int | None) -> bool:
    """Whether a deleted site user's uid is still free (other tests' stacks on this machine
    may already have given it to a new site user)."""
    if uid is None:
        return False
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return True
    return False


def _site_processes(names: SiteNames, uid: int | None) -> list[str]:
    """php-fpm workers of the site's pool and any process of its user or under its root."""
    found = []
    uid = uid if _unowned(uid) else None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            owner = proc.stat().st_uid
        except OSError:
            continue  # exited meanwhile
        if (
            f"pool {names.system_user}" in cmdline
            or str(names.root) in cmdline
            or (uid is not None and owner == uid)
        ):
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


def _leftovers(settings: Settings, names: SiteNames, site_id: str, uid: int | None) -> list[str]:
    """Every trace of the site on the machine and in the control plane (empty: none)."""
    stack = LocalStack.from_settings(settings)
    found: list[str] = []
    with stack.mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                    (names.db_name,))  # fmt: skip
        found += [f"database {r[0]}" for r in cur.fetchall()]
        cur.execute("SELECT User, Host FROM mysql.user WHERE User = %s", (names.db_user,))
        found += [f"MariaDB user {r[0]}@{r[1]}" for r in cur.fetchall()]
    platform = build_platform(settings)
    try:
        with platform.sessions() as session:
            kinds = session.scalars(select(Credential.kind).where(Credential.site_id == site_id))
            found += [f"vault row {kind}" for kind in kinds]
            if session.get(SiteCronRun, site_id) is not None:
                found.append("cron state (site_cron_runs row)")
    finally:
        platform.close()
    paths = [
        stack.nginx.site_file(names.key),
        stack.nginx.cache_dir / names.key,
        stack.nginx.log_dir / f"{names.key}.access.json",
        stack.nginx.log_dir / f"{names.key}.error.log",
        stack.phpfpm.pool_file(names.system_user),
        stack.phpfpm.socket(names.system_user),
        names.root,
    ]
    found += [str(p) for p in paths if p.exists() or p.is_symlink()]
    found += _site_processes(names, uid)
    if _site_uid(names) is not None:
        found.append(f"system user {names.system_user}")
    try:
        grp.getgrnam(names.system_user)
        found.append(f"group {names.system_user}")
    except KeyError:
        pass
    # The fence holds exactly the stack's site users: a deleted user's uid must be out of it.
    stray = stack.firewall.members() - stack.firewall.site_uids()
    found += [f"firewall set member {member}" for member in sorted(stray)]
    if _unowned(uid) and uid in stack.firewall.members():
        found.append(f"firewall set member {uid} (the site's)")
    return found


def _assert_end_state(
    settings: Settings, name: str, died: Died, expected: Expected, uid: int | None
) -> None:
    statuses = _restart(settings)
    platform = build_platform(settings)
    try:
        with platform.sessions() as session:
            site = session.get(Site, died.site_id)
            site_status = site.status if site is not None else None
            title = site.title if site is not None else ""
    finally:
        platform.close()
    homepage = _homepage(settings, name)
    names = _names(settings, name, died.site_id)
    seen = Expected(expected.outcome, statuses[died.operation_id], site_status,
                    homepage.status_code)  # fmt: skip
    assert seen == expected, homepage.text[:500]
    if expected.outcome == "ready":
        assert homepage_problem(homepage.status_code, homepage.text, title) is None, homepage.text
        assert _site_uid(names) in LocalStack.from_settings(settings).firewall.members()
    else:
        assert DEFAULT_SERVER_MARK in homepage.text, homepage.text[:500]
        assert _leftovers(settings, names, died.site_id, uid) == []


def _name(prefix: str, boundary: str) -> str:
    return prefix + re.sub(r"[^a-z0-9]", "", boundary)[:24]


def _ready_site(env: CrashStack, name: str) -> ReadySite:
    """A ready site: one a resumed create left, else a new one."""
    if env.ready:
        return env.ready.pop(0)
    done = _worker(env.settings, "create", name, "never")
    assert done.returncode == 0, done.stderr[-2000:]
    site_id = json.loads(done.stdout.splitlines()[0])["site_id"]
    platform = build_platform(env.settings)
    try:
        with platform.sessions() as session:
            site = session.get(Site, site_id)
            error = session.scalar(select(Operation.error).where(Operation.site_id == site_id))
            assert site is not None and site.status == "ready", f"the create failed: {error}"
    finally:
        platform.close()
    return ReadySite(name, site_id)


def _run_cron(settings: Settings, site_id: str) -> None:
    """One real cron run of the site (php-cli as its user), so it has cron state to lose."""
    platform = build_platform(settings)
    try:
        with platform.sessions() as session:
            site = session.get(Site, site_id)
            assert site is not None
            ctx = platform.engine.read_context(session, site)
        runner = runner_of(platform)
        assert runner is not None
        result = run_site(platform, runner, ctx)
        assert result is not None and result.ok, result
        with platform.sessions() as session:
            assert session.get(SiteCronRun, site_id) is not None
    finally:
        platform.close()


def test_the_table_covers_every_boundary() -> None:
    assert list(EXPECTED["create"]) == CREATE_BOUNDARIES
    assert list(EXPECTED["rollback"]) == ROLLBACK_BOUNDARIES
    assert set(ROLLBACK_ON_STACK) <= set(ROLLBACK_BOUNDARIES)
    assert list(EXPECTED["delete"]) == DELETE_BOUNDARIES


@pytest.mark.parametrize("boundary", CREATE_BOUNDARIES)
def test_create_killed_then_restarted(crash_stack: CrashStack, boundary: str) -> None:
    name = _name("c", boundary)
    died = _kill(crash_stack.settings, "create", name, boundary)
    _assert_end_state(crash_stack.settings, name, died, EXPECTED["create"][boundary], None)
    crash_stack.ready.append(ReadySite(name, died.site_id))


@pytest.mark.parametrize("boundary", ROLLBACK_ON_STACK)
def test_failing_create_killed_while_undoing(crash_stack: CrashStack, boundary: str) -> None:
    name = _name("r", boundary)
    settings = crash_stack.settings
    died = _kill(settings, "create", name, boundary, fail=(FAULT,))
    uid = _site_uid(_names(settings, name, died.site_id))  # None once storage is undone
    _assert_end_state(settings, name, died, EXPECTED["rollback"][boundary], uid)


class DuplicateBackup(AssertionError):
    """The delete took its backup twice (the first one is orphaned, not in the operation)."""


# A kill at after-call:backup once made the resumed delete back up again: the backup's id is
# now fixed when the delete is asked, and the store finds a backup by it (a restic tag).
@pytest.mark.parametrize("boundary", DELETE_BOUNDARIES)
def test_delete_killed_then_restarted(crash_stack: CrashStack, boundary: str) -> None:
    settings = crash_stack.settings
    site = _ready_site(crash_stack, _name("d", boundary))
    _run_cron(settings, site.site_id)
    uid = _site_uid(_names(settings, site.name, site.site_id))
    assert uid is not None
    died = _kill(settings, "delete", site.name, boundary)
    assert died.site_id == site.site_id
    _assert_end_state(settings, site.name, died, EXPECTED["delete"][boundary], uid)
    platform = build_platform(settings)
    try:
        with platform.sessions() as session:
            made = session.scalars(select(Backup).where(Backup.site_id == site.site_id)).all()
            assert made, "a delete must take its backup first"
            assert all(b.kind == "pre-delete" and b.status == "succeeded" for b in made), made
            password = tenant_backup_password(session, platform.keyring, TENANT)
            store = platform.provider.backups
            assert isinstance(store, LocalBackups)
            snapshots = []
            for backup in made:  # readable with the tenant's key, and not empty
                archive = store.archive(TENANT, password, record_of(backup))
                assert next(archive, b""), backup.id
                tagged = store.repository(TENANT, password).snapshots([f"{TAG_ID}={backup.id}"])
                snapshots += [s.id for s in tagged]
    finally:
        platform.close()
    # One backup: one row, and in the repository its two snapshots (database, files) only.
    if len(made) != 1 or len(snapshots) != 2:
        raise DuplicateBackup(f"one backup before the delete, not {made} in {snapshots}")


def test_create_failing_before_its_runtime_rolls_back_without_a_trace(
    crash_stack: CrashStack,
) -> None:
    """Only the announced (`building`) server block was up: the database undo takes it down."""
    settings = crash_stack.settings
    name = "rearlystorage"
    died = _kill(settings, "create", name, "after-undo-call:database", fail=("ensure:storage",))
    _assert_end_state(settings, name, died, ROLLED_BACK, None)
