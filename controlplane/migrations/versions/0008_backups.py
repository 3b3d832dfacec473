"""backups: backup rows, per-site backup policies, per-tenant backup keys (2026-12-01)"""

import sqlalchemy as sa
from alembic import op

import controlplane.models

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    when = controlplane.models.UTCDateTime
    op.create_table(
        "backups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=30), nullable=False),
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("site_name", sa.String(length=40), nullable=False),
        sa.Column("site_title", sa.String(length=200), nullable=False),
        sa.Column("site_url", sa.String(length=300), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("operation_id", sa.String(length=32), nullable=True),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=500), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("added_bytes", sa.BigInteger(), nullable=True),
        sa.Column("checksums", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", when(), nullable=False),
        sa.Column("finished_at", when(), nullable=True),
        sa.Column("verified_at", when(), nullable=True),
        sa.Column("site_deleted_at", when(), nullable=True),
        sa.Column("forgotten_at", when(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_backups_tenant_site", "backups", ["tenant_id", "site_name"])
    op.create_index("ix_backups_site_id", "backups", ["site_id"])
    op.create_index("ix_backups_status", "backups", ["status"])
    op.create_table(
        "backup_policies",
        sa.Column("site_id", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("keep_daily", sa.Integer(), nullable=False),
        sa.Column("keep_weekly", sa.Integer(), nullable=False),
        sa.Column("keep_monthly", sa.Integer(), nullable=False),
        sa.Column("updated_at", when(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id"),
    )
    op.create_table(
        "tenant_backup_keys",
        sa.Column("tenant_id", sa.String(length=30), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", when(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id"),
    )


def downgrade() -> None:
    op.drop_table("tenant_backup_keys")
    op.drop_table("backup_policies")
    op.drop_index("ix_backups_status", table_name="backups")
    op.drop_index("ix_backups_site_id", table_name="backups")
    op.drop_index("ix_backups_tenant_site", table_name="backups")
    op.drop_table("backups")
