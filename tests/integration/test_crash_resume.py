"""Crash at every step boundary, restart, and the site is all there or not there at all.

Each case runs tests/integration/crash_worker.py as a real subprocess that starts a create
(or delete) and SIGKILLs itself at one named step boundary. A restart (in this process, or
another worker) builds the platform on the same home and calls `engine.recover()`. The end
state must then be exactly one of:

- a finished site: row 'ready', operation 'succeeded', all six resources in the provider;
- nothing: no site row, no credentials, operation 'rolled_back' (create) or 'succeeded'
  (delete), no resources of that site id in the provider.

The worker's provider persists to a JSON file in the shared home, so what the dead process
left behind is visible to the restart and to the assertions.

Cases: every boundary of (a) a create, (b) a create whose `wordpress` step fails (so every
boundary of the rollback too), (c) a delete of a ready site, (d) every other kind in the
engine's catalogue (start, stop, update_domains, apply_env...: the boundary lists come from
the catalogue, the way to start each kind and its end state from crash_kinds.SCENARIOS, so a
new kind is crash-tested once it has a scenario); a kill before the engine starts;
a restart in a second process; and a create that dies at the same place on every start-up
until the engine gives up (max_attempts) and rolls back. The per-boundary workers are forked
from a server that imported the platform once (a new interpreter spends ~1.5 s of CPU on
imports; the two tests of whole restarts still start one), each on a copy of a home built
once per starting state, and the next test's worker is started while the current one is
checked.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from controlplane.credentials import DatabaseVault
from controlplane.crypto import load_keyring
from controlplane.db import make_engine, make_sessionmaker
from controlplane.engine.catalogue import CATALOGUE
from controlplane.kernel.identity import Principal, Role
from controlplane.kernel.vocabulary import ACTIVE_STATUSES, OperationKind
from controlplane.models import (
    Backup,
    Credential,
    Domain,
    Operation,
    OperationEvent,
    Site,
    SiteFingerprint,
)
from controlplane.platform import Platform, build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings
from tests.integration import crash_worker
from tests.integration.crash_kinds import (
    BACKED_UP,
    BYSTANDER,
    CHANGED,
    COPY,
    ENV_SECRET,
    EXTRA_STARTERS,
    SCENARIOS,
    STAGED_EDIT,
    start_create_from_backup,
)

pytestmark = pytest.mark.integration

WORKER = Path(crash_worker.__file__).resolve()
STATE_FILE = crash_worker.STATE_FILE
TENANT = crash_worker.TENANT
SITE = crash_worker.SITE
SIGKILLED = -signal.SIGKILL
WORKER_TIMEOUT = 120
FAIL_STEP = "wordpress"
FAULT = f"ensure:{FAIL_STEP}"

CREATE_STEPS = CATALOGUE[OperationKind.CREATE_SITE].step_names
FORWARD = ("before", "after-call", "after")  # step started / provider call returned / committed
UNDO = ("before-undo", "after-undo-call", "after-undo")


def forward_boundaries(kind: OperationKind) -> list[str]:
    """Every boundary a kind's run passes when nothing fails, in order (from the catalogue)."""
    return [f"{when}:{step}" for step in CATALOGUE[kind].step_names for when in FORWARD]


# Every boundary the engine passes, in order. test_boundary_lists_match_the_engine checks
# these lists against a real run, so a new boundary cannot go untested.
CREATE_BOUNDARIES = forward_boundaries(OperationKind.CREATE_SITE)
# wordpress fails: forward up to before:wordpress, then undo of every step that ran
# (wordpress included: a failed ensure may have left something behind), in reverse.
FAILING_CREATE_BOUNDARIES = [
    *CREATE_BOUNDARIES[: CREATE_BOUNDARIES.index(f"before:{FAIL_STEP}") + 1],
    *(
        f"{when}:{step}"
        for step in reversed(CREATE_STEPS[: CREATE_STEPS.index(FAIL_STEP) + 1])
        for when in UNDO
    ),
]
DELETE_BOUNDARIES = forward_boundaries(OperationKind.DELETE_SITE)
# A bulk of two sites, one child at a time: the parent's step starts, each child runs whole,
# then the parent's step ends (it waits in between without passing a boundary).
BULK_CHILD_BOUNDARIES = forward_boundaries(OperationKind.BACKUP_SITE)
BULK_BOUNDARIES = [
    "before:children",
    *BULK_CHILD_BOUNDARIES,
    *BULK_CHILD_BOUNDARIES,
    "after-call:children",
    "after:children",
]
# The kinds with a test of their own below; every other kind runs in the generic one.
OWN_TESTS = (OperationKind.CREATE_SITE, OperationKind.DELETE_SITE)
OTHER_KIND_CASES = [
    (kind, boundary)
    for kind in CATALOGUE
    if kind not in OWN_TESTS
    for boundary in forward_boundaries(kind)
]


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def worker_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The workers' environment: no AIPRESS_* leaking in, and a byte-code cache.

    PYTHONDONTWRITEBYTECODE would make every worker compile SQLAlchemy, Alembic and
    pydantic from source (about 2 s each); a cache outside the tree keeps them near 1 s.
    """
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        pycache = cache.mkdir("crash-worker-pycache")
    else:  # -p no:cacheprovider
        pycache = Path(tempfile.gettempdir()) / f"aipress-crash-worker-pycache-{os.getuid()}"
        pycache.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPRESS_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class WorkerRun:
    """What a worker printed before it died (or ended)."""

    returncode: int
    site_id: str | None
    operation_ids: list[str]
    stdout: str
    stderr: str

    def describe(self, home: Path) -> str:
        log = home / "worker.log"
        tail = log.read_text()[-3000:] if log.exists() else ""
        return (
            f"returncode={self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}\n"
            f"worker.log (tail):\n{tail}"
        )


def start_worker(
    env: dict[str, str],
    home: Path,
    mode: str,
    *,
    kill_at: str | None,
    fail: Iterable[str] = (),
    max_attempts: int = 3,
) -> subprocess.Popen[str]:
    """Start crash_worker.py as a real subprocess (sys.executable)."""
    args = [
        sys.executable,
        str(WORKER),
        *worker_argv(home, mode, kill_at=kill_at, fail=fail, max_attempts=max_attempts),
    ]
    return subprocess.Popen(
        args,
        env=env,
        cwd=str(WORKER.parents[2]),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def worker_argv(
    home: Path, mode: str, *, kill_at: str | None, fail: Iterable[str] = (), max_attempts: int = 3
) -> list[str]:
    """crash_worker.py's arguments for one run."""
    args = [mode, "--home", str(home), "--max-attempts", str(max_attempts)]
    if kill_at is not None:
        args += ["--kill-at", kill_at]
    for fault in fail:
        args += ["--fail", fault]
    return args


