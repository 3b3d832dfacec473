"""What a site has beside what the catalogue holds: newer versions per package, the count
of updates, and the short record of it kept on the site (`resources["packages"]`)."""

from __future__ import annotations

from typing import Any

from controlplane.engine.packages import InstalledPackage
from controlplane.kernel.vocabulary import PackageKind
from controlplane.packages.versions import newer
from controlplane.schemas import PackageRead, SitePackagesRead


def package_read(item: InstalledPackage, held: dict[tuple[str, str], list[str]]) -> PackageRead:
    """One installed package and the catalogue's newer versions of it."""
    available = [v for v in held.get((item.kind, item.slug), []) if newer(v, item.version)]
    return PackageRead(
        kind=item.kind, slug=item.slug, name=item.name, version=item.version, active=item.active,
        available=available, latest=available[-1] if available else None,
    )  # fmt: skip


def site_packages(
    installed: list[InstalledPackage], held: dict[tuple[str, str], list[str]]
) -> SitePackagesRead:
    """The site's listing; `held`: (kind, slug) -> catalogue versions, ascending."""
    reads = [package_read(item, held) for item in installed]
    (core,) = [r for r in reads if r.kind is PackageKind.CORE]
    return SitePackagesRead(
        core=core,
        plugins=[r for r in reads if r.kind is PackageKind.PLUGIN],
        themes=[r for r in reads if r.kind is PackageKind.THEME],
        updates_available=sum(1 for r in reads if r.latest is not None),
    )


def cached(listing: SitePackagesRead) -> dict[str, Any]:
    """What the site row keeps of a listing: the count and what was installed."""
    items = [listing.core, *listing.plugins, *listing.themes]
    return {
        "updates_available": listing.updates_available,
        "installed": [[i.kind.value, i.slug, i.version, i.active, i.name] for i in items],
    }


def updates_available(resources: dict[str, Any] | None) -> int | None:
    """The count the site's last listing recorded (None: never listed)."""
    record = (resources or {}).get("packages")
    count = record.get("updates_available") if isinstance(record, dict) else None
    return count if isinstance(count, int) else None
