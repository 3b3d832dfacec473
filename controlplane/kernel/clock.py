"""The one wall clock that dates are computed from ("this month", "today", metering hours).

Tests move it with `travel` (time keeps flowing from the new point) so that month and day
boundaries are exercised on any calendar day; nothing outside tests moves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

_offset = timedelta(0)


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC) + _offset


def today() -> date:
    """The current UTC day."""
    return now().date()


@contextmanager
def travel(to: datetime) -> Iterator[None]:
    """Within the block, the clock reads `to` (then keeps ticking); restored afterwards."""
    global _offset
    if to.tzinfo is None:
        raise ValueError("travel needs a timezone-aware datetime")
    previous = _offset
    _offset = to - datetime.now(UTC)
    try:
        yield
    finally:
        _offset = previous
