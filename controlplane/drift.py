"""Drift: what changed on a production site since its staging copy was made, in words a
person reads ("3 new comments", "wp_options changed", "2 files changed in uploads")."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from controlplane.engine.provider import CopyScope, Fingerprint, TablePrint

# WordPress's tables (after the site's prefix) and what a person calls one row of each;
# plurals by "s". Tables not named here are called by their name.
NOUNS: dict[str, tuple[str, str]] = {
    "comments": ("comment", "comments"),
    "posts": ("post or page", "posts or pages"),
    "users": ("user", "users"),
    "terms": ("term", "terms"),
    "links": ("link", "links"),
    "wc_orders": ("order", "orders"),
    "woocommerce_order_items": ("order item", "order items"),
}
# A meta table follows its main one: said only when the main one did not change.
META_OF = {
    "commentmeta": "comments",
    "postmeta": "posts",
    "usermeta": "users",
    "termmeta": "terms",
    "wc_orders_meta": "wc_orders",
    "woocommerce_order_itemmeta": "woocommerce_order_items",
}


@dataclass(frozen=True)
class TableDrift:
    """One table then and now."""

    table: str
    rows_then: int
    rows_now: int
    changed: bool
    summary: str | None


@dataclass(frozen=True)
class Drift:
    """Every table and file that differs between two fingerprints."""

    tables: list[TableDrift]
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        """Whether anything changed."""
        return bool(self.summary)

    def conflicts(self, scope: CopyScope) -> list[str]:
        """What changed where a promotion of `scope` would write: table names, and
        "files" when files changed and the scope copies them."""
        hit = [t.table for t in self.tables if t.changed and scope.covers(t.table)]
        if scope.files and (self.added or self.changed or self.removed):
            hit.append("files")
        return hit


def _kind(table: str, known: set[str]) -> str | None:
    """The WordPress table a name is (its prefix taken off), or None: the longest known
    name the table ends with after an underscore."""
    for name in sorted(known, key=len, reverse=True):
        if table.endswith(f"_{name}") or table == name:
            return name
    return None


def _count(n: int, noun: tuple[str, str]) -> str:
    return f"{n} {noun[0] if n == 1 else noun[1]}"


def _table_summary(table: str, then: TablePrint | None, now: TablePrint | None) -> str:
    kind = _kind(table, set(NOUNS))
    if then is None:
        return f"new table {table}"
    if now is None:
        return f"table {table} removed"
    noun = NOUNS.get(kind) if kind is not None else None
    if noun is not None and now.rows > then.rows:
        grew = now.rows - then.rows
        return f"{grew} new {noun[0] if grew == 1 else noun[1]}"
    if noun is not None and now.rows < then.rows:
        return f"{_count(then.rows - now.rows, noun)} removed"
    if noun is not None:
        return f"{noun[1]} changed"
    return f"{table} changed"


def _area(path: str) -> str:
    """The part of wp-content a file is in (uploads, plugins, themes...)."""
    top, sep, _rest = path.partition("/")
    return top if sep else "wp-content"


def compare(then: Fingerprint, now: Fingerprint) -> Drift:
    """What differs from `then` to `now`, table by table and file by file."""
    rows: list[TableDrift] = []
    for table in sorted(set(then.tables) | set(now.tables)):
        before, after = then.tables.get(table), now.tables.get(table)
        changed = before != after
        rows.append(
            TableDrift(
                table=table,
                rows_then=before.rows if before else 0,
                rows_now=after.rows if after else 0,
                changed=changed,
                summary=_table_summary(table, before, after) if changed else None,
            )
        )
    changed_kinds = {_kind(t.table, set(NOUNS)) for t in rows if t.changed}
    summary: list[str] = []
    for row in rows:
        if not row.changed or row.summary is None:
            continue
        meta = _kind(row.table, set(META_OF))
        if meta is not None and META_OF[meta] in changed_kinds:
            continue  # said with its main table
        summary.append(row.summary)
    added = sorted(set(now.files) - set(then.files))
    removed = sorted(set(then.files) - set(now.files))
    modified = sorted(p for p in set(now.files) & set(then.files) if now.files[p] != then.files[p])
    areas = Counter(_area(p) for p in [*added, *removed, *modified])
    for area, n in sorted(areas.items()):
        summary.append(f"{n} file{'' if n == 1 else 's'} changed in {area}")
    return Drift(tables=rows, added=added, changed=modified, removed=removed, summary=summary)
