"""Argument models of the agent's tools; the descriptions are written for the model.

Two variants exist. The tenant variant has no tenant argument at all: the tenant comes from
the caller's token. The admin variant adds a required `tenant_id`. Both forbid unknown
arguments, so a smuggled `tenant_id` is an error, not a silent widening of scope.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

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
