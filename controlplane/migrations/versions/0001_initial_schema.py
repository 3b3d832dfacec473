"""initial schema (2026-11-22)"""

import sqlalchemy as sa
from alembic import op

from controlplane.migrations import columns

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        columns.serial_id(),
        columns.moment("at"),
        columns.principal("actor"),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        columns.tenant_id(nullable=True),
        sa.Column("target", sa.String(length=300), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)
        batch_op.create_index("ix_audit_tenant_at", ["tenant_id", "at"], unique=False)

    op.create_table(
        "operations",
        columns.hex_id(),
        sa.Column("kind", sa.String(length=30), nullable=False),
        columns.tenant_id(),
        columns.hex_id("site_id", nullable=True),
        sa.Column("site_name", sa.String(length=40), nullable=False),
        columns.status(),
        columns.principal("requested_by"),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        columns.moment("created_at"),
        columns.moment("updated_at"),
        columns.moment("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_operations_site_id"), ["site_id"], unique=False)
        batch_op.create_index("ix_operations_status", ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_operations_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=30), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        columns.status(),
        columns.moment("created_at"),
        columns.principal("created_by"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "users",
        columns.principal("uid"),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("tenants", sa.JSON(), nullable=False),
        *columns.updated(),
        sa.PrimaryKeyConstraint("uid"),
    )
    op.create_table(
        "env_vars",
        columns.tenant_id(),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("ciphertext", sa.Text(), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        *columns.updated(),
        columns.cascade("tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "name"),
    )
    op.create_table(
        "operation_events",
        columns.serial_id(),
        columns.hex_id("operation_id"),
        sa.Column("type", sa.String(length=30), nullable=False),
        sa.Column("step", sa.String(length=30), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        columns.moment("at"),
        columns.cascade("operation_id", "operations"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("operation_events", schema=None) as batch_op:
        batch_op.create_index("ix_events_operation_id_id", ["operation_id", "id"], unique=False)

    op.create_table(
        "operation_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        columns.hex_id("operation_id"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=30), nullable=False),
        columns.status(),
        columns.moment("started_at", nullable=True),
        columns.moment("finished_at", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        columns.cascade("operation_id", "operations"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("operation_id", "position", name="uq_step_position"),
    )
    op.create_table(
        "sites",
        columns.hex_id(),
        columns.tenant_id(),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("admin_email", sa.String(length=254), nullable=False),
        sa.Column("admin_user", sa.String(length=60), nullable=False),
        columns.status(),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("preview_url", sa.String(length=300), nullable=True),
        sa.Column("resources", sa.JSON(), nullable=False),
        columns.hex_id("current_operation_id", nullable=True),
        columns.moment("created_at"),
        columns.moment("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_sites_tenant_name"),
    )
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sites_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        columns.hex_id("site_id"),
        sa.Column("kind", sa.String(length=30), nullable=False),
        columns.principal("username"),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        columns.moment("rotated_at"),
        columns.cascade("site_id", "sites"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "kind", name="uq_credential_site_kind"),
    )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credentials_site_id"), ["site_id"], unique=False)

    columns.create_unclaimed_domains()


def downgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_domains_site_id"))

    op.drop_table("domains")
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credentials_site_id"))

    op.drop_table("credentials")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sites_tenant_id"))

    op.drop_table("sites")
    op.drop_table("operation_steps")
    with op.batch_alter_table("operation_events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_operation_id_id")

    op.drop_table("operation_events")
    op.drop_table("env_vars")
    op.drop_table("users")
    op.drop_table("tenants")
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operations_tenant_id"))
        batch_op.drop_index("ix_operations_status")
        batch_op.drop_index(batch_op.f("ix_operations_site_id"))

    op.drop_table("operations")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_tenant_at")
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))

    op.drop_table("audit_events")
