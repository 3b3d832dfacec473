"""audit actors keyed on (issuer, subject, tenant scope); custom domains as claims (2026-12-01)

Domains attached before this revision were never verified: they become pending claims with
fresh tokens (their sites stop answering to them until their owners prove control).
"""

import secrets

import sqlalchemy as sa
from alembic import op

from controlplane.migrations import columns

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor_issuer", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("actor_key", sa.String(length=64), nullable=True))
        batch_op.alter_column(
            "action",
            existing_type=sa.String(length=60),
            type_=sa.String(length=120),
            existing_nullable=False,
        )
        batch_op.create_index(batch_op.f("ix_audit_events_actor_key"), ["actor_key"], unique=False)

    conn = op.get_bind()
    old = conn.execute(sa.text("SELECT domain, site_id, created_at FROM domains")).all()
    op.drop_table("domains")  # its indexes go with it (MariaDB refuses to drop an FK's index)
    op.create_table(
        "domains",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        columns.hex_id("site_id"),
        columns.status(),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("verified_domain", sa.String(length=253), nullable=True),
        columns.moment("created_at"),
        columns.moment("checked_at", nullable=True),
        columns.moment("verified_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        columns.cascade("site_id", "sites"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "domain", name="uq_domains_site_domain"),
        sa.UniqueConstraint("verified_domain"),
    )
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_domains_domain"), ["domain"], unique=False)
        batch_op.create_index(batch_op.f("ix_domains_site_id"), ["site_id"], unique=False)
    for domain, site_id, created_at in old:
        conn.execute(
            sa.text(
                "INSERT INTO domains (domain, site_id, status, token, created_at) "
                "VALUES (:domain, :site_id, 'pending', :token, :created_at)"
            ),
            {"domain": domain, "site_id": site_id, "token": secrets.token_hex(16),
             "created_at": created_at},
        )  # fmt: skip


def downgrade() -> None:
    conn = op.get_bind()
    kept = conn.execute(
        sa.text("SELECT domain, site_id, created_at FROM domains WHERE status = 'verified'")
    ).all()
    op.drop_table("domains")
    columns.create_unclaimed_domains()
    for domain, site_id, created_at in kept:
        conn.execute(
            sa.text("INSERT INTO domains VALUES (:domain, :site_id, :created_at)"),
            {"domain": domain, "site_id": site_id, "created_at": created_at},
        )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_actor_key"))
        batch_op.alter_column(
            "action",
            existing_type=sa.String(length=120),
            type_=sa.String(length=60),
            existing_nullable=False,
        )
        batch_op.drop_column("actor_key")
        batch_op.drop_column("actor_issuer")
