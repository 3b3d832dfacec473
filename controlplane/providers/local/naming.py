"""Names of a site's local resources: derived from tenant + site, length-limited, with a suffix.

The suffix comes from the site id (random), so a retried step finds the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controlplane.engine.provider import SiteContext


@dataclass(frozen=True)
class SiteNames:
    """Every local name of one site."""

    key: str  # "<tenant>--<site>": unique, since labels cannot contain "--"
    system_user: str  # <= 32 characters (useradd)
    db_name: str  # <= 64 characters
    db_user: str  # <= 32 characters (MySQL's limit, kept for Cloud SQL parity)
    root: Path
    preview_host: str


def site_names(ctx: SiteContext, sites_dir: Path, platform_domain: str) -> SiteNames:
    """Derive the names of a site's resources."""
    suffix = ctx.site_id[:6]
    tenant_u = ctx.tenant_id.replace("-", "_")
    site_u = ctx.site_name.replace("-", "_")
    return SiteNames(
        key=f"{ctx.tenant_id}--{ctx.site_name}",
        system_user=f"wp-{ctx.tenant_id[:10]}-{ctx.site_name[:10]}-{suffix[:4]}".replace("--", "-"),
        db_name=f"wp_{tenant_u[:16]}_{site_u[:20]}_{suffix}",
        db_user=f"wp_{tenant_u[:8]}_{site_u[:10]}_{suffix}",
        root=sites_dir / ctx.tenant_id / ctx.site_name,
        preview_host=f"{ctx.site_name}.{ctx.tenant_id}.{platform_domain}",
    )
