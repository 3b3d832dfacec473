"""A thread of the embedded default that runs rounds (backups, cron) until it is stopped;
production starts each round from Cloud Scheduler instead."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

import structlog


class Schedule(ABC):
    """A daemon thread: `run_round` now, then again after `seconds_to_next`, until `stop()`.
    A failed round is logged and the next one runs anyway."""

    def __init__(self, name: str, log: structlog.stdlib.BoundLogger, join_seconds: float) -> None:
        self._name = name
        self._log = log
        self._join_seconds = join_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-schedule", daemon=True)

    @abstractmethod
    def run_round(self, now: float, stop: threading.Event) -> None:
        """One round, begun at `now` (epoch seconds); it may end early once `stop` is set."""

    @abstractmethod
    def seconds_to_next(self, now: float) -> float:
        """After the round begun at `now`: how long until the next one."""

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for the round in progress (up to the join time)."""
        self._stop.set()
        self._thread.join(timeout=self._join_seconds)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            try:
                self.run_round(now, self._stop)
            except Exception as exc:  # a failed round is logged; the next one runs anyway
                self._log.error(f"{self._name}.round_failed", error_type=type(exc).__name__,
                                error=str(exc)[:500])  # fmt: skip
            if self._stop.wait(self.seconds_to_next(now)):
                return
