"""site cron runs (2026-12-01)"""

import sqlalchemy as sa
from alembic import op

from controlplane.migrations import columns

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "site_cron_runs",
        columns.hex_id("site_id"),
        columns.moment("last_run_at"),
        columns.status(),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("events_run", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        columns.cascade("site_id", "sites"),
        sa.PrimaryKeyConstraint("site_id"),
    )


def downgrade() -> None:
    op.drop_table("site_cron_runs")
