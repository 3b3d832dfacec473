"""Installed once, cloned per site: a MariaDB schema holding a fresh WordPress install per
(WordPress version, theme, installer), copied into each new site's database.

The template is installed with placeholder values (PLACEHOLDERS, and its own URL) inside
the first new site's database, captured by a root copy into `aipress_tpl_<key>` (no site's
user has any grant on it), and that site is then personalised like every copy: in SQL, as
root (`personalise`), since a PHP run that loads WordPress costs as much as the install.
Its key hashes every input of the install, so a new WordPress, a changed theme or
installer makes a new template; the old ones are dropped when it is captured.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from controlplane.kernel import clock
from controlplane.providers.local.mu_plugins import platform_mu_plugins
from controlplane.providers.local.site_php import site_script
from controlplane.settings import Settings
from controlplane.stack.mariadb import MariaDB
from controlplane.stack.process import StackError, run

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
NO_SUCH_TABLE = 1146  # MariaDB's ER_NO_SUCH_TABLE
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
        "installer": hashlib.sha256(site_script("wp_install.php").encode()).hexdigest(),
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
        """Whether the site's database holds WordPress already (an install or a whole copy:
        a copy writes wp_options last, in one statement)."""
        with self.mariadb.connect() as conn, conn.cursor() as cur:
            try:
                cur.execute(
                    f"SELECT 1 FROM {_ident(database)}.{_ident(LAST_TABLE)} "
                    "WHERE option_name = 'siteurl'"
                )
            except pymysql.err.ProgrammingError as exc:
                if exc.args[0] == NO_SUCH_TABLE:
                    return False
                raise
            return cur.fetchone() is not None

    def pending(self, database: str) -> bool:
        """Whether the site's database is a template's copy not yet personalised."""
        with self.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT 1 FROM {_ident(database)}.{_ident(LAST_TABLE)} WHERE option_name = %s",
                (MARKER,),
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
                # A copy cut short is copied again whole (`installed` is False until the last
                # table's rows are in); each DDL costs, so no copy-and-rename per table.
                cur.execute(f"DROP TABLE IF EXISTS {dst}")
                cur.execute(f"CREATE TABLE {dst} LIKE {src}")
                cur.execute(f"INSERT INTO {dst} SELECT * FROM {src}")


def password_hash(password: str) -> str:
    """A bcrypt hash WordPress accepts (6.1's phpass checks it with crypt(), 6.8+ with
    password_verify()), made by PHP itself; the password travels on stdin."""
    script = 'echo password_hash(rtrim(stream_get_contents(STDIN), "\\n"), PASSWORD_BCRYPT);'
    return run(["php", "-r", script], what="hashing the admin password", input_text=password + "\n")


def nicename(login: str) -> str:
    """WordPress's user_nicename of a login (sanitize_title of the platform's logins)."""
    return re.sub(r"[^a-z0-9_-]+", "-", login.lower()).strip("-")[:50]


def personalise(
    mariadb: MariaDB, database: str, *, url: str, title: str, admin_user: str,
    admin_email: str, admin_password: str, public: bool,
) -> None:  # fmt: skip
    """Make a template's copy this site's, in one transaction ending with the marker's
    removal: its URL in posts (content, excerpt, guid) and comments, `siteurl` and `home`,
    title, admin (login, nicename, e-mail, URL, password hash, nickname), e-mail, today's
    dates; transients dropped. Rewrite rules and the roles key do not depend on any of these
    (one table prefix for every site) and stay as copied."""
    now = clock.now().strftime("%Y-%m-%d %H:%M:%S")
    hashed = password_hash(admin_password)
    old, new = TEMPLATE_URL, url.rstrip("/")
    db = _ident(database)
    with mariadb.connect() as conn, conn.cursor() as cur:
        conn.begin()
        cur.execute(
            f"UPDATE {db}.wp_posts SET post_content = REPLACE(post_content, %s, %s), "
            "post_excerpt = REPLACE(post_excerpt, %s, %s), guid = REPLACE(guid, %s, %s), "
            "post_date = %s, post_date_gmt = %s, post_modified = %s, post_modified_gmt = %s",
            (old, new, old, new, old, new, now, now, now, now),
        )
        cur.execute(
            f"UPDATE {db}.wp_comments SET comment_content = REPLACE(comment_content, %s, %s), "
            "comment_author_url = REPLACE(comment_author_url, %s, %s), "
            "comment_date = %s, comment_date_gmt = %s",
            (old, new, old, new, now, now),
        )
        options = {"siteurl": new, "home": new, "blogname": title, "admin_email": admin_email,
                   "admin_email_lifespan": str(int(time.time()) + 183 * 86400)}  # fmt: skip
        for name, value in options.items():
            cur.execute(
                f"UPDATE {db}.wp_options SET option_value = %s WHERE option_name = %s",
                (value, name),
            )
        if not public:  # as wp_install.php does for a staging site
            cur.execute(f"UPDATE {db}.wp_options SET option_value = '0' "
                        "WHERE option_name = 'blog_public'")  # fmt: skip
            cur.execute(f"INSERT INTO {db}.wp_options (option_name, option_value, autoload) "
                        "VALUES ('aipress_hidden_by_platform', '1', 'yes')")  # fmt: skip
        cur.execute(
            f"DELETE FROM {db}.wp_options WHERE option_name = 'new_admin_email' "
            "OR option_name LIKE '\\_transient\\_%' "
            "OR option_name LIKE '\\_site\\_transient\\_%'"
        )
        cur.execute(f"SELECT ID FROM {db}.wp_users WHERE user_login = %s",
                    (PLACEHOLDERS["admin_user"],))  # fmt: skip
        found = cur.fetchone()
        if found is None:
            raise StackError("the template's copy has no template admin to make the site's")
        cur.execute(
            f"UPDATE {db}.wp_users SET user_login = %s, user_nicename = %s, display_name = %s, "
            "user_email = %s, user_url = %s, user_registered = %s, user_pass = %s WHERE ID = %s",
            (admin_user, nicename(admin_user), admin_user, admin_email, new, now, hashed,
             found[0]),
        )  # fmt: skip
        cur.execute(
            f"UPDATE {db}.wp_usermeta SET meta_value = %s "
            "WHERE user_id = %s AND meta_key = 'nickname'",
            (admin_user, found[0]),
        )
        cur.execute(f"DELETE FROM {db}.wp_options WHERE option_name = %s", (MARKER,))
        conn.commit()


def placeholder_input(template: Template) -> dict[str, Any]:
    """What the installer is told to install a template with."""
    return {"template": {**PLACEHOLDERS, "key": template.key}}
