"""Per-user limits on the chat endpoints: a sliding-window rate and a message length."""

from __future__ import annotations

import math

from controlplane.kernel.ratelimit import SlidingWindow


class RateLimited(Exception):
    """Too many chat messages; `retry_after` seconds until the next is allowed."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"too many chat messages: at most {limit} a minute per user; "
            f"try again in {retry_after} s"
        )
        self.retry_after = retry_after


class TooLong(Exception):
    """A message over the length limit."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"the message is {length} characters long; the limit is {limit}: shorten it"
        )


class RateLimiter:
    """At most `per_minute` chat messages per key in any 60 s window."""

    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self._window = SlidingWindow(per_minute, window)

    def hit(self, key: str) -> None:
        """Count one event for `key`, or raise RateLimited (and count nothing)."""
        wait = self._window.admit(key)
        if wait is not None:
            raise RateLimited(self.per_minute, max(1, math.ceil(wait)))


def check_length(message: str, limit: int) -> None:
    """Raise TooLong past the limit."""
    if len(message) > limit:
        raise TooLong(len(message), limit)
