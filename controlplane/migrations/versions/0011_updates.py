"""updates: the platform catalogue of package versions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 23:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.migrations import columns

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalogue_packages",
        columns.hex_id(),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("location", sa.String(length=500), nullable=False),
        columns.principal("added_by"),
        columns.moment("added_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "slug", "version", name="uq_catalogue_version"),
    )


def downgrade() -> None:
    op.drop_table("catalogue_packages")
