"""Shared fixtures: settings in a temporary home, a memory-provider app, token helpers.

Every log line of the platform goes to one file; every secret made or used in the run is
recorded (tests/secret_scan.py says which); at the end the run fails if any recorded secret
appears in any log the run wrote, or if the planted canary is not found.

Under pytest-xdist each worker process has its own log and record file (suffixed with its id,
e.g. `-gw0`), and the controller runs the scan once, over every worker's records and logs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controlplane.api.app import create_app
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.kernel.logs import configure_logging
from controlplane.kernel.secret_record import RECORD_ENV, note_secret
from controlplane.kernel.vocabulary import FINISHED_STATUSES
from controlplane.platform import Platform, build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings, get_settings
from tests.secret_scan import Leak, find_leaks, log_files, read_record

pytest_plugins = ["tests.agent_fixtures"]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
# Set by pytest-xdist in its worker processes ("gw0", "gw1"...); unset in a plain run.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_SUFFIX = f"-{WORKER}" if WORKER else ""
LOG_FILE = ARTIFACTS / f"platform-test{_SUFFIX}.log"
SECRET_RECORD = ARTIFACTS / f"secrets-recorded{_SUFFIX}.jsonl"
CAPTURED_OUTPUT = ARTIFACTS / "captured-output.log"
SCAN_ROOTS: list[Path] = [ARTIFACTS]  # and pytest's temporary directory, once it is known
EARLY_LEAKS: list[Leak] = []  # found in directories removed before the end of the run


def record_files() -> list[Path]:
    """This run's secret record files: the one of this process and those of xdist workers."""
    return sorted(ARTIFACTS.glob("secrets-recorded*.jsonl"))


def recorded_secrets() -> dict[str, str]:
    """Every secret recorded so far by any process of the run (value -> source)."""
    merged: dict[str, str] = {}
    for record in record_files():
        merged.update(read_record(record))
    return merged


