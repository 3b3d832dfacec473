"""Request and response models of the control-plane API (XCreate / XRead / XWrite)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
)

from controlplane.kernel import names
from controlplane.kernel.identity import Role
from controlplane.kernel.vocabulary import (
    BackupKind,
    BackupStatus,
    BulkAction,
    EventType,
    OperationKind,
    OperationStatus,
    PackageKind,
    SiteRole,
    StepStatus,
)

MAX_ENV_VALUE = 32_768
MASK = "••••••••"

# Names checked where they are declared: a ValueError of the check is the 422's message.
TenantId = Annotated[str, AfterValidator(names.check_tenant_id)]
SiteName = Annotated[str, AfterValidator(names.check_site_name)]
DomainName = Annotated[str, AfterValidator(lambda value: names.check_domain(value))]


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


class TenantCreate(BaseModel):
    """A new tenant."""

    model_config = ConfigDict(extra="forbid")

    id: TenantId = Field(description="DNS-label id, e.g. 'acme' (lowercase, 1-30 characters)")
    name: str = Field(min_length=1, max_length=200, description="Display name")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()


class TenantRead(BaseModel):
    """A tenant as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    status: str
    cell: str = Field(description="The cell (project and database instance) it lives in")
    created_at: datetime
    created_by: str
    allowed_actions: list[str] = Field(
        description="What this caller may do within the tenant: create_site, change_env, "
        "restore_site (a new site from a backup)"
    )


class FromBackup(BaseModel):
    """The backup a new site is made from."""

    model_config = ConfigDict(extra="forbid")

    site: str = Field(min_length=1, max_length=40, description="The backed-up site's name")
    backup: str = Field(pattern=r"^[0-9a-f]{32}$", description="The backup's id")


class SiteCreate(BaseModel):
    """A new WordPress site."""

    model_config = ConfigDict(extra="forbid")

    name: SiteName = Field(description="DNS-label site name, e.g. 'crumbs' (1-40 characters)")
    title: str | None = Field(default=None, max_length=200, description="Site title")
    admin_email: EmailStr | None = Field(
        default=None, description="WordPress admin e-mail; defaults to the caller's e-mail"
    )
    domain: DomainName | None = Field(
        default=None,
        description="Optional custom domain: starts a pending claim, served once verified",
    )
    from_backup: FromBackup | None = Field(
        default=None,
        description="Make the site from this backup (of a live or a deleted site: the "
        "undelete); its URLs are rewritten to the new site's address",
    )

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 for c in value):
            raise ValueError("title must not contain control characters")
        return value.strip() if value else None


class CronRunRead(BaseModel):
    """The platform's last run of a site's due WordPress events (WP-Cron)."""

    model_config = ConfigDict(from_attributes=True)

    last_run_at: datetime
    status: str = Field(description="ok, or failed (detail says why)")
    detail: str
    events_run: int | None = Field(description="due events run (None: the site did not say)")
    duration_ms: int
    runs: int = Field(description="runs recorded since the site was created")


class SiteRead(BaseModel):
    """A site as the API shows it (never its credentials)."""

    id: str
    tenant_id: str
    name: str
    title: str
    status: str
    preview_url: str | None
    domains: list[str] = Field(description="Verified custom domains (the ones served)")
    pending_domains: list[str] = Field(
        default_factory=list, description="Claimed custom domains still waiting for proof"
    )
    admin_email: str
    admin_user: str
    current_operation_id: str | None
    created_at: datetime
    updated_at: datetime
    # Read from the site's WordPress by its wordpress step; None until then.
    wordpress_version: str | None = None
    updates_available: int | None = Field(
        default=None,
        description="Catalogue versions newer than what the site has, as its last package "
        "listing counted them; None until its packages were first read",
    )
    cron: CronRunRead | None = None
    role: str = Field(default="production", description="production, or staging (a clone)")
    parent: str | None = Field(
        default=None, description="The name of the production site a staging site copies"
    )
    allowed_actions: list[str] = Field(
        description="What this caller may do to the site now (its role and the site's state): "
        "stop, start, delete, admin_login, reveal_password, change_env"
    )


