"""What a site reports about its own packages, checked before the platform uses it: the
report is printed by PHP that loads the site's code (drop-ins and must-use plugins run even
with WP_INSTALLING), so it is untrusted input like any request body."""

from __future__ import annotations

import re
from typing import Any

from controlplane.engine.packages import CORE_SLUG, InstalledPackage
from controlplane.errors import ApplyFailed
from controlplane.kernel.vocabulary import PackageKind
from controlplane.packages.versions import VERSION_TEXT

MAX_ENTRIES = 2_000
# A plugin's or theme's directory name as WordPress lists it (never a path).
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Empty for a package whose header has no Version; spaces occur ("1.0 beta").
VERSION = re.compile(r"[0-9A-Za-z.+_~ -]{0,64}")
NAME_MAX = 200
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _refused(why: str) -> ApplyFailed:
    return ApplyFailed(f"the site's report of its packages is refused: {why}")


def _item(kind: PackageKind, item: Any) -> InstalledPackage:
    if not isinstance(item, dict):
        raise _refused(f"a {kind} entry is not an object")
    slug, version, name, active = (item.get(k) for k in ("slug", "version", "name", "active"))
    if not isinstance(slug, str) or not SLUG.fullmatch(slug):
        raise _refused(f"a {kind} slug is not a directory name (1-128 letters, digits, . _ -)")
    if not isinstance(version, str) or not VERSION.fullmatch(version):
        raise _refused(f"the version of {kind} {slug} is not 0-64 letters, digits, . + _ ~ -")
    if not isinstance(name, str) or len(name) > NAME_MAX or CONTROL.search(name):
        raise _refused(f"the name of {kind} {slug} is not text of at most {NAME_MAX} characters")
    if not isinstance(active, bool):
        raise _refused(f"{kind} {slug} says neither active nor inactive")
    return InstalledPackage(kind, slug, version, active, name)


def installed_from_report(core_version: Any, plugins: Any, themes: Any) -> list[InstalledPackage]:
    """Core, then the plugins and themes as reported; ApplyFailed (what is wrong) for a
    report that does not have the expected shape, patterns, lengths or at most MAX_ENTRIES."""
    if not isinstance(core_version, str) or not VERSION_TEXT.fullmatch(core_version):
        raise _refused("the core version is not a WordPress version")
    if not isinstance(plugins, list) or not isinstance(themes, list):
        raise _refused("plugins and themes are not lists")
    if len(plugins) + len(themes) > MAX_ENTRIES:
        raise _refused(f"it lists {len(plugins) + len(themes)} plugins and themes, more than "
                       f"the {MAX_ENTRIES} the platform reads")  # fmt: skip
    found = [InstalledPackage(PackageKind.CORE, CORE_SLUG, core_version, True, "WordPress")]
    found += [_item(PackageKind.PLUGIN, item) for item in plugins]
    found += [_item(PackageKind.THEME, item) for item in themes]
    return found
