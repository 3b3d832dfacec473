"""What the provisioning engine needs from a provider: one `Protocol` per step, nothing of GCP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from controlplane.engine.packages import PackagesStep
    from controlplane.observability import SiteLogs


# The vault kind of a staging site's HTTP login: a runtime that finds one keeps visitors out
# until they give it (the platform's probes pass).
BASIC_AUTH = "basic_auth"


class CredentialVault(Protocol):
    """Encrypted credentials of one site; passwords are generated once and reused on retry."""

    def get_or_create(self, kind: str, username: str) -> tuple[str, str]:
        """(username, password) of `kind`, generating and storing it on first use."""
        ...

    def get(self, kind: str) -> tuple[str, str] | None:
        """(username, password) of `kind`, if stored."""
        ...


@dataclass
class SiteContext:
    """Everything a step knows about the site it works on."""

    tenant_id: str
    site_id: str
    site_name: str
    title: str
    admin_email: str
    admin_user: str
    domains: list[str]
    credentials: CredentialVault
    # Provider resource ids (names, paths, service ids); persisted after every step.
    resources: dict[str, Any] = field(default_factory=dict)
    # The tenant's env vars and secrets in plain text: for the runtime only, never logged.
    tenant_env: dict[str, str] = field(default_factory=dict, repr=False)
    request_id: str | None = None
    # The tenant's backup key (restic repository password, GCS encryption key source):
    # one per tenant, kept encrypted by the control plane; filled for changes, never logged.
    backup_password: str = field(default="", repr=False)
    # Whether search engines are asked to index the site (WordPress's `blog_public`): a
    # staging site is not public.
    public: bool = True


class SiteStep(Protocol):
    """One provisioning step: `ensure` and `remove` are idempotent and each undoes the other."""

    def ensure(self, ctx: SiteContext) -> None:
        """Create (or confirm) this step's resources for the site."""
        ...

    def remove(self, ctx: SiteContext) -> None:
        """Remove this step's resources; a no-op when they are already gone."""
        ...


class RuntimeStep(SiteStep, Protocol):
    """The step that serves the site; it can also pause it and take new env vars."""

    def start(self, ctx: SiteContext) -> None:
        """Serve the site again after `stop`."""
        ...

    def stop(self, ctx: SiteContext) -> None:
        """Take the site offline without deleting anything."""
        ...

    def maintenance(self, ctx: SiteContext, on: bool) -> None:
        """Answer visitors 503 with Retry-After while `on` (a restore runs), or serve again.
        The platform's probes still reach the site (to check it before it is shown)."""
        ...

    def apply_env(self, contexts: list[SiteContext]) -> None:
        """Re-apply each site's tenant env vars and secrets (ctx.tenant_env), all at once."""
        ...


class DnsStep(SiteStep, Protocol):
    """Preview name and custom domains."""

    def preview_url(self, ctx: SiteContext) -> str:
        """The URL that reaches the site with no custom DNS."""
        ...


@dataclass(frozen=True)
class BackupRecord:
    """What a provider wrote for one backup: enough to verify, restore and forget it."""

    # Provider-specific and opaque to the engine: "restic:<snapshot id>" locally,
    # "gs://<bucket>/<prefix>/" on gcp. Never a secret.
    location: str
    size_bytes: int  # the backup's whole size (the database dump plus every file)
    added_bytes: int  # what it added to storage (smaller when the tool deduplicates)
    # Part ("database", "files") -> sha256 of its content as written; checked after writing
    # and again before a restore swaps anything in.
    checksums: dict[str, str]


@dataclass(frozen=True)
class RewriteReport:
    """What a search-replace of a site's address changed (counts only, never values)."""

    tables: dict[str, dict[str, int]]  # table -> column -> cells changed
    rows: int
    cells: int
    dry_run: bool = False
    unparsed: int = 0  # values that looked serialized and did not parse: left as they were

    def summary(self) -> str:
        """One sentence a person reads: "rewrote 42 values in 6 tables"."""
        verb = "would rewrite" if self.dry_run else "rewrote"
        values = "value" if self.cells == 1 else "values"
        tables = "table" if len(self.tables) == 1 else "tables"
        said = f"{verb} {self.cells} {values} in {len(self.tables)} {tables}"
        if self.unparsed:
            said += f" ({self.unparsed} unreadable serialized left as they were)"
        return said


@dataclass(frozen=True)
class TablePrint:
    """One table's content at one moment."""

    rows: int  # exact row count
    checksum: int  # CHECKSUM TABLE (MariaDB/MySQL both have it); 0 for an empty table


@dataclass(frozen=True)
class Fingerprint:
    """A site's content at one moment: what drift compares against."""

    # Full table name as in the site's database ("wp_posts").
    tables: dict[str, TablePrint]
    # Path under wp-content (local) or object name in the site's uploads bucket (gcp) ->
    # content hash (sha256 hex locally; the object's md5Hash/crc32c on gcp).
    files: dict[str, str]


