"""The local packages step against what a site's user can leave in its own files: a FIFO
as the PHP error log, hostile output from the site's PHP, a planted work directory."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from controlplane.providers.local.packages import LocalPackages
from controlplane.settings import Settings


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
