"""Installed once, cloned per site: a MariaDB schema holding a fresh WordPress install per
(WordPress version, theme, installer), copied into each new site's database.

The template is installed with placeholder values (PLACEHOLDERS, and its own URL) inside
the first new site's database, captured by a root copy into `aipress_tpl_<key>` (no site's
user has any grant on it), and that site is then personalised like every clone
(wp_install.php). Its key hashes every input of the install, so a new WordPress, a changed
theme or installer makes a new template; the old ones are dropped when it is captured.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.providers.local.mu_plugins import platform_mu_plugins
from controlplane.settings import Settings
from controlplane.stack.mariadb import MariaDB

SCHEMA_PREFIX = "aipress_tpl_"
# The capture's last table: a template is complete only when it holds this one.
MARKER = "aipress_template"
# The values a template is installed with; a clone replaces every one of them.
TEMPLATE_URL = "http://aipress-template.invalid"
PLACEHOLDERS = {
    "url": TEMPLATE_URL,
    "title": "AIPress template",
    "admin_user": "aipress-template",
    "admin_email": "template@aipress-template.invalid",
}
# Written last on a copy: a site database holding it holds the whole copy.
LAST_TABLE = "wp_options"
INSTALLER = Path(__file__).parent / "wp_install.php"
VERSION = re.compile(r"""^\$wp_version\s*=\s*['"]([^'"]+)['"]""", re.M)


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _tree_digest(path: Path) -> str:
    """Each file's path, size and mtime under `path` (a changed theme file changes it)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            file = Path(dirpath) / name
            info = file.lstat()
            digest.update(
                f"{file.relative_to(path)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode()
            )
    return digest.hexdigest()


@dataclass(frozen=True)
class Template:
    """One template: its key, its schema and what it was made from."""

    key: str
    inputs: dict[str, str]

    @property
    def schema(self) -> str:
        """The schema holding it."""
        return SCHEMA_PREFIX + self.key


def template_inputs(settings: Settings) -> dict[str, str]:
    """What the install depends on: WordPress's version, the default theme's name and files,
    the installer and the must-use plugins that run during it."""
    core = settings.wordpress_core
    found = VERSION.search((core / "wp-includes" / "version.php").read_text())
    theme = core / "wp-content" / "themes" / settings.default_theme
    return {
        "wordpress": found.group(1) if found else "",
        "theme": settings.default_theme,
        "theme_files": _tree_digest(theme) if theme.is_dir() else "",
        "installer": hashlib.sha256(INSTALLER.read_bytes()).hexdigest(),
        "mu_plugins": hashlib.sha256(
            b"".join(name.encode() + b"\0" + body for name, body in platform_mu_plugins().items())
        ).hexdigest(),
    }


def current_template(settings: Settings) -> Template:
    """The template today's inputs call for."""
    inputs = template_inputs(settings)
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    return Template(key=key, inputs=inputs)


class SiteTemplates:
    """The templates of one MariaDB server: checked, built under a lock, copied."""

    def __init__(self, mariadb: MariaDB, lock_dir: Path) -> None:
        self.mariadb = mariadb
        self.lock_dir = lock_dir

    def ready(self, template: Template) -> bool:
        """Whether the template is captured in full."""
        with self.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s",
                (template.schema, MARKER),
            )
            return cur.fetchone() is not None

    def installed(self, database: str) -> bool:
        """Whether the site's database holds WordPress already (an install or a whole copy)."""
        with self.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s",
                (database, LAST_TABLE),
            )
            return cur.fetchone() is not None

    @contextlib.contextmanager
    def building(self, template: Template) -> Iterator[bool]:
        """Hold the template's build lock; yields False when another create holds it (that
        create is building it: this one installs the plain way rather than wait)."""
        self.lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(
            self.lock_dir / f"{template.key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def copy_into(self, template: Template, database: str) -> None:
        """Copy the template's tables into the site's database, wp_options last."""
        self._copy(template.schema, database, skip=MARKER)

    def capture(self, template: Template, database: str) -> None:
        """Copy a just-installed site database into the template's schema, mark it complete
        and drop every other (stale) template."""
        schema = _ident(template.schema)
        with self.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {schema}")
            cur.execute(
                f"CREATE DATABASE {schema} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        self._copy(database, template.schema, skip=None)
        with self.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {schema}.{_ident(MARKER)} (inputs LONGTEXT NOT NULL)")
            cur.execute(
                f"INSERT INTO {schema}.{_ident(MARKER)} VALUES (%s)",
                (json.dumps(template.inputs, sort_keys=True),),
            )
            for stale in self.schemas():
                if stale != template.schema:
                    cur.execute(f"DROP DATABASE IF EXISTS {_ident(stale)}")

    def schemas(self) -> list[str]:
        """Every template schema on the server."""
        with self.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (SCHEMA_PREFIX.replace("_", "\\_") + "%",))
            return sorted(str(row[0]) for row in cur.fetchall())

    def _copy(self, source: str, target: str, *, skip: str | None) -> None:
        with self.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_TYPE = 'BASE TABLE'",
                (source,),
            )
            tables = sorted((str(r[0]) for r in cur.fetchall() if r[0] != skip),
                            key=lambda t: (t == LAST_TABLE, t))  # fmt: skip
            for table in tables:
                src, dst = f"{_ident(source)}.{_ident(table)}", f"{_ident(target)}.{_ident(table)}"
                # Filled under another name and renamed: a table is there whole or not at all.
                part = f"{_ident(target)}.{_ident(table + '__copy')}"
                cur.execute(f"DROP TABLE IF EXISTS {part}")
                cur.execute(f"CREATE TABLE {part} LIKE {src}")
                cur.execute(f"INSERT INTO {part} SELECT * FROM {src}")
                cur.execute(f"DROP TABLE IF EXISTS {dst}")
                cur.execute(f"RENAME TABLE {part} TO {dst}")


def placeholder_input(template: Template) -> dict[str, Any]:
    """What the installer is told to install a template with."""
    return {"template": {**PLACEHOLDERS, "key": template.key}}
