"""packages step: a site's core, plugins and themes on one machine.

A catalogue zip (its checksum and contents checked again) is unpacked as root into the
operation's work directory, `<site root>/.packages/<key>/` (root's, 0700: the site's user
cannot reach into it), and swapped in by rename; what it replaces is moved into the same
work directory (`previous/`), so putting it back is a rename too. Plugins and themes are the
site user's (in its wp-content, which it can change: every rename there goes through
directory descriptors opened without following links). Core is root's: its top-level files
and directories in htdocs (wp-admin, wp-includes, *.php; never wp-content or wp-config.php)
are replaced by ones hard-linked from one shared unpack of the core zip per version (under
the state directory), as the Debian core is linked at create: a version costs its disk once.

WordPress-side work (what is installed, activation, the database upgrade) is PHP run as the
site's user (`packages.php` on stdin, as wp_install.php) with WP_INSTALLING. That keeps the
active plugins and the theme's functions.php from loading (a plugin that fatals on load
cannot stop a rollback), but not wp-config.php, must-use plugins or drop-ins (db.php,
object-cache.php, advanced-cache.php): the site's own code still runs. So the run is bounded
(a timeout: short when an API request waits on it; an output cap) and what it prints is
checked as untrusted input (packages/reported.py).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import stat
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from controlplane.engine.packages import HealthResult, InstalledPackage, PackageArchive
from controlplane.engine.provider import SiteContext
from controlplane.kernel.logs import get_logger
from controlplane.kernel.vocabulary import PackageKind
from controlplane.packages.archives import ArchiveRefused, inspect_archive, sha256_of
from controlplane.packages.reported import installed_from_report
from controlplane.providers.local.base import LocalStep
from controlplane.providers.local.site_php import site_script, with_input
from controlplane.providers.local.storage import chown_tree
from controlplane.providers.readiness import get_page, homepage_problem
from controlplane.stack.process import StackError, run

log = get_logger("aipress.local.packages")
SCRIPT_SOURCE = site_script("packages.php")
KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
WORK_DIR = ".packages"
# Never moved into htdocs from a core zip: the site's config, its content, and WordPress's
# own maintenance flag (the platform's maintenance is nginx's, never `.maintenance`).
CORE_KEEP = frozenset({"wp-content", "wp-config.php", ".htaccess", ".maintenance"})
FATAL = re.compile(r"PHP (?:Fatal|Parse) error:.*")
LOG_READ_LIMIT = 1024 * 1024
# What packages.php may print (a listing of 2,000 packages is far less); past it, it is killed.
PHP_OUTPUT_LIMIT = 1024 * 1024
# PHP-FPM's opcache.revalidate_freq (stack/phpfpm.py): for this long after a swap a worker
# may still run the code it compiled from the files that were there before.
OPCACHE_REVALIDATE_SECONDS = 2.0
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _exists(name: str, dir_fd: int) -> bool:
    """Whether `name` is in the directory (a link counts; never followed)."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _subdir(parent_fd: int, name: str) -> int:
    """A descriptor of `parent/name`; StackError when it is a link or not a directory."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise StackError(f"{name} is not a directory of the site ({exc.strerror})") from exc


def _set_modes(tree: Path, dirs: int, files: int) -> None:
    """Modes of a freshly unpacked tree (plain files and directories only: checked zips)."""
    tree.chmod(dirs)
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames:
            (Path(dirpath) / name).chmod(dirs)
        for name in filenames:
            (Path(dirpath) / name).chmod(files)


def _root_dir(parent_fd: int, name: str, *, create: bool) -> int | None:
    """A descriptor of root's directory `name` in the parent (made 0700 when missing and
    `create`; None when missing otherwise). A link there is removed; anything else that is
    not root's directory is refused (StackError): the site's user may have put it there."""
    try:
        found = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        found = None
    if found is not None and stat.S_ISLNK(found.st_mode):
        log.warning("packages.work_link_removed", entry=name)
        os.unlink(name, dir_fd=parent_fd)
        found = None
    if found is None:
        if not create:
            return None
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise StackError(f"{name} of the packages work directory cannot be opened "
                         f"({exc.strerror}): remove it") from exc  # fmt: skip
    if os.fstat(fd).st_uid != 0:
        os.close(fd)
        raise StackError(f"{name} in the site's directory is not root's: the platform does not "
                         "use it (remove it to update the site)")  # fmt: skip
    os.fchmod(fd, 0o700)
    return fd


def _ensure_root_dir(parent_fd: int, name: str) -> None:
    """Root's directory `name` in the parent, made if missing (see _root_dir)."""
    fd = _root_dir(parent_fd, name, create=True)
    if fd is not None:
        os.close(fd)


