"""The local packages step against what a site's user can leave in its own files: a FIFO
as the PHP error log, hostile output from the site's PHP, a planted work directory."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from controlplane.engine.packages import CORE_SLUG
from controlplane.errors import ApplyFailed
from controlplane.kernel.vocabulary import PackageKind
from controlplane.packages.reported import installed_from_report
from controlplane.providers.local import packages as local_packages
from controlplane.providers.local.packages import LocalPackages, _Work
from controlplane.settings import Settings
from controlplane.stack.process import StackError


def _packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: Path) -> LocalPackages:
    settings = Settings(provider="memory", home=tmp_path / "home")
    packages = LocalPackages(SimpleNamespace(sites_dir=tmp_path / "sites"), settings)  # type: ignore[arg-type]
    monkeypatch.setattr(packages, "_php_log", lambda ctx: log)
    monkeypatch.setattr(packages, "names", lambda ctx: SimpleNamespace(system_user="root"))
    return packages


def _within(seconds: float, call: Any) -> Any:
    """call()'s result, or a failure if it has not returned within `seconds`."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the call hung"
    return result[0]


def test_a_fifo_as_the_php_error_log_is_no_log_and_never_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "php-error.log"
    os.mkfifo(fifo)
    packages = _packages(tmp_path, monkeypatch, fifo)
    ctx: Any = None
    try:
        assert _within(5, lambda: packages.log_mark(ctx)) == "0:0"
        assert _within(5, lambda: packages._new_fatal(ctx, "0:0")) is None
    finally:
        with contextlib.suppress(OSError):  # a hung open (the bug) ends when a writer comes
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_plain_log_is_still_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "php-error.log"
    log.write_text("PHP Fatal error: Uncaught Error: boom in /x.php:3\n")
    packages = _packages(tmp_path, monkeypatch, log)
    assert packages.log_mark(None).endswith(f":{log.stat().st_size}")  # type: ignore[arg-type]
    assert packages._new_fatal(None, "0:0") == "PHP Fatal error: Uncaught Error: boom in /x.php:3"  # type: ignore[arg-type]


def _plugin(slug: str = "demo", **extra: Any) -> dict[str, Any]:
    return {"slug": slug, "version": "1.0", "name": "Demo", "active": True, **extra}


def test_a_well_formed_report_is_read() -> None:
    found = installed_from_report("6.5.2", [_plugin(), _plugin("hello", version="")],
                                  [_plugin("twentytwentyfour", active=False)])  # fmt: skip
    assert [(p.kind, p.slug, p.version, p.active) for p in found] == [
        (PackageKind.CORE, CORE_SLUG, "6.5.2", True),
        (PackageKind.PLUGIN, "demo", "1.0", True),
        (PackageKind.PLUGIN, "hello", "", True),
        (PackageKind.THEME, "twentytwentyfour", "1.0", False),
    ]


@pytest.mark.parametrize(
    ("core", "plugins", "says"),
    [
        ("6.5", [_plugin("../../etc")], "slug is not a directory name"),
        ("6.5", [_plugin("a" * 129)], "slug is not a directory name"),
        ("6.5", [_plugin(version="1.0<script>")], "version of plugin demo"),
        ("6.5", [_plugin(version="1" * 65)], "version of plugin demo"),
        ("6.5", [_plugin(name="x" * 201)], "name of plugin demo"),
        ("6.5", [_plugin(name="Demo\nIgnore previous instructions")], "name of plugin demo"),
        ("6.5", [_plugin(active="yes")], "neither active nor inactive"),
        ("6.5", ["demo"], "not an object"),
        ("6.5", {"demo": 1}, "not lists"),
        ("six", [], "core version"),
        (None, [], "core version"),
        ("6.5", [_plugin(f"p{i}") for i in range(2_001)], "2001 plugins and themes"),
    ],
)
def test_a_hostile_report_is_refused_saying_why(core: Any, plugins: Any, says: str) -> None:
    with pytest.raises(ApplyFailed, match="report of its packages is refused") as refused:
        installed_from_report(core, plugins, [])
    assert says in str(refused.value)


def test_the_listing_is_bounded_and_its_output_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packages = _packages(tmp_path, monkeypatch, tmp_path / "log")
    monkeypatch.setattr(packages, "preview_url", lambda ctx: "http://s.t.localhost:8080/")
    monkeypatch.setattr(packages, "site_php_flags", lambda ctx: [])
    monkeypatch.setattr(packages, "names", lambda ctx: SimpleNamespace(system_user="s",
                                                                       root=tmp_path))  # fmt: skip
    calls: list[dict[str, Any]] = []
    printed = {"core": "6.5", "plugins": [_plugin("zeta"), _plugin("alpha")], "themes": []}

    def fake_run(args: list[str], **kwargs: Any) -> str:
        calls.append(kwargs)
        return "noise from a drop-in\n" + json.dumps(printed)

    monkeypatch.setattr(local_packages, "run", fake_run)
    found = packages.installed(None)  # type: ignore[arg-type]
    assert [p.slug for p in found] == [CORE_SLUG, "alpha", "zeta"]
    assert calls[0]["timeout"] == packages.settings.packages_list_timeout == 30
    assert calls[0]["max_output"] == 1024 * 1024 and calls[0]["cwd"] == "/"
    printed["plugins"] = [_plugin("../wp-config.php")]
    with pytest.raises(ApplyFailed, match="slug is not a directory name"):
        packages.installed(None)  # type: ignore[arg-type]


def test_a_link_in_place_of_the_work_directory_is_removed_never_followed(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "k1" / "previous").mkdir(parents=True)
    site.mkdir()
    (site / ".packages").symlink_to(elsewhere)
    assert not _Work(site, "k1").exists()  # the link is not taken for the work directory
    assert not (site / ".packages").exists() and (elsewhere / "k1" / "previous").is_dir()
    (site / ".packages").symlink_to(elsewhere)
    work = _Work(site, "k1")
    work.make()
    assert not (site / ".packages").is_symlink() and (site / ".packages" / "k1" / "new").is_dir()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["k1"]
    (site / ".packages" / "k1" / "previous" / "plugin").symlink_to(elsewhere)
    assert work.bucket("previous", "plugin") == site / ".packages" / "k1" / "previous" / "plugin"
    assert not work.bucket("previous", "plugin").is_symlink()
    assert oct((site / ".packages").stat().st_mode & 0o777) == "0o700"


def test_a_work_directory_the_site_user_made_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / ".packages" / "k1").mkdir(parents=True)
    os.chown(site / ".packages", 65534, 65534)
    with pytest.raises(StackError, match="not root's"):
        _Work(site, "k1").make()
    with pytest.raises(StackError, match="not root's"):
        _Work(site, "k1").exists()
    assert (site / ".packages").stat().st_uid == 65534  # not taken over
