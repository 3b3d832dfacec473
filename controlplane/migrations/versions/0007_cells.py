"""cells: the cell of every tenant and site (2026-12-01)"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


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
