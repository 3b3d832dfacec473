"""Settings: the embedded default needs no environment; production refuses unsafe ones."""

from __future__ import annotations

import base64

import pytest

from controlplane.crypto import new_key
from controlplane.settings import Settings

KEY = "k1:" + base64.urlsafe_b64encode(new_key()).decode()


def test_defaults_run_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("AIPRESS_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.provider == "local"
    assert settings.sqlalchemy_url.startswith("sqlite:///")
    assert settings.base_url == "http://127.0.0.1:8000"


def test_gcp_refuses_the_auth_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    with pytest.raises(ValueError, match="FIREBASE_AUTH_EMULATOR_HOST"):
        Settings(
            provider="gcp", firebase_project_id="p", encryption_keys=KEY, database_url="sqlite://"
        )
    ok = Settings(
        provider="gcp",
        firebase_project_id="p",
        encryption_keys=KEY,
        database_url="sqlite://",
        allow_auth_emulator=True,
    )
    assert ok.allow_auth_emulator


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"encryption_keys": KEY, "database_url": "sqlite://"}, "FIREBASE_PROJECT_ID"),
        ({"firebase_project_id": "p", "database_url": "sqlite://"}, "ENCRYPTION_KEYS"),
        (
            {"firebase_project_id": "p", "encryption_keys": "k1:changeme", "database_url": "x"},
            "placeholder",
        ),
        ({"firebase_project_id": "p", "encryption_keys": KEY}, "CLOUDSQL_INSTANCE"),
    ],
)
def test_gcp_refuses_incomplete_settings(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, str], message: str
) -> None:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    with pytest.raises(ValueError, match=message):
        Settings(provider="gcp", **kwargs)
