"""The entries.list budget is one per project, shared through the control-plane database by
every instance (two budgets on one database stand for two instances)."""

from __future__ import annotations

from pathlib import Path

from controlplane.db import make_engine, make_sessionmaker, migrate
from controlplane.providers.gcp.quota import SharedMinuteBudget
from controlplane.settings import Settings


class Clock:
    """Seconds since the epoch, moved by the test (no dependence on today's date)."""

    def __init__(self) -> None:
        self.now = 1_000 * 60 + 10.0  # ten seconds into minute 1000

    def __call__(self) -> float:
        return self.now


def test_instances_share_one_budget_per_minute(tmp_path: Path) -> None:
    engine = make_engine(Settings(provider="memory", home=tmp_path,
                                  database_url=f"sqlite:///{tmp_path / 'cp.db'}"))  # fmt: skip
    migrate(engine)
    sessions = make_sessionmaker(engine)
    clock = Clock()
    first = SharedMinuteBudget(sessions, "logging.entries.list/p", 3, clock)
    second = SharedMinuteBudget(sessions, "logging.entries.list/p", 3, clock)
    other = SharedMinuteBudget(sessions, "logging.entries.list/q", 3, clock)
    assert [first.take(), second.take(), first.take()] == [None, None, None]
    # The fourth call of the minute waits for the next one, whichever instance makes it.
    assert second.take() == 50.0 and first.take() == 50.0
    assert other.take() is None  # another project has its own budget
    clock.now += 50.0
    assert [second.take(), first.take(), second.take(), first.take()] == [None, None, None, 60.0]
    engine.dispose()
