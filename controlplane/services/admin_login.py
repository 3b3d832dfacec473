"""One-click wp-admin: a signed, single-use sign-in link for a site's admin (audited)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from controlplane import admin_login, audit
from controlplane.credentials import DatabaseVault
from controlplane.crypto import Keyring
from controlplane.errors import Conflict
from controlplane.kernel import clock
from controlplane.kernel.identity import Principal
from controlplane.permissions import Action
from controlplane.schemas import AdminLogin
from controlplane.services.sites import get_site


def create_admin_login(
    session: Session,
    *,
    principal: Principal,
    keyring: Keyring,
    tenant_id: str,
    name: str,
    ttl_seconds: int,
    now: datetime | None = None,
) -> AdminLogin:
    """A link valid for `ttl_seconds`, usable once, that signs in as the site's admin."""
    site = get_site(
        session, principal=principal, tenant_id=tenant_id, name=name, action=Action.ADMIN_LOGIN
    )
    if site.status != "ready" or not site.preview_url:
        raise Conflict(
            f"site {name!r} is {site.status}; one-click sign-in needs it ready"
            + (" (start it first)" if site.status == "stopped" else "")
        )
    stored = DatabaseVault(session, keyring, site.id).get(admin_login.KEY_KIND)
    if stored is None:
        raise Conflict(
            f"site {name!r} was built before one-click sign-in existed: it has no sign-in key; "
            "reveal the admin password and sign in with it instead"
        )
    expires = (now or clock.now()).replace(microsecond=0) + timedelta(seconds=ttl_seconds)
    token = admin_login.sign_token(
        key=stored[1], site_id=site.id, user=site.admin_user, expires_at=int(expires.timestamp())
    )
    audit.record(
        session,
        principal=principal,
        action="site.admin_login",
        tenant_id=tenant_id,
        target=name,
        detail={"expires_at": expires.isoformat(), "user": site.admin_user},
    )
    session.commit()
    return AdminLogin(url=admin_login.login_url(site.preview_url, token), expires_at=expires)
