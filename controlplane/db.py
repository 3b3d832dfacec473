"""Engine and sessions of the control-plane database, and its migrations."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from controlplane.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(settings: Settings) -> Engine:
    """An engine for SQLite (embedded), MySQL/MariaDB, PostgreSQL or Cloud SQL (connector)."""
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
        if not settings.database_url:
            # The home is traversable by site users; the database is for root only (SQLite
            # gives its -wal and -shm files the database file's mode).
            path = settings.home / "controlplane.db"
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            path.chmod(0o600)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 10},
            # Enough connections for the request threads and the engine's workers: an overflow
            # connection is closed after use and reopening it costs more than the query.
            pool_size=30,
            max_overflow=10,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        with engine.connect() as conn:  # WAL is a property of the file: set it once
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        return engine
    if settings.cloudsql_instance and not settings.database_url:
        # Imported here: the gcp package pulls in Google's clients, which the embedded
        # default never needs.
        from controlplane.providers.gcp.database import own_connect

        return create_engine(
            url, creator=own_connect(settings), pool_pre_ping=True, pool_recycle=1800
        )
    return create_engine(url, pool_pre_ping=True, pool_recycle=1800, pool_size=10)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    """Alembic configuration bound to an existing engine."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration."""
    command.upgrade(alembic_config(engine), "head")
