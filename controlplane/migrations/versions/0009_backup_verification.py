"""backup verification: when a backup was last restored beside its site, and why it failed

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 17:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import controlplane.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.add_column(
            sa.Column("sample_checked_at", controlplane.models.UTCDateTime(), nullable=True)
        )
        batch.add_column(sa.Column("verification_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch:
        batch.drop_column("verification_error")
        batch.drop_column("sample_checked_at")
