"""Run the real Firebase Auth emulator (firebase-tools, Node only) for integration tests.

The emulator is started in its own process group from a scratch directory holding a
firebase.json with free ports, an isolated HOME/XDG config/TMPDIR, and the environment
that keeps firebase-tools off the network:

* ``CI=1``                - skips the MOTD fetch (firebase-public.firebaseio.com/cli.json)
                            and marks the session non-interactive (no analytics prompt);
* ``NO_UPDATE_NOTIFIER=1`` - skips the npm registry update check;
* a fresh ``HOME``        - no configstore, so no usage analytics consent is found and
                            nothing is written to the developer's real config;
* ``TMPDIR``              - the hub locator file (hub-<project>.json) stays private, so two
                            runs on one machine do not find each other's hub.

Everything it prints goes to ``emulator.log`` (and firebase-tools' own
``firebase-debug.log``) in the scratch directory; a start-up failure quotes the log tail.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
FIREBASE_BIN = ROOT / "node_modules" / ".bin" / "firebase"
API_KEY = "fake-api-key"  # the emulator accepts any key


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class AuthEmulator:
    """A running Auth emulator and the REST calls a Firebase client SDK would make."""

    host: str  # "127.0.0.1:PORT", the value of FIREBASE_AUTH_EMULATOR_HOST
    project_id: str
    workdir: Path
    process: subprocess.Popen[bytes]

    @property
    def log_path(self) -> Path:
        """Where the emulator's output goes."""
        return self.workdir / "emulator.log"

    @property
    def base_url(self) -> str:
        """The emulator's HTTP origin."""
        return f"http://{self.host}"

    def _client_call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/identitytoolkit.googleapis.com/v1/accounts:{method}"
        response = httpx.post(url, params={"key": API_KEY}, json=body, timeout=10)
        if response.status_code != 200:
            raise AssertionError(
                f"emulator {method} failed: {response.status_code} {response.text}"
            )
        result: dict[str, Any] = response.json()
        return result

    def sign_up(self, email: str, password: str) -> dict[str, Any]:
        """Create an e-mail/password account as a client app would; returns localId, idToken."""
        return self._client_call(
            "signUp", {"email": email, "password": password, "returnSecureToken": True}
        )

    def sign_in(self, email: str, password: str) -> str:
        """Sign in with e-mail and password; returns a fresh ID token (current custom claims)."""
        body = self._client_call(
            "signInWithPassword",
            {"email": email, "password": password, "returnSecureToken": True},
        )
        token: str = body["idToken"]
        return token

    def clear_accounts(self) -> None:
        """Delete every account of the project (emulator-only endpoint)."""
        url = f"{self.base_url}/emulator/v1/projects/{self.project_id}/accounts"
        httpx.delete(url, timeout=10).raise_for_status()

    def is_ready(self) -> bool:
        """Whether the emulator answers its project-config endpoint."""
        try:
            url = f"{self.base_url}/emulator/v1/projects/{self.project_id}/config"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 15) -> None:
        """Stop the emulator's whole process group: TERM, then KILL if it lingers."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def emulator_env(workdir: Path) -> dict[str, str]:
    """The environment that keeps firebase-tools local and quiet (see the module doc)."""
    home = workdir / "home"
    tmp = workdir / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FIREBASE_", "GOOGLE_", "GCLOUD_", "AIPRESS_"))
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        TMPDIR=str(tmp),
        CI="1",
        NO_UPDATE_NOTIFIER="1",
    )
    return env


def start_auth_emulator(workdir: Path, project_id: str, timeout: float = 120) -> AuthEmulator:
    """Start `firebase emulators:start --only auth` and wait until it answers."""
    if not FIREBASE_BIN.exists():
        raise FileNotFoundError(FIREBASE_BIN)
    auth_port, hub_port, logging_port = free_port(), free_port(), free_port()
    config = {
        "emulators": {
            "auth": {"host": "127.0.0.1", "port": auth_port},
            "hub": {"host": "127.0.0.1", "port": hub_port},
            "logging": {"host": "127.0.0.1", "port": logging_port},
            "ui": {"enabled": False},
            "singleProjectMode": True,
        }
    }
    (workdir / "firebase.json").write_text(json.dumps(config, indent=2))
    log = (workdir / "emulator.log").open("wb")
    process = subprocess.Popen(
        [str(FIREBASE_BIN), "emulators:start", "--only", "auth", "--project", project_id],
        cwd=workdir,
        env=emulator_env(workdir),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: node + children die together
    )
    log.close()
    emulator = AuthEmulator(f"127.0.0.1:{auth_port}", project_id, workdir, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the Auth emulator exited with {process.returncode} before answering; "
                f"log {emulator.log_path}:\n{_log_tail(emulator.log_path)}"
            )
        if emulator.is_ready():
            return emulator
        time.sleep(0.25)
    emulator.stop()
    raise RuntimeError(
        f"the Auth emulator did not answer within {timeout:.0f} s; "
        f"log {emulator.log_path}:\n{_log_tail(emulator.log_path)}"
    )