def remove_after_scan(base: Path) -> None:
    """Scan the logs under `base` (a stack's short /tmp home) for secrets, then remove it."""
    EARLY_LEAKS.extend(find_leaks(recorded_secrets(), log_files([base])))
    shutil.rmtree(base, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    if not WORKER:
        # The controller (or a plain run) starts the run's artifacts afresh; a worker then
        # starts only its own files.
        for stale in [*ARTIFACTS.glob("platform-test*.log"), *record_files()]:
            stale.unlink()
        CAPTURED_OUTPUT.write_text("")
    for path in (LOG_FILE, SECRET_RECORD):
        path.write_text("")
    os.environ["AIPRESS_LOG_FILE"] = str(LOG_FILE)
    # Subprocess workers inherit it and record their secrets too.
    os.environ[RECORD_ENV] = str(SECRET_RECORD)
    configure_logging("DEBUG", LOG_FILE)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep every test's captured stdout/stderr/log output, so the scan covers it (xdist hands
    each worker's reports to the controller, which writes them)."""
    if report.sections and not WORKER:
        with CAPTURED_OUTPUT.open("a", encoding="utf-8") as out:
            for title, text in report.sections:
                out.write(f"--- {report.nodeid} {title}\n{text}\n")


@pytest.fixture(scope="session", autouse=True)
def _scan_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Add the run's temporary directory (homes, stacks, worker logs) to the scanned roots."""
    SCAN_ROOTS.append(tmp_path_factory.getbasetemp())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if WORKER:
        # The controller scans once all workers are done: hand it what only this worker knows.
        workeroutput = session.config.workeroutput  # type: ignore[attr-defined]
        workeroutput["scan_roots"] = [str(root) for root in SCAN_ROOTS]
        workeroutput["early_leaks"] = [
            {"source": leak.source, "preview": leak.preview, "path": str(leak.path)}
            for leak in EARLY_LEAKS
        ]
        return
    # A canary planted in the platform log proves the scan reads the record and the logs.
    canary = f"canary-{secrets.token_urlsafe(24)}"
    note_secret(canary, "canary")
    with LOG_FILE.open("a", encoding="utf-8") as log:
        log.write(json.dumps({"event": "secret_scan.canary", "note": canary}) + "\n")
    leaks = find_leaks(recorded_secrets(), log_files(SCAN_ROOTS, record_files()))
    real = [leak for leak in leaks if leak.source != "canary"] + EARLY_LEAKS
    if len(leaks) == len(real):
        print(f"\nSECRET SCAN IS BLIND: the canary in {LOG_FILE} was not found")
        session.exitstatus = 1
    if real:
        print(f"\nSECRET LEAK: {len(real)} secret(s) found in logs:")
        for leak in real:
            print(f"  {leak.source} {leak.preview} in {leak.path}")
        session.exitstatus = 1


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """An xdist worker ended: take over its temporary directory and early leaks for the scan."""
    output = getattr(node, "workeroutput", {})
    SCAN_ROOTS.extend(Path(root) for root in output.get("scan_roots", []))
    EARLY_LEAKS.extend(
        Leak(leak["source"], leak["preview"], Path(leak["path"]))
        for leak in output.get("early_leaks", [])
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings in a fresh home, with the memory provider."""
    return Settings(
        provider="memory",
        home=tmp_path / "home",
        log_file=LOG_FILE,
        log_level="DEBUG",
        max_parallel_operations=4,
    )


@pytest.fixture
def fast_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An update's health probe window of 1.5 s (the default 20 s makes a rollback slow)."""
    monkeypatch.setenv("AIPRESS_UPDATE_PROBE_SECONDS", "1.5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def memory_provider() -> MemoryProvider:
    """A fresh in-memory provider (tests may set fail_on)."""
    return MemoryProvider()


@pytest.fixture
def platform(settings: Settings, memory_provider: MemoryProvider) -> Iterator[Platform]:
    """The platform wired to the memory provider."""
    built = build_platform(settings, provider=memory_provider)
    yield built
    built.close()


@pytest.fixture
def client(settings: Settings, memory_provider: MemoryProvider) -> Iterator[TestClient]:
    """A TestClient of the control-plane app (memory provider)."""
    app = create_app(
        settings, platform_factory=lambda s: build_platform(s, provider=memory_provider)
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def issuer(settings: Settings) -> LocalTokenIssuer:
    """The local token issuer of this test's home."""
    return LocalTokenIssuer(settings)


AuthHeaders = Callable[..., dict[str, str]]


@pytest.fixture
def auth(issuer: LocalTokenIssuer) -> AuthHeaders:
    """auth(role, *tenants, sub=..., email=...) -> Authorization headers."""

    def make(
        role: str, *tenants: str, sub: str | None = None, email: str | None = None
    ) -> dict[str, str]:
        token = issuer.issue(sub or f"{role}-user", Role(role), list(tenants), email=email)
        return {"Authorization": f"Bearer {token}"}

    return make


def wait_for_operation(
    client: TestClient, operation_id: str, headers: dict[str, str], timeout: float = 20
) -> dict[str, Any]:
    """Poll an operation until it finishes; return its final state."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/operations/{operation_id}", headers=headers).json()
        if body["status"] in FINISHED_STATUSES:
            return body
        time.sleep(pause)
        # Quick answers for quick operations; a long one (a real site's create, often many side
        # by side) is not polled 50 times a second on a machine its own work needs.
        pause = min(pause * 1.5, 0.2)
    raise AssertionError(f"operation {operation_id} did not finish in {timeout} s")


def ready_crumbs(client: TestClient, admin: dict[str, str]) -> str:
    """Tenant acme with a ready site crumbs, made as `admin`; returns the site's id."""
    client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin)
    made = client.post(
        "/v1/tenants/acme/sites", json={"name": "crumbs", "admin_email": "a@example.com"},
        headers=admin,
    ).json()  # fmt: skip
    wait_for_operation(client, made["operation"]["id"], admin)
    site_id: str = made["site"]["id"]
    return site_id
