"""`aipress up / down / status`: the embedded default's processes, started without systemd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.settings import Settings
from controlplane.stack.local import LocalStack
from controlplane.stack.process import StackError, read_pid, wait_for_exit

DEMO_TENANTS = {"acme": "Acme Bakery", "globex": "Globex Gardens"}
DEMO_USERS = {
    "admin": ("admin", [], "admin@aipress.example"),
    "alice": ("tenant", ["acme"], "alice@acme.example"),
    "bob": ("tenant", ["globex"], "bob@globex.example"),
}


@dataclass(frozen=True)
class Service:
    """A Python service of ours run in the background with a pidfile."""

    name: str
    module: str
    port: int
    health_path: str = "/healthz"

    def pidfile(self, settings: Settings) -> Path:
        """Where its pid is kept."""
        return settings.home / "run" / f"{self.name}.pid"

    def logfile(self, settings: Settings) -> Path:
        """Its JSON log."""
        return settings.home / "logs" / f"{self.name}.log"

    def url(self, settings: Settings) -> str:
        """Its base URL."""
        return f"http://{settings.host}:{self.port}"


def services(settings: Settings) -> list[Service]:
    """Our services in start order."""
    return [
        Service("controlplane", "controlplane.api.app:create_app", settings.port),
        Service("chatbot", "chatbot.service:create_app", settings.chat_port),
    ]


def healthy(url: str) -> bool:
    """Whether a service answers its health check."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_service(settings: Settings, service: Service, timeout: float = 60) -> bool:
    """Start a service unless it already answers; return True if it was started now."""
    health = service.url(settings) + service.health_path
    if read_pid(service.pidfile(settings)) is not None and healthy(health):
        return False
    for path in (service.pidfile(settings), service.logfile(settings)):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.chmod(0o700)
    env = {**os.environ, "AIPRESS_LOG_FILE": str(service.logfile(settings))}
    log_fd = os.open(service.logfile(settings), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(os.devnull, "rb") as devnull, os.fdopen(log_fd, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", service.module, "--factory",
             "--host", settings.host, "--port", str(service.port),
             "--log-level", "warning", "--no-access-log"],
            stdin=devnull, stdout=log, stderr=log, env=env, start_new_session=True,
        )  # fmt: skip
    service.pidfile(settings).write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{service.name} exited at start-up; see {service.logfile(settings)}")
        if healthy(health):
            return True
        time.sleep(0.2)
    raise StackError(f"{service.name} did not answer {health} within {timeout} s")


def stop_service(settings: Settings, service: Service) -> bool:
    """Stop a service; return True if it was running."""
    pid = read_pid(service.pidfile(settings))
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    if not wait_for_exit(pid, 20):
        os.kill(pid, signal.SIGKILL)
        wait_for_exit(pid, 5)
    service.pidfile(settings).unlink(missing_ok=True)
    return True


def seed_demo(settings: Settings) -> None:
    """The demo tenants and users (idempotent), through the API as the local admin."""
    token = LocalTokenIssuer(settings).issue("aipress-up", Role.ADMIN, ttl_seconds=300)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=settings.base_url, headers=headers, timeout=10) as client:
        for tenant_id, name in DEMO_TENANTS.items():
            response = client.post("/v1/tenants", json={"id": tenant_id, "name": name})
            if response.status_code not in (201, 409):
                raise StackError(f"creating demo tenant {tenant_id}: {response.text}")
        for uid, (role, tenants, email) in DEMO_USERS.items():
            response = client.put(
                f"/v1/users/{uid}", json={"role": role, "tenants": tenants, "email": email}
            )
            if response.status_code != 200:
                raise StackError(f"creating demo user {uid}: {response.text}")


def bring_up(settings: Settings, say: Callable[[str], object] = print) -> None:
    """Start MariaDB, PHP-FPM, nginx and our services; seed the demo tenants and users."""
    emit = say
    stack = LocalStack.from_settings(settings)
    emit("Starting MariaDB, PHP-FPM and nginx ...")
    stack.ensure_running()
    for service in services(settings):
        started = start_service(settings, service)
        state = "started" if started else "already running"
        emit(f"{service.name}: {state} at {service.url(settings)}")
    seed_demo(settings)


def bring_down(settings: Settings) -> list[str]:
    """Stop everything `bring_up` started; return what was running."""
    stopped = [s.name for s in reversed(services(settings)) if stop_service(settings, s)]
    stack = LocalStack.from_settings(settings)
    running = [name for name, pid in stack.status().items() if pid is not None]
    stack.stop()
    return stopped + running


def status(settings: Settings) -> dict[str, tuple[int | None, str]]:
    """Each process: (pid, state)."""
    result: dict[str, tuple[int | None, str]] = {}
    for name, pid in LocalStack.from_settings(settings).status().items():
        result[name] = (pid, "running" if pid else "stopped")
    for service in services(settings):
        pid = read_pid(service.pidfile(settings))
        state = "stopped"
        if pid is not None:
            state = (
                "healthy" if healthy(service.url(settings) + service.health_path) else "unhealthy"
            )
        result[service.name] = (pid, state)
    return result
