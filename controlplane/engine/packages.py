"""What the engine needs from a provider to read, install and put back a site's WordPress
core, plugins and themes: one `Protocol`, nothing of a provider's own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controlplane.engine.provider import SiteContext
from controlplane.kernel.vocabulary import PackageKind

# The slug of WordPress core in listings and archives.
CORE_SLUG = "wordpress"


@dataclass(frozen=True)
class InstalledPackage:
    """One thing a site has, read from the site itself."""

    kind: PackageKind
    slug: str  # the plugin's or theme's directory name; CORE_SLUG for core
    version: str
    active: bool  # core is always active
    name: str  # the header's Name ("Akismet Anti-spam"); "WordPress" for core


@dataclass(frozen=True)
class PackageArchive:
    """One version held by the platform catalogue, ready for a provider to install."""

    kind: PackageKind
    slug: str
    version: str
    sha256: str  # of the zip, checked by the provider before it unpacks anything
    size_bytes: int
    location: str  # where the provider reads the zip: a path locally, gs://bucket/object on gcp


@dataclass(frozen=True)
class HealthResult:
    """One try of the post-update health probe."""

    # The first check that failed: "homepage" (does not render the site's title), "login"
    # (wp-login.php does not answer 200), "rest" (/wp-json/ does not answer JSON), "php_fatal"
    # (a PHP fatal error was logged since the mark); None when all passed.
    failed_check: str | None
    detail: str  # what a person reads: the status, the fatal's first line (no secrets)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return self.failed_check is None


class PackagesStep(Protocol):
    """A site's core, plugins and themes. Every method is idempotent (the engine retries and
    resumes after a crash); `key` (the operation's id) names what an install set aside."""

    def installed(self, ctx: SiteContext) -> list[InstalledPackage]:
        """Core, then every plugin and theme the site has (version, active), from the site."""
        ...

    def install(
        self, ctx: SiteContext, archives: list[PackageArchive], *, key: str, activate: bool
    ) -> None:
        """Put these versions in place of what the site has (or add them); whatever each
        replaces is set aside under `key` first. A repeat with the same key keeps the first
        set-aside copy. `activate`: plugins activated, the theme switched to (a bundle)."""
        ...

    def restore_previous(self, ctx: SiteContext, *, key: str) -> None:
        """Put back what `install(key)` set aside and remove what it added (no-op when
        nothing is set aside)."""
        ...

    def discard_previous(self, ctx: SiteContext, *, key: str) -> None:
        """Drop what `install(key)` set aside (no-op when gone)."""
        ...

    def upgrade_database(self, ctx: SiteContext) -> None:
        """Run WordPress's database upgrade after a core update (no-op when current)."""
        ...

    def log_mark(self, ctx: SiteContext) -> str:
        """An opaque mark of the site's PHP error log now, for `health`."""
        ...

    def health(self, ctx: SiteContext, since_mark: str) -> HealthResult:
        """One try of the health probe: homepage title, wp-login.php, /wp-json/, and no PHP
        fatal logged since `since_mark`. Maintenance lets the platform's probe through."""
        ...
