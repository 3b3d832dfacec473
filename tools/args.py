"""Argument models of the agent's tools; the descriptions are written for the model.

Two variants exist. The tenant variant has no tenant argument at all: the tenant comes from
the caller's token. The admin variant adds a required `tenant_id`. Both forbid unknown
arguments, so a smuggled `tenant_id` is an error, not a silent widening of scope.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
    model_validator,
)

SITE = "The site's short name, e.g. 'crumbs' (lowercase letters, digits, hyphens)"
# Names travel in URL paths: only DNS-label characters, so no argument can add a path segment.
LABEL = r"^[a-z0-9][a-z0-9-]{0,62}$"


class ToolArgs(BaseModel):
    """Base of every argument model: unknown arguments are refused."""

    model_config = ConfigDict(extra="forbid")


class ListSitesArgs(ToolArgs):
    """List the sites with their status and URL."""


class GetSiteArgs(ToolArgs):
    """One site's status, URLs, domains and recent operations."""

    site: str = Field(description=SITE, pattern=LABEL)


class CreateSiteArgs(ToolArgs):
    """Create a WordPress site. Ask the user for the name and admin e-mail first."""

    site: str = Field(
        description="The new site's short name, e.g. 'crumbs' (lowercase letters, digits, "
        "hyphens); 1-40 characters, starting with a letter",
        pattern=LABEL,
    )
    admin_email: str = Field(description="E-mail of the WordPress admin account")
    title: str | None = Field(default=None, description="Site title, e.g. 'Crumbs Bakery'")
    domain: str | None = Field(
        default=None, description="Optional custom domain, e.g. 'crumbs.example.com'"
    )


class DeleteSiteArgs(ToolArgs):
    """Delete a site (a backup is taken first). The user is asked to confirm."""

    site: str = Field(description=SITE, pattern=LABEL)


class QueryLogsArgs(ToolArgs):
    """Search a site's logs (HTTP requests, web-server and PHP errors), newest first."""

    site: str = Field(description=SITE, pattern=LABEL)
    since: str = Field(
        default="1h",
        description="Start: a duration ago ('30m', '2h', '1d') or an ISO 8601 time",
    )
    until: str | None = Field(default=None, description="End, same forms; default now")
    severity: Literal["debug", "info", "notice", "warning", "error", "critical"] | None = Field(
        default=None, description="Minimum severity; 'error' for errors"
    )
    status: str | None = Field(
        default=None, description="HTTP status code ('404') or class ('5xx')"
    )
    text: str | None = Field(default=None, description="Text the entry must contain")
    limit: int = Field(default=20, ge=1, le=200, description="At most this many entries")


class GetMetricsArgs(ToolArgs):
    """A site's request count, error rate and latency percentiles ('is it slow?')."""

    site: str = Field(description=SITE, pattern=LABEL)
    since: str = Field(default="1h", description="Start: a duration ago ('30m', '2h', '1d')")


class DiagnoseSiteArgs(ToolArgs):
    """Why a site is slow or broken, from its evidence ('why is my site slow?')."""

    site: str = Field(description=SITE, pattern=LABEL)
    since: str = Field(default="1h", description="Start: a duration ago ('30m', '2h', '1d')")


class GetBillingArgs(ToolArgs):
    """Costs between two dates (inclusive), grouped by day, service or site."""

    from_date: date | None = Field(
        default=None, description="First day (YYYY-MM-DD); default the 1st of this month"
    )
    to_date: date | None = Field(default=None, description="Last day (YYYY-MM-DD); default today")
    group_by: Literal["day", "service", "site"] = Field(
        default="service", description="How to split the total"
    )


class BillingSummaryArgs(ToolArgs):
    """Every tenant's net cost between two dates, most expensive first (admins only)."""

    from_date: date | None = Field(
        default=None, description="First day (YYYY-MM-DD); default the 1st of this month"
    )
    to_date: date | None = Field(default=None, description="Last day (YYYY-MM-DD); default today")


class ListTenantsArgs(ToolArgs):
    """List every tenant of the platform (admins only)."""


ENV_NAME = "The variable's name, e.g. 'STRIPE_API_KEY' (A-Z, 0-9 and '_')"
ENV_PATTERN = r"^[A-Z_][A-Z0-9_]{0,63}$"
VALUES_OF_SECRETS_STAY_OUT = (
    "a secret's value never goes through chat: call set_env with secret=true and no value; "
    "the user types the value into the confirmation card, which sends it to the platform"
)


