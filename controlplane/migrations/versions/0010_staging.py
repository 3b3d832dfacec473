"""staging: a site's role and parent, the parent's fingerprint at clone time (2026-12-01)"""

import sqlalchemy as sa
from alembic import op

from controlplane.migrations import columns

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(
            sa.Column("role", sa.String(length=20), nullable=False, server_default="production")
        )
        batch.add_column(columns.hex_id("parent_id", nullable=True))
        batch.create_index("ix_sites_parent_id", ["parent_id"])
    op.create_table(
        "site_fingerprints",
        columns.hex_id("site_id"),
        columns.hex_id("parent_id"),
        columns.moment("taken_at"),
        sa.Column("tables", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        columns.cascade("site_id", "sites"),
        sa.PrimaryKeyConstraint("site_id"),
    )


def downgrade() -> None:
    op.drop_table("site_fingerprints")
    with op.batch_alter_table("sites") as batch:
        batch.drop_index("ix_sites_parent_id")
        batch.drop_column("parent_id")
        batch.drop_column("role")