class SitePlan(BaseModel):
    """A dry run: the calls a create would make, in order (nothing was created)."""

    provider: str
    site: str
    calls: list[dict[str, Any]]


class StepRead(BaseModel):
    """One step of an operation."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    status: StepStatus
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class BulkProgress(BaseModel):
    """How far a bulk operation is: `done` counts every child that ended, whatever its end."""

    total: int
    done: int
    failed: int = Field(description="Children that failed or were rolled back")
    cancelled: int
    running: int


class RewriteRead(BaseModel):
    """A search-replace's report: per table and column how many values changed."""

    tables: dict[str, dict[str, int]]
    rows: int
    cells: int
    dry_run: bool = False
    unparsed: int = Field(default=0, description="Serialized values that did not parse: kept")


class OperationRead(BaseModel):
    """A durable operation and its steps."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: OperationKind
    tenant_id: str
    site_id: str | None
    site_name: str = Field(description="The site; empty for a tenant-level kind (apply_env)")
    status: OperationStatus
    requested_by: str
    request_id: str | None
    attempts: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    steps: list[StepRead]
    backup: str | None = Field(
        default=None,
        description="The id of the backup the operation takes (backup, delete) or puts back "
        "(restore, create from a backup)",
    )
    rewrite: RewriteRead | None = Field(
        default=None,
        description="What rewriting the site's address changed (clone, promote, import)",
    )
    merged_into: str | None = Field(
        default=None,
        description="The newer operation that applied this one's change with its own (an env "
        "change queued behind another); this one succeeded without work of its own",
    )
    children: dict[str, str] | None = Field(
        default=None, description="A bulk's children: site name -> operation id (those started)"
    )
    progress: BulkProgress | None = Field(default=None, description="A bulk's counts")


# Sites one bulk request may name (a tenant with more uses "all").
MAX_BULK_SITES = 1_000


class BulkRequest(BaseModel):
    """One action on many of a tenant's sites: one child operation per site."""

    model_config = ConfigDict(extra="forbid")

    action: BulkAction
    sites: Annotated[list[str], Field(max_length=MAX_BULK_SITES)] | Literal["all"] = Field(
        description='Site names (at most 1,000), or "all": every site of the tenant the action '
        "applies to now"
    )
    concurrency: int = Field(default=2, ge=1, le=8, description="Children running at once")
    update: UpdateRequest | None = Field(
        default=None, description="action update: what to update (none: everything)"
    )


class BulkAccepted(BaseModel):
    """A recorded bulk operation and the sites it works on, in order."""

    operation: OperationRead
    sites: list[str]


class BulkSite(BaseModel):
    """One site of an admin's bulk across tenants."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str
    site: str


class AdminBulkRequest(BaseModel):
    """An admin's bulk across tenants: one parent operation per tenant."""

    model_config = ConfigDict(extra="forbid")

    action: BulkAction
    sites: Annotated[list[BulkSite], Field(max_length=MAX_BULK_SITES)] | Literal["all"] = Field(
        description='Sites by tenant (at most 1,000), or "all": every site of every tenant the '
        "action applies to"
    )
    concurrency: int = Field(
        default=2, ge=1, le=8, description="Children running at once, per tenant"
    )
    update: UpdateRequest | None = None


class AdminBulkAccepted(BaseModel):
    """The parent operation of each tenant, by tenant id."""

    operations: list[OperationRead]


class DomainCreate(BaseModel):
    """A claim to a custom domain for a site."""

    model_config = ConfigDict(extra="forbid")

    domain: DomainName = Field(description="Fully qualified name you own, e.g. 'shop.example.com'")


class DnsRecord(BaseModel):
    """A DNS record to create."""

    type: str
    name: str
    value: str


class DomainRead(BaseModel):
    """A site's claim to a custom domain and how to prove it."""

    domain: str
    status: str = Field(description="pending (not served) or verified (served)")
    verification: DnsRecord = Field(description="The TXT record that proves control")
    instructions: str
    created_at: datetime
    checked_at: datetime | None
    verified_at: datetime | None
    last_error: str | None = Field(description="Why the last verification failed")