class _Work:
    """One install's work directory: the manifest, new copies, what they replaced. Every
    part is root's and opened without following links (the site root is the site's)."""

    def __init__(self, root: Path, key: str) -> None:
        if not KEY.fullmatch(key):
            raise ValueError(f"not an install key: {key!r}")
        self.root, self.key = root, key
        self.base = root / WORK_DIR
        self.path = self.base / key
        self.manifest_file = self.path / "manifest.json"

    def _open(self, *, create: bool) -> int | None:
        """A descriptor of the key's directory (with new/, previous/, trash/ when `create`)."""
        root_fd = os.open(self.root, DIR_FLAGS)
        try:
            base_fd = _root_dir(root_fd, WORK_DIR, create=create)
        finally:
            os.close(root_fd)
        if base_fd is None:
            return None
        try:
            key_fd = _root_dir(base_fd, self.key, create=create)
        finally:
            os.close(base_fd)
        if key_fd is not None and create:
            try:
                for name in ("new", "previous", "trash"):
                    _ensure_root_dir(key_fd, name)
            except BaseException:
                os.close(key_fd)
                raise
        return key_fd

    def make(self) -> None:
        fd = self._open(create=True)
        if fd is not None:
            os.close(fd)

    def exists(self) -> bool:
        """Whether the key's work directory is there (root's; a link in its place is not)."""
        fd = self._open(create=False)
        if fd is None:
            return False
        os.close(fd)
        return True

    def manifest(self) -> list[dict[str, Any]]:
        if not self.manifest_file.exists():
            return []
        items: list[dict[str, Any]] = json.loads(self.manifest_file.read_text())["items"]
        return items

    def save(self, items: list[dict[str, Any]]) -> None:
        """Written beside and renamed, synced: a killed install finds a whole manifest."""
        tmp = self.manifest_file.with_suffix(".tmp")
        with tmp.open("w") as handle:
            json.dump({"items": items}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.manifest_file)

    def bucket(self, where: str, kind: str) -> Path:
        where_fd = os.open(self.path / where, DIR_FLAGS)  # root's: make() checked it
        try:
            _ensure_root_dir(where_fd, kind)
        finally:
            os.close(where_fd)
        return self.path / where / kind


