"""Moving tables with their triggers when the move fails: the triggers stay where they were."""

from __future__ import annotations

import re
from typing import Any

import pytest

from controlplane.providers.triggers import rename_with_triggers

CREATE = (
    "CREATE DEFINER=`site`@`127.0.0.1` TRIGGER `stamp` BEFORE INSERT ON `wp_posts` "
    "FOR EACH ROW SET NEW.post_excerpt = 'x'"
)


class RenameRefused(Exception):
    """What the server answers a RENAME TABLE that cannot run (a lock wait, a name taken)."""


class Cursor:
    """Just the statements rename_with_triggers sends, over triggers kept by schema."""

    def __init__(self, *, rename_fails: bool) -> None:
        self.triggers: dict[str, dict[str, str]] = {"live": {"stamp": "wp_posts"}}
        self.rename_fails = rename_fails
        self.schema = ""
        self._rows: list[Any] = []

    def execute(self, sql: str, args: Any = None) -> None:
        if sql.startswith("SELECT TRIGGER_NAME"):
            self._rows = [(n, t) for n, t in self.triggers.get(args[0], {}).items()]
        elif sql.startswith("SHOW CREATE TRIGGER"):
            self._rows = [("stamp", "STRICT_TRANS_TABLES", CREATE)]
        elif found := re.fullmatch(r"DROP TRIGGER `(\w+)`\.`(\w+)`", sql):
            del self.triggers[found[1]][found[2]]
        elif sql.startswith("RENAME TABLE"):
            if self.rename_fails:
                raise RenameRefused("Lock wait timeout exceeded")
        elif sql.startswith("SELECT @@SESSION.sql_mode"):
            self._rows = [("STRICT_TRANS_TABLES",)]
        elif found := re.fullmatch(r"USE `(\w+)`", sql):
            self.schema = found[1]
        elif found := re.match(r"CREATE DEFINER = \S+ TRIGGER `(\w+)` .* ON `(\w+)`", sql):
            self.triggers.setdefault(self.schema, {})[found[1]] = found[2]

    def fetchall(self) -> list[Any]:
        return self._rows

    def fetchone(self) -> Any:
        return self._rows[0]


MOVES = [("live", "live__previous", ["wp_posts"]), ("live__restore", "live", [])]


def test_the_triggers_move_with_their_tables() -> None:
    cur = Cursor(rename_fails=False)
    rename_with_triggers(cur, MOVES, "`site`@'127.0.0.1'")
    assert cur.triggers == {"live": {}, "live__previous": {"stamp": "wp_posts"}}


def test_a_rename_that_fails_puts_the_triggers_back_on_the_tables_that_stayed() -> None:
    cur = Cursor(rename_fails=True)
    with pytest.raises(RenameRefused):
        rename_with_triggers(cur, MOVES, "`site`@'127.0.0.1'")
    assert cur.triggers == {"live": {"stamp": "wp_posts"}}