class ListEnvArgs(ToolArgs):
    """The tenant's env vars: names, and whether each is a write-only secret."""


class SetEnvArgs(ToolArgs):
    """Create or replace an env var; every running site restarts its PHP workers."""

    name: str = Field(description=ENV_NAME, pattern=ENV_PATTERN)
    secret: bool = Field(
        default=False,
        description="True for keys, tokens and passwords: leave value out, the user types it "
        "into the confirmation card and it never passes through chat",
    )
    value: str | None = Field(
        default=None,
        max_length=32_768,
        description="The value of a plain (non-secret) variable; never a secret's value",
    )

    @model_validator(mode="after")
    def _value_only_when_plain(self) -> SetEnvArgs:
        if self.secret and self.value is not None:
            raise ValueError(VALUES_OF_SECRETS_STAY_OUT)
        if not self.secret and self.value is None:
            raise ValueError("a plain variable needs a value (for a secret set secret=true)")
        return self


class UnsetEnvArgs(ToolArgs):
    """Remove an env var; every running site restarts its PHP workers."""

    name: str = Field(description=ENV_NAME, pattern=ENV_PATTERN)


BACKUP_ID = "The backup's id, as list_backups shows it (32 hex characters)"
BACKUP_PATTERN = r"^[0-9a-f]{32}$"
OPERATION_ID = re.compile(r"[0-9a-f]{32}")


class BackupSiteArgs(ToolArgs):
    """Back a site up now: its database and wp-content."""

    site: str = Field(description=SITE, pattern=LABEL)


class ListBackupsArgs(ToolArgs):
    """Backups newest first: a site's, every site's, or (deleted=true) deleted sites'."""

    site: str | None = Field(
        default=None,
        description=SITE + "; leave out for every site of the tenant",
        pattern=LABEL,
    )
    deleted: bool = Field(
        default=False,
        description="True for the backups of deleted sites (kept for a while, for bringing "
        "a site back); with site, only that deleted site's",
    )


class RestoreSiteArgs(ToolArgs):
    """Put one of a site's backups back in place of the live site. The user confirms."""

    site: str = Field(description=SITE, pattern=LABEL)
    backup: str = Field(description=BACKUP_ID, pattern=BACKUP_PATTERN)


class UndeleteSiteArgs(ToolArgs):
    """Bring a deleted site back from its backup, as a new site. The user confirms."""

    site: str = Field(description="The deleted site's name, e.g. 'crumbs'", pattern=LABEL)
    new_name: str | None = Field(
        default=None,
        description="The new site's name if not the deleted site's (when that name is taken)",
        pattern=LABEL,
    )
    backup: str | None = Field(
        default=None,
        description=BACKUP_ID + "; leave out for the backup taken when the site was deleted",
        pattern=BACKUP_PATTERN,
    )
    admin_email: str | None = Field(
        default=None, description="E-mail of the WordPress admin; default the user's"
    )


STAGING_SITE = (
    "The staging site's name, or its production site's (the one staging copy of it is "
    "meant); leave out when the tenant has exactly one staging site"
)
# Table names travel in a JSON body, never a path; MariaDB's unquoted identifier characters.
TABLE_PATTERN = r"^[A-Za-z0-9_$]{1,64}$"
Table = Annotated[str, StringConstraints(pattern=TABLE_PATTERN)]


class CloneSiteArgs(ToolArgs):
    """Copy a site into a new staging site (its own database and files, URLs rewritten)."""

    site: str = Field(description="The production site to copy, e.g. 'shop'", pattern=LABEL)
    name: str = Field(
        description="The new staging site's name, e.g. 'shop-staging' (lowercase letters, "
        "digits, hyphens)",
        pattern=LABEL,
    )
    basic_auth: bool = Field(
        default=False,
        description="True to put the staging site behind HTTP basic auth (the credentials "
        "stay in the vault; the dashboard reveals them)",
    )


class GetDriftArgs(ToolArgs):
    """What changed on production since its staging copy was cloned."""

    site: str | None = Field(default=None, description=STAGING_SITE, pattern=LABEL)


