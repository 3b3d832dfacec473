"""A control-plane process that SIGKILLs itself at a chosen step boundary (crash tests).

Run by tests/integration/test_crash_resume.py (memory provider) and test_local_crash.py
(`--provider local`: the real stack) as a real subprocess:

    python tests/integration/crash_worker.py create  --home H --kill-at before:runtime
    python tests/integration/crash_worker.py create  --home H --kill-at before-undo:dns \\
        --fail ensure:wordpress
    python tests/integration/crash_worker.py delete  --home H --kill-at after:backup
    python tests/integration/crash_worker.py recover --home H --kill-at before:runtime
    python tests/integration/crash_worker.py apply_env --home H --kill-at after-call:runtime

It builds the platform on `--home` (SQLite, migrations, keys) with a MemoryProvider persisted
to `H/memory-provider.json`, so the parent can see what the dead process left behind. The
boundary hook appends every boundary it passes to `H/boundaries.log` and, at `--kill-at`,
sends SIGKILL to its own process (`--kill-at before-run` does so once the records are
committed, before the engine starts): no cleanup, no `finally`, no flush, like a power cut of the
process. Before running it prints one JSON line: {"site_id": ..., "operation_ids": [...]}.
Exit status 0 means the operation ended without reaching the kill boundary.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TENANT = "crash"
SITE = "victim"
ADMIN_EMAIL = "admin@crash-tests.org"
STATE_FILE = "memory-provider.json"
TRAIL_FILE = "boundaries.log"
# Not an engine boundary: the records are committed, the engine has not started the operation.
BEFORE_RUN = "before-run"


def make_hook(home: Path, kill_at: str | None):  # type: ignore[no-untyped-def]
    """Record each boundary (unbuffered, O_APPEND) and SIGKILL ourselves at `kill_at`."""
    trail = os.open(home / TRAIL_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    pid = os.getpid()

    def hook(name: str) -> None:
        os.write(trail, f"{pid} {name}\n".encode())
        if name == kill_at:
            os.kill(pid, signal.SIGKILL)

    return hook


class FailingAfterCall:
    """A real step whose `action` does its work and then raises, as a readiness probe that
    times out would: the undo must clean up everything the real call made."""

    def __init__(self, inner: Any, action: str, step: str) -> None:
        self._inner = inner
        self._action = action
        self._step = step

    def _call(self, action: str, ctx: Any) -> None:
        from controlplane.providers.memory import InjectedFault

        getattr(self._inner, action)(ctx)
        if action == self._action:
            raise InjectedFault(f"injected failure at {action}:{self._step}")

    def ensure(self, ctx: Any) -> None:
        """The real ensure, then the injected failure."""
        self._call("ensure", ctx)

    def remove(self, ctx: Any) -> None:
        """The real remove, then the injected failure."""
        self._call("remove", ctx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Any other operation kind is started by its scenario in crash_kinds.py.
    from controlplane.kernel.vocabulary import OperationKind
    from tests.integration.crash_kinds import EXTRA_STARTERS

    parser.add_argument(
        "mode", choices=("create", "delete", "recover", *OperationKind, *EXTRA_STARTERS)
    )
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument(
        "--kill-at", default=None, help=f"boundary name, e.g. after:dns, or {BEFORE_RUN!r}"
    )
    parser.add_argument(
        "--fail",
        action="append",
        default=[],
        help="inject a provider failure, e.g. ensure:wordpress (local: after the real call)",
    )
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--lease-seconds", type=float, default=30)
    parser.add_argument("--provider", choices=("memory", "local"), default="memory")
    parser.add_argument("--mariadb-port", type=int, default=3307)
    parser.add_argument("--site-port", type=int, default=8080)
    parser.add_argument("--tenant", default=TENANT)
    parser.add_argument("--site", default=SITE)
    args = parser.parse_args(argv)

    # Imported here so `--help` stays instant and the path fix above comes first.
    from controlplane.engine.provider import Provider
    from controlplane.kernel.identity import Principal, Role
    from controlplane.kernel.logs import configure_logging
    from controlplane.models import Tenant
    from controlplane.platform import build_platform
    from controlplane.providers.local import LocalProvider
    from controlplane.providers.memory import MemoryProvider
    from controlplane.schemas import SiteCreate, TenantCreate
    from controlplane.services.sites import create_site, delete_site
    from controlplane.services.tenants import create_tenant
    from controlplane.settings import Settings

    home: Path = args.home
    home.mkdir(parents=True, exist_ok=True)
    log_file = home / "worker.log"
    configure_logging("DEBUG", log_file)
    settings = Settings(
        provider=args.provider,
        home=home,
        log_file=log_file,
        log_level="DEBUG",
        max_parallel_operations=1,
        max_resume_attempts=args.max_attempts,
        operation_lease_seconds=args.lease_seconds,
        mariadb_port=args.mariadb_port,
        site_port=args.site_port,
    )
    provider: Provider
    if args.provider == "local":
        local = LocalProvider(settings)
        for fault in args.fail:
            action, _, step = fault.partition(":")
            setattr(local, step, FailingAfterCall(getattr(local, step), action, step))
        provider = local
    else:
        provider = MemoryProvider(state_file=home / STATE_FILE, fail_on=set(args.fail))
    platform = build_platform(
        settings, provider=provider, boundary_hook=make_hook(home, args.kill_at)
    )
    admin = Principal("crash-admin", Role.ADMIN, email=ADMIN_EMAIL)

    site_id: str | None = None
    if args.mode == "recover":
        operation_ids = platform.engine.recover()
    elif args.mode not in ("create", "delete"):
        from tests.integration.crash_kinds import SCENARIOS

        start = EXTRA_STARTERS.get(args.mode) or SCENARIOS[OperationKind(args.mode)].start
        site_id, op_id = start(platform, admin, args.tenant, args.site)
        operation_ids = [op_id]
    else:
        with platform.sessions() as session:
            if session.get(Tenant, args.tenant) is None:
                create_tenant(
                    session, principal=admin, data=TenantCreate(id=args.tenant, name="Crash Tests")
                )
            if args.mode == "create":
                site, op = create_site(
                    session,
                    principal=admin,
                    tenant_id=args.tenant,
                    data=SiteCreate(name=args.site, admin_email=ADMIN_EMAIL),
                    provider=provider.name,
                )
            else:
                site, op = delete_site(
                    session, principal=admin, tenant_id=args.tenant, name=args.site
                )
            site_id, operation_ids = site.id, [op.id]
    print(json.dumps({"site_id": site_id, "operation_ids": operation_ids}), flush=True)

    if args.kill_at == BEFORE_RUN:
        os.kill(os.getpid(), signal.SIGKILL)
    if args.mode != "recover":
        # As the API does: submitted, so the run holds the operation's lease. A bare
        # engine.run() holds none, and past lease_seconds/3 (a slow machine) this engine's
        # own recovery loop started the same operation a second time, beside it.
        platform.engine.submit(operation_ids[0])
    for op_id in operation_ids:
        platform.engine.wait(op_id, timeout=120)
    platform.close()
    print(json.dumps({"finished": operation_ids}), flush=True)
    return 0


# What a forked worker's server imports once (run_forked's children then skip ~1.5 s each).
PRELOAD = (
    "tests.integration.crash_worker",
    "tests.integration.crash_kinds",
    "controlplane.platform",
    "controlplane.providers.local",
    "controlplane.providers.memory",
    "controlplane.services.sites",
    "controlplane.services.tenants",
    "sqlalchemy.dialects.sqlite",
    "alembic.command",
)


def run_forked(argv: list[str], env: dict[str, str], stdout: str, stderr: str) -> None:
    """`main(argv)` in a child of a multiprocessing forkserver that preloaded PRELOAD: the
    same fresh process a `python crash_worker.py` is, its environment and output set here."""
    os.environ.clear()
    os.environ.update(env)
    # The byte-code cache the environment names (the server's flags are its parent's): the
    # migrations Alembic loads on each start are then read, not compiled again.
    sys.dont_write_bytecode = "PYTHONDONTWRITEBYTECODE" in env
    sys.pycache_prefix = env.get("PYTHONPYCACHEPREFIX")
    for fd, path in ((1, stdout), (2, stderr)):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    os.chdir(ROOT)
    sys.exit(main(argv))


def fork_server() -> ForkServerContext:
    """The multiprocessing forkserver that preloads PRELOAD (started on its first use)."""
    server = multiprocessing.get_context("forkserver")
    server.set_forkserver_preload(list(PRELOAD))
    return server


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


class ForkedWorker:
    """This worker's main in a process forked from fork_server(): a real process of its own,
    killed by SIGKILL the same way, without the ~1.5 s of imports each new interpreter pays.
    Answers like a Popen (returncode, communicate, kill); its output goes to two files beside
    `home`."""

    def __init__(self, server: ForkServerContext, env: dict[str, str],
                 home: Path, argv: list[str]) -> None:  # fmt: skip
        self._out = home.parent / "worker.stdout"
        self._err = home.parent / "worker.stderr"
        self._proc = server.Process(
            target=run_forked, args=(argv, env, str(self._out), str(self._err))
        )
        self._proc.start()

    @property
    def returncode(self) -> int | None:
        return self._proc.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise subprocess.TimeoutExpired("crash_worker.run_forked", timeout or 0)
        return _text(self._out), _text(self._err)

    def kill(self) -> None:
        self._proc.kill()


if __name__ == "__main__":
    sys.exit(main())
