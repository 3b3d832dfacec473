"""The chat service's settings: the shared ones plus the agent, its model and its limits."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from chatbot.oauth.signing import parse_signing_key
from controlplane.kernel.settings import GCP_REQUIRED, SharedSettings

ChatModel = Literal["offline", "gemini", "openai"]


class ChatSettings(SharedSettings):
    """Chat-service settings; with no environment at all they run the embedded default."""

    # An error quotes no input: the input holds the signing key and the model's API key.
    model_config = SettingsConfigDict(**SharedSettings.model_config, hide_input_in_errors=True)

    chat_model: ChatModel | None = None  # default: gemini in gcp mode, offline otherwise
    chat_database_url: str | None = None  # checkpoints + thread owners; SQLite under home
    chat_control_plane_url: str | None = None  # where the tools reach the API; base_url
    chat_rate_per_minute: int = 20
    chat_max_message_chars: int = 4000
    chat_operation_wait_seconds: float = 900
    chat_allowed_origins: tuple[str, ...] = ()  # pages on other origins that embed the widget
    firebase_web_api_key: str | None = None  # the browser's Firebase config (gcp mode)
    firebase_auth_domain: str | None = None
    firebase_sign_in_providers: tuple[str, ...] = ("google", "email")
    gemini_model: str = "gemini-2.5-flash"
    gemini_endpoint: str | None = None  # a private endpoint or gateway; Vertex AI's otherwise
    openai_base_url: str | None = None
    openai_model: str | None = None
    openai_api_key: SecretStr | None = None
    # MCP over OAuth: where clients reach this service, the access tokens' lifetime, the
    # pre-registered clients (client_id -> exact redirect URIs) and, for tests only, whether
    # a Client ID Metadata Document may live at an http://127.0.0.1 URL.
    chat_public_url: str | None = None
    mcp_token_ttl_seconds: int = 900
    mcp_clients: dict[str, tuple[str, ...]] = {}
    mcp_allow_loopback_client_metadata: bool = False
    mcp_sessions_per_user: int = 20  # open /mcp sessions one user may hold at once
    # The key MCP access tokens are signed with, shared by every instance: required in gcp
    # mode (Secret Manager; the local key is per disk), the embedded default's key when unset.
    mcp_signing_key: SecretStr | None = None

    @model_validator(mode="after")
    def _refuse_incomplete_gcp(self) -> ChatSettings:
        missing = self.missing(GCP_REQUIRED["chatbot"]) if self.provider == "gcp" else []
        if missing:
            raise ValueError(f"gcp mode (chatbot) needs {', '.join(missing)}.")
        if self.mcp_signing_key is not None:
            parse_signing_key(self.mcp_signing_key.get_secret_value())
        return self

    @property
    def chat_model_name(self) -> ChatModel:
        """The agent's model: as set, else gemini in gcp mode and the offline planner here."""
        if self.chat_model:
            return self.chat_model
        return "gemini" if self.provider == "gcp" else "offline"

    @property
    def chat_checkpoint_url(self) -> str:
        """The chatbot's database (LangGraph checkpoints and thread owners)."""
        return self.chat_database_url or f"sqlite:///{self.home / 'chat.db'}"

    @property
    def chat_origin(self) -> str:
        """The chat service's public origin: the OAuth issuer and the MCP URL's base."""
        return (self.chat_public_url or self.chat_url).rstrip("/")

    @property
    def tools_base_url(self) -> str:
        """The control-plane URL the agent's tools call."""
        return self.chat_control_plane_url or self.base_url


@lru_cache
def get_chat_settings() -> ChatSettings:
    """The chat process's settings, read once."""
    return ChatSettings()
