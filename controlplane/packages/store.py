"""Where the catalogue keeps its zips: a directory under the state dir locally (the gcp
provider keeps them in a bucket)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Protocol

from controlplane.settings import Settings

ENTRY_KEY = re.compile(r"(plugin|theme|core)/[a-z0-9][a-z0-9_-]{0,63}/[0-9][0-9A-Za-z.+_-]{0,39}")


class CatalogueStore(Protocol):
    """Keeps one zip per catalogue entry."""

    def put(self, entry_key: str, zip_path: Path) -> str:
        """Keep the zip under `entry_key` ("plugin/demo/1.1"); returns where it was written."""
        ...

    def remove(self, location: str) -> None:
        """Drop a kept zip (no-op when gone)."""
        ...


class LocalCatalogueStore:
    """`<home>/catalogue/<kind>/<slug>/<version>.zip`, readable by the control plane only."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, entry_key: str, zip_path: Path) -> str:
        """Copy the zip in (written beside, then renamed: never half a zip at its name)."""
        if not ENTRY_KEY.fullmatch(entry_key):
            raise ValueError(f"not a catalogue entry key: {entry_key!r}")
        target = self.root / f"{entry_key}.zip"
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out, zip_path.open("rb") as source:
            shutil.copyfileobj(source, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
        return str(target)

    def remove(self, location: str) -> None:
        """Delete a zip this store wrote."""
        path = Path(location)
        if path.is_relative_to(self.root):
            path.unlink(missing_ok=True)


def catalogue_store(settings: Settings) -> CatalogueStore:
    """The store the platform's provider reads from."""
    return LocalCatalogueStore(settings.home / "catalogue")
