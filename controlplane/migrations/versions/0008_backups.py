"""backups: backup rows, per-site backup policies, per-tenant backup keys (2026-12-01)"""

import sqlalchemy as sa
from alembic import op

from controlplane.migrations import columns

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "backups",
        columns.hex_id(),
        columns.tenant_id(),
        columns.hex_id("site_id"),
        sa.Column("site_name", sa.String(length=40), nullable=False),
        sa.Column("site_title", sa.String(length=200), nullable=False),
        sa.Column("site_url", sa.String(length=300), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        columns.status(),
        columns.hex_id("operation_id", nullable=True),
        columns.principal("requested_by"),
        sa.Column("location", sa.String(length=500), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("added_bytes", sa.BigInteger(), nullable=True),
        sa.Column("checksums", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        columns.moment("created_at"),
        columns.moment("finished_at", nullable=True),
        columns.moment("verified_at", nullable=True),
        columns.moment("site_deleted_at", nullable=True),
        columns.moment("forgotten_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_backups_tenant_site", "backups", ["tenant_id", "site_name"])
    op.create_index("ix_backups_site_id", "backups", ["site_id"])
    op.create_index("ix_backups_status", "backups", ["status"])
    op.create_table(
        "backup_policies",
        columns.hex_id("site_id"),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("keep_daily", sa.Integer(), nullable=False),
        sa.Column("keep_weekly", sa.Integer(), nullable=False),
        sa.Column("keep_monthly", sa.Integer(), nullable=False),
        *columns.updated(),
        columns.cascade("site_id", "sites"),
        sa.PrimaryKeyConstraint("site_id"),
    )
    op.create_table(
        "tenant_backup_keys",
        columns.tenant_id(),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        columns.moment("created_at"),
        columns.cascade("tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("tenant_id"),
    )


def downgrade() -> None:
    op.drop_table("tenant_backup_keys")
    op.drop_table("backup_policies")
    op.drop_index("ix_backups_status", table_name="backups")
    op.drop_index("ix_backups_site_id", table_name="backups")
    op.drop_index("ix_backups_tenant_site", table_name="backups")
    op.drop_table("backups")