def finish_worker(proc: subprocess.Popen[str] | crash_worker.ForkedWorker) -> WorkerRun:
    """Wait for a worker and parse the JSON line it printed before running."""
    try:
        stdout, stderr = proc.communicate(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    first = next((line for line in stdout.splitlines() if line.startswith("{")), None)
    info: dict[str, Any] = json.loads(first) if first else {}
    return WorkerRun(
        returncode=proc.returncode,
        site_id=info.get("site_id"),
        operation_ids=list(info.get("operation_ids", [])),
        stdout=stdout,
        stderr=stderr,
    )


def run_worker(
    env: dict[str, str],
    home: Path,
    mode: str,
    *,
    kill_at: str | None,
    fail: Iterable[str] = (),
    max_attempts: int = 3,
) -> WorkerRun:
    """Run one worker to its end (or its death)."""
    return finish_worker(
        start_worker(env, home, mode, kill_at=kill_at, fail=fail, max_attempts=max_attempts)
    )


def assert_killed_at(run: WorkerRun, home: Path, boundary: str) -> None:
    """The worker died by SIGKILL, and the last boundary it passed is the target."""
    assert run.returncode == SIGKILLED, run.describe(home)
    trail = (home / crash_worker.TRAIL_FILE).read_text().splitlines()
    if boundary == crash_worker.BEFORE_RUN:
        assert trail == [], trail
        return
    assert trail, "the worker passed no boundary"
    assert trail[-1].split(" ", 1)[1] == boundary, trail


def make_settings(home: Path, max_attempts: int = 3) -> Settings:
    return Settings(
        provider="memory",
        home=home,
        log_level="DEBUG",
        max_parallel_operations=2,
        max_resume_attempts=max_attempts,
    )


def restart(
    home: Path,
    *,
    fail: Iterable[str] = (),
    max_attempts: int = 3,
    seen: list[str] | None = None,
) -> list[str]:
    """A clean start-up in this process: build the platform, recover(), wait for the ops."""
    provider = MemoryProvider(state_file=home / STATE_FILE, fail_on=set(fail))
    hook = seen.append if seen is not None else None
    platform = build_platform(
        make_settings(home, max_attempts), provider=provider, boundary_hook=hook
    )
    try:
        recovered = platform.engine.recover()
        for op_id in recovered:
            platform.engine.wait(op_id, timeout=60)
    finally:
        platform.close()
    return recovered


def provider_state(home: Path) -> dict[str, dict[str, Any]]:
    """What the provider holds, read from its file (what a dead process left behind)."""
    path = home / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


@dataclass
class EndState:
    outcome: str  # "ready" or "gone"
    operation: dict[str, Any]


def assert_all_or_nothing(home: Path, site_id: str, operation_id: str, kind: str) -> EndState:
    """The site is fully made or fully gone, and nothing is left running; never half-made."""
    db = make_engine(make_settings(home))
    try:
        with make_sessionmaker(db)() as session:
            site = session.get(Site, site_id)
            op = session.get(Operation, operation_id)
            assert op is not None, f"operation {operation_id} vanished"
            steps = {s.name: s.status for s in op.steps}
            events = list(
                session.scalars(
                    select(OperationEvent.type)
                    .where(OperationEvent.operation_id == op.id)
                    .order_by(OperationEvent.id)
                )
            )
            credentials = set(
                session.scalars(select(Credential.kind).where(Credential.site_id == site_id))
            )
            vault = DatabaseVault(session, load_keyring(make_settings(home)), site_id)
            passwords = [stored[1] for kind in credentials if (stored := vault.get(kind))]
            domains = session.scalar(
                select(func.count()).select_from(Domain).where(Domain.site_id == site_id)
            )
            active = list(
                session.scalars(select(Operation.id).where(Operation.status.in_(ACTIVE_STATUSES)))
            )
            summary = {
                "status": op.status,
                "error": op.error,
                "attempts": op.attempts,
                "steps": steps,
                "events": events,
                "params": dict(op.params or {}),
                "site": None
                if site is None
                else {
                    "status": site.status,
                    "resources": dict(site.resources or {}),
                    "current_operation_id": site.current_operation_id,
                    "preview_url": site.preview_url,
                },
            }
    finally:
        db.dispose()
    left = provider_state(home).get(site_id, {})
    detail = f"half-made end state:\n{json.dumps(summary, indent=1)}\nprovider: {left}"

    assert not active, f"operations still active after recovery: {active}\n{detail}"
    # A step that created its resource again on resume (a second one, the first orphaned).
    duplicates = MemoryProvider(state_file=home / STATE_FILE).duplicates
    assert duplicates == {}, f"duplicate creates: {duplicates}\n{detail}"
    worker_log = home / "worker.log"
    logged = worker_log.read_text() if worker_log.exists() else ""
    assert not [p for p in passwords if p in logged], "a site password reached worker.log"
    if summary["site"] is not None and summary["site"]["status"] == "ready":
        assert kind == "create_site", detail
        assert summary["status"] == "succeeded", detail
        assert summary["site"]["current_operation_id"] is None, detail
        assert summary["site"]["preview_url"], detail
        assert set(summary["site"]["resources"]) == set(CREATE_STEPS), detail
        assert set(left) == set(CREATE_STEPS), detail
        assert set(steps.values()) == {"done"}, detail
        assert {"database", "wordpress_admin"} <= credentials, detail
        return EndState("ready", summary)
    assert summary["site"] is None, detail
    expected = "rolled_back" if kind == "create_site" else "succeeded"
    assert summary["status"] == expected, detail
    assert op.site_id is None, detail
    assert left == {}, detail
    assert credentials == set(), detail
    assert domains == 0, detail
    return EndState("gone", summary)


ADMIN = Principal("crash-admin", Role.ADMIN, email=crash_worker.ADMIN_EMAIL)


def prepare_backed_up(platform: Platform, provider: MemoryProvider, site_id: str) -> None:
    """The site backed up with BACKED_UP, then changed to CHANGED."""
    provider.write_content(site_id, "database", BACKED_UP)
    _site_id, op_id = SCENARIOS[OperationKind.BACKUP_SITE].start(platform, ADMIN, TENANT, SITE)
    platform.engine.run(op_id)
    provider.write_content(site_id, "database", CHANGED)


def prepare_site(home: Path, needs: str | None, *, seen: list[str] | None = None) -> None:
    """Build in this process the site a kind's scenario starts from (nothing, ready, stopped).

    With `seen`, the boundaries of one more run of the kind are recorded into it.
    """
    provider = MemoryProvider(state_file=home / STATE_FILE)
    platform = build_platform(make_settings(home), provider=provider)
    try:
        if needs is not None:
            site_id, op_id = SCENARIOS[OperationKind.CREATE_SITE].start(
                platform, ADMIN, TENANT, SITE
            )
            platform.engine.run(op_id)
            assert set(provider_state(home)[site_id]) == set(CREATE_STEPS)
        if needs == "pair":  # a second ready site beside the victim
            _other_id, op_id = SCENARIOS[OperationKind.CREATE_SITE].start(
                platform, ADMIN, TENANT, BYSTANDER
            )
            platform.engine.run(op_id)
        if needs == "stopped":
            _site_id, op_id = SCENARIOS[OperationKind.STOP_SITE].start(
                platform, ADMIN, TENANT, SITE
            )
            platform.engine.run(op_id)
        if needs == "backed_up":
            prepare_backed_up(platform, provider, site_id)
        if needs == "staged":  # cloned, then the copy edited
            staging_id, op_id = SCENARIOS[OperationKind.CLONE_SITE].start(
                platform, ADMIN, TENANT, SITE
            )
            platform.engine.run(op_id)
            provider.write_content(staging_id, "database", STAGED_EDIT)
        if needs == "corrupted":  # backed up as above, then its stored bytes changed
            prepare_backed_up(platform, provider, site_id)
            with platform.sessions() as session:
                (backup_id,) = session.scalars(select(Backup.id))
            provider.corrupt(TENANT, backup_id)
    finally:
        platform.close()


def mode_of(kind: OperationKind) -> str:
    """The worker's mode that starts `kind` (create and delete have their own names)."""
    return {OperationKind.CREATE_SITE: "create", OperationKind.DELETE_SITE: "delete"}.get(
        kind, str(kind)
    )


def kind_of(mode: str) -> OperationKind:
    """The kind a worker's mode starts."""
    named = {
        "create": OperationKind.CREATE_SITE,
        "delete": OperationKind.DELETE_SITE,
        "create_from_backup": OperationKind.CREATE_SITE,
        "verify_corrupted": OperationKind.VERIFY_BACKUP,
    }
    return named.get(mode) or OperationKind(mode)


def needs_of(mode: str) -> str | None:
    """What the site must be before the worker's operation starts."""
    if mode == "create_from_backup":
        return "backed_up"  # the site whose backup the new one is made from
    if mode == "verify_corrupted":
        return "corrupted"
    return SCENARIOS[kind_of(mode)].needs


@dataclass(frozen=True)
class Case:
    """One crash: which operation, where its worker kills itself, which fault it injects."""

    mode: str  # "create", or "delete" of a ready site
    kill_at: str
    fail: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.kill_at


@dataclass
class Crashed:
    """A worker that died where its case said; `home` is what it left behind."""

    case: Case
    home: Path
    run: WorkerRun

    @property
    def site_id(self) -> str:
        assert self.run.site_id is not None
        return self.run.site_id

    @property
    def operation_id(self) -> str:
        return self.run.operation_ids[0]


class CrashPool:
    """Starts the next test's crash worker while the current test restarts and checks.

    Each worker is its own process on its own home, so keeping two in flight changes only the
    wall time. Workers are forked from a server that imported the platform once, and each
    home is a copy of a template built once per starting state (a fresh copy every case).
    """

    def __init__(self, env: dict[str, str], factory: pytest.TempPathFactory) -> None:
        self._env = env
        self._factory = factory
        self._started: dict[Case, tuple[Path, crash_worker.ForkedWorker]] = {}
        self._templates: dict[str | None, Path] = {}
        self._server = crash_worker.fork_server()

    def _prepare(self, home: Path, needs: str | None) -> None:
        """The home prepare_site(home, needs) would build, copied from its template."""
        if needs not in self._templates:
            template = self._factory.mktemp("template") / "home"
            prepare_site(template, needs)
            self._templates[needs] = template
        shutil.copytree(self._templates[needs], home)

    def start(self, case: Case) -> None:
        if case in self._started:
            return
        home = self._factory.mktemp("crash") / "home"
        self._prepare(home, needs_of(case.mode))
        argv = worker_argv(home, case.mode, kill_at=case.kill_at, fail=case.fail)
        self._started[case] = (home, crash_worker.ForkedWorker(self._server, self._env, home, argv))

    def finish(self, case: Case) -> tuple[Path, WorkerRun]:
        self.start(case)
        home, proc = self._started.pop(case)
        return home, finish_worker(proc)

    def close(self) -> None:
        """Reap workers started for tests that did not run (-x, interrupted session)."""
        for _home, proc in self._started.values():
            proc.kill()
            proc.communicate()
        self._started.clear()


@pytest.fixture(scope="session")
def crash_pool(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CrashPool]:
    pool = CrashPool(worker_env, tmp_path_factory)
    yield pool
    pool.close()


def _case_of(item: pytest.Item) -> Case | None:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("case") if callspec is not None else None
    return case if isinstance(case, Case) else None


@pytest.fixture
def crashed(request: pytest.FixtureRequest, crash_pool: CrashPool, case: Case) -> Crashed:
    """This test's worker, dead by SIGKILL at its boundary (the next one starts meanwhile)."""
    crash_pool.start(case)
    items = request.session.items
    index = items.index(request.node)
    if index + 1 < len(items) and (upcoming := _case_of(items[index + 1])) is not None:
        crash_pool.start(upcoming)
    home, run = crash_pool.finish(case)
    assert_killed_at(run, home, case.kill_at)
    assert run.site_id and len(run.operation_ids) == 1, run.describe(home)
    return Crashed(case, home, run)


# --- the boundary lists are complete ---------------------------------------------------------


def _recorded_boundaries(home: Path, *, kind: OperationKind, fail: set[str]) -> list[str]:
    prepare_site(home, SCENARIOS[kind].needs)
    seen: list[str] = []
    provider = MemoryProvider(state_file=home / STATE_FILE, fail_on=fail)
    platform = build_platform(make_settings(home), provider=provider, boundary_hook=seen.append)
    try:
        _site_id, op_id = SCENARIOS[kind].start(platform, ADMIN, TENANT, SITE)
        # As the API runs it: a kind that waits (a bulk, for its children) is run again.
        platform.engine.submit(op_id)
        platform.engine.wait(op_id, timeout=60)
    finally:
        platform.close()
    return seen


def test_every_kind_in_the_catalogue_has_a_crash_scenario() -> None:
    assert set(SCENARIOS) == set(CATALOGUE)


@pytest.mark.parametrize(
    ("kind", "fail", "expected"),
    [
        *(
            (kind, set(), forward_boundaries(kind))
            for kind in CATALOGUE
            if kind != OperationKind.BULK
        ),
        (OperationKind.BULK, set(), BULK_BOUNDARIES),
        (OperationKind.CREATE_SITE, {FAULT}, FAILING_CREATE_BOUNDARIES),
    ],
    ids=[*(str(k) for k in CATALOGUE if k != OperationKind.BULK), "bulk", "create_site-failing"],
)
def test_boundary_lists_match_the_engine(
    tmp_path: Path, kind: OperationKind, fail: set[str], expected: list[str]
) -> None:
    assert _recorded_boundaries(tmp_path / "home", kind=kind, fail=fail) == expected


# --- crash at every boundary, then restart ---------------------------------------------------


@pytest.mark.parametrize("case", [Case("create", b) for b in CREATE_BOUNDARIES], ids=str)
def test_create_killed_at_boundary_resumes_to_ready(crashed: Crashed) -> None:
    recovered = restart(crashed.home)

    assert recovered == crashed.run.operation_ids
    end = assert_all_or_nothing(crashed.home, crashed.site_id, crashed.operation_id, "create_site")
    # Nothing failed, so a crash must be resumed forward, never rolled back.
    assert end.outcome == "ready", end.operation
    assert end.operation["attempts"] == 2, end.operation
    assert "operation_resumed" in end.operation["events"], end.operation


@pytest.mark.parametrize(
    "case", [Case("create", b, (FAULT,)) for b in FAILING_CREATE_BOUNDARIES], ids=str
)
def test_failing_create_killed_at_boundary_rolls_back_to_nothing(crashed: Crashed) -> None:
    # Killed before the failure: the fault is still there after the restart (a quota, a bad
    # image...). Killed while undoing: the restart has no fault at all, and the create must
    # still roll back (a rolling-back operation never turns round and resumes forward).
    in_rollback = crashed.case.kill_at.startswith(("before-undo:", "after-undo:"))
    recovered = restart(crashed.home, fail=[] if in_rollback else [FAULT])

    assert recovered == crashed.run.operation_ids
    end = assert_all_or_nothing(crashed.home, crashed.site_id, crashed.operation_id, "create_site")
    assert end.outcome == "gone", end.operation
    assert f"{FAIL_STEP} failed" in (end.operation["error"] or ""), end.operation
    assert end.operation["attempts"] == 2, end.operation


@pytest.mark.parametrize("case", [Case("delete", b) for b in DELETE_BOUNDARIES], ids=str)
def test_delete_killed_at_boundary_finishes_the_delete(crashed: Crashed) -> None:
    recovered = restart(crashed.home)

    assert recovered == crashed.run.operation_ids
    end = assert_all_or_nothing(crashed.home, crashed.site_id, crashed.operation_id, "delete_site")
    assert end.outcome == "gone", end.operation
    assert end.operation["params"].get("backup"), "a delete must take its backup first"
    # Taken once, whichever boundary the kill hit (its id is fixed when the delete is asked).
    stored = MemoryProvider(state_file=crashed.home / STATE_FILE).stored_backups(TENANT)
    assert set(stored) == {end.operation["params"]["backup"]}, stored
    assert end.operation["attempts"] == 2, end.operation


@pytest.mark.parametrize(
    "case",
    [Case("create", crash_worker.BEFORE_RUN), Case("delete", crash_worker.BEFORE_RUN)],
    ids=["create", "delete"],
)
def test_killed_before_the_engine_starts(crashed: Crashed) -> None:
    """Records committed, operation still 'pending': recover() must pick it up too."""
    recovered = restart(crashed.home)

    assert recovered == crashed.run.operation_ids
    kind = f"{crashed.case.mode}_site"
    end = assert_all_or_nothing(crashed.home, crashed.site_id, crashed.operation_id, kind)
    assert end.outcome == ("ready" if kind == "create_site" else "gone"), end.operation
    assert end.operation["attempts"] == 1, end.operation


def test_restart_in_a_second_process(tmp_path: Path, worker_env: dict[str, str]) -> None:
    """The restart itself as a fresh process (the other cases restart in-process)."""
    home = tmp_path / "home"
    run = run_worker(worker_env, home, "create", kill_at="before-undo:runtime", fail=[FAULT])
    assert_killed_at(run, home, "before-undo:runtime")
    assert run.site_id and run.operation_ids

    second = run_worker(worker_env, home, "recover", kill_at=None, fail=[FAULT])

    assert second.returncode == 0, second.describe(home)
    assert second.operation_ids == run.operation_ids
    end = assert_all_or_nothing(home, run.site_id, run.operation_ids[0], "create_site")
    assert end.outcome == "gone", end.operation


def test_create_that_keeps_crashing_gives_up_and_rolls_back(
    tmp_path: Path, worker_env: dict[str, str]
) -> None:
    """Every start-up dies at the same step: after max_attempts the engine stops retrying."""
    home = tmp_path / "home"
    boundary = "before:runtime"
    max_attempts = 3
    first = run_worker(worker_env, home, "create", kill_at=boundary, max_attempts=max_attempts)
    assert_killed_at(first, home, boundary)
    assert first.site_id and first.operation_ids
    for _ in range(max_attempts - 1):
        again = run_worker(worker_env, home, "recover", kill_at=boundary, max_attempts=max_attempts)
        assert_killed_at(again, home, boundary)
        assert again.operation_ids == first.operation_ids
    assert set(provider_state(home)[first.site_id]) == {"database", "secrets", "storage"}

    seen: list[str] = []
    restart(home, max_attempts=max_attempts, seen=seen)

    # The last start-up went straight to undo: no forward step was tried again.
    assert not [b for b in seen if b.startswith(tuple(f"{when}:" for when in FORWARD))], seen
    assert seen == [
        f"{when}:{step}" for step in ("storage", "secrets", "database") for when in UNDO
    ]
    end = assert_all_or_nothing(home, first.site_id, first.operation_ids[0], "create_site")
    assert end.outcome == "gone", end.operation
    assert end.operation["attempts"] == max_attempts + 1, end.operation
    assert f"gave up after {max_attempts} attempts" in (end.operation["error"] or ""), end.operation


def test_a_worker_slower_than_its_lease_loop_runs_its_operation_once(
    tmp_path: Path, worker_env: dict[str, str]
) -> None:
    """The lease loop (every lease/3 s) recovers what nobody holds: the worker's own run
    must hold its lease, or a slow worker runs the operation twice, side by side."""
    home = tmp_path / "home"
    argv = [*worker_argv(home, "create", kill_at=None), "--lease-seconds", "0.03"]
    done = subprocess.run(
        [sys.executable, str(WORKER), *argv], env=worker_env, cwd=str(WORKER.parents[2]),
        capture_output=True, text=True, timeout=WORKER_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    trail = [
        line.split(" ", 1)[1]
        for line in (home / crash_worker.TRAIL_FILE).read_text().split("\n")
        if line
    ]
    assert trail == CREATE_BOUNDARIES, trail
    op_id = json.loads(done.stdout.splitlines()[0])["operation_ids"][0]
    db = make_engine(make_settings(home))
    try:
        with make_sessionmaker(db)() as session:
            op = session.get(Operation, op_id)
            assert op is not None and (op.status, op.attempts) == ("succeeded", 1), op.__dict__
    finally:
        db.dispose()


# --- every other kind of the catalogue -------------------------------------------------------


def assert_finished(home: Path, site_id: str, operation_id: str, kind: OperationKind) -> None:
    """The operation ran to its end once: succeeded, every step done, the site free again in
    the status its scenario pins, and the provider holding what the kind made."""
    scenario = SCENARIOS[kind]
    db = make_engine(make_settings(home))
    try:
        with make_sessionmaker(db)() as session:
            op = session.get(Operation, operation_id)
            site = session.get(Site, site_id)
            assert op is not None and site is not None
            events = list(
                session.scalars(
                    select(OperationEvent.type).where(OperationEvent.operation_id == op.id)
                )
            )
            summary = {
                "status": op.status,
                "error": op.error,
                "attempts": op.attempts,
                "steps": {s.name: s.status for s in op.steps},
                "events": events,
                "site": {"status": site.status, "busy_with": site.current_operation_id},
            }
            active = list(
                session.scalars(select(Operation.id).where(Operation.status.in_(ACTIVE_STATUSES)))
            )
            busy = list(
                session.scalars(select(Site.name).where(Site.current_operation_id.is_not(None)))
            )
    finally:
        db.dispose()
    left = provider_state(home).get(site_id, {})
    detail = f"end state:\n{json.dumps(summary, indent=1)}\nprovider: {left}"
    assert not active and not busy, detail
    assert summary["status"] == "succeeded", detail
    assert set(summary["steps"].values()) == {"done"}, detail
    assert summary["site"]["status"] == scenario.site_status, detail
    assert set(CREATE_STEPS) <= set(left), detail
    for key, value in scenario.provider_holds.items():
        assert left.get(key) == value, detail
    assert summary["attempts"] == 2 and "operation_resumed" in events, detail
    if scenario.check is not None:
        scenario.check(home, site_id, operation_id)
    worker_log = home / "worker.log"
    assert ENV_SECRET not in (worker_log.read_text() if worker_log.exists() else "")


@pytest.mark.parametrize(
    "case", [Case(mode_of(kind), b) for kind, b in OTHER_KIND_CASES], ids=lambda c: f"{c.mode}-{c}"
)
def test_other_kind_killed_at_boundary_resumes_to_its_end(crashed: Crashed) -> None:
    """start, stop, update_domains, apply_env (and any kind added later): resumed forward."""
    recovered = restart(crashed.home)

    assert recovered == crashed.run.operation_ids
    assert_finished(crashed.home, crashed.site_id, crashed.operation_id, kind_of(crashed.case.mode))


@pytest.mark.parametrize(
    "case", [Case("bulk", b) for b in BULK_CHILD_BOUNDARIES], ids=lambda c: f"bulk-child-{c}"
)
def test_bulk_killed_mid_way_runs_every_child_once(crashed: Crashed) -> None:
    """Killed inside its first child (the second not started): the restart resumes the
    parent and the child, and the bulk ends with one child per site, each run once."""
    recovered = restart(crashed.home)

    assert crashed.operation_id in recovered and len(recovered) == 2, recovered
    assert_finished(crashed.home, crashed.site_id, crashed.operation_id, OperationKind.BULK)


# --- a restore whose probe fails: killed at every boundary, rolled back ----------------------

RESTORE_STEPS = CATALOGUE[OperationKind.RESTORE_SITE].step_names
PROBE_FAULT = "ensure:wordpress"  # the restored copy does not come up
FAILING_RESTORE_BOUNDARIES = [
    *forward_boundaries(OperationKind.RESTORE_SITE)[
        : forward_boundaries(OperationKind.RESTORE_SITE).index("before:probe") + 1
    ],
    *(
        f"{when}:{step}"
        for step in reversed(RESTORE_STEPS[: RESTORE_STEPS.index("probe")])
        if CATALOGUE[OperationKind.RESTORE_SITE].step(step).undo is not None
        for when in UNDO
    ),
]


def test_failing_restore_boundaries_match_the_engine(tmp_path: Path) -> None:
    seen = _recorded_boundaries(
        tmp_path / "home", kind=OperationKind.RESTORE_SITE, fail={PROBE_FAULT}
    )
    assert seen == FAILING_RESTORE_BOUNDARIES
    assert FAILING_RESTORE_BOUNDARIES[-3:] == [
        "before-undo:maintenance", "after-undo-call:maintenance", "after-undo:maintenance"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "case", [Case("restore_site", b, (PROBE_FAULT,)) for b in FAILING_RESTORE_BOUNDARIES], ids=str
)
def test_failing_restore_killed_at_boundary_puts_the_site_back(crashed: Crashed) -> None:
    """Never a mix: the changed site exactly as it was, served, nothing left aside."""
    in_rollback = crashed.case.kill_at.startswith(("before-undo:", "after-undo"))
    recovered = restart(crashed.home, fail=[] if in_rollback else [PROBE_FAULT])

    assert recovered == crashed.run.operation_ids
    db = make_engine(make_settings(crashed.home))
    try:
        with make_sessionmaker(db)() as session:
            op = session.get(Operation, crashed.operation_id)
            site = session.get(Site, crashed.site_id)
            assert op is not None and site is not None
            summary = {"status": op.status, "error": op.error, "attempts": op.attempts,
                       "steps": {s.name: s.status for s in op.steps}}  # fmt: skip
            assert op.status == "rolled_back", summary
            assert "probe failed" in (op.error or ""), summary
            assert site.status == "ready" and site.current_operation_id is None, summary
    finally:
        db.dispose()
    state = json.loads((crashed.home / "memory-provider.backups.json").read_text())
    assert state["live"][crashed.site_id]["database"] == CHANGED, state
    assert crashed.site_id not in state["maintenance"], state
    assert crashed.site_id not in state["staged"], state
    assert crashed.site_id not in state["previous"], state
    assert MemoryProvider(state_file=crashed.home / STATE_FILE).duplicates == {}


# --- a trial restore of a corrupted backup: killed at every boundary, rolled back ------------

FAILING_VERIFY_BOUNDARIES = [
    "before:stage",
    *(f"{when}:stage" for when in UNDO),
]


def test_failing_verify_boundaries_match_the_engine(tmp_path: Path) -> None:
    home = tmp_path / "home"
    prepare_site(home, "corrupted")
    seen: list[str] = []
    provider = MemoryProvider(state_file=home / STATE_FILE)
    platform = build_platform(make_settings(home), provider=provider, boundary_hook=seen.append)
    try:
        _site_id, op_id = EXTRA_STARTERS["verify_corrupted"](platform, ADMIN, TENANT, SITE)
        platform.engine.run(op_id)
    finally:
        platform.close()
    assert seen == FAILING_VERIFY_BOUNDARIES


@pytest.mark.parametrize(
    "case", [Case("verify_corrupted", b) for b in FAILING_VERIFY_BOUNDARIES], ids=str
)
def test_failing_verify_killed_at_boundary_marks_the_backup_and_touches_nothing(
    crashed: Crashed,
) -> None:
    """The backup is marked as failing verification; the live site exactly as it was."""
    recovered = restart(crashed.home)

    assert recovered == crashed.run.operation_ids
    db = make_engine(make_settings(crashed.home))
    try:
        with make_sessionmaker(db)() as session:
            op = session.get(Operation, crashed.operation_id)
            site = session.get(Site, crashed.site_id)
            assert op is not None and site is not None
            backup = session.get(Backup, op.params["backup"])
            assert backup is not None
            summary = {"status": op.status, "error": op.error, "attempts": op.attempts,
                       "steps": {s.name: s.status for s in op.steps}}  # fmt: skip
            assert op.status == "rolled_back", summary
            assert "does not match its checksums" in (backup.verification_error or ""), summary
            assert backup.sample_checked_at is not None, summary
            assert site.status == "ready" and site.current_operation_id is None, summary
    finally:
        db.dispose()
    state = json.loads((crashed.home / "memory-provider.backups.json").read_text())
    assert state["live"][crashed.site_id]["database"] == CHANGED, state
    assert crashed.site_id not in state["maintenance"], state
    assert crashed.site_id not in state["staged"], state
    assert crashed.site_id not in state["previous"], state


# --- a create from a backup (the undelete's shape): killed at every boundary, resumed -------

FROM_BACKUP_STEPS = CATALOGUE[OperationKind.CREATE_SITE].steps_for({"from_backup": "x"})
FROM_BACKUP_BOUNDARIES = [f"{when}:{step}" for step in FROM_BACKUP_STEPS for when in FORWARD]


def test_a_create_from_a_backup_has_a_last_restore_step(tmp_path: Path) -> None:
    home = tmp_path / "home"
    prepare_site(home, "backed_up")
    seen: list[str] = []
    provider = MemoryProvider(state_file=home / STATE_FILE)
    platform = build_platform(make_settings(home), provider=provider, boundary_hook=seen.append)
    try:
        _site_id, op_id = start_create_from_backup(platform, ADMIN, TENANT, SITE)
        platform.engine.run(op_id)
    finally:
        platform.close()
    assert (*CREATE_STEPS, "restore") == FROM_BACKUP_STEPS
    assert seen == FROM_BACKUP_BOUNDARIES


@pytest.mark.parametrize(
    "case", [Case("create_from_backup", b) for b in FROM_BACKUP_BOUNDARIES], ids=str
)
def test_create_from_backup_killed_at_boundary_resumes_to_the_backup(crashed: Crashed) -> None:
    recovered = restart(crashed.home)

    assert recovered == crashed.run.operation_ids
    db = make_engine(make_settings(crashed.home))
    try:
        with make_sessionmaker(db)() as session:
            op = session.get(Operation, crashed.operation_id)
            site = session.get(Site, crashed.site_id)
            assert op is not None and site is not None and site.name == COPY
            summary = {"status": op.status, "error": op.error, "attempts": op.attempts,
                       "steps": {s.name: s.status for s in op.steps}}  # fmt: skip
            assert op.status == "succeeded" and op.attempts == 2, summary
            assert site.status == "ready" and site.current_operation_id is None, summary
    finally:
        db.dispose()
    state = json.loads((crashed.home / "memory-provider.backups.json").read_text())
    assert state["live"][crashed.site_id]["database"] == BACKED_UP, state
    assert crashed.site_id not in state["staged"], state
    assert crashed.site_id not in state["previous"], state
    left = provider_state(crashed.home)
    assert set(left[crashed.site_id]) == set(CREATE_STEPS), left
    assert MemoryProvider(state_file=crashed.home / STATE_FILE).duplicates == {}
    # The site the backup came from is untouched.
    victim = [sid for sid in state["live"] if sid != crashed.site_id]
    assert [state["live"][sid]["database"] for sid in victim] == [CHANGED], state


# --- a promotion whose probe fails: killed at every boundary, production put back ----------

PROMOTE_STEPS = CATALOGUE[OperationKind.PROMOTE_SITE].step_names
FAILING_PROMOTE_BOUNDARIES = [
    *forward_boundaries(OperationKind.PROMOTE_SITE)[
        : forward_boundaries(OperationKind.PROMOTE_SITE).index("before:probe") + 1
    ],
    *(
        f"{when}:{step}"
        for step in reversed(PROMOTE_STEPS[: PROMOTE_STEPS.index("probe")])
        if CATALOGUE[OperationKind.PROMOTE_SITE].step(step).undo is not None
        for when in UNDO
    ),
]


def test_failing_promote_boundaries_match_the_engine(tmp_path: Path) -> None:
    seen = _recorded_boundaries(
        tmp_path / "home", kind=OperationKind.PROMOTE_SITE, fail={PROBE_FAULT}
    )
    assert seen == FAILING_PROMOTE_BOUNDARIES
    assert "before-undo:swap" in seen and seen[-1] == "after-undo:maintenance"


@pytest.mark.parametrize(
    "case", [Case("promote_site", b, (PROBE_FAULT,)) for b in FAILING_PROMOTE_BOUNDARIES], ids=str
)
def test_failing_promote_killed_at_boundary_puts_production_back(crashed: Crashed) -> None:
    """Never a mix: production exactly as it was, served, nothing left aside."""
    in_rollback = crashed.case.kill_at.startswith(("before-undo:", "after-undo"))
    recovered = restart(crashed.home, fail=[] if in_rollback else [PROBE_FAULT])

    assert recovered == crashed.run.operation_ids
    db = make_engine(make_settings(crashed.home))
    try:
        with make_sessionmaker(db)() as session:
            op = session.get(Operation, crashed.operation_id)
            site = session.get(Site, crashed.site_id)
            assert op is not None and site is not None
            summary = {"status": op.status, "error": op.error, "attempts": op.attempts,
                       "steps": {s.name: s.status for s in op.steps}}  # fmt: skip
            assert op.status == "rolled_back", summary
            assert "probe failed" in (op.error or ""), summary
            assert site.status == "ready" and site.current_operation_id is None, summary
    finally:
        db.dispose()
    state = json.loads((crashed.home / "memory-provider.backups.json").read_text())
    live = state["live"][crashed.site_id]["database"]
    assert live.startswith("blogname=") and "edited on staging" not in live, state
    assert STAGED_EDIT not in live
    assert crashed.site_id not in state["maintenance"], state
    assert crashed.site_id not in state["staged"], state
    assert crashed.site_id not in state["previous"], state
    assert MemoryProvider(state_file=crashed.home / STATE_FILE).duplicates == {}


# --- a clone whose new site does not come up: killed at every boundary, nothing left ------

CLONE_STEPS = CATALOGUE[OperationKind.CLONE_SITE].step_names
FAILING_CLONE_BOUNDARIES = [
    *forward_boundaries(OperationKind.CLONE_SITE)[
        : forward_boundaries(OperationKind.CLONE_SITE).index(f"before:{FAIL_STEP}") + 1
    ],
    *(
        f"{when}:{step}"
        for step in reversed(CLONE_STEPS[: CLONE_STEPS.index(FAIL_STEP) + 1])
        for when in UNDO
    ),
]


def test_failing_clone_boundaries_match_the_engine(tmp_path: Path) -> None:
    seen = _recorded_boundaries(tmp_path / "home", kind=OperationKind.CLONE_SITE, fail={FAULT})
    assert seen == FAILING_CLONE_BOUNDARIES
    assert seen[-3:] == [
        "before-undo:parent_backup", "after-undo-call:parent_backup", "after-undo:parent_backup"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "case", [Case("clone_site", b, (FAULT,)) for b in FAILING_CLONE_BOUNDARIES], ids=str
)
def test_failing_clone_killed_at_boundary_leaves_nothing(crashed: Crashed) -> None:
    """No staging site, no backup of the parent kept, no fingerprint; the parent as it was."""
    in_rollback = crashed.case.kill_at.startswith(("before-undo:", "after-undo"))
    recovered = restart(crashed.home, fail=[] if in_rollback else [FAULT])

    assert recovered == crashed.run.operation_ids
    end = assert_all_or_nothing(crashed.home, crashed.site_id, crashed.operation_id, "create_site")
    assert end.outcome == "gone", end.operation
    db = make_engine(make_settings(crashed.home))
    try:
        with make_sessionmaker(db)() as session:
            kept = [b.status for b in session.scalars(select(Backup))]
            assert set(kept) <= {"forgotten", "failed"}, kept
            assert session.scalar(select(func.count()).select_from(SiteFingerprint)) == 0
            parent = session.scalar(select(Site).where(Site.name == SITE))
            assert parent is not None and parent.status == "ready"
            assert parent.current_operation_id is None
            parent_id = parent.id
    finally:
        db.dispose()
    state = json.loads((crashed.home / "memory-provider.backups.json").read_text())
    assert state["store"].get("crash", {}) == {}, state["store"]
    assert set(provider_state(crashed.home)[parent_id]) == set(CREATE_STEPS)
