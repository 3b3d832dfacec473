"""Uploads for the import tests: a WordPress dump with another prefix and address, archives
built member by member (the malicious ones too)."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass

OLD_URL = "http://old-shop.example.org"
OLD_PREFIX = "blog_"
TITLE = "Imported Crumbs"

DUMP = f"""-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB
/*!40101 SET NAMES utf8mb4 */;
DROP TABLE IF EXISTS `{OLD_PREFIX}options`;
CREATE TABLE `{OLD_PREFIX}options` (
  `option_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `option_name` varchar(191) NOT NULL DEFAULT '',
  `option_value` longtext NOT NULL,
  PRIMARY KEY (`option_id`)
);
INSERT INTO `{OLD_PREFIX}options` VALUES (1,'siteurl','{OLD_URL}'),(2,'blogname','{TITLE}'),
(3,'{OLD_PREFIX}user_roles','a:0:{{}}');
DROP TABLE IF EXISTS `{OLD_PREFIX}users`;
CREATE TABLE `{OLD_PREFIX}users` (`ID` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `user_login` varchar(60) NOT NULL DEFAULT '', PRIMARY KEY (`ID`));
INSERT INTO `{OLD_PREFIX}users` VALUES (1,'editor');
"""


@dataclass(frozen=True)
class Member:
    """One archive member: its name, kind ("file", "dir", "symlink", "hardlink", "char",
    "fifo"), content and mode."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    target: str = ""


def tar_gz(members: list[Member]) -> bytes:
    """A .tar.gz holding exactly these members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.mode = member.mode
            kinds = {
                "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE,
            }  # fmt: skip
            info.type = kinds[member.kind]
            info.linkname = member.target
            if member.kind == "file":
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


CONTENT = [
    Member("wp-content", "dir", mode=0o755),
    Member("wp-content/uploads", "dir", mode=0o755),
    Member("wp-content/uploads/2024/cat.png", data=b"\x89PNG not really"),
    Member("wp-content/themes/crumbs/style.css", data=b"/* Theme Name: crumbs */"),
    Member("wp-content/themes/crumbs/index.php", data=b"<?php echo 'hi';"),
]


def good_archive(dump: str = DUMP, *, gzipped_dump: bool = False) -> bytes:
    """A well-formed site archive: the dump and wp-content/."""
    data = gzip.compress(dump.encode()) if gzipped_dump else dump.encode()
    name = "database.sql.gz" if gzipped_dump else "database.sql"
    return tar_gz([Member(name, data=data), *CONTENT])


def with_content(extra: Member) -> Callable[[], bytes]:
    """A good archive with one more member."""
    return lambda: tar_gz([Member("database.sql", data=DUMP.encode()), *CONTENT, extra])


def bomb(size: int) -> bytes:
    """An archive whose wp-content file unpacks to `size` zero bytes (it compresses ~1000x)."""
    return tar_gz([Member("database.sql", data=DUMP.encode()),
                   Member("wp-content/uploads/zeros.bin", data=bytes(size))])  # fmt: skip


SETUID = 0o755 | stat.S_ISUID
