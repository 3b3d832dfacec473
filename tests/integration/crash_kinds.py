"""How the crash tests start an operation of each kind, and what it must end as.

Shared by crash_worker.py (which starts the operation in the process it then kills) and
test_crash_resume.py (which prepares the home, records the boundaries, checks the end). A
kind added to the catalogue needs one `Scenario` here; its crash cases then come from the
catalogue's step list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controlplane.kernel.identity import Principal
from controlplane.kernel.vocabulary import OperationKind
from controlplane.models import Tenant
from controlplane.platform import Platform
from controlplane.schemas import EnvVarWrite, SiteCreate, TenantCreate
from controlplane.services.domains import claim_domain, verify_domain
from controlplane.services.env import put_env
from controlplane.services.sites import create_site, delete_site, get_site, set_serving
from controlplane.services.tenants import create_tenant

ADMIN_EMAIL = "admin@crash-tests.org"
DOMAIN = "victim.crash-tests.org"
ENV_NAME = "CRASH_KEY"
# A secret value: it must reach the provider and never a log line.
ENV_SECRET = "crash-secret-8f1d2c"

# (platform, admin, tenant, site) -> (site id, operation id), both committed.
Starter = Callable[[Platform, Principal, str, str], tuple[str, str]]


def start_create(platform: Platform, admin: Principal, tenant: str, name: str) -> tuple[str, str]:
    """A create of a new site (the tenant made first if missing)."""
    with platform.sessions() as session:
        if session.get(Tenant, tenant) is None:
            create_tenant(session, principal=admin, data=TenantCreate(id=tenant, name="Crash"))
        site, op = create_site(
            session,
            principal=admin,
            tenant_id=tenant,
            data=SiteCreate(name=name, admin_email=ADMIN_EMAIL),
            provider=platform.provider.name,
        )
        return site.id, op.id


def start_delete(platform: Platform, admin: Principal, tenant: str, name: str) -> tuple[str, str]:
    """A delete of a ready site."""
    with platform.sessions() as session:
        site, op = delete_site(session, principal=admin, tenant_id=tenant, name=name)
        return site.id, op.id


def start_serving(serving: bool) -> Starter:
    """A start (of a stopped site) or a stop (of a ready one)."""

    def start(platform: Platform, admin: Principal, tenant: str, name: str) -> tuple[str, str]:
        with platform.sessions() as session:
            site, op = set_serving(
                session, principal=admin, tenant_id=tenant, name=name, serving=serving
            )
            return site.id, op.id

    return start


def start_update_domains(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """A claim proven at once (no DNS here), so the site serves the domain."""
    with platform.sessions() as session:
        claim_domain(session, principal=admin, tenant_id=tenant, site=name, domain=DOMAIN)
        _claim, op = verify_domain(
            session,
            principal=admin,
            tenant_id=tenant,
            site=name,
            domain=DOMAIN,
            check=lambda _domain, _token: None,
        )
        site = get_site(session, principal=admin, tenant_id=tenant, name=name)
        return site.id, op.id


def start_apply_env(
    platform: Platform, admin: Principal, tenant: str, name: str
) -> tuple[str, str]:
    """A secret env var saved; its operation applies it to the tenant's sites."""
    with platform.sessions() as session:
        _vars, op = put_env(
            session,
            principal=admin,
            keyring=platform.keyring,
            tenant_id=tenant,
            values={ENV_NAME: EnvVarWrite(value=ENV_SECRET, secret=True)},
        )
        site = get_site(session, principal=admin, tenant_id=tenant, name=name)
        return site.id, op.id


@dataclass(frozen=True)
class Scenario:
    """One kind's crash scenario: its start, the site it needs, the state it ends in."""

    start: Starter
    # What the site must be before the operation starts: None (nothing), "ready", "stopped".
    needs: str | None
    # The site's status once the operation is resumed to its end; None: the site is gone.
    site_status: str | None
    # What the provider must hold for the site at the end, beyond the six parts.
    provider_holds: dict[str, Any]


SCENARIOS: dict[OperationKind, Scenario] = {
    OperationKind.CREATE_SITE: Scenario(start_create, None, "ready", {}),
    OperationKind.DELETE_SITE: Scenario(start_delete, "ready", None, {}),
    OperationKind.START_SITE: Scenario(
        start_serving(True), "stopped", "ready", {"runtime": "running"}
    ),
    OperationKind.STOP_SITE: Scenario(
        start_serving(False), "ready", "stopped", {"runtime": "stopped"}
    ),
    OperationKind.UPDATE_DOMAINS: Scenario(
        start_update_domains, "ready", "ready", {"dns": {"domains": [DOMAIN]}}
    ),
    OperationKind.APPLY_ENV: Scenario(start_apply_env, "ready", "ready", {"env": [ENV_NAME]}),
}
