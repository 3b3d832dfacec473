"""Moving tables with their triggers on the real MariaDB: they move with their tables, and a
move that fails leaves them on the tables that stayed."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from controlplane.providers.triggers import rename_with_triggers
from controlplane.stack.mariadb import MariaDB

pytestmark = pytest.mark.integration

DEFINER = "`site`@`127.0.0.1`"


@pytest.fixture
def schemas(mariadb: MariaDB) -> Iterator[tuple[Any, str, str]]:
    """A root cursor, a `live` schema whose wp_posts has a trigger, and an empty `previous`."""
    live, previous = (f"trg_{secrets.token_hex(4)}_{part}" for part in ("live", "previous"))
    with mariadb.connect() as conn, conn.cursor() as cur:
        for schema in (live, previous):
            cur.execute(f"CREATE DATABASE `{schema}`")
        cur.execute(f"CREATE TABLE `{live}`.wp_posts (id INT, post_excerpt TEXT)")
        cur.execute(f"USE `{live}`")
        cur.execute(
            f"CREATE DEFINER = {DEFINER} TRIGGER stamp BEFORE INSERT ON wp_posts "
            "FOR EACH ROW SET NEW.post_excerpt = 'x'"
        )
        try:
            yield cur, live, previous
        finally:
            for schema in (live, previous):
                cur.execute(f"DROP DATABASE IF EXISTS `{schema}`")


def _triggers(cur: Any, schema: str) -> list[tuple[str, str]]:
    cur.execute(
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s",
        (schema,),
    )
    return [(str(name), str(table)) for name, table in cur.fetchall()]


def test_the_triggers_move_with_their_tables(schemas: tuple[Any, str, str]) -> None:
    cur, live, previous = schemas
    rename_with_triggers(cur, [(live, previous, ["wp_posts"])], DEFINER)
    assert _triggers(cur, live) == [] and _triggers(cur, previous) == [("stamp", "wp_posts")]


def test_a_rename_that_fails_puts_the_triggers_back_on_the_tables_that_stayed(
    schemas: tuple[Any, str, str],
) -> None:
    cur, live, previous = schemas
    cur.execute(f"CREATE TABLE `{previous}`.wp_posts (id INT)")  # the name is taken: refused
    with pytest.raises(pymysql.err.OperationalError, match="already exists"):
        rename_with_triggers(cur, [(live, previous, ["wp_posts"])], DEFINER)
    assert _triggers(cur, live) == [("stamp", "wp_posts")] and _triggers(cur, previous) == []
