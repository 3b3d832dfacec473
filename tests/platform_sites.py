"""Sites made through the services on a built platform (no HTTP), as the admin of tenant acme."""

from __future__ import annotations

from controlplane.kernel.identity import Principal, Role
from controlplane.platform import Platform
from controlplane.schemas import BackupPolicyWrite, SiteCreate
from controlplane.services.backups import put_policy
from controlplane.services.sites import create_site

ADMIN = Principal("test-admin", Role.ADMIN, email="admin@example.com")
TENANT = "acme"


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
