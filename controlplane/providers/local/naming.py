"""Names of a site's local resources: tenant + site for people, plus 48-64 bits of the site id.

The suffix comes from the site id (random), so a retried step finds the same names, and two
sites never share one (a short suffix would let a tenant re-roll sites until it collides).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controlplane.engine.provider import SiteContext


@dataclass(frozen=True)
class SiteNames:
    """Every local name of one site."""

    key: str  # "<tenant>--<site>": unique, since labels cannot contain "--"
    system_user: str  # <= 29 characters (useradd allows 32)
    db_name: str  # <= 49 characters (64 allowed)
    db_user: str  # <= 31 characters (MySQL's 32, kept for Cloud SQL parity)
    root: Path
    preview_host: str

    @property
    def restore_db(self) -> str:
        """The schema a restore is staged in."""
        return f"{self.db_name}__restore"

    @property
    def previous_db(self) -> str:
        """The schema a swapped-in restore keeps the replaced database in."""
        return f"{self.db_name}__previous"


def site_names(ctx: SiteContext, sites_dir: Path, platform_domain: str) -> SiteNames:
    """Derive the names of a site's resources."""
    tenant_u = ctx.tenant_id.replace("-", "")
    site_u = ctx.site_name.replace("-", "")
    return SiteNames(
        key=f"{ctx.tenant_id}--{ctx.site_name}",
        system_user=f"wp-{tenant_u[:6]}-{site_u[:6]}-{ctx.site_id[:12]}",
        db_name=f"wp_{tenant_u[:12]}_{site_u[:16]}_{ctx.site_id[:16]}",
        db_user=f"wp_{tenant_u[:4]}_{site_u[:6]}_{ctx.site_id[:16]}",
        root=sites_dir / ctx.tenant_id / ctx.site_name,
        preview_host=f"{ctx.site_name}.{ctx.tenant_id}.{platform_domain}",
    )
