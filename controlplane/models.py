"""SQLAlchemy models of the control-plane database."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from controlplane.kernel import clock


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return clock.now()


def new_id() -> str:
    """A fresh 32-character hex id."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC (SQLite and MySQL drop the zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Tenant(Base):
    """A customer of the hosting platform."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(30), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    # The cell (project + Cloud SQL instance) the tenant's resources live in.
    cell: Mapped[str] = mapped_column(String(20), default="cell-1", server_default="cell-1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))


class Site(Base):
    """A WordPress site of a tenant."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_sites_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    admin_email: Mapped[str] = mapped_column(String(254))
    admin_user: Mapped[str] = mapped_column(String(60), default="admin")
    status: Mapped[str] = mapped_column(String(20), default="provisioning")
    provider: Mapped[str] = mapped_column(String(20))
    cell: Mapped[str] = mapped_column(String(20), default="cell-1", server_default="cell-1")
    preview_url: Mapped[str | None] = mapped_column(String(300), default=None)
    # Provider resource ids (database name, pool, service name...), never secrets.
    resources: Mapped[dict[str, Any]] = mapped_column(default=dict)
    current_operation_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # SiteRole: "production", or "staging" for a clone of `parent_id` to promote later.
    role: Mapped[str] = mapped_column(String(20), default="production", server_default="production")
    parent_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    domains: Mapped[list[Domain]] = relationship(
        back_populates="site", cascade="all, delete-orphan", lazy="selectin"
    )
    cron_run: Mapped[SiteCronRun | None] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def verified_domains(self) -> list[str]:
        """The custom domains proven to be the tenant's: the only ones the site serves."""
        return sorted(d.domain for d in self.domains if d.status == DOMAIN_VERIFIED)


DOMAIN_PENDING = "pending"
DOMAIN_VERIFIED = "verified"


