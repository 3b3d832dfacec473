"""operation leases (2026-11-22)"""

import sqlalchemy as sa
from alembic import op

import controlplane.models

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("worker_id", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("lease_expires_at", controlplane.models.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("worker_id")
