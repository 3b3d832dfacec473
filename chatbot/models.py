"""The chat model factory: gemini (Vertex AI), offline (the planner) or an OpenAI-compatible
endpoint, chosen by settings."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from chatbot.offline.planner import OfflinePlanner
from chatbot.settings import ChatSettings


class ModelUnavailable(Exception):
    """The configured model cannot be built (missing setting or credentials)."""


def make_model(settings: ChatSettings, *, credentials: Any = None) -> BaseChatModel:
    """The agent's chat model for these settings (Gemini uses Application Default
    Credentials unless `credentials` are given)."""
    name = settings.chat_model_name
    if name == "offline":
        return OfflinePlanner()
    if name == "gemini":
        if not settings.gcp_project:
            raise ModelUnavailable("the gemini model needs AIPRESS_GCP_PROJECT (Vertex AI)")
        from langchain_google_genai import ChatGoogleGenerativeAI

        return ChatGoogleGenerativeAI(
            model=settings.gemini_model,
            vertexai=True,
            project=settings.gcp_project,
            location=settings.gcp_location,
            temperature=0,
            max_retries=2,
            base_url=settings.gemini_endpoint,
            credentials=credentials,
        )
    if not settings.openai_base_url or not settings.openai_model:
        raise ModelUnavailable(
            "the openai model needs AIPRESS_OPENAI_BASE_URL and AIPRESS_OPENAI_MODEL"
        )
    from langchain_openai import ChatOpenAI

    api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
    return ChatOpenAI(
        base_url=settings.openai_base_url,
        model=settings.openai_model,
        api_key=api_key,
        temperature=0,
        max_retries=2,
    )
