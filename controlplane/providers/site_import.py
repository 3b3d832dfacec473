"""What an import does to the uploaded database once it is loaded in the side schema, the same
SQL on the local MariaDB and on Cloud SQL: the table prefix renamed to the site's, the admin
kept or reset, and the imported site's title read.

Admin `keep` with an imported user whose login is the platform's admin name: that user is the
imported site's own (its password hash came with the dump), so the option ADMIN_KEPT tells
the platform's WordPress step not to set the vault's password on it (wp_install.php). `reset`
makes the platform's admin an administrator whose password the vault holds, and clears it.
"""

from __future__ import annotations

from typing import Any

from controlplane.engine.provider import SITE_TABLE_PREFIX

ADMIN_KEPT = "aipress_admin_password_kept"


def quote(name: str) -> str:
    """A backtick-quoted identifier (table names come from the uploader's dump)."""
    return "`" + name.replace("`", "``") + "`"


def _table(schema: str, suffix: str) -> str:
    return f"{quote(schema)}.{quote(SITE_TABLE_PREFIX + suffix)}"


def base_tables(cur: Any, schema: str) -> list[str]:
    """The schema's tables (views left out), by name."""
    cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME", (schema,))  # fmt: skip
    return [str(row[0]) for row in cur.fetchall()]


def reprefix(cur: Any, schema: str, old: str) -> None:
    """Tables `<old>x` -> `wp_x` (one RENAME TABLE), and the keys WordPress names with its
    prefix: the `<prefix>user_roles` option and every `<prefix>`-keyed usermeta
    (capabilities, user_level, dashboard settings)."""
    new = SITE_TABLE_PREFIX
    if old == new:
        return
    db = quote(schema)
    moves = [f"{db}.{quote(t)} TO {db}.{quote(new + t[len(old) :])}"
             for t in base_tables(cur, schema) if t.startswith(old)]  # fmt: skip
    if moves:
        cur.execute("RENAME TABLE " + ", ".join(moves))
    cur.execute(f"UPDATE {_table(schema, 'options')} SET option_name = %s WHERE option_name = %s",
                (f"{new}user_roles", f"{old}user_roles"))  # fmt: skip
    like = old.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
    cur.execute(
        f"UPDATE {_table(schema, 'usermeta')} "
        "SET meta_key = CONCAT(%s, SUBSTRING(meta_key, %s)) WHERE meta_key LIKE %s",
        (new, len(old) + 1, like),
    )


def _user_id(cur: Any, schema: str, login: str) -> int | None:
    cur.execute(f"SELECT ID FROM {_table(schema, 'users')} WHERE user_login = %s", (login,))
    row = cur.fetchone()
    return None if row is None else int(row[0])


def _make_admin(cur: Any, schema: str, login: str, email: str) -> None:
    """The platform's admin user an administrator (added when missing; the WordPress step
    then sets the password the vault holds)."""
    user_id = _user_id(cur, schema, login)
    if user_id is None:
        cur.execute(
            f"INSERT INTO {_table(schema, 'users')} (user_login, user_pass, user_nicename, "
            "user_email, user_registered, display_name) "
            "VALUES (%s, '', %s, %s, UTC_TIMESTAMP(), %s)",
            (login, login, email, login),
        )
        user_id = int(cur.lastrowid)
    keys = (f"{SITE_TABLE_PREFIX}capabilities", f"{SITE_TABLE_PREFIX}user_level")
    usermeta = _table(schema, "usermeta")
    cur.execute(f"DELETE FROM {usermeta} WHERE user_id = %s AND meta_key IN (%s, %s)",
                (user_id, *keys))  # fmt: skip
    cur.execute(
        f"INSERT INTO {usermeta} (user_id, meta_key, meta_value) VALUES (%s, %s, %s), (%s, %s, %s)",
        (user_id, keys[0], 'a:1:{s:13:"administrator";b:1;}', user_id, keys[1], "10"),
    )


def settle_admin(cur: Any, schema: str, login: str, email: str, *, reset: bool) -> None:
    """`reset`: the platform's admin made an administrator with the vault's password. Keep:
    an imported user named like the platform's admin keeps its own password (ADMIN_KEPT
    set); with none, nothing is marked."""
    options = _table(schema, "options")
    cur.execute(f"DELETE FROM {options} WHERE option_name = %s", (ADMIN_KEPT,))
    if reset:
        _make_admin(cur, schema, login, email)
    elif _user_id(cur, schema, login) is not None:
        cur.execute(f"INSERT INTO {options} (option_name, option_value, autoload) "
                    "VALUES (%s, '1', 'no')", (ADMIN_KEPT,))  # fmt: skip


def blogname(cur: Any, schema: str) -> str:
    """The imported site's title ("" when it has none)."""
    cur.execute(f"SELECT option_value FROM {_table(schema, 'options')} WHERE option_name = %s",
                ("blogname",))  # fmt: skip
    row = cur.fetchone()
    return str(row[0]) if row is not None else ""


def settle(cur: Any, schema: str, prefix: str, login: str, email: str, *, reset: bool) -> str:
    """Everything an import does to its loaded dump before the URLs are rewritten: prefix,
    admin; the imported title returned."""
    reprefix(cur, schema, prefix)
    settle_admin(cur, schema, login, email, reset=reset)
    return blogname(cur, schema)
