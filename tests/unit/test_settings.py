"""Settings: the embedded default needs no environment; production refuses unsafe ones."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from chatbot.settings import ChatSettings
from controlplane.crypto import new_key
from controlplane.settings import Settings

KEY = "k1:" + base64.urlsafe_b64encode(new_key()).decode()
MCP_KEY = base64.b64encode(bytes(range(32))).decode()  # an Ed25519 key's 32 raw bytes


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
    chat = {"provider": "gcp", "firebase_project_id": "p", "chat_database_url": "postgresql://c",
            "chat_control_plane_url": "https://cp", "firebase_auth_domain": "p.firebaseapp.com",
            "mcp_signing_key": MCP_KEY}  # fmt: skip
    with pytest.raises(
        ValueError, match=r"gcp mode \(chatbot\) needs AIPRESS_FIREBASE_WEB_API_KEY"
    ):
        ChatSettings(**chat)  # type: ignore[arg-type]
    ok = ChatSettings(firebase_web_api_key="k", **chat)  # type: ignore[arg-type]
    assert ok.chat_checkpoint_url == "postgresql://c"  # no keys or control-plane database
    provider = {"database_url": "sqlite://", "gcp_project": "p", "tenant_image": "i",
                "cloudsql_instance": "p:r:i", "cloudsql_user": "u", "backups_bucket": "b",
                "platform_domain": "sites.example.com", "cloudsql_private_ip": "10.20.0.3",
                "sites_subnetwork": "projects/p/regions/r/subnetworks/s"}  # fmt: skip
    without_network = {k: v for k, v in provider.items() if k != "sites_subnetwork"}
    assert Settings(**base, **without_network).gcp_provider_missing() == [  # type: ignore[arg-type]
        "AIPRESS_SITES_SUBNETWORK",
        "AIPRESS_CLOUDDNS_ZONE",
    ]
    job = Settings(workload="job", **base, **provider)  # type: ignore[arg-type]
    assert job.gcp_provider_missing() == []  # the jobs never change DNS
    control = Settings(**base, **provider)  # type: ignore[arg-type]
    assert control.gcp_provider_missing() == ["AIPRESS_CLOUDDNS_ZONE"]


def test_the_chat_service_in_gcp_mode_needs_no_control_plane_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    complete = {"chat_database_url": "postgresql://c", "chat_control_plane_url": "https://cp",
                "firebase_web_api_key": "k", "firebase_auth_domain": "p.firebaseapp.com",
                "mcp_signing_key": MCP_KEY}  # fmt: skip
    chat = ChatSettings(provider="gcp", firebase_project_id="p", **complete)
    assert chat.chat_model_name == "gemini"
    with pytest.raises(ValueError, match="FIREBASE_PROJECT_ID"):
        ChatSettings(provider="gcp", **complete)
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    with pytest.raises(ValueError, match="FIREBASE_AUTH_EMULATOR_HOST"):
        ChatSettings(provider="gcp", firebase_project_id="p", **complete)


def test_the_chat_service_in_gcp_mode_needs_a_valid_shared_mcp_signing_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    from chatbot.oauth.tokens import McpTokenIssuer
    from controlplane.kernel.identity import Principal, Role

    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    complete = {"provider": "gcp", "firebase_project_id": "p", "chat_database_url": "postgresql://c",
                "chat_control_plane_url": "https://cp", "firebase_web_api_key": "k",
                "firebase_auth_domain": "p.firebaseapp.com"}  # fmt: skip
    with pytest.raises(ValueError, match="needs AIPRESS_MCP_SIGNING_KEY"):
        ChatSettings(**complete)  # type: ignore[arg-type]
    secret_looking = "c2VjcmV0LXRoYXQtaXMtbm90LWEta2V5"
    with pytest.raises(ValueError, match="decodes to 24 bytes, not 32") as refused:
        ChatSettings(**complete, mcp_signing_key=secret_looking)  # type: ignore[arg-type]
    assert secret_looking not in str(refused.value)  # the error never quotes the value
    rsa_pem = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"
    with pytest.raises(ValueError, match="does not load"):
        ChatSettings(mcp_signing_key=rsa_pem)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    raw = base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    # PEM and base64 raw name the same key: a token one signs the other verifies.
    by_pem = McpTokenIssuer(ChatSettings(home=tmp_path / "a", mcp_signing_key=pem))
    by_raw = McpTokenIssuer(ChatSettings(home=tmp_path / "b", mcp_signing_key=raw.decode()))
    alice = Principal("alice", Role.TENANT, frozenset({"acme"}))
    token = by_pem.issue(alice, frozenset({"sites:read"}), "c", "http://x/mcp")
    assert by_raw.verify(token, "http://x/mcp").principal.sub == "alice"
    assert ChatSettings(**complete, mcp_signing_key=pem).provider == "gcp"  # type: ignore[arg-type]


def test_each_service_refuses_the_other_services_fields() -> None:
    with pytest.raises(ValueError, match="chat_model"):
        Settings(chat_model="gemini")
    with pytest.raises(ValueError, match="encryption_keys"):
        ChatSettings(encryption_keys=KEY)


def test_both_services_read_the_same_shared_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIPRESS_HOME", str(tmp_path))
    monkeypatch.setenv("AIPRESS_PORT", "9100")
    monkeypatch.setenv("AIPRESS_CHAT_PORT", "9101")
    monkeypatch.setenv("AIPRESS_CHAT_MODEL", "openai")
    monkeypatch.setenv("AIPRESS_SITE_PORT", "9102")
    control, chat = Settings(), ChatSettings()
    assert control.home == chat.home == tmp_path
    assert control.base_url == chat.tools_base_url == "http://127.0.0.1:9100"
    assert control.chat_url == chat.chat_url == "http://127.0.0.1:9101"
    assert (chat.chat_model, control.site_port) == ("openai", 9102)
    elsewhere = Settings(home=tmp_path / "elsewhere", chat_port=9200, log_level="DEBUG")
    derived = ChatSettings(**elsewhere.shared())
    assert (derived.home, derived.chat_port, derived.log_level) == (
        tmp_path / "elsewhere",
        9200,
        "DEBUG",
    )
    assert derived.shared() == elsewhere.shared()