@dataclass(frozen=True)
class CopyScope:
    """What a restore/promotion/import copies: every table or some, files or not."""

    tables: tuple[str, ...] | None = None  # None: every table of the copy
    files: bool = True

    def covers(self, table: str) -> bool:
        """Whether `table` is copied under this scope."""
        return self.tables is None or table in self.tables


ALL = CopyScope()


@dataclass(frozen=True)
class Staging:
    """How a backup is staged: the address its site had (rewritten to this site's; None:
    nothing rewritten) and which parts of it."""

    rewrite_from: str | None = None
    scope: CopyScope = ALL


AS_TAKEN = Staging()  # every part, no address rewritten


# Every site's tables are named with this prefix (wp-config.php's $table_prefix).
SITE_TABLE_PREFIX = "wp_"


@dataclass(frozen=True)
class ImportSource:
    """A site made elsewhere, uploaded and checked (controlplane.imports.checks): its dump
    and wp-content archive on the control plane's disk, and what the import changes."""

    dump: Path  # a .sql dump, or a gzip of one
    content: Path | None  # a .tar.gz whose wp-content/ members are the files; None: keep them
    table_prefix: str  # the dump's WordPress table prefix, renamed to the site's on loading
    rewrite_from: str  # the site's old address, rewritten to this site's
    reset_admin: bool  # make the platform's admin user an administrator of the imported site


@dataclass(frozen=True)
class ImportStaged:
    """What staging an upload made: the imported site's title (blogname) and what the
    rewrite of its old address changed."""

    title: str
    rewrite: RewriteReport | None


class BackupInvalid(Exception):
    """A backup failed verification (missing, corrupted, checksums differ): nothing changed."""


class BackupStep(Protocol):
    """Copies a site's database and files somewhere safe, and puts them back.

    Every method is idempotent (the engine retries and resumes after a crash) and takes the
    backup's id so a repeated call finds what an earlier one wrote instead of writing again.
    A restore is staged beside the live site, swapped in, and can be swapped back.
    """

    def backup(self, ctx: SiteContext, backup_id: str) -> BackupRecord:
        """Take the backup `backup_id` of the live site (or return the one already taken),
        verified after writing."""
        ...

    def verify(self, ctx: SiteContext, record: BackupRecord) -> None:
        """Raise BackupInvalid unless the backup is whole and matches its checksums."""
        ...

    def check_space(self, ctx: SiteContext, record: BackupRecord) -> None:
        """Raise ValueError (with what to free) if staging this backup would not fit."""
        ...

    def stage(
        self, ctx: SiteContext, record: BackupRecord, how: Staging = AS_TAKEN
    ) -> RewriteReport | None:
        """Put the backup beside the live site (side schema, side directory), checked
        against its checksums; `how.rewrite_from`: the URL the backup's site had, rewritten
        to this site's address (a site made from another site's backup), with what the
        rewrite changed returned (None when nothing was rewritten). Only the tables in
        `how.scope` are staged (ValueError "the copy has no table X" for one the copy
        lacks), the files only when `how.scope.files`."""
        ...

    def stage_import(self, ctx: SiteContext, source: ImportSource) -> ImportStaged:
        """Put an uploaded site beside the live site as `stage` puts a backup (its tables
        renamed to the site's prefix, its address rewritten to this site's, the platform's
        admin made an administrator when `reset_admin`); without content, the live files
        stay (only the database is swapped). Returns its title and the rewrite's report."""
        ...

    def unstage(self, ctx: SiteContext) -> None:
        """Drop what `stage` put beside the site (no-op when nothing is there)."""
        ...

    def swap(self, ctx: SiteContext, scope: CopyScope = ALL) -> None:
        """Make the staged copy live, keeping the replaced one as the previous copy (database
        in one atomic rename, files by directory rename). With `scope.tables` set exactly
        those tables move and every other live table stays; with `scope.files` False the
        files are not touched."""
        ...

    def unswap(self, ctx: SiteContext, scope: CopyScope = ALL) -> None:
        """Put the previous copy back live (no-op when no swap happened); `scope` as the
        swap's."""
        ...

    def fingerprint(self, ctx: SiteContext) -> Fingerprint:
        """The live site's content now: per table exact row count and checksum, per file
        its content hash."""
        ...

    def discard_previous(self, ctx: SiteContext) -> None:
        """Drop the copy a finished restore replaced (no-op when gone)."""
        ...

    def forget(self, tenant_id: str, backup_password: str, records: list[BackupRecord]) -> None:
        """Delete these backups from storage (no-op for ones already gone); works after the
        site itself is deleted."""
        ...

    def archive(
        self, tenant_id: str, backup_password: str, record: BackupRecord
    ) -> Iterator[bytes]:
        """The backup as a .tar.gz stream (database.sql + wp-content/), for its owner to
        download; read a chunk at a time, never whole in memory."""
        ...


class Provider(Protocol):
    """A full set of steps: `local` (one machine), `gcp` (Google Cloud), `memory` (tests)."""

    name: str
    database: SiteStep
    secrets: SiteStep
    storage: SiteStep
    runtime: RuntimeStep
    dns: DnsStep
    wordpress: SiteStep
    backups: BackupStep
    logs: SiteLogs
    packages: PackagesStep
