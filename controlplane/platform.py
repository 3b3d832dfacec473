"""The wired-up platform: settings, database, keys, token verifier, provider and engine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine as SqlEngine
from sqlalchemy.orm import Session, sessionmaker

from controlplane.crypto import Keyring, load_keyring
from controlplane.db import make_engine, make_sessionmaker, migrate
from controlplane.engine.provider import Provider
from controlplane.engine.runner import BoundaryHook, Engine
from controlplane.kernel.auth import TokenVerifier, make_verifier
from controlplane.providers import make_provider
from controlplane.settings import Settings
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
