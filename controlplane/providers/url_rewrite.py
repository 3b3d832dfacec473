"""Serialized-safe search-replace of a site's URL in its database, in Python.

The same rules as the local provider's PHP script (controlplane/providers/local/
search_replace.php), for the gcp control plane, which has no PHP: WordPress keeps
PHP-serialized values in its tables (options, post and user meta, widgets), and
`s:21:"https://old.example/x"` must get its new byte length or PHP refuses the whole value.
Every string value of a serialized value is rewritten, nested serialized strings too (up to
8 deep), and its length recomputed; array keys, numbers, booleans and class names are kept
as they were, and nothing is ever unserialized into an object. A value that looks serialized
but does not parse is left as it is (a plain replace would corrupt it); any other value is
replaced as plain text. JSON-escaped copies (`https:\\/\\/old`) are not touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pymysql.cursors

TEXT_TYPES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext")
BATCH_ROWS = 500
MAX_DEPTH = 8
_SCALAR = re.compile(rb"(?:b:[01]|i:-?[0-9]+|d:(?:-?[0-9.]+(?:E[+-]?[0-9]+)?|-?INF|NAN));")


class NotSerialized(ValueError):
    """The value is not one whole PHP-serialized value."""


def looks_serialized(value: bytes) -> bool:
    """What PHP would try to unserialize (the local script's test, byte for byte)."""
    value = value.strip()
    if value == b"N;":
        return True
    if len(value) < 4 or value[1:2] != b":":
        return False
    return value[:1] in b"aOsbidE" and value[-1:] in (b";", b"}")


def _count(data: bytes, at: int) -> tuple[int, int]:
    colon = data.index(b":", at)
    return int(data[at:colon]), colon + 1


def _value(data: bytes, at: int, old: bytes, new: bytes, depth: int, out: list[bytes]) -> int:
    """Copy (strings rewritten) the serialized value at `at` into `out`; return its end."""
    if data.startswith(b"N;", at):
        out.append(b"N;")
        return at + 2
    scalar = _SCALAR.match(data, at)
    if scalar:
        out.append(scalar.group())
        return scalar.end()
    kind = data[at : at + 2]
    if kind == b"s:":
        length, start = _count(data, at + 2)
        start += 1
        if data[start - 1 : start] != b'"' or data[start + length : start + length + 2] != b'";':
            raise NotSerialized(f"bad string at {at}")
        text = _rewrite(data[start : start + length], old, new, depth)
        if text is None:
            raise NotSerialized(f"a nested value at {at} does not parse")
        out.append(b's:%d:"%s";' % (len(text), text))
        return start + length + 2
    if kind in (b"a:", b"O:"):
        head = at + 2
        if kind == b"O:":  # O:<len>:"<class>":<count>:{...}
            length, name = _count(data, head)
            head = name + 1 + length + 2
        count, brace = _count(data, head)
        if data[brace : brace + 1] != b"{":
            raise NotSerialized(f"bad array at {at}")
        out.append(data[at : brace + 1])
        at = brace + 1
        for _ in range(count):
            key: list[bytes] = []
            at = _value(data, at, b"", b"", depth, key)  # keys are kept as they are
            if key[0][:2] not in (b"i:", b"s:"):
                raise NotSerialized(f"bad key at {at}")
            out.extend(key)
            at = _value(data, at, old, new, depth, out)
        if data[at : at + 1] != b"}":
            raise NotSerialized(f"unterminated array at {at}")
        out.append(b"}")
        return at + 1
    raise NotSerialized(f"unknown token {kind!r} at {at}")


def _rewrite(value: bytes, old: bytes, new: bytes, depth: int) -> bytes | None:
    if not old or old not in value:
        return value
    if not looks_serialized(value):
        return value.replace(old, new)
    if depth >= MAX_DEPTH:
        return None
    out: list[bytes] = []
    try:
        end = _value(value, 0, old, new, depth + 1, out)
    except (NotSerialized, ValueError, IndexError):
        return None
    return b"".join(out) if end == len(value) else None


def replace_in_value(value: bytes, old: bytes, new: bytes) -> bytes:
    """`value` with `old` replaced by `new`, keeping PHP-serialized values valid; a value
    that looks serialized and does not parse comes back unchanged."""
    rewritten = _rewrite(value, old, new, 0)
    return value if rewritten is None else rewritten


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