class LocalPackages(LocalStep):
    """Reads, installs and puts back a site's packages (see the module's docstring)."""

    # ------------------------------------------------------------------ WordPress side

    def _php(
        self, ctx: SiteContext, request: dict[str, Any], *, timeout: float = 300
    ) -> dict[str, Any]:
        names = self.names(ctx)
        payload = json.dumps({**request, "url": self.preview_url(ctx).rstrip("/")})
        script = with_input(SCRIPT_SOURCE, payload)
        # cwd "/": the site's user reaches nothing of the control plane's working directory.
        output = run(
            ["runuser", "-u", names.system_user, "--", "php", *self.site_php_flags(ctx),
             "-d", "memory_limit=256M", "-d", f"max_execution_time={int(timeout)}",
             "--", str(names.root / "htdocs")],
            what=f"packages {request['action']}", input_text=script, timeout=timeout,
            cwd="/", max_output=PHP_OUTPUT_LIMIT,
        )  # fmt: skip
        try:
            result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise StackError(f"packages {request['action']} printed no result") from exc
        return result

    def installed(self, ctx: SiteContext) -> list[InstalledPackage]:
        """Core, plugins and themes as the site's own WordPress reads them."""
        found = self._php(ctx, {"action": "installed"},
                          timeout=self.settings.packages_list_timeout)  # fmt: skip
        items = installed_from_report(found.get("core"), found.get("plugins"), found.get("themes"))
        return [items[0], *sorted(items[1:], key=lambda i: (i.kind != PackageKind.PLUGIN, i.slug))]

    def upgrade_database(self, ctx: SiteContext) -> None:
        """wp_upgrade() with the site's new core."""
        self._php(ctx, {"action": "upgrade"})

    # ------------------------------------------------------------------ files

    def _checked_zip(self, archive: PackageArchive) -> Path:
        """The catalogue's zip, its checksum and contents checked again before unpacking."""
        path = Path(archive.location)
        if not path.is_file():
            raise StackError(f"the catalogue's zip of {archive.slug} {archive.version} is gone")
        if sha256_of(path) != archive.sha256:
            raise StackError(
                f"the catalogue's zip of {archive.slug} {archive.version} does not match its "
                "checksum: add it to the catalogue again"
            )
        try:
            info = inspect_archive(path, archive.kind, max_bytes=self.settings.catalogue_max_bytes)
        except ArchiveRefused as exc:
            raise StackError(f"the catalogue's zip of {archive.slug} is refused: {exc}") from exc
        if (info.slug, info.version) != (archive.slug, archive.version):
            raise StackError(f"the zip holds {info.slug} {info.version}, not {archive.slug} "
                             f"{archive.version}")  # fmt: skip
        return path

    def _core_unpack(self, archive: PackageArchive, zip_path: Path) -> Path:
        """One root-owned unpack of a core zip per checksum, shared by every site."""
        shared = self.settings.home / "packages-unpacked" / f"core-{archive.sha256[:32]}"
        if (shared / "wordpress").is_dir():
            return shared / "wordpress"
        shared.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        partial = shared.with_name(f".{shared.name}.{secrets.token_hex(4)}")
        with zipfile.ZipFile(zip_path) as source:
            source.extractall(partial)
        _set_modes(partial / "wordpress", 0o755, 0o644)
        partial.chmod(0o755)
        try:
            partial.rename(shared)
        except OSError:  # another site unpacked the same version meanwhile
            shutil.rmtree(partial, ignore_errors=True)
        return shared / "wordpress"

    def _stage(self, ctx: SiteContext, work: _Work, archive: PackageArchive) -> Path:
        """The new copy, unpacked in the work directory with its final owner and modes."""
        zip_path = self._checked_zip(archive)
        new = work.bucket("new", archive.kind)
        if archive.kind is PackageKind.CORE:
            target = new / "wordpress"
            shutil.rmtree(target, ignore_errors=True)
            shared = self._core_unpack(archive, zip_path)
            try:  # -l: hard links to the shared unpack (root's, read-only for the site)
                run(["cp", "-rl", str(shared), str(target)], what="linking WordPress core")
            except StackError:
                shutil.rmtree(target, ignore_errors=True)
                run(["cp", "-r", str(shared), str(target)], what="copying WordPress core")
            return target
        target = new / archive.slug
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(zip_path) as source:
            source.extractall(new)  # members checked: all under <slug>/, files and dirs only
        # Like wp-content: the site's user owns it, nginx (group www-data) reads it.
        _set_modes(target, 0o2750, 0o640)
        chown_tree(target, self.names(ctx).system_user, "www-data")
        return target

    def _live_dir(self, htdocs_fd: int, kind: str) -> int:
        """A descriptor of where a kind lives: htdocs for core, else wp-content/<kind>s."""
        if kind == PackageKind.CORE:
            return os.dup(htdocs_fd)
        content = _subdir(htdocs_fd, "wp-content")
        try:
            return _subdir(content, f"{kind}s")
        finally:
            os.close(content)

    def _open_htdocs(self, ctx: SiteContext) -> int:
        htdocs = self.names(ctx).root / "htdocs"
        fd = os.open(htdocs, DIR_FLAGS)
        if os.fstat(fd).st_uid != 0:
            os.close(fd)
            raise StackError(f"{htdocs} is not root's")
        return fd

    def _items(self, archive: PackageArchive, staged: Path) -> list[str]:
        """The names one archive puts in its live directory."""
        if archive.kind is PackageKind.CORE:
            return sorted(p.name for p in staged.iterdir() if p.name not in CORE_KEEP)
        return [archive.slug]

    def install(
        self, ctx: SiteContext, archives: list[PackageArchive], *, key: str, activate: bool
    ) -> None:
        """Each version unpacked beside and swapped in by rename; whatever it replaces is
        kept in the work directory first (a repeat finds the manifest and goes on)."""
        names = self.names(ctx)
        work = _Work(names.root, key)
        work.make()
        items = work.manifest()
        htdocs_fd = self._open_htdocs(ctx)
        try:
            for archive in archives:
                done = {(i["kind"], i["archive"]) for i in items if i["done"]}
                if (archive.kind.value, f"{archive.slug}@{archive.version}") in done:
                    continue
                staged = self._stage(ctx, work, archive)
                source_dir = staged if archive.kind is PackageKind.CORE else staged.parent
                live_fd = self._live_dir(htdocs_fd, archive.kind)
                try:
                    for name in self._items(archive, staged):
                        items = self._swap_in(work, items, archive, name, source_dir, live_fd)
                finally:
                    os.close(live_fd)
                for item in items:
                    if item["kind"] == archive.kind and item["archive"] == (
                        f"{archive.slug}@{archive.version}"
                    ):
                        item["done"] = True
                work.save(items)
            (names.root / "htdocs" / ".maintenance").unlink(missing_ok=True)
        finally:
            os.close(htdocs_fd)
        if activate:
            plugins = [a.slug for a in archives if a.kind is PackageKind.PLUGIN]
            themes = [a.slug for a in archives if a.kind is PackageKind.THEME]
            self._php(ctx, {"action": "activate", "plugins": plugins,
                            "theme": themes[-1] if themes else None})  # fmt: skip
        self._settle(ctx)

    def _swap_in(
        self, work: _Work, items: list[dict[str, Any]], archive: PackageArchive, name: str,
        source_dir: Path, live_fd: int,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """One name swapped in: the live one kept aside (recorded before it moves), the new
        one renamed into place."""
        kind = archive.kind.value
        item = next((i for i in items if i["kind"] == kind and i["name"] == name), None)
        if item is None:
            item = {"kind": kind, "name": name, "archive": f"{archive.slug}@{archive.version}",
                    "had_previous": _exists(name, live_fd), "done": False}  # fmt: skip
            items = [*items, item]
            work.save(items)
        previous_fd = os.open(work.bucket("previous", kind), DIR_FLAGS)
        source_fd = os.open(source_dir, DIR_FLAGS)
        try:
            if item["had_previous"] and not _exists(name, previous_fd):
                os.rename(name, name, src_dir_fd=live_fd, dst_dir_fd=previous_fd)
            elif _exists(name, live_fd):  # what an earlier, killed try moved in
                self._to_trash(work, live_fd, name)
            if _exists(name, source_fd):
                os.rename(name, name, src_dir_fd=source_fd, dst_dir_fd=live_fd)
        finally:
            os.close(previous_fd)
            os.close(source_fd)
        return items

    def _to_trash(self, work: _Work, dir_fd: int, name: str) -> None:
        trash_fd = os.open(work.path / "trash", DIR_FLAGS)
        try:
            os.rename(name, f"{name}.{secrets.token_hex(6)}", src_dir_fd=dir_fd,
                      dst_dir_fd=trash_fd)  # fmt: skip
        finally:
            os.close(trash_fd)

    def restore_previous(self, ctx: SiteContext, *, key: str) -> None:
        """Every name the install swapped gets its previous copy back (renamed back from the
        work directory); names it added go. No-op without a work directory."""
        names = self.names(ctx)
        work = _Work(names.root, key)
        if not work.exists():
            return
        htdocs_fd = self._open_htdocs(ctx)
        try:
            for item in reversed(work.manifest()):
                live_fd = self._live_dir(htdocs_fd, item["kind"])
                previous_fd = os.open(work.bucket("previous", item["kind"]), DIR_FLAGS)
                try:
                    name = item["name"]
                    if _exists(name, previous_fd):
                        if _exists(name, live_fd):
                            self._to_trash(work, live_fd, name)
                        os.rename(name, name, src_dir_fd=previous_fd, dst_dir_fd=live_fd)
                    elif not item["had_previous"] and _exists(name, live_fd):
                        self._to_trash(work, live_fd, name)
                finally:
                    os.close(previous_fd)
                    os.close(live_fd)
            (names.root / "htdocs" / ".maintenance").unlink(missing_ok=True)
        finally:
            os.close(htdocs_fd)
        shutil.rmtree(work.path)
        self._settle(ctx)

    def _settle(self, ctx: SiteContext) -> None:
        """After a swap: PHP's workers have seen the new files, no page from before is cached."""
        time.sleep(OPCACHE_REVALIDATE_SECONDS + 0.2)
        self.purge_page_cache(ctx)

    def discard_previous(self, ctx: SiteContext, *, key: str) -> None:
        """Drop the work directory (what the install replaced, and any leftovers)."""
        work = _Work(self.names(ctx).root, key)
        if work.exists():
            shutil.rmtree(work.path)

    # ------------------------------------------------------------------ health

    def _php_log(self, ctx: SiteContext) -> Path:
        return self.names(ctx).root / "logs" / "php-error.log"

    def _open_log(self, ctx: SiteContext) -> int | None:
        """The PHP error log, opened without following links or blocking, only if it is the
        site's own plain file (the site's user could put a link, or a FIFO that would hold
        the open forever, there); None for anything else: "no log"."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self._php_log(ctx), flags)
        except OSError:
            return None
        info = os.fstat(fd)
        owner = self.names(ctx).system_user
        try:
            uid = pwd.getpwnam(owner).pw_uid
        except KeyError:
            uid = -1
        if not stat.S_ISREG(info.st_mode) or info.st_uid not in (uid, 0):
            os.close(fd)
            return None
        return fd

    def log_mark(self, ctx: SiteContext) -> str:
        """`<inode>:<size>` of the PHP error log ("0:0" when there is none)."""
        fd = self._open_log(ctx)
        if fd is None:
            return "0:0"
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
        return f"{info.st_ino}:{info.st_size}"

    def _new_fatal(self, ctx: SiteContext, since_mark: str) -> str | None:
        """The first PHP fatal error logged since the mark (its first line), or None."""
        fd = self._open_log(ctx)
        if fd is None:
            return None
        try:
            inode, _, size = since_mark.partition(":")
            info = os.fstat(fd)
            start = int(size) if inode == str(info.st_ino) and int(size) <= info.st_size else 0
            os.lseek(fd, start, os.SEEK_SET)
            text = os.read(fd, LOG_READ_LIMIT).decode("utf-8", errors="replace")
        finally:
            os.close(fd)
        found = FATAL.search(text)
        return found.group(0)[:300] if found else None

    def health(self, ctx: SiteContext, since_mark: str) -> HealthResult:
        """Homepage (the title; a query string keeps the page cache out), wp-login.php,
        /wp-json/, then the PHP error log; the first check that fails is the answer."""
        port = self.settings.site_port
        headers = {"Host": f"{self.names(ctx).preview_host}:{port}", **self.probe_headers(ctx)}
        base = f"http://127.0.0.1:{port}"
        fatal = self._new_fatal(ctx, since_mark)
        with httpx.Client(timeout=15, follow_redirects=False, headers=headers) as client:
            try:
                home = get_page(client, f"{base}/",
                                params={"aipress-health": str(time.time_ns())})  # fmt: skip
                problem = homepage_problem(home.status_code, home.text, ctx.title)
                if problem:
                    fatal = self._new_fatal(ctx, since_mark) or fatal
                    return HealthResult("homepage", problem + (f" ({fatal})" if fatal else ""))
                login = get_page(client, f"{base}/wp-login.php")
                if login.status_code != 200:
                    return HealthResult("login", f"wp-login.php answers HTTP {login.status_code}")
                rest = get_page(client, f"{base}/wp-json/")
                if rest.status_code != 200 or not isinstance(_json(rest.text), dict):
                    kind = "" if _json(rest.text) is not None else ", not JSON"
                    return HealthResult("rest", f"/wp-json/ answers HTTP {rest.status_code}{kind}")
            except httpx.HTTPError as exc:
                return HealthResult("homepage", f"nginx did not answer ({type(exc).__name__})")
        fatal = self._new_fatal(ctx, since_mark)
        if fatal:
            return HealthResult("php_fatal", fatal)
        return HealthResult(None, "homepage, wp-login.php and /wp-json/ answer; no new PHP fatal")


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None
