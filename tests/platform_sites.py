"""The platform of tenant acme, its sites made through the services (no HTTP), backup rounds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from controlplane.backups.rounds import RoundResult, run_round
from controlplane.engine.provider import Provider
from controlplane.kernel import clock
from controlplane.kernel.identity import Principal, Role
from controlplane.platform import Platform, build_platform
from controlplane.schemas import BackupPolicyWrite, SiteCreate, TenantCreate
from controlplane.services.backups import put_policy
from controlplane.services.sites import create_site
from controlplane.services.tenants import create_tenant
from controlplane.settings import Settings

ADMIN = Principal("test-admin", Role.ADMIN, email="admin@example.com")
TENANT = "acme"


def platform_of_acme(settings: Settings, provider: Provider) -> Iterator[Platform]:
    """The platform on `provider` with tenant TENANT made; closed when the caller is done."""
    built = build_platform(settings, provider=provider)
    with built.sessions() as session:
        create_tenant(session, principal=ADMIN, data=TenantCreate(id=TENANT, name="Acme"))
    yield built
    built.close()


def ready_site(platform: Platform, name: str, **policy: object) -> str:
    """A ready site `name` of TENANT, its create run to the end; with `policy` (fields of
    BackupPolicyWrite), its backup policy set so. Returns its id."""
    with platform.sessions() as session:
        site, op = create_site(
            session, principal=ADMIN, tenant_id=TENANT,
            data=SiteCreate(name=name, admin_email="a@example.com"), provider="memory",
        )  # fmt: skip
        site_id = site.id
    platform.engine.run(op.id)
    if policy:
        with platform.sessions() as session:
            put_policy(session, principal=ADMIN, tenant_id=TENANT, site=name,
                       data=BackupPolicyWrite.model_validate(policy))  # fmt: skip
    return site_id


def backup_round(platform: Platform, at: datetime) -> RoundResult:
    """One round at `at`, waiting for the backups and trial restores it started."""
    with clock.travel(at):
        result = run_round(platform)
        for op_id in [*result.started.values(), *(op for _b, op in result.verifying.values())]:
            platform.engine.wait(op_id, timeout=20)
    return result