class PromoteSiteArgs(ToolArgs):
    """Copy a staging site onto its production site. The user confirms."""

    site: str | None = Field(default=None, description=STAGING_SITE, pattern=LABEL)
    scope: Literal["all", "database", "files"] = Field(
        default="all",
        description="What is copied: 'all' (database and wp-content), 'database' (every "
        "table, or the ones in tables) or 'files' (wp-content only)",
    )
    tables: list[Table] | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="With scope 'database': only these tables, e.g. ['wp_posts', "
        "'wp_postmeta'] for posts and pages (get_drift names the site's tables)",
    )
    force: bool = Field(
        default=False,
        description="True to overwrite what changed on production since the clone; only "
        "after the user said so, having seen get_drift's report",
    )

    @model_validator(mode="after")
    def _tables_only_for_the_database(self) -> PromoteSiteArgs:
        if self.tables is not None and self.scope != "database":
            raise ValueError("tables narrows scope 'database': set scope='database' with them")
        return self


class RollbackSiteArgs(ToolArgs):
    """Put a production site back as it was before its last promotion. The user confirms."""

    site: str | None = Field(
        default=None,
        description="The production site's name (a staging site's name means its "
        "production site); leave out when the tenant has exactly one staging site",
        pattern=LABEL,
    )


class ImportSiteArgs(ToolArgs):
    """Import a WordPress site from elsewhere into an existing site. The user uploads the
    export in the confirmation card; its content never passes through chat."""

    site: str = Field(description="The site to import into, e.g. 'crumbs'", pattern=LABEL)
    old_url: str = Field(
        description="The imported site's old address, e.g. 'https://old.example.com' (ask "
        "the user): its URLs are rewritten to the site's",
        pattern=r"^https?://[^\s/?#]+(:\d+)?(/[^\s?#]*)?$",
        max_length=500,
    )
    admin: Literal["keep", "reset"] = Field(
        default="keep",
        description="'keep' the imported admin user, or 'reset' it to this site's admin",
    )


TENANT_ID = "The tenant the request is about, e.g. 'acme' (admins name it; ask if unclear)"


def admin_variant(model: type[ToolArgs]) -> type[ToolArgs]:
    """The same arguments plus a required tenant_id."""
    variant: type[ToolArgs] = create_model(
        "Admin" + model.__name__,
        __base__=model,
        __doc__=model.__doc__,
        tenant_id=(str, Field(description=TENANT_ID, pattern=LABEL)),
    )
    return variant


VERSION_PATTERN = r"^(latest|[0-9][0-9A-Za-z.+_-]{0,39})$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"


class PackageTargetArgs(ToolArgs):
    """One plugin or theme to update, and to which version."""

    slug: str = Field(
        description="The plugin's or theme's slug as list_packages shows it, e.g. 'demo'",
        pattern=SLUG_PATTERN,
    )
    version: str = Field(
        default="latest",
        description="The version wanted, e.g. '1.1'; 'latest' for the catalogue's newest",
        pattern=VERSION_PATTERN,
    )


class ListPackagesArgs(ToolArgs):
    """A site's WordPress core, plugins and themes, their versions and available updates."""

    site: str = Field(description=SITE, pattern=LABEL)


class UpdateSiteArgs(ToolArgs):
    """Update a site's core, plugins or themes from the platform catalogue; leave all three
    out to update everything that has an update. The user confirms."""

    site: str = Field(description=SITE, pattern=LABEL)
    core: str | None = Field(
        default=None,
        description="A WordPress core version, or 'latest'; leave out to keep core",
        pattern=VERSION_PATTERN,
    )
    plugins: list[PackageTargetArgs] | None = Field(
        default=None, max_length=100, description="The plugins to update"
    )
    themes: list[PackageTargetArgs] | None = Field(
        default=None, max_length=100, description="The themes to update"
    )


class BulkSitesArgs(ToolArgs):
    """One action on many sites at once ('update all my sites', 'back up everything'). The
    user confirms an update or a stop."""

    action: Literal["update", "backup", "stop", "start"] = Field(
        description="'update' (everything that has an update), 'backup', 'stop' or 'start'"
    )
    sites: list[Annotated[str, StringConstraints(pattern=LABEL)]] | Literal["all"] = Field(
        description="The sites' short names, or 'all': every site the action applies to now",
    )

    @model_validator(mode="after")
    def _some_sites(self) -> BulkSitesArgs:
        if isinstance(self.sites, list) and not self.sites:
            raise ValueError("name at least one site, or give sites='all'")
        return self
