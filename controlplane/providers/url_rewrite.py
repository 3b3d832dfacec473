"""Serialized-safe search-replace of a site's URL in its database, in Python.

WordPress keeps PHP-serialized values in its tables (options, post and user meta, widgets):
`s:21:"https://old.example/x"` must become `s:21+delta:"..."` or PHP refuses the whole value.
This rewrites every string token of a serialized value, nested ones included (a serialized
value stored as a string inside another), and recomputes its byte length; every other token
(numbers, booleans, class names) is copied as it was, so nothing is ever unserialized into
an object. A value that is not serialized is replaced as plain text. Like WP-CLI's
search-replace, it does not touch JSON-escaped (`https:\\/\\/old`) copies of the URL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pymysql.cursors

TEXT_TYPES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext")
BATCH_ROWS = 500
_NUMBER = re.compile(rb"(-?[0-9.eE+INFNA-]+);")


class NotSerialized(ValueError):
    """The value is not one whole PHP-serialized value."""


def _token(data: bytes, at: int, old: bytes, new: bytes, out: list[bytes]) -> int:
    """Copy (rewriting strings) the serialized value starting at `at`; return where it ends."""
    kind = data[at : at + 2]
    if kind == b"N;":
        out.append(b"N;")
        return at + 2
    if kind in (b"b:", b"i:", b"d:"):
        found = _NUMBER.match(data, at + 2)
        if not found:
            raise NotSerialized(f"bad number at {at}")
        out.append(data[at : found.end()])
        return found.end()
    if kind == b"s:":
        colon = data.index(b":", at + 2)
        length = int(data[at + 2 : colon])
        start = colon + 2
        if (
            data[colon + 1 : colon + 2] != b'"'
            or data[start + length : start + length + 2] != b'";'
        ):
            raise NotSerialized(f"bad string at {at}")
        text = replace_in_value(data[start : start + length], old, new)
        out.append(b's:%d:"%s";' % (len(text), text))
        return start + length + 2
    if kind in (b"a:", b"O:"):
        head = at + 2
        if kind == b"O:":  # O:<len>:"<class>":<count>:{...}
            colon = data.index(b":", head)
            head = colon + 2 + int(data[head:colon]) + 2
            out.append(data[at:head])
        else:
            out.append(b"a:")
        colon = data.index(b":", head)
        count = int(data[head:colon])
        if data[colon + 1 : colon + 2] != b"{":
            raise NotSerialized(f"bad array at {at}")
        out.append(data[head : colon + 2])
        at = colon + 2
        for _ in range(count * 2):
            at = _token(data, at, old, new, out)
        if data[at : at + 1] != b"}":
            raise NotSerialized(f"unterminated array at {at}")
        out.append(b"}")
        return at + 1
    raise NotSerialized(f"unknown token {kind!r} at {at}")


def replace_in_value(value: bytes, old: bytes, new: bytes) -> bytes:
    """`value` with `old` replaced by `new`, keeping PHP-serialized values valid."""
    if old not in value:
        return value
    if value[:2] in (b"a:", b"O:", b"s:"):
        out: list[bytes] = []
        try:
            end = _token(value, 0, old, new, out)
        except (NotSerialized, ValueError, IndexError):
            return value.replace(old, new)
        if end == len(value):
            return b"".join(out)
    return value.replace(old, new)


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def rewrite_database(connect: Callable[[], Any], database: str, old: str, new: str) -> int:
    """Replace `old` with `new` in every text column of every table of `database` that has a
    primary key, serialized-safe; return how many rows changed. Reads with an unbuffered
    cursor on one connection and writes on another, so no table is ever held in memory."""
    if not old or old == new:
        return 0
    old_b, new_b = old.encode(), new.encode()
    changed = 0
    with connect() as reader, connect() as writer:
        with reader.cursor() as cur:
            cur.execute(
                "SELECT c.table_name, c.column_name, c.data_type, c.column_key "
                "FROM information_schema.columns c JOIN information_schema.tables t "
                "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
                "WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE' "
                "ORDER BY c.table_name, c.ordinal_position",
                (database,),
            )
            tables: dict[str, tuple[list[str], list[str]]] = {}
            for table, column, kind, key in cur.fetchall():
                keys, texts = tables.setdefault(str(table), ([], []))
                if key == "PRI":
                    keys.append(str(column))
                if str(kind).lower() in TEXT_TYPES:
                    texts.append(str(column))
        for table, (keys, texts) in tables.items():
            if not keys or not texts:
                continue  # nothing to rewrite, or no way to name a row (WordPress has none)
            where = " OR ".join(f"{_quote(c)} LIKE %s" for c in texts)
            pattern = "%" + old.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            select = (
                f"SELECT {', '.join(_quote(c) for c in keys + texts)} "
                f"FROM {_quote(database)}.{_quote(table)} WHERE {where}"
            )
            assign = ", ".join(f"{_quote(c)} = %s" for c in texts)
            match = " AND ".join(f"{_quote(c)} <=> %s" for c in keys)
            update = f"UPDATE {_quote(database)}.{_quote(table)} SET {assign} WHERE {match}"
            with reader.cursor(pymysql.cursors.SSCursor) as rows, writer.cursor() as out:
                rows.execute(select, [pattern] * len(texts))
                while batch := rows.fetchmany(BATCH_ROWS):
                    for row in batch:
                        key_values, values = row[: len(keys)], row[len(keys) :]
                        rewritten = [
                            v if v is None else _rewrite_text(v, old_b, new_b) for v in values
                        ]
                        if rewritten != list(values):
                            out.execute(update, [*rewritten, *key_values])
                            changed += 1
            writer.commit()
    return changed


def _rewrite_text(value: Any, old: bytes, new: bytes) -> Any:
    if isinstance(value, str):
        return replace_in_value(value.encode(), old, new).decode()
    return replace_in_value(bytes(value), old, new)