class DomainChange(BaseModel):
    """A domain change and the operation that applies it to the site, if one is needed."""

    domain: DomainRead
    operation: OperationRead | None


class SiteAccepted(BaseModel):
    """The 202 answer to a site change: the site and the operation that carries it out."""

    site: SiteRead
    operation: OperationRead


class EnvVarWrite(BaseModel):
    """A value for an env var; secrets are write-only."""

    model_config = ConfigDict(extra="forbid")

    value: str = Field(max_length=MAX_ENV_VALUE)
    secret: bool = False

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        if "\x00" in value or "\n" in value or "\r" in value:
            raise ValueError("value must be a single line without NUL characters")
        if value.startswith("$"):
            # PHP-FPM reads a value starting with "$" as a reference to another variable.
            raise ValueError("value must not start with '$'")
        return value


class EnvBulkWrite(BaseModel):
    """Several env vars at once (created or replaced; others are kept)."""

    model_config = ConfigDict(extra="forbid")

    vars: dict[str, EnvVarWrite] = Field(max_length=200)

    @field_validator("vars")
    @classmethod
    def _names(cls, value: dict[str, EnvVarWrite]) -> dict[str, EnvVarWrite]:
        for name in value:
            names.check_env_name(name)
        return value


class EnvVarRead(BaseModel):
    """An env var; a secret's value is always shown masked."""

    name: str
    value: str
    secret: bool
    updated_at: datetime
    updated_by: str


class EnvChangeAccepted(BaseModel):
    """The 202 answer to a change of one env var: the operation applies it to the sites."""

    variable: EnvVarRead = Field(description="The variable as saved (or as it was, if deleted)")
    operation: OperationRead


class EnvBulkAccepted(BaseModel):
    """The 202 answer to a change of several env vars: one operation applies them all."""

    variables: list[EnvVarRead]
    operation: OperationRead


class Vocabulary(BaseModel):
    """The words operations are told in, for clients that must not retype them."""

    operation_kinds: list[OperationKind]
    operation_kind_labels: dict[OperationKind, str]
    operation_statuses: list[OperationStatus]
    active_operation_statuses: list[OperationStatus]
    finished_operation_statuses: list[OperationStatus]
    step_statuses: list[StepStatus]
    event_types: list[EventType]
    step_event_states: dict[EventType, StepStatus]  # what a step becomes on each step event
    announced_events: list[EventType]  # what a live region says aloud
    backup_kinds: list[BackupKind]
    backup_statuses: list[BackupStatus]
    site_roles: list[SiteRole] = Field(description="What a site is for: production or staging")
    package_kinds: list[PackageKind] = Field(
        description="What a site installs: plugin, theme, core"
    )
    bulk_actions: list[BulkAction] = Field(description="What a bulk operation does to each site")


class AuditRead(BaseModel):
    """An audit event."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    actor_issuer: str | None = None
    role: str
    action: str
    tenant_id: str | None
    target: str | None
    outcome: str
    request_id: str | None
    detail: dict[str, Any]


class UserWrite(BaseModel):
    """A user's role and tenants."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    tenants: list[str] = Field(default_factory=list, max_length=500)
    email: EmailStr | None = None

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, value: list[str]) -> list[str]:
        return sorted({names.check_tenant_id(t) for t in value})


class UserRead(BaseModel):
    """A user's role and tenants as the platform records them."""

    model_config = ConfigDict(from_attributes=True)

    uid: str
    email: str | None
    role: str
    tenants: list[str]
    updated_at: datetime
    updated_by: str


class PrincipalRead(BaseModel):
    """Who the caller is, as the control plane sees the token."""

    sub: str
    role: str
    tenants: list[str] | None
    email: str | None


class AdminCredentials(BaseModel):
    """A site's WordPress admin login (returned only by the reveal endpoint)."""

    username: str
    password: str
    login_url: str | None


class AdminLogin(BaseModel):
    """A one-click wp-admin link: valid until `expires_at`, usable once (never for the model)."""

    url: str
    expires_at: datetime


