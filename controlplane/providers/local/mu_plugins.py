"""The platform's must-use plugins: every `*.php` in `mu_plugins/`, installed into a site's
`wp-content/mu-plugins/` root-owned (the site's user can read them, not change them)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from controlplane.stack.process import StackError

SOURCE = Path(__file__).parent / "mu_plugins"


def platform_mu_plugins() -> dict[str, bytes]:
    """The shipped must-use plugins by file name."""
    return {path.name: path.read_bytes() for path in sorted(SOURCE.glob("*.php"))}


def install_mu_plugins(content: Path) -> list[str]:
    """Make `content/mu-plugins` hold exactly the platform's plugins; return their names.

    `content` (wp-content) belongs to the site's user, who may have put a link or a file of
    its own where the directory goes: that is removed, and the directory is then written
    through a descriptor opened without following links, so nothing lands elsewhere.
    """
    target = content / "mu-plugins"
    try:
        info = os.lstat(target)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
            _remove(target, info)
    except FileNotFoundError:
        pass
    with contextlib.suppress(FileExistsError):
        os.mkdir(target, 0o755)
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if info.st_uid != 0:
            raise StackError(f"{target} is not root's: refusing to install must-use plugins")
        os.fchown(fd, 0, 0)
        os.fchmod(fd, 0o755)
        plugins = platform_mu_plugins()
        for name in os.listdir(fd):
            if name not in plugins:
                _unlink_at(fd, name)
        for name, data in plugins.items():
            temp = f".{name}.tmp"
            _unlink_at(fd, temp)
            out = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=fd
            )
            with os.fdopen(out, "wb") as handle:
                handle.write(data)
            os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
        return sorted(plugins)
    finally:
        os.close(fd)


def _remove(path: Path, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def _unlink_at(fd: int, name: str) -> None:
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=fd)
    else:
        os.unlink(name, dir_fd=fd)
