"""Where conversations live: LangGraph checkpoints and the owner of each thread.

SQLite under the state directory locally; Postgres in production (`AIPRESS_CHAT_DATABASE_URL`
= postgresql://...). Thread owners are kept beside the checkpoints so that only the token's
identity can read or resume a thread. The owner is the caller's (issuer, subject, tenant
scope) key (`Principal.key`): a `sub` alone is not unique (every `aipress token` once said
`local-user`, and another issuer may reuse any subject).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy import DateTime, String, create_engine, event, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from controlplane.kernel import clock

TITLE_LENGTH = 80


class Base(DeclarativeBase):
    """Tables of the chatbot."""


class ChatThread(Base):
    """A conversation and whose it is."""

    __tablename__ = "chat_threads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Kept for people reading the table; ownership is decided by owner_key alone.
    owner_sub: Mapped[str] = mapped_column(String(128))
    # NULL on rows written before owners were keyed on (issuer, subject, tenant scope): such a
    # thread matches no caller, rather than every caller who shares its subject.
    owner_key: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(TITLE_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ThreadNotFound(Exception):
    """No such thread for this caller (another user's thread looks the same)."""

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"no chat thread {thread_id!r} of yours; start a new one")


def _sqlalchemy_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def open_checkpointer(url: str) -> tuple[BaseCheckpointSaver[Any], Callable[[], None]]:
    """A checkpointer for the URL and the function that closes it."""
    path = _sqlite_path(url)
    if path is not None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        path.chmod(0o600)
        saver = SqliteSaver(conn)
        saver.setup()
        return saver, conn.close
    if url.startswith(("postgresql://", "postgres://")):
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        pool: ConnectionPool[Any] = ConnectionPool(
            url, kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=True,
        )  # fmt: skip
        postgres = PostgresSaver(pool)
        postgres.setup()
        return postgres, pool.close
    raise ValueError("AIPRESS_CHAT_DATABASE_URL must be sqlite:///path or postgresql://...")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL with NORMAL sync: a commit is durable against a process crash without an fsync
    # per chat turn (the checkpointer's connection uses the same settings).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def chat_engine(url: str) -> Engine:
    """An engine on the chat database (its directory made, SQLite in WAL mode), for the
    tables the chat service keeps beside the checkpoints."""
    path = _sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = create_engine(_sqlalchemy_url(url), pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class ThreadStore:
    """Thread ownership records."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = chat_engine(url)
        Base.metadata.create_all(self.engine)
        self._add_owner_key()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _add_owner_key(self) -> None:
        """Add `owner_key` to a table made before it existed (old rows stay NULL: unowned)."""
        columns = {c["name"] for c in inspect(self.engine).get_columns(ChatThread.__tablename__)}
        if "owner_key" in columns:
            return
        with self.engine.begin() as conn:
            conn.execute(text("ALTER TABLE chat_threads ADD COLUMN owner_key VARCHAR(64)"))
            conn.execute(
                text("CREATE INDEX IF NOT EXISTS ix_chat_threads_owner_key ON chat_threads "
                     "(owner_key)")
            )  # fmt: skip

    def create(
        self, *, owner_key: str, owner_sub: str, tenant_id: str | None, first_message: str
    ) -> str:
        """A new thread owned by `owner_key`; returns its id."""
        now = clock.now()
        thread = ChatThread(
            id=str(uuid.uuid4()),
            owner_sub=owner_sub,
            owner_key=owner_key,
            tenant_id=tenant_id,
            title=" ".join(first_message.split())[:TITLE_LENGTH] or "conversation",
            created_at=now,
            updated_at=now,
        )
        with self._sessions.begin() as session:
            session.add(thread)
        return thread.id

    def get(self, thread_id: str, *, owner_key: str) -> ChatThread:
        """The caller's thread, or ThreadNotFound."""
        with Session(self.engine) as session:
            thread = session.get(ChatThread, thread_id)
        if thread is None or thread.owner_key is None or thread.owner_key != owner_key:
            raise ThreadNotFound(thread_id)
        return thread

    def touch(self, thread_id: str) -> None:
        """Record activity."""
        with self._sessions.begin() as session:
            thread = session.get(ChatThread, thread_id)
            if thread is not None:
                thread.updated_at = clock.now()

    def list(self, *, owner_key: str, limit: int = 50) -> list[ChatThread]:
        """The caller's threads, latest first."""
        with Session(self.engine) as session:
            query = (
                select(ChatThread)
                .where(ChatThread.owner_key == owner_key)
                .order_by(ChatThread.updated_at.desc())
                .limit(limit)
            )
            return list(session.scalars(query))

    def close(self) -> None:
        """Dispose of connections."""
        self.engine.dispose()
