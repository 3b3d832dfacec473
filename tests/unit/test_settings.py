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


def test_each_gcp_workload_refuses_to_start_without_what_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    base = {"provider": "gcp", "firebase_project_id": "p", "encryption_keys": KEY}
    chat = {"chat_database_url": "postgresql://c", "chat_control_plane_url": "https://cp",
            "firebase_auth_domain": "p.firebaseapp.com"}  # fmt: skip
    with pytest.raises(
        ValueError, match=r"gcp mode \(chatbot\) needs AIPRESS_FIREBASE_WEB_API_KEY"
    ):
        Settings(workload="chatbot", **base, **chat)  # type: ignore[arg-type]
    ok = Settings(workload="chatbot", firebase_web_api_key="k", **base, **chat)  # type: ignore[arg-type]
    assert ok.workload == "chatbot"  # no control-plane database needed
    provider = {"database_url": "sqlite://", "gcp_project": "p", "tenant_image": "i",
                "cloudsql_instance": "p:r:i", "cloudsql_user": "u", "backups_bucket": "b",
                "platform_domain": "sites.example.com"}  # fmt: skip
    job = Settings(workload="job", **base, **provider)  # type: ignore[arg-type]
    assert job.gcp_provider_missing() == []  # the jobs never change DNS
    control = Settings(**base, **provider)  # type: ignore[arg-type]
    assert control.gcp_provider_missing() == ["AIPRESS_CLOUDDNS_ZONE"]
