"""The create's `bundle` step: the tenant's bundle installed and activated on the new site,
then the site checked. A failure fails the create (which rolls back: the site's removal
takes the bundle with it)."""

from __future__ import annotations

import time

from controlplane.engine.context import Work
from controlplane.engine.packages import HealthResult, PackageArchive, PackagesStep
from controlplane.engine.provider import SiteContext
from controlplane.errors import ApplyFailed, BadRequest
from controlplane.kernel.vocabulary import PackageKind
from controlplane.packages import catalogue

# The lists of a create's params["bundle"] and the kind of package each holds.
KINDS: dict[str, PackageKind] = {"plugins": PackageKind.PLUGIN, "themes": PackageKind.THEME}
# A new site either works at once or it does not: a few tries ride out a slow first request.
PROBE_TRIES = 3
PROBE_PAUSE_SECONDS = 1.0


def _label(entry: dict[str, str]) -> str:
    return f"{entry['slug']} {entry['version']}"


def _probe(packages: PackagesStep, ctx: SiteContext, mark: str) -> HealthResult:
    """The site's health after the install, tried again while a check other than a PHP
    fatal fails (a fatal does not go away)."""
    result = packages.health(ctx, mark)
    for _ in range(PROBE_TRIES - 1):
        if result.ok or result.failed_check == "php_fatal":
            break
        time.sleep(PROBE_PAUSE_SECONDS)
        result = packages.health(ctx, mark)
    return result


def _culprit(bundle: dict[str, list[dict[str, str]]], detail: str) -> str:
    """The bundle's plugins or theme a failed probe's detail points at (its directory shows
    in a fatal's path), or the whole bundle when it names none of them."""
    found, everything = [], []
    for field, kind in KINDS.items():
        for entry in bundle.get(field, []):
            label = f"{kind} {_label(entry)}"
            everything.append(label)
            # A fatal's file path (wp-content/plugins/demo/...) or a provider's own words.
            if f"{field}/{entry['slug']}/" in detail or f"{kind} {entry['slug']} " in detail:
                found.append(label)
    return ", ".join(found or everything)


def install(work: Work) -> None:
    """Install and activate the bundle recorded in the create's params, then check the site."""
    bundle = work.operation.params["bundle"]
    ctx = work.site_context()
    try:
        archives: list[PackageArchive] = [
            catalogue.archive_of(catalogue.resolve(work.session, kind, e["slug"], e["version"]))
            for field, kind in KINDS.items()
            for e in bundle.get(field, [])
        ]
    except BadRequest as exc:  # the catalogue lost a version since the create was recorded
        raise ApplyFailed(f"the bundle cannot be installed: {exc}") from exc
    packages = work.provider.packages
    mark = packages.log_mark(ctx)
    everything = ", ".join(
        f"{kind} {_label(e)}" for field, kind in KINDS.items() for e in bundle.get(field, [])
    )
    try:
        packages.install(ctx, archives, key=work.operation.id, activate=True)
    except Exception as exc:
        # A plugin that fatals as it is activated takes the activation down with it: the
        # fatal it logged says which. Without one the failure may pass: tried again.
        broken = packages.health(ctx, mark)
        if broken.ok:
            raise
        raise ApplyFailed(
            f"bundle {_culprit(bundle, broken.detail)} could not be activated: "
            f"{broken.failed_check}: {broken.detail}"
        ) from exc
    result = _probe(packages, ctx, mark)
    # A new site had nothing to put back: whatever the install set aside goes either way.
    packages.discard_previous(ctx, key=work.operation.id)
    if not result.ok:
        raise ApplyFailed(
            f"bundle {_culprit(bundle, result.detail)} broke the site: "
            f"{result.failed_check}: {result.detail}"
        )
    work.detail = f"installed and activated {everything}"