class BackupRead(BaseModel):
    """A backup of a site (of a deleted one too, until it is pruned)."""

    id: str
    tenant_id: str
    site_id: str
    site_name: str
    kind: BackupKind
    status: BackupStatus
    created_at: datetime
    finished_at: datetime | None
    verified_at: datetime | None = Field(description="When its checksums were last checked")
    sample_checked_at: datetime | None = Field(
        default=None, description="When it was last restored beside its site and compared"
    )
    verification_error: str | None = Field(
        default=None, description="Why its last trial restore failed; None: it passed"
    )
    size_bytes: int | None = Field(description="The whole backup: database dump and files")
    added_bytes: int | None = Field(description="What it added to storage (deduplicated)")
    error: str | None
    operation_id: str | None = Field(description="The operation that takes it")
    site_deleted_at: datetime | None = Field(description="When its site was deleted")
    kept_until: datetime | None = Field(
        description="When it is pruned (a deleted site's, or a pre-change one); None: kept "
        "until the policy (scheduled) or the user (manual) removes it"
    )


class BackupAccepted(BaseModel):
    """A backup started: its row (pending until written) and the operation writing it."""

    backup: BackupRead
    operation: OperationRead


class ImportAccepted(BaseModel):
    """An import started: its operation, and the backup of the live site it takes first."""

    operation: OperationRead
    pre_import_backup: BackupRead


class RestoreAccepted(BaseModel):
    """A restore started: the backup put back, the backup of the live site taken first."""

    site: SiteRead
    backup: BackupRead
    pre_restore_backup: BackupRead
    operation: OperationRead


class BackupPolicyRead(BaseModel):
    """A site's backup schedule and retention (the defaults until changed)."""

    enabled: bool
    hour: int = Field(description="UTC hour of the daily backup")
    keep_daily: int
    keep_weekly: int
    keep_monthly: int
    customized: bool = Field(description="False: the platform's defaults")


class BackupPolicyWrite(BaseModel):
    """A change to a site's backup policy; fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool | None = None
    hour: StrictInt | None = Field(default=None, ge=0, le=23, description="UTC hour, 0-23")
    keep_daily: StrictInt | None = Field(default=None, ge=0, le=100)
    keep_weekly: StrictInt | None = Field(default=None, ge=0, le=100)
    keep_monthly: StrictInt | None = Field(default=None, ge=0, le=100)


class BackupDownloadLink(BaseModel):
    """A link that downloads one backup as .tar.gz until `expires_at` (for its owner)."""

    url: str = Field(description="Path on the control plane's API (the chat service forwards it)")
    expires_at: datetime


TABLE_NAME = re.compile(r"[A-Za-z0-9_$]{1,64}")


class CloneRequest(BaseModel):
    """A staging copy of a site: the new site's name, and whether visitors must log in."""

    model_config = ConfigDict(extra="forbid")

    name: SiteName = Field(description="DNS-label name of the new staging site (1-40 characters)")
    basic_auth: StrictBool = Field(
        default=False, description="Keep visitors out with an HTTP login (revealed on demand)"
    )


class CloneAccepted(BaseModel):
    """A clone started: the new staging site and the operation making it."""

    site: SiteRead
    operation: OperationRead


class TableDriftRead(BaseModel):
    """One table of production then (at the clone) and now."""

    table: str
    rows_then: int
    rows_now: int
    changed: bool
    summary: str | None


class FileDriftRead(BaseModel):
    """Production's files (under wp-content) added, changed and removed since the clone."""

    added: list[str]
    changed: list[str]
    removed: list[str]


class DriftRead(BaseModel):
    """What changed on production since its staging copy was made (or last promoted)."""

    site: str
    parent: str
    since: datetime
    changed: bool
    tables: list[TableDriftRead]
    files: FileDriftRead
    summary: list[str] = Field(description='Sentences a person reads: "3 new comments"')


