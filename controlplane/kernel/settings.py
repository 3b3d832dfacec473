"""The settings both services read: where they run, who signs tokens, how they log."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Provider = Literal["local", "gcp", "memory"]


def default_home() -> Path:
    """State directory: /var/lib/aipress for root, else $XDG_DATA_HOME/aipress."""
    if os.geteuid() == 0:
        return Path("/var/lib/aipress")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "aipress"


# What each gcp-mode process must have set ("a|b": either). Each service's validator refuses
# to start without its entry; terraform's static test checks every service sets its own.
GCP_REQUIRED: dict[str, tuple[str, ...]] = {
    "control_plane": ("firebase_project_id", "encryption_keys", "cloudsql_instance|database_url"),
    "job": ("firebase_project_id", "encryption_keys", "cloudsql_instance|database_url"),
    "chatbot": ("firebase_project_id", "chat_database_url", "chat_control_plane_url",
                "firebase_web_api_key", "firebase_auth_domain", "mcp_signing_key"),
}  # fmt: skip


class SharedSettings(BaseSettings):
    """What the control plane and the chat service both read from `AIPRESS_*` variables."""

    # Each service reads the whole environment and keeps its own fields; a keyword argument
    # that no field takes is a mistake, and `forbid` says so.
    model_config = SettingsConfigDict(env_prefix="AIPRESS_", extra="forbid")

    provider: Provider = "local"
    home: Path = Field(default_factory=default_home)

    # Where the control-plane API listens (the chat's tools call it there by default).
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    # Where the chat service listens (the control plane's sign-in links point there).
    chat_host: str = "127.0.0.1"
    chat_port: int = 8001

    # Auth. Local tokens are signed with an Ed25519 key kept under `home`.
    token_ttl_seconds: int = 12 * 3600
    firebase_project_id: str | None = None
    allow_auth_emulator: bool = False

    # Google Cloud: the project and region of the platform (Vertex AI, Cloud Run...).
    gcp_project: str | None = None
    gcp_location: str = "us-central1"

    log_level: str = "INFO"
    log_file: Path | None = None
    log_json: bool = True

    @model_validator(mode="after")
    def _refuse_unverifiable_tokens(self) -> SharedSettings:
        if self.provider != "gcp":
            return self
        if os.environ.get("FIREBASE_AUTH_EMULATOR_HOST") and not self.allow_auth_emulator:
            raise ValueError(
                "FIREBASE_AUTH_EMULATOR_HOST is set: the emulator accepts unsigned tokens, "
                "so gcp mode refuses to start. Unset it "
                "(or set AIPRESS_ALLOW_AUTH_EMULATOR=1 in tests)."
            )
        if not self.firebase_project_id:
            raise ValueError(
                "gcp mode needs AIPRESS_FIREBASE_PROJECT_ID to verify Firebase tokens."
            )
        return self

    def missing(self, required: tuple[str, ...]) -> list[str]:
        """The environment variables of `required` ("a|b": either) that are unset."""
        return [
            " or ".join(f"AIPRESS_{name.upper()}" for name in entry.split("|"))
            for entry in required
            if not any(getattr(self, name) for name in entry.split("|"))
        ]

    @property
    def keys_dir(self) -> Path:
        """Directory of generated keys (0700)."""
        return self.home / "keys"

    @property
    def base_url(self) -> str:
        """Where the control-plane API is reachable."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def chat_url(self) -> str:
        """Where the chatbot service listens."""
        return f"http://{self.chat_host}:{self.chat_port}"

    def shared(self) -> dict[str, Any]:
        """The shared fields as keyword arguments, to build the other service's settings."""
        return {name: getattr(self, name) for name in SharedSettings.model_fields}
