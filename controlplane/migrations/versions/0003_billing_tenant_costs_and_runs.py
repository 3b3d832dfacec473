"""billing: tenant costs and runs (2026-11-22)"""

import sqlalchemy as sa
from alembic import op

from controlplane.migrations import columns

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "billing_runs",
        columns.hex_id(),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        columns.moment("started_at"),
        columns.moment("finished_at", nullable=True),
        columns.status(),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("bytes_scanned", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "tenant_costs",
        columns.serial_id(),
        columns.tenant_id(),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("cost", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("credits", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("net", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tenant_costs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tenant_costs_day"), ["day"], unique=False)
        batch_op.create_index("ix_tenant_costs_tenant_day", ["tenant_id", "day"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tenant_costs", schema=None) as batch_op:
        batch_op.drop_index("ix_tenant_costs_tenant_day")
        batch_op.drop_index(batch_op.f("ix_tenant_costs_day"))

    op.drop_table("tenant_costs")
    op.drop_table("billing_runs")