class PromoteRequest(BaseModel):
    """What of the staging copy goes into production: everything, the database, or the
    files; `tables` narrows the database to those tables; `force` promotes over drift."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["all", "database", "files"] = "all"
    tables: list[str] | None = Field(
        default=None, description="Only these tables of the database (e.g. wp_posts)"
    )
    force: StrictBool = False

    @field_validator("tables")
    @classmethod
    def _tables(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("name at least one table, or leave tables out for every table")
        for table in value:
            if not TABLE_NAME.fullmatch(table):
                raise ValueError(f"{table!r} is not a table name (letters, digits, _ and $)")
        return sorted(set(value))


class PromoteAccepted(BaseModel):
    """A promotion started on the production site, and the backup of it taken first."""

    operation: OperationRead
    pre_promote_backup: BackupRead


class RollbackAccepted(BaseModel):
    """A rollback started: a restore of the newest pre-promote backup."""

    operation: OperationRead
    backup: BackupRead


class BasicAuthCredentials(BaseModel):
    """The HTTP login that keeps visitors off a staging site."""

    username: str
    password: str


# ----------------------------------------------------------------- catalogue and updates

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
VERSION_PATTERN = r"^[0-9][0-9A-Za-z.+_-]{0,39}$"


class CatalogueEntryRead(BaseModel):
    """One package version the platform holds (a checked zip)."""

    kind: PackageKind
    slug: str
    version: str
    name: str
    sha256: str
    size_bytes: int
    added_at: datetime


class PackageRead(BaseModel):
    """One thing a site has, and the catalogue's newer versions of it."""

    kind: PackageKind
    slug: str
    name: str
    version: str
    active: bool
    available: list[str] = Field(description="Catalogue versions newer than installed, ascending")
    latest: str | None = Field(description="The newest of `available`; None when up to date")


class SitePackagesRead(BaseModel):
    """What a site has (read from the site itself) and what it could update to."""

    core: PackageRead
    plugins: list[PackageRead]
    themes: list[PackageRead]
    updates_available: int


class PackageTarget(BaseModel):
    """A plugin or theme and the version wanted ("latest": the catalogue's newest)."""

    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=SLUG_PATTERN)
    version: str = Field(default="latest", pattern=r"^(latest|[0-9][0-9A-Za-z.+_-]{0,39})$")


class UpdateRequest(BaseModel):
    """What to update; all three empty or left out: everything that has an update."""

    model_config = ConfigDict(extra="forbid")

    core: str | None = Field(
        default=None, pattern=r"^(latest|[0-9][0-9A-Za-z.+_-]{0,39})$",
        description="A core version, or latest",
    )  # fmt: skip
    plugins: list[PackageTarget] | None = Field(default=None, max_length=100)
    themes: list[PackageTarget] | None = Field(default=None, max_length=100)
    dry_run: StrictBool = False


class PackageChange(BaseModel):
    """One package an update changes (from_version None: added)."""

    kind: PackageKind
    slug: str
    from_version: str | None
    to_version: str


class UpdateAccepted(BaseModel):
    """An update started: follow the operation."""

    operation: OperationRead
    changes: list[PackageChange]


class UpdatePlan(BaseModel):
    """A dry run: what an update would change (nothing recorded)."""

    changes: list[PackageChange]
    dry_run: bool = True


def _one_each(targets: list[PackageTarget]) -> list[PackageTarget]:
    """Each slug once: a bundle cannot install two versions of one package."""
    seen: set[str] = set()
    for target in targets:
        if target.slug in seen:
            raise ValueError(f"{target.slug!r} is listed twice; keep one version of it")
        seen.add(target.slug)
    return targets


class BundleWrite(BaseModel):
    """The plugins and themes every new site gets, installed and activated by its create."""

    model_config = ConfigDict(extra="forbid")

    plugins: list[PackageTarget] = Field(default_factory=list, max_length=50)
    themes: list[PackageTarget] = Field(
        default_factory=list,
        max_length=1,
        description="At most one: the theme new sites switch to",
    )

    _plugins_once = field_validator("plugins")(_one_each)


class BundleRead(BaseModel):
    """A tenant's bundle (or the platform default, tenant_id None)."""

    tenant_id: str | None
    plugins: list[PackageTarget]
    themes: list[PackageTarget]
    inherited: bool = Field(description="The tenant has none of its own: the platform default")
    updated_by: str | None = None
    updated_at: datetime | None = None
