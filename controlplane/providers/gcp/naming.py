"""Names and labels of a site's Google Cloud resources.

Every resource carries `aipress-tenant-id` and `aipress-site` (the billing export groups
by them). Names take 8-16 hex characters of the site id so a re-created site never
inherits a deleted one's bucket, secret or service.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.engine.provider import SiteContext

TENANT_LABEL = "aipress-tenant-id"
SITE_LABEL = "aipress-site"


def labels(ctx: SiteContext) -> dict[str, str]:
    """The labels of every resource of a site (values are DNS labels, so valid as labels)."""
    return {"app": "aipress", TENANT_LABEL: ctx.tenant_id, SITE_LABEL: ctx.site_name}


@dataclass(frozen=True)
class GcpNames:
    """Every Google Cloud name of one site."""

    service: str  # Cloud Run service id: <= 49 characters, starts with a letter
    bucket: str  # GCS bucket: <= 63 characters, globally unique
    db_name: str  # MySQL database: <= 64 characters
    db_user: str  # MySQL user: <= 32 characters
    db_password_secret: str  # Secret Manager ids: <= 255 characters
    salts_secret: str
    admin_password_secret: str
    login_key_secret: str  # the one-click wp-admin signing key
    probe_token_secret: str  # lets the platform's probes past maintenance mode
    preview_host: str


def gcp_names(ctx: SiteContext, project: str, platform_domain: str) -> GcpNames:
    """Derive the names (recorded in ctx.resources, so later releases find the same ones)."""
    tenant = ctx.tenant_id.replace("-", "")
    site = ctx.site_name.replace("-", "")
    short = ctx.site_id[:8]
    key = f"{ctx.tenant_id[:14]}-{ctx.site_name[:18]}-{short}"
    return GcpNames(
        service=f"s-{key}"[:49].rstrip("-"),
        bucket=f"aipress-{project[:18]}-{key}"[:63].rstrip("-"),
        db_name=f"wp_{tenant[:12]}_{site[:16]}_{ctx.site_id[:16]}",
        db_user=f"wp_{tenant[:4]}_{site[:6]}_{ctx.site_id[:16]}"[:32],
        db_password_secret=f"aipress-{key}-db-password",
        salts_secret=f"aipress-{key}-wp-salts",
        admin_password_secret=f"aipress-{key}-wp-admin-password",
        login_key_secret=f"aipress-{key}-wp-login-key",
        probe_token_secret=f"aipress-{key}-probe-token",
        preview_host=f"{ctx.site_name}.{ctx.tenant_id}.{platform_domain}",
    )
