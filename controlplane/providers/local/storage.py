"""storage step: the site's system user and directories; WordPress core hard-linked, not copied."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import struct
import subprocess
from pathlib import Path

from controlplane.engine.provider import SiteContext
from controlplane.kernel.logs import get_logger
from controlplane.providers.local.base import LocalStep
from controlplane.stack.process import StackError, run

log = get_logger("aipress.local.storage")
# The site's own wp-content starts empty but for the default theme: Debian's bundled Akismet
# would sit inactive (Site Health flags it) and needs an API key and the internet.
CONTENT_SUBDIRS = ("themes", "plugins", "uploads", "languages")
CORE_EXCLUDES = ("wp-config.php", "wp-content", ".htaccess")


def user_exists(name: str) -> bool:
    """Whether a system user exists."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def chown_tree(path: Path, user: str, group: str) -> None:
    """chown -R without following links (never touches hard-linked core files)."""
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
    os.chown(path, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.chown(Path(dirpath) / name, uid, gid, follow_symlinks=False)


_ACL_VERSION, _UNDEFINED_ID = 2, 0xFFFFFFFF
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20


def grant_traverse(path: Path, uid: int) -> None:
    """Set the directory's access ACL to its mode bits plus `uid` may traverse it (x).

    Written as the kernel's `system.posix_acl_access` value (no setfacl needed): a
    little-endian version, then (tag, perm, id) entries in tag order; the mask keeps the
    group bits.
    """
    mode = path.stat().st_mode
    entries = [
        (_USER_OBJ, (mode >> 6) & 7, _UNDEFINED_ID),
        (_USER, 1, uid),
        (_GROUP_OBJ, (mode >> 3) & 7, _UNDEFINED_ID),
        (_MASK, ((mode >> 3) & 7) | 1, _UNDEFINED_ID),
        (_OTHER, mode & 7, _UNDEFINED_ID),
    ]
    value = struct.pack("<I", _ACL_VERSION) + b"".join(
        struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in entries
    )
    try:
        os.setxattr(path, "system.posix_acl_access", value, follow_symlinks=False)
    except OSError as exc:
        raise StackError(
            f"cannot set an ACL on {path} ({exc.strerror}): the state directory needs a "
            "filesystem with POSIX ACLs (ext4, xfs, btrfs, tmpfs)"
        ) from exc


class StorageStep(LocalStep):
    """One system user per site; its directory readable by it and nginx only."""

    def ensure(self, ctx: SiteContext) -> None:
        """Create the user, the site root, hard-linked core and the site's own wp-content."""
        names = self.names(ctx)
        self.stack.ensure_running()
        # No site without the network fence: its PHP could reach the platform's ports.
        self.stack.firewall.ensure()
        user = names.system_user
        if user_exists(user):
            if pwd.getpwnam(user).pw_dir != str(names.root):
                raise StackError(f"system user {user} exists and belongs to something else")
        else:
            run(
                ["useradd", "--system", "--user-group", "--no-create-home",
                 "--home-dir", str(names.root), "--shell", "/usr/sbin/nologin", user],
                what=f"useradd {user}",
            )  # fmt: skip
        self.stack.firewall.admit(pwd.getpwnam(user).pw_uid)  # before anything runs as it
        tenant_dir = names.root.parent
        tenant_dir.mkdir(parents=True, exist_ok=True)
        tenant_dir.chmod(0o711)  # traversable, not listable: other tenants' site names
        names.root.mkdir(exist_ok=True)
        # Root's, so the site's user cannot swap htdocs, tmp or logs for links of its own
        # (root later writes wp-config.php, archives and reads them); nginx traverses it as
        # its group; other users may only traverse (what lies below has its own modes).
        entry = pwd.getpwnam(user)
        os.chown(names.root, 0, grp.getgrnam("www-data").gr_gid, follow_symlinks=False)
        names.root.chmod(0o750)
        # ...and its own user only traverses it (a POSIX ACL entry): other sites get nothing.
        grant_traverse(names.root, entry.pw_uid)
        for sub in ("tmp", "logs"):
            path = names.root / sub
            # Sites made before the root was root's may have put a link here: never follow it.
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                path.unlink()
            path.mkdir(exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
            path.chmod(0o750)
        self._ensure_core(names.root / "htdocs")
        self._ensure_content(names.root / "htdocs" / "wp-content", user)
        ctx.resources["storage"] = {"root": str(names.root), "user": user}

    def _ensure_core(self, htdocs: Path) -> None:
        if htdocs.is_dir():
            return
        staging = htdocs.with_name("htdocs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        core = self.settings.wordpress_core
        entries = [p for p in sorted(core.iterdir()) if p.name not in CORE_EXCLUDES]
        staging.mkdir()
        try:
            # -l: hard links (shared inodes, ~3 MB of directories per site); -L: follow Debian's
            # symlinks into /usr/share/php so open_basedir needs only the site root.
            run(["cp", "-rlL", *map(str, entries), str(staging)], what="linking WordPress core")
        except Exception:
            log.warning("core.hardlink_failed", hint="state dir on another filesystem; copying")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            run(["cp", "-rL", *map(str, entries), str(staging)], what="copying WordPress core")
        staging.chmod(0o755)
        staging.rename(htdocs)

    def _ensure_content(self, content: Path, user: str) -> None:
        if not content.is_dir():
            staging = content.with_name("wp-content.partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            for sub in CONTENT_SUBDIRS:
                (staging / sub).mkdir()
            chown_tree(staging, user, "www-data")
            staging.rename(content)
        # setgid: files the site writes stay readable by nginx (group www-data), not by others.
        content.chmod(0o2750)
        self._ensure_theme(content / "themes")

    def _ensure_theme(self, themes: Path) -> None:
        """Hard-link the default theme like core: root-owned, shared inodes, ~0 bytes a site.

        After the chown of wp-content, never before: a chown through a hard link would give
        the Debian package's files to the site. A missing theme is left for the readiness
        probe to report (the site would render an empty page)."""
        theme = self.settings.default_theme
        source = self.settings.wordpress_core / "wp-content" / "themes" / theme
        target = themes / theme
        if target.is_symlink() or not themes.is_dir() or themes.is_symlink():
            raise StackError(f"{themes} is not the site's themes directory")
        if target.exists() or not source.is_dir():
            return
        # Staged in htdocs (root's), not in themes/, where the site's user could plant a link.
        staging = themes.parent.parent / f".theme-{theme}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            run(["cp", "-rlL", str(source), str(staging)], what=f"linking theme {theme}")
        except StackError:
            shutil.rmtree(staging, ignore_errors=True)
            run(["cp", "-rL", str(source), str(staging)], what=f"copying theme {theme}")
        staging.rename(target)

    def remove(self, ctx: SiteContext) -> None:
        """Delete the site's directory and system user (after its pool is gone)."""
        names = self.names(ctx)
        if names.root.exists():
            shutil.rmtree(names.root)
        tenant_dir = names.root.parent
        if tenant_dir.exists() and not any(tenant_dir.iterdir()):
            tenant_dir.rmdir()
        if user_exists(names.system_user):
            uid = pwd.getpwnam(names.system_user).pw_uid
            subprocess.run(["pkill", "-KILL", "-u", names.system_user], check=False)
            run(["userdel", names.system_user], what=f"userdel {names.system_user}")
            self.stack.firewall.release(uid)  # after userdel: never an unfenced site user
        ctx.resources.pop("storage", None)
