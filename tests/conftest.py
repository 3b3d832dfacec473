"""Shared fixtures: settings in a temporary home, a memory-provider app, token helpers.

Every log line of the run goes to one file; at the end the run fails if any password
generated during it appears there (secrets must never reach the logs).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controlplane import crypto
from controlplane.api.app import create_app
from controlplane.auth import LocalTokenIssuer
from controlplane.logs import configure_logging
from controlplane.permissions import Role
from controlplane.platform import Platform, build_platform
from controlplane.providers.memory import MemoryProvider
from controlplane.settings import Settings

pytest_plugins = ["tests.agent_fixtures"]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
LOG_FILE = ARTIFACTS / "platform-test.log"
GENERATED_SECRETS: list[str] = []

_real_generate_password = crypto.generate_password


def _recording_generate_password(length: int = 32) -> str:
    value = _real_generate_password(length)
    GENERATED_SECRETS.append(value)
    return value


def pytest_configure(config: pytest.Config) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    LOG_FILE.write_text("")
    os.environ["AIPRESS_LOG_FILE"] = str(LOG_FILE)
    configure_logging("DEBUG", LOG_FILE)
    crypto.generate_password = _recording_generate_password  # type: ignore[assignment]
    import controlplane.credentials as credentials

    credentials.generate_password = _recording_generate_password  # type: ignore[assignment]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    text = LOG_FILE.read_text() if LOG_FILE.exists() else ""
    leaked = [s for s in GENERATED_SECRETS if s in text]
    if leaked:
        print(f"\nSECRET LEAK: {len(leaked)} generated password(s) appear in {LOG_FILE}")
        session.exitstatus = 1


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
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/v1/operations/{operation_id}", headers=headers).json()
        if body["status"] in ("succeeded", "failed", "rolled_back"):
            return body
        time.sleep(0.02)
    raise AssertionError(f"operation {operation_id} did not finish in {timeout} s")
