"""`aipress signin-url`: the browser sign-in URL with the machine's key in its fragment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controlplane.cli import app
from controlplane.kernel.auth import sign_in_key_matches
from controlplane.settings import Settings, get_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AIPRESS_HOME", str(tmp_path))
    monkeypatch.setenv("AIPRESS_PROVIDER", "local")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_signin_url_prints_the_key_and_rotates_it(home: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["signin-url"])
    assert first.exit_code == 0, first.output
    url = first.output.strip()
    assert url.startswith("http://127.0.0.1:8001/signin#key=")
    key = url.split("#key=", 1)[1]
    settings = Settings(home=home)
    assert sign_in_key_matches(settings, key) and len(key) >= 40
    assert runner.invoke(app, ["signin-url"]).output.strip() == url  # the same key, kept
    rotated = runner.invoke(app, ["signin-url", "--rotate"]).output.strip()
    assert rotated != url and not sign_in_key_matches(settings, key)
    assert sign_in_key_matches(settings, rotated.split("#key=", 1)[1])
    assert not sign_in_key_matches(settings, "") and not sign_in_key_matches(settings, None)
