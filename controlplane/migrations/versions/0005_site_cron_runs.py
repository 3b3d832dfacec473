"""site cron runs (2026-12-01)"""

import sqlalchemy as sa
from alembic import op

import controlplane.models

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "site_cron_runs",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("last_run_at", controlplane.models.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("events_run", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id"),
    )


def downgrade() -> None:
    op.drop_table("site_cron_runs")
