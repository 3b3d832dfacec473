"""Moving tables between a site's schemas (a restore's, promotion's or import's swap) with their
triggers: RENAME TABLE refuses to move a table that has one to another schema (ERROR 1435),
and a site's own PHP may have made one. The triggers of the moved tables are read, dropped,
the tables renamed in one statement, and the triggers made again in the schema each table
went to, in their order, with their sql_mode, the site's database user as their definer
(whatever a dump said: a trigger never runs with the platform's rights). The same SQL on the
local MariaDB and on Cloud SQL.

A process killed between the drop and the re-creation loses those triggers (the tables and
rows are whole either way); the engine's re-run of the swap does not bring them back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_DEFINER = re.compile(
    r"^CREATE\s+DEFINER\s*=\s*(?:`(?:[^`]|``)*`|\S+?)@(?:`(?:[^`]|``)*`|'[^']*'|\S+)\s+", re.I
)


def quote(name: str) -> str:
    """A backtick-quoted identifier (trigger and table names are the tenant's)."""
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class Trigger:
    """One trigger as SHOW CREATE TRIGGER gives it."""

    name: str
    table: str
    sql_mode: str
    statement: str  # CREATE ... TRIGGER ... ON <unqualified table> ...


def triggers_on(cur: Any, schema: str, tables: set[str]) -> list[Trigger]:
    """The triggers of `tables` in `schema`, in the order they fire."""
    cur.execute(
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, "
        "EVENT_MANIPULATION, ACTION_ORDER",
        (schema,),
    )
    found = [(str(n), str(t)) for n, t in cur.fetchall() if str(t) in tables]
    triggers = []
    for name, table in found:
        cur.execute(f"SHOW CREATE TRIGGER {quote(schema)}.{quote(name)}")
        row = cur.fetchone()
        triggers.append(Trigger(name, table, str(row[1]), str(row[2])))
    return triggers


def rename_with_triggers(cur: Any, moves: list[tuple[str, str, list[str]]], definer: str) -> None:
    """One RENAME TABLE of every (source schema, target schema, tables), their triggers
    dropped before it and made again after it in the target schema, `definer` theirs
    (`user`@`host`, quoted)."""
    pairs = [f"{quote(a)}.{quote(t)} TO {quote(b)}.{quote(t)}"
             for a, b, tables in moves for t in tables]  # fmt: skip
    if not pairs:
        return
    carried = [(a, b, trigger) for a, b, tables in moves
               for trigger in triggers_on(cur, a, set(tables))]  # fmt: skip
    dropped: list[tuple[str, Trigger]] = []
    try:
        for source, _target, trigger in carried:
            cur.execute(f"DROP TRIGGER {quote(source)}.{quote(trigger.name)}")
            dropped.append((source, trigger))
        cur.execute("RENAME TABLE " + ", ".join(pairs))
    except Exception:
        # The tables did not move: their triggers go back where they were.
        _create(cur, dropped, definer)
        raise
    _create(cur, [(target, trigger) for _source, target, trigger in carried], definer)


def _create(cur: Any, placed: list[tuple[str, Trigger]], definer: str) -> None:
    """Make each (schema, trigger) in its schema, in order, with `definer` as its definer."""
    if not placed:
        return
    cur.execute("SELECT @@SESSION.sql_mode")
    (mode,) = cur.fetchone()
    try:
        for target, trigger in placed:
            body = _DEFINER.sub("", trigger.statement, count=1)
            body = re.sub(r"^CREATE\s+", "", body, count=1, flags=re.I)
            cur.execute("SET SESSION sql_mode = %s", (trigger.sql_mode,))
            cur.execute(f"USE {quote(target)}")
            # The statement is tenant data: sent as it is, no %-formatting.
            cur.execute(f"CREATE DEFINER = {definer} {body}")
    finally:
        cur.execute("SET SESSION sql_mode = %s", (mode,))
