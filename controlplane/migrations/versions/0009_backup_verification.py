"""backup verification: a backup's last restore beside its site, and its error (2026-12-01)"""

import sqlalchemy as sa
from alembic import op

from controlplane.migrations import columns

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.add_column(columns.moment("sample_checked_at", nullable=True))
        batch.add_column(sa.Column("verification_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.drop_column("verification_error")
        batch.drop_column("sample_checked_at")
