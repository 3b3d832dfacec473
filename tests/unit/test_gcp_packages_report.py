"""The gcp packages job's report lies in the site's writable uploads: read it only when it
is small, only the generation checked, and only as a JSON object."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.api_core import exceptions

from controlplane.errors import ApplyFailed
from controlplane.providers.gcp.packages import REPORT_MAX_BYTES, GcpPackages


class _Blob:
    """A report object as google-cloud-storage shows it."""

    def __init__(self, data: bytes, *, generation: int = 7, replaced: bool = False) -> None:
        self.data, self.generation, self.replaced = data, generation, replaced
        self.size: int | None = None
        self.downloads: list[dict[str, Any]] = []

    def reload(self) -> None:
        self.size = len(self.data)

    def download_as_bytes(self, **kwargs: Any) -> bytes:
        self.downloads.append(kwargs)
        if self.replaced:  # another generation was written after reload()
            raise exceptions.PreconditionFailed("generation mismatch")
        return self.data


def test_a_small_report_of_that_generation_is_read() -> None:
    blob = _Blob(json.dumps({"ok": True, "changed": 1}).encode())
    assert GcpPackages._report(blob) == {"ok": True, "changed": 1}
    assert blob.downloads == [{"if_generation_match": 7}]


def test_an_oversized_report_is_refused_before_it_is_downloaded() -> None:
    blob = _Blob(b" " * (REPORT_MAX_BYTES + 1))
    with pytest.raises(ApplyFailed, match="more than the 1048576 the platform reads"):
        GcpPackages._report(blob)
    assert blob.downloads == []


@pytest.mark.parametrize(
    ("blob", "says"),
    [
        (_Blob(b"{}", replaced=True), "changed while it was read"),
        (_Blob(b"not json"), "not JSON"),
        (_Blob(b"[1, 2]"), "not a JSON object"),
    ],
)
def test_a_replaced_or_malformed_report_is_refused(blob: _Blob, says: str) -> None:
    with pytest.raises(ApplyFailed, match=says):
        GcpPackages._report(blob)


def test_the_listing_is_checked_as_untrusted(monkeypatch: pytest.MonkeyPatch) -> None:
    packages = object.__new__(GcpPackages)
    core = {"kind": "core", "slug": "wordpress", "version": "6.5", "name": "WordPress",
            "active": True}  # fmt: skip
    plugin = {"kind": "plugin", "slug": "demo", "version": "1.0", "name": "Demo", "active": True}
    report: dict[str, Any] = {"ok": True, "core": core, "plugins": [plugin], "themes": []}
    monkeypatch.setattr(packages, "_run", lambda ctx, action, **kw: report)
    assert [(p.kind, p.slug) for p in packages.installed(None)] == [  # type: ignore[arg-type]
        ("core", "wordpress"),
        ("plugin", "demo"),
    ]
    report["plugins"] = [{**plugin, "slug": "../../../uploads"}]
    with pytest.raises(ApplyFailed, match="slug is not a directory name"):
        packages.installed(None)  # type: ignore[arg-type]
