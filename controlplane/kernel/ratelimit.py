"""A sliding-window count per key: at most `per_minute` events in any 60 s window."""

from __future__ import annotations

import threading
import time
from collections import deque

FORGET_PAST_KEYS = 10_000  # then keys with no event inside the window are dropped


class SlidingWindow:
    """Counts events per key (chat messages, denied-request audit entries)."""

    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: str) -> float | None:
        """Count one event for `key` and return None; past the limit count nothing and
        return the seconds until the next event would be admitted."""
        now = time.monotonic()
        with self._lock:
            if len(self._events) > FORGET_PAST_KEYS:
                self._events = {k: v for k, v in self._events.items() if v[-1] > now - self.window}
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.per_minute:
                return events[0] + self.window - now
            events.append(now)
            return None
