"""cells: the cell of every tenant and site

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 13:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every existing tenant and site lives in the one cell there was.
    for table in ("tenants", "sites"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("cell", sa.String(length=20), nullable=False, server_default="cell-1")
            )


def downgrade() -> None:
    for table in ("sites", "tenants"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("cell")