class Domain(Base):
    """A site's claim to a custom domain: pending until its owner proves control (a DNS TXT
    record with the claim's token), then verified. Many sites may hold pending claims to one
    name (a claim proves nothing, so it must block nobody); one site at most holds it
    verified (`verified_domain` is unique and NULL while pending)."""

    __tablename__ = "domains"
    __table_args__ = (UniqueConstraint("site_id", "domain", name="uq_domains_site_domain"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain: Mapped[str] = mapped_column(String(253), index=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=DOMAIN_PENDING)
    token: Mapped[str] = mapped_column(String(64))
    verified_domain: Mapped[str | None] = mapped_column(String(253), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)

    site: Mapped[Site] = relationship(back_populates="domains")


class Operation(Base):
    """A durable, multi-step change to a site (create, delete...)."""

    __tablename__ = "operations"
    __table_args__ = (Index("ix_operations_status", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(30))
    tenant_id: Mapped[str] = mapped_column(String(30), index=True)
    site_id: Mapped[str | None] = mapped_column(String(32), index=True)
    site_name: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    requested_by: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The engine running it ("host:pid:nonce") and until when that claim holds.
    worker_id: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    steps: Mapped[list[OperationStep]] = relationship(
        back_populates="operation",
        cascade="all, delete-orphan",
        order_by="OperationStep.position",
        lazy="selectin",
    )

    @property
    def backup(self) -> str | None:
        """The id of the backup the operation is about: the one a backup or a delete takes,
        the one a restore (or a create from a backup) puts back."""
        backup_id = (self.params or {}).get("backup")
        return backup_id if isinstance(backup_id, str) else None

    @property
    def rewrite(self) -> dict[str, Any] | None:
        """What the operation's search-replace of the site's address changed (a clone, a
        promotion, an import), per table and column: counts, never values."""
        report = (self.params or {}).get("rewrite")
        return report if isinstance(report, dict) else None

    @property
    def merged_into(self) -> str | None:
        """The newer operation that took over this one's work (a queued env change)."""
        newer = (self.params or {}).get("merged_into")
        return newer if isinstance(newer, str) else None

    @property
    def children(self) -> dict[str, str] | None:
        """A bulk's children started so far: site name -> operation id."""
        if self.kind != "bulk":
            return None
        return dict((self.params or {}).get("children") or {})

    @property
    def progress(self) -> dict[str, int] | None:
        """A bulk's counts: total, done, failed, cancelled, running."""
        counts = (self.params or {}).get("progress") if self.kind == "bulk" else None
        return dict(counts) if isinstance(counts, dict) else None


class OperationStep(Base):
    """One named step of an operation and its progress."""

    __tablename__ = "operation_steps"
    __table_args__ = (UniqueConstraint("operation_id", "position", name="uq_step_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)

    operation: Mapped[Operation] = relationship(back_populates="steps")


class OperationEvent(Base):
    """A progress event of an operation, streamed to clients in order."""

    __tablename__ = "operation_events"
    __table_args__ = (Index("ix_events_operation_id_id", "operation_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(30))
    step: Mapped[str | None] = mapped_column(String(30), default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Credential(Base):
    """An encrypted credential of a site (database user, WordPress admin...)."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("site_id", "kind", name="uq_credential_site_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    username: Mapped[str] = mapped_column(String(128))
    ciphertext: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(32))
    rotated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EnvVar(Base):
    """A tenant-scoped environment variable; secret values are stored encrypted only."""

    __tablename__ = "env_vars"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[bool] = mapped_column(default=False)
    value: Mapped[str | None] = mapped_column(Text, default=None)
    ciphertext: Mapped[str | None] = mapped_column(Text, default=None)
    key_id: Mapped[str | None] = mapped_column(String(32), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128))


class AuditEvent(Base):
    """Who asked for which change, when, and how it ended."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_tenant_at", "tenant_id", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    # The token's issuer and the (issuer, subject, tenant scope) key: `actor` alone is not
    # unique across issuers, nor across tokens minted for the same subject.
    actor_issuer: Mapped[str | None] = mapped_column(String(300), default=None)
    actor_key: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(120))
    tenant_id: Mapped[str | None] = mapped_column(String(30), default=None)
    target: Mapped[str | None] = mapped_column(String(300), default=None)
    outcome: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class User(Base):
    """A platform user's role and tenants (mirrored to Firebase custom claims in gcp mode)."""

    __tablename__ = "users"

    uid: Mapped[str] = mapped_column(String(128), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254), default=None)
    role: Mapped[str] = mapped_column(String(20))
    tenants: Mapped[list[str]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128))


class TenantCost(Base):
    """Net cost of one tenant on one day for one service (and site), in one currency.

    `tenant_id` is 'platform' for charges that carry no tenant label; `kind` is 'direct'
    (labelled rows) or 'apportioned' (a share of a shared resource, e.g. the Cloud SQL
    instance). Rows are replaced whole for each re-aggregated window.
    """

    __tablename__ = "tenant_costs"
    __table_args__ = (Index("ix_tenant_costs_tenant_day", "tenant_id", "day"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(String(30))
    day: Mapped[date] = mapped_column(Date, index=True)
    service: Mapped[str] = mapped_column(String(200))
    site: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(20), default="direct")
    currency: Mapped[str] = mapped_column(String(3))
    cost: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    credits: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    net: Mapped[Decimal] = mapped_column(Numeric(18, 6))


class BillingRun(Base):
    """One aggregation run: its window, source and outcome (the 'last refreshed' time)."""

    __tablename__ = "billing_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    source: Mapped[str] = mapped_column(String(20))
    since: Mapped[date] = mapped_column(Date)
    until: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(20), default="running")
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    bytes_scanned: Mapped[int | None] = mapped_column(BigInteger, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class SiteCronRun(Base):
    """The platform's last run of a site's due WordPress events (one row per site)."""

    __tablename__ = "site_cron_runs"

    site_id: Mapped[str] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    last_run_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(500), default="")
    events_run: Mapped[int | None] = mapped_column(Integer, default=None)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    runs: Mapped[int] = mapped_column(Integer, default=0)


class ApiCallWindow(Base):
    """Calls made to a rate-limited Google API in the current minute, shared by every
    control-plane instance (Cloud Logging's entries.list: 60 a minute per project)."""

    __tablename__ = "api_call_windows"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window: Mapped[int] = mapped_column(Integer)  # minutes since the epoch
    calls: Mapped[int] = mapped_column(Integer, default=0)


class Backup(Base):
    """One backup of a site's database and files. The row outlives its site (the undelete
    and the owner's download need it); `location` says where the provider wrote it."""

    __tablename__ = "backups"
    __table_args__ = (
        Index("ix_backups_tenant_site", "tenant_id", "site_name"),
        Index("ix_backups_site_id", "site_id"),
        Index("ix_backups_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(30))
    # No foreign key: the site row goes when the site is deleted, its backups stay.
    site_id: Mapped[str] = mapped_column(String(32))
    site_name: Mapped[str] = mapped_column(String(40))
    site_title: Mapped[str] = mapped_column(String(200), default="")
    # The address the site had when backed up: a site made from this backup rewrites it.
    site_url: Mapped[str | None] = mapped_column(String(300), default=None)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    operation_id: Mapped[str | None] = mapped_column(String(32), default=None)
    requested_by: Mapped[str] = mapped_column(String(128))
    location: Mapped[str | None] = mapped_column(String(500), default=None)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    added_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    checksums: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    # The last trial restore beside the site (verify_backup), whatever its outcome: the
    # round's sample takes the backups tried longest ago; the error says why one failed.
    sample_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    verification_error: Mapped[str | None] = mapped_column(Text, default=None)
    # When the site was deleted: the deleted-site retention counts from here.
    site_deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    forgotten_at: Mapped[datetime | None] = mapped_column(default=None)


class BackupPolicy(Base):
    """A site's backup schedule and retention, once its owner changed the defaults."""

    __tablename__ = "backup_policies"

    site_id: Mapped[str] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(default=True)
    hour: Mapped[int] = mapped_column(Integer)  # UTC hour of the daily backup, 0-23
    keep_daily: Mapped[int] = mapped_column(Integer, default=7)
    keep_weekly: Mapped[int] = mapped_column(Integer, default=4)
    keep_monthly: Mapped[int] = mapped_column(Integer, default=3)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128))


class TenantBackupKey(Base):
    """A tenant's backup key (its restic repository password), encrypted with the Keyring."""

    __tablename__ = "tenant_backup_keys"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    ciphertext: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SiteFingerprint(Base):
    """The parent's content when a staging site was cloned from it (or last promoted into
    it): what the staging site's drift compares the parent against now."""

    __tablename__ = "site_fingerprints"

    site_id: Mapped[str] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    parent_id: Mapped[str] = mapped_column(String(32))
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Table name -> {"rows": int, "checksum": int}; file path -> content hash.
    tables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CataloguePackage(Base):
    """One version of a plugin, theme or WordPress core the platform holds as a checked zip:
    the only things sites install."""

    __tablename__ = "catalogue_packages"
    __table_args__ = (UniqueConstraint("kind", "slug", "version", name="uq_catalogue_version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(10))
    slug: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    location: Mapped[str] = mapped_column(String(500))
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


# The scope of the platform's default bundle (no tenant id is "*": ids are DNS labels).
PLATFORM_BUNDLE = "*"


class Bundle(Base):
    """The plugins and themes every new site gets: a tenant's, or the platform default (no
    tenant) that tenants without their own inherit."""

    __tablename__ = "bundles"

    # The tenant id, or PLATFORM_BUNDLE: one row per scope, so at most one platform default.
    scope: Mapped[str] = mapped_column(String(30), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), unique=True, default=None
    )
    # [{"slug": ..., "version": ...}], version a catalogue version or "latest".
    plugins: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    themes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128))
