"""bundles: the plugins and themes every new site of a tenant (or of the platform) gets

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 23:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.migrations import columns

revision: str = "0012"
# Chained after 0011_updates (merged in); the lead re-chains at merge.
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bundles",
        sa.Column("scope", sa.String(length=30), nullable=False),
        columns.tenant_id(nullable=True),
        sa.Column("plugins", sa.JSON(), nullable=False),
        sa.Column("themes", sa.JSON(), nullable=False),
        *columns.updated(),
        columns.cascade("tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("scope"),
        sa.UniqueConstraint("tenant_id"),
    )


def downgrade() -> None:
    op.drop_table("bundles")
