"""A per-minute call budget for a Google API, shared by every control-plane instance through
the control-plane database: Cloud Logging's entries.list allows 60 calls a minute per
project, and three instances with a limiter each would make three times the calls."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controlplane.models import ApiCallWindow


class SharedMinuteBudget:
    """At most `per_minute` calls of `key` in each clock minute, across processes."""

    def __init__(self, sessions: sessionmaker[Session], key: str, per_minute: int,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.sessions = sessions
        self.key = key
        self.per_minute = per_minute
        self.clock = clock

    def take(self) -> float | None:
        """Count one call and return None, or return the seconds until the next minute."""
        now = self.clock()
        minute = int(now // 60)
        row = ApiCallWindow
        with self.sessions() as session:
            counted = session.execute(  # type: ignore[attr-defined]
                update(row).where(row.key == self.key, row.window == minute,
                                  row.calls < self.per_minute)
                .values(calls=row.calls + 1)
            ).rowcount  # fmt: skip
            if not counted:  # a new minute: the first call resets the count
                counted = session.execute(  # type: ignore[attr-defined]
                    update(row).where(row.key == self.key, row.window < minute)
                    .values(window=minute, calls=1)
                ).rowcount  # fmt: skip
            if not counted and session.get(row, self.key) is None:
                session.add(row(key=self.key, window=minute, calls=1))
                try:
                    session.commit()
                except IntegrityError:  # another instance made the row first: count again
                    session.rollback()
                    return 0.0
                return None
            session.commit()
        return None if counted else (minute + 1) * 60 - now

    def wait(self) -> None:
        """Block until a call is allowed, and count it."""
        while (delay := self.take()) is not None:
            time.sleep(delay)
