"""Package zips the tests build themselves: the `demo` plugin (1.0 and 1.1 print their version
in every page's footer, 1.2's main file fatals on load), a theme, a core zip, and malicious
ones (zip-slip, absolute path, symlink, huge, no header, two top directories)."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path
from typing import Any

from controlplane.kernel.identity import Principal, Role
from controlplane.kernel.vocabulary import PackageKind
from controlplane.packages import catalogue
from controlplane.services.sites import get_site

DEMO = "demo"
BROKEN = "1.2"  # the version whose main file fatals on load


def plugin_source(version: str, slug: str = DEMO) -> str:
    """The demo plugin's main file at `version`."""
    body = (
        "aipress_demo_missing_function();  // fatal on load: the function does not exist\n"
        if version == BROKEN
        else f"add_action('wp_footer', function () {{ echo '<p id=\"{slug}-version\">"
        f"{slug} {version}</p>'; }});\n"
    )
    return (
        "<?php\n/*\n"
        f" * Plugin Name: Demo {slug}\n * Version: {version}\n"
        " * Description: A plugin the AIPress tests build.\n */\n" + body
    )


def _zip(members: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            if name.endswith("/"):
                archive.writestr(zipfile.ZipInfo(name), "")
            else:
                archive.writestr(name, data)
    return buffer.getvalue()


def plugin_zip(version: str, slug: str = DEMO) -> bytes:
    """The plugin's zip: `<slug>/<slug>.php` and a readme."""
    return _zip({
        f"{slug}/": "",
        f"{slug}/{slug}.php": plugin_source(version, slug),
        f"{slug}/readme.txt": f"=== {slug} ===\nStable tag: {version}\n",
    })  # fmt: skip


def theme_zip(version: str, slug: str = "demo-theme") -> bytes:
    """A minimal classic theme."""
    return _zip({
        f"{slug}/style.css": f"/*\nTheme Name: Demo Theme\nVersion: {version}\n*/\n",
        f"{slug}/index.php": "<?php wp_head(); ?><title><?php bloginfo('name'); ?></title>"
                             "<?php wp_footer();\n",
    })  # fmt: skip


def core_zip(version: str) -> bytes:
    """A (tiny) core zip: only what the checks read."""
    return _zip({
        "wordpress/wp-includes/version.php": f"<?php\n$wp_version = '{version}';\n",
        "wordpress/index.php": "<?php\n",
    })  # fmt: skip


def write(path: Path, data: bytes) -> Path:
    """Write a zip to `path` and return it."""
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- malicious and malformed


def zip_slip() -> bytes:
    """A member that climbs out of the package's directory."""
    return _zip({"demo/demo.php": plugin_source("1.0"), "demo/../../evil.php": "<?php\n"})


def absolute_path() -> bytes:
    """A member with an absolute path."""
    return _zip({"demo/demo.php": plugin_source("1.0"), "/etc/cron.d/evil": "* * * * * root"})


def symlink_member() -> bytes:
    """A member recorded as a symbolic link (to /etc/passwd)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("demo/demo.php", plugin_source("1.0"))
        link = zipfile.ZipInfo("demo/passwd")
        link.create_system = 3  # Unix
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


def huge(unpacked_bytes: int) -> bytes:
    """A small zip that unpacks to `unpacked_bytes` (a zip bomb in miniature)."""
    return _zip({"demo/demo.php": plugin_source("1.0"), "demo/zeros.bin": b"\0" * unpacked_bytes})


def no_header() -> bytes:
    """A plugin directory whose PHP file has no plugin header."""
    return _zip({"demo/demo.php": "<?php\necho 'no header';\n"})


def two_tops() -> bytes:
    """Two top directories."""
    return _zip({"demo/demo.php": plugin_source("1.0"), "other/other.php": "<?php\n"})


def install_demo(platform: Any, tenant: str, site: str, version: str, key: str) -> None:
    """The catalogue's demo plugin at `version` installed and active on a site by the provider
    itself, outside any operation (as a bundle would put it there)."""
    with platform.sessions() as session:
        row = get_site(session, principal=Principal("t", Role.ADMIN), tenant_id=tenant, name=site)
        entry = catalogue.find(session, PackageKind.PLUGIN, DEMO, version)
        assert entry is not None, f"demo {version} is not in the catalogue"
        ctx = platform.engine.read_context(session, row)
    platform.provider.packages.install(ctx, [catalogue.archive_of(entry)], key=key, activate=True)
    platform.provider.packages.discard_previous(ctx, key=key)
