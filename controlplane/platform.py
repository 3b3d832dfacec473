"""The wired-up platform: settings, database, keys, token verifier, provider and engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine as SqlEngine
from sqlalchemy.orm import Session, sessionmaker

from controlplane.crypto import Keyring, load_keyring
from controlplane.db import make_engine, make_sessionmaker, migrate
from controlplane.engine.provider import Provider
from controlplane.engine.runner import BoundaryHook, Engine
from controlplane.kernel.auth import TokenVerifier, make_verifier
from controlplane.kernel.logs import configure_logging, get_logger
from controlplane.providers import make_provider
from controlplane.settings import Settings, get_settings
from controlplane.users import ClaimsWriter, make_claims_writer


@dataclass
class Platform:
    """Everything a request handler or CLI command needs, built once per process."""

    settings: Settings
    db: SqlEngine
    sessions: sessionmaker[Session]
    keyring: Keyring
    verifier: TokenVerifier
    provider: Provider
    engine: Engine
    claims: ClaimsWriter

    def close(self) -> None:
        """Stop the engine's workers and release database connections."""
        self.engine.shutdown(wait=True)
        self.db.dispose()


def build_platform(
    settings: Settings,
    *,
    provider: Provider | None = None,
    verifier: TokenVerifier | None = None,
    boundary_hook: BoundaryHook | None = None,
) -> Platform:
    """Build the platform and bring the database schema up to date."""
    if settings.provider == "gcp":
        from controlplane.providers.gcp.database import prepare_platform_database

        prepare_platform_database(settings)
    db = make_engine(settings)
    migrate(db)
    sessions = make_sessionmaker(db)
    keyring = load_keyring(settings)
    chosen_verifier = verifier or make_verifier(settings)
    chosen_provider = provider or make_provider(settings)
    engine = Engine(
        sessions=sessions,
        provider=chosen_provider,
        keyring=keyring,
        max_workers=settings.max_parallel_operations,
        max_attempts=settings.max_resume_attempts,
        boundary_hook=boundary_hook,
        lease_seconds=settings.operation_lease_seconds,
    )
    return Platform(
        settings=settings,
        db=db,
        sessions=sessions,
        keyring=keyring,
        verifier=chosen_verifier,
        provider=chosen_provider,
        engine=engine,
        claims=make_claims_writer(settings, chosen_verifier),
    )


def cap_site_connections(platform: Platform) -> list[str]:
    """Bring every existing site's database user to the connection limit (the database step
    sets it only when it runs; users made before the limit, or before it changed, would
    otherwise keep theirs); the users changed."""
    from controlplane.models import Site
    from controlplane.providers.site_database import ConnectionCapped

    step = platform.provider.database
    if not isinstance(step, ConnectionCapped):
        return []
    with platform.sessions() as session:
        recorded = [resources for (resources,) in session.query(Site.resources)]
    databases = [r.get("database") for r in recorded if isinstance(r, dict)]
    users = sorted({str(d["user"]) for d in databases if isinstance(d, dict) and d.get("user")})
    return step.cap_connections(users) if users else []


JobWork = Callable[[Platform, Any], dict[str, Any]]


def run_job(name: str, work: JobWork) -> int:
    """A Cloud Run Job's main: `work(platform, log)` with the process's settings, then
    `<name>.job_done` with what it returned (exit 0), or `<name>.job_failed` (exit 1)."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_file, settings.log_json)
    log = get_logger(f"aipress.{name}.job")
    platform = build_platform(settings)
    try:
        done = work(platform, log)
    except Exception as exc:
        log.error(f"{name}.job_failed", error_type=type(exc).__name__, error=str(exc)[:500])
        return 1
    finally:
        platform.close()
    log.info(f"{name}.job_done", **done)
    return 0
