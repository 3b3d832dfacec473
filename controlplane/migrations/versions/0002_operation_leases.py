"""operation leases (2026-11-22)"""

import sqlalchemy as sa
from alembic import op

from controlplane.migrations import columns

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worker_id", sa.String(length=100), nullable=True))
        batch_op.add_column(columns.moment("lease_expires_at", nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("worker_id")
