"""Columns, keys and tables the migrations share (the platform's id widths in one place).

Frozen like the revisions that call it: an applied migration must keep producing the same
schema, so a function here never changes what it returns. A new shape gets a new function.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from controlplane.models import UTCDateTime


def serial_id() -> sa.Column[Any]:
    """An autoincrementing BIGINT `id` (INTEGER on SQLite, the only type it autoincrements)."""
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        autoincrement=True,
        nullable=False,
    )


def hex_id(name: str = "id", *, nullable: bool = False) -> sa.Column[Any]:
    """A 32-character hex id (models.new_id): of a site, an operation, a backup..."""
    return sa.Column(name, sa.String(length=32), nullable=nullable)


def tenant_id(*, nullable: bool = False) -> sa.Column[Any]:
    """The owning tenant's id."""
    return sa.Column("tenant_id", sa.String(length=30), nullable=nullable)


def status() -> sa.Column[Any]:
    """A row's lifecycle status."""
    return sa.Column("status", sa.String(length=20), nullable=False)


def moment(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    """A timestamp, stored as naive UTC."""
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def principal(name: str) -> sa.Column[Any]:
    """Who did it: a caller's uid or a workload's name."""
    return sa.Column(name, sa.String(length=128), nullable=False)


def updated() -> tuple[sa.Column[Any], sa.Column[Any]]:
    """`updated_at` and `updated_by` of a row people edit."""
    return moment("updated_at"), principal("updated_by")


def cascade(column: str, parent: str) -> sa.ForeignKeyConstraint:
    """`column` references `parent`.id; deleting the parent deletes the row."""
    return sa.ForeignKeyConstraint([column], [f"{parent}.id"], ondelete="CASCADE")


def create_unclaimed_domains() -> None:
    """The `domains` table before claims (0001's; what 0004's downgrade restores)."""
    op.create_table(
        "domains",
        sa.Column("domain", sa.String(length=253), nullable=False),
        hex_id("site_id"),
        moment("created_at"),
        cascade("site_id", "sites"),
        sa.PrimaryKeyConstraint("domain"),
    )
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_domains_site_id"), ["site_id"], unique=False)
