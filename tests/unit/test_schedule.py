"""The embedded schedules' thread: rounds go on after a failed one, and stop() ends them."""

from __future__ import annotations

import threading
import time

from controlplane.kernel.logs import get_logger
from controlplane.schedule import Schedule


class Rounds(Schedule):
    """Fails its first round, then counts the others; 10 ms between rounds."""

    def __init__(self) -> None:
        super().__init__("test", get_logger("test.schedule"), join_seconds=5)
        self.done = 0
        self.tried = 0
        self.three = threading.Event()

    def run_round(self, now: float, stop: threading.Event) -> None:
        self.tried += 1
        if self.tried == 1:
            raise RuntimeError("the first round fails")
        self.done += 1
        if self.done == 3:
            self.three.set()

    def seconds_to_next(self, now: float) -> float:
        return 0.01


def test_rounds_go_on_after_a_failed_one_until_stopped() -> None:
    rounds = Rounds()
    rounds.start()
    assert rounds.three.wait(5), "the rounds stopped after the failed one"
    rounds.stop()
    assert not rounds._thread.is_alive()
    after_stop = rounds.tried
    time.sleep(0.05)
    assert rounds.tried == after_stop  # no round after stop()


def test_a_long_wait_ends_at_stop() -> None:
    class Slow(Rounds):
        def seconds_to_next(self, now: float) -> float:
            return 3600.0

    slow = Slow()
    slow.start()
    began = time.monotonic()
    time.sleep(0.05)
    slow.stop()
    assert not slow._thread.is_alive()
    assert time.monotonic() - began < 5
    assert slow.tried == 1
