"""What a step works with: the SiteContext builder (it decrypts secrets) and `Work`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.orm import Session

from controlplane.credentials import DatabaseVault, tenant_backup_password, tenant_env_plaintext
from controlplane.crypto import Keyring
from controlplane.engine.provider import Provider, SiteContext
from controlplane.kernel.vocabulary import SiteRole
from controlplane.models import Base, Operation, Site

Row = TypeVar("Row", bound=Base)


class Deferred(Exception):
    """A step cannot make progress yet (another change holds what it needs): the operation
    gives its worker back and is run again later, until the step's timeout has passed."""


class Cancelled(Exception):
    """The operation was asked to stop and has nothing left running: it ends `cancelled`
    (the message says how far it got)."""


class ContextBuilder:
    """Builds the context a provider step receives for one site."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def read(self, session: Session, site: Site) -> SiteContext:
        """A context for reading a site (logs, metrics): no secrets decrypted."""
        return SiteContext(
            tenant_id=site.tenant_id,
            site_id=site.id,
            site_name=site.name,
            title=site.title,
            admin_email=site.admin_email,
            admin_user=site.admin_user,
            domains=site.verified_domains,  # a pending claim proves nothing: never served
            credentials=DatabaseVault(session, self._keyring, site.id),
            resources=dict(site.resources or {}),
            public=site.role != SiteRole.STAGING,
        )

    def change(self, session: Session, site: Site, request_id: str | None) -> SiteContext:
        """A context for changing a site: with the tenant's env (secrets decrypted)."""
        ctx = self.read(session, site)
        ctx.tenant_env = tenant_env_plaintext(session, self._keyring, site.tenant_id)
        ctx.request_id = request_id
        ctx.backup_password = self.backup_password(session, site.tenant_id)
        return ctx

    def backup_password(self, session: Session, tenant_id: str) -> str:
        """The tenant's backup key (made on first use), for forgetting and archiving."""
        return tenant_backup_password(session, self._keyring, tenant_id)


@dataclass
class Work:
    """Everything a step's `do`/`undo` and a kind's outcome hooks may touch."""

    session: Session
    operation: Operation
    provider: Provider
    contexts: ContextBuilder
    site: Site | None = None
    ctx: SiteContext | None = None
    # A short sentence the running step adds to its "done" event ("rewrote 42 values in 6
    # tables"); reset before each step.
    detail: str | None = None
    # Hands another (committed) operation to the engine: a bulk starts its children.
    submit: Callable[[str], object] | None = None
    # The engine's workers (AIPRESS_MAX_PARALLEL_OPERATIONS): a bulk leaves one of them free.
    workers: int = 4

    def site_context(self) -> SiteContext:
        """The site's context; a site-scoped kind always has one."""
        if self.ctx is None:
            raise RuntimeError(f"{self.operation.kind} has no site to work on")
        return self.ctx

    def the_site(self) -> Site:
        """The site row; a site-scoped kind always has one."""
        if self.site is None:
            raise RuntimeError(f"{self.operation.kind} has no site to work on")
        return self.site

    def param_row(self, model: type[Row], key: str) -> Row | None:
        """The `model` row whose id the operation's params keep under `key`, if it exists."""
        row_id = self.operation.params.get(key)
        return self.session.get(model, row_id) if isinstance(row_id, str) else None

    def save_progress(self) -> None:
        """Keep the provider's resource ids on the site row (committed by the caller)."""
        if self.site is not None and self.ctx is not None:
            self.site.resources = dict(self.ctx.resources)
