"""The platform catalogue's zips in a bucket (gs://<bucket>/catalogue/<kind>/<slug>/<version>.zip):
written by the control plane only, read by the tenants' packages jobs through a read-only GCS
volume (CATALOGUE_MOUNT). Matches the CatalogueStore Protocol of controlplane/packages/store.py."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from pathlib import Path
from typing import Any

from google.api_core import exceptions

PREFIX = "catalogue"
CATALOGUE_MOUNT = "/var/aipress/catalogue"  # where the packages job sees gs://<bucket>/catalogue
# "<kind>/<slug>/<version>": the store's entry key (an optional ".zip" is dropped).
ENTRY_KEY = re.compile(r"(plugin|theme|core)/[a-z0-9][a-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._+-]*")


def object_name(entry_key: str) -> str:
    """The object of an entry key ("plugin/demo/1.1" -> "catalogue/plugin/demo/1.1.zip")."""
    key = entry_key.removesuffix(".zip")
    if not ENTRY_KEY.fullmatch(key) or ".." in key:
        raise ValueError(f"catalogue entry key {entry_key!r} is not <kind>/<slug>/<version>")
    return f"{PREFIX}/{key}.zip"


def split_location(location: str) -> tuple[str, str]:
    """(bucket, object) of a gs:// location under the catalogue's prefix."""
    bucket, _, name = location.removeprefix("gs://").partition("/")
    if not location.startswith("gs://") or not bucket or not name.startswith(f"{PREFIX}/"):
        raise ValueError(f"{location!r} is not a gs://<bucket>/{PREFIX}/... location")
    object_name(name.removeprefix(f"{PREFIX}/"))  # the same shape as what put writes
    return bucket, name


def catalogue_file(location: str, bucket: str) -> str:
    """The zip at `location` (which must be in `bucket`) relative to CATALOGUE_MOUNT."""
    found, name = split_location(location)
    if found != bucket:
        raise ValueError(f"{location} is not in the platform catalogue's bucket {bucket}")
    return name.removeprefix(f"{PREFIX}/")


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


class GcsCatalogueStore:
    """Puts catalogue zips in the bucket, never over a different one (entries are
    immutable: a version is one zip), and removes them."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(self, entry_key: str, zip_path: Path) -> str:
        """Upload the zip (a repeat with the same bytes is a no-op); its gs:// location."""
        name = object_name(entry_key)
        blob = self.client.bucket(self.bucket).blob(name)
        if not self._holds_same(blob, zip_path, entry_key):
            try:  # only if still absent: a concurrent put of another zip is not overwritten
                blob.upload_from_filename(str(zip_path), content_type="application/zip",
                                          if_generation_match=0)  # fmt: skip
            except exceptions.PreconditionFailed:
                self._holds_same(blob, zip_path, entry_key)
        return f"gs://{self.bucket}/{name}"

    @staticmethod
    def _holds_same(blob: Any, zip_path: Path, entry_key: str) -> bool:
        """True when the object exists with these bytes, False when it is absent;
        ValueError when it holds another zip."""
        try:
            blob.reload()
        except exceptions.NotFound:
            return False
        if blob.md5_hash != _md5(zip_path):
            raise ValueError(f"the catalogue already holds a different zip for {entry_key}")
        return True

    def remove(self, location: str) -> None:
        """Delete the zip at `location` (no-op when gone)."""
        bucket, name = split_location(location)
        if bucket != self.bucket:
            raise ValueError(f"{location} is not in the catalogue's bucket {self.bucket}")
        with contextlib.suppress(exceptions.NotFound):
            self.client.bucket(bucket).blob(name).delete()
