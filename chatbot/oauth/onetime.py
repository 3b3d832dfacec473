"""Single-use records every chat instance shares: authorization codes, answered consent
requests and MCP confirmation ids, in the chat service's database.

Only a hash of each key is stored, so a database reader cannot redeem anything. A record is
spent by one conditional UPDATE (`spent_at IS NULL AND expires_at > now`): the database, not
a process lock, decides which of two racing instances wins.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import (
    DateTime,
    String,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from chatbot.store import chat_engine
from controlplane.kernel import clock

# Spent and expired rows are kept this long after expiry (for someone reading the table), then
# swept by the next put.
SWEEP_AFTER = timedelta(hours=1)


class Base(DeclarativeBase):
    """The one-time records table."""


class OneTimeRecord(Base):
    """One single-use record: what it is, whose, what it stands for, until when."""

    __tablename__ = "oauth_one_time"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    payload: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(), index=True)
    spent_at: Mapped[datetime | None] = mapped_column(DateTime(), default=None)


class TooMany(OverflowError):
    """The owner, or everyone together, holds as many live records of a kind as allowed."""


def key_hash(key: str) -> str:
    """What the table keeps of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> datetime:
    # Naive UTC: SQLite keeps no zone, and every value here is UTC.
    return clock.now().replace(tzinfo=None)


class OneTimeRecords:
    """The shared table of single-use records."""

    def __init__(self, url: str) -> None:
        self.url = url

    @cached_property
    def engine(self) -> Engine:
        """The database's engine, the table made on first use."""
        engine = chat_engine(self.url)
        Base.metadata.create_all(engine)
        return engine

    def put(
        self,
        kind: str,
        payload: dict[str, Any],
        ttl: float,
        *,
        owner: str | None = None,
        max_held: int | None = None,
        max_per_owner: int | None = None,
        what: str = "authorizations",
    ) -> str:
        """Keep `payload` under a new random key for `ttl` seconds; return the key. TooMany
        when `owner` (or everyone) already holds the most live records of `kind` allowed."""
        key = secrets.token_urlsafe(32)
        now = _now()
        live = (
            (OneTimeRecord.kind == kind)
            & OneTimeRecord.spent_at.is_(None)
            & (OneTimeRecord.expires_at > now)
        )
        with self.engine.begin() as conn:
            conn.execute(delete(OneTimeRecord).where(OneTimeRecord.expires_at < now - SWEEP_AFTER))
            if max_held is not None:
                held = conn.scalar(select(func.count()).select_from(OneTimeRecord).where(live))
                if (held or 0) >= max_held:
                    raise TooMany(f"too many {what} in progress; try again shortly")
            if owner is not None and max_per_owner is not None:
                mine = conn.scalar(
                    select(func.count()).select_from(OneTimeRecord)
                    .where(live & (OneTimeRecord.owner == owner))
                )  # fmt: skip
                if (mine or 0) >= max_per_owner:
                    raise TooMany(f"you have too many unused {what}; try again shortly")
            conn.execute(insert(OneTimeRecord).values(
                kind=kind, key_hash=key_hash(key), owner=owner, payload=json.dumps(payload),
                expires_at=now + timedelta(seconds=ttl), spent_at=None,
            ))  # fmt: skip
        return key

    def hold(
        self,
        kind: str,
        key: str,
        payload: dict[str, Any],
        expires_at: datetime,
        *,
        owner: str | None = None,
        max_per_owner: int | None = None,
        what: str = "authorizations",
    ) -> None:
        """Record `key` (issued elsewhere, e.g. a signed request's id) unless it is there.
        TooMany when `owner` already recorded `max_per_owner` unexpired ones, spent or not
        (these are spent as soon as held, so only counting live ones would bound nothing)."""
        expires = expires_at.astimezone(UTC).replace(tzinfo=None)
        values = {"kind": kind, "key_hash": key_hash(key), "owner": owner,
                  "payload": json.dumps(payload), "expires_at": expires}  # fmt: skip
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with self.engine.begin() as conn:
            if owner is not None and max_per_owner is not None:
                mine = conn.scalar(
                    select(func.count()).select_from(OneTimeRecord)
                    .where((OneTimeRecord.kind == kind) & (OneTimeRecord.owner == owner)
                           & (OneTimeRecord.expires_at > _now()))
                )  # fmt: skip
                if (mine or 0) >= max_per_owner:
                    raise TooMany(f"you answered too many {what} lately; try again shortly")
            conn.execute(dialect.insert(OneTimeRecord).values(**values).on_conflict_do_nothing())

    def peek(self, kind: str, key: str) -> dict[str, Any] | None:
        """The payload under `key` if it is neither spent nor expired."""
        with self.engine.connect() as conn:
            payload = conn.scalar(
                select(OneTimeRecord.payload).where(
                    (OneTimeRecord.kind == kind) & (OneTimeRecord.key_hash == key_hash(key))
                    & OneTimeRecord.spent_at.is_(None) & (OneTimeRecord.expires_at > _now())
                )
            )  # fmt: skip
        return None if payload is None else dict(json.loads(payload))

    def spent(self, kind: str, key: str) -> bool:
        """Whether a record under `key` was spent (an unknown key was not)."""
        with self.engine.connect() as conn:
            found = conn.scalar(
                select(OneTimeRecord.spent_at).where(
                    (OneTimeRecord.kind == kind) & (OneTimeRecord.key_hash == key_hash(key))
                )
            )
        return found is not None

    def spend(self, kind: str, key: str) -> dict[str, Any] | None:
        """The payload under `key`, spent: exactly one caller ever gets it, on any instance."""
        now = _now()
        match = (OneTimeRecord.kind == kind) & (OneTimeRecord.key_hash == key_hash(key))
        with self.engine.begin() as conn:
            spent = conn.execute(
                update(OneTimeRecord)
                .where(match & OneTimeRecord.spent_at.is_(None) & (OneTimeRecord.expires_at > now))
                .values(spent_at=now)
            )  # fmt: skip
            if spent.rowcount != 1:
                return None
            payload = conn.scalar(select(OneTimeRecord.payload).where(match))
        return None if payload is None else dict(json.loads(payload))

    def close(self) -> None:
        """Dispose of connections (if any were opened)."""
        if "engine" in self.__dict__:
            self.engine.dispose()
