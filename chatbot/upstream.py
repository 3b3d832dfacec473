"""How the chatbot reaches the control plane. In gcp mode the control plane is a private
Cloud Run service: Cloud Run IAM checks a Google ID token of the chatbot's service account,
sent in `X-Serverless-Authorization`, which leaves `Authorization` for the user's own token
(the control plane still verifies that one)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from chatbot.settings import ChatSettings

HEADER = "X-Serverless-Authorization"
REFRESH_BEFORE_SECONDS = 300
TOKEN_LIFETIME_SECONDS = 3600

TokenSource = Callable[[str], str]


def metadata_id_token(audience: str) -> str:
    """An ID token for `audience` from the service account the chatbot runs as."""
    import google.auth.transport.requests
    from google.oauth2 import id_token

    token: str = id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)  # type: ignore[no-untyped-call]
    return token


class ServiceIdentity:
    """Caches the chatbot's ID token for the control plane's URL (they last an hour)."""

    def __init__(self, audience: str, source: TokenSource = metadata_id_token) -> None:
        self.audience = audience
        self.source = source
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        """A valid ID token, fetched again shortly before the old one expires."""
        with self._lock:
            if self._token is None or time.time() > self._expires - REFRESH_BEFORE_SECONDS:
                self._token = self.source(self.audience)
                self._expires = time.time() + TOKEN_LIFETIME_SECONDS
            return self._token


def identity_for(
    settings: ChatSettings, source: TokenSource | None = None
) -> ServiceIdentity | None:
    """The service identity in gcp mode; None in the embedded default (both on loopback)."""
    if settings.provider != "gcp":
        return None
    return ServiceIdentity(settings.tools_base_url, source or metadata_id_token)


def sync_client(
    settings: ChatSettings, identity: ServiceIdentity | None, timeout: float
) -> httpx.Client:
    """An httpx client of the control plane that adds the service identity to each request."""

    def add(request: httpx.Request) -> None:
        if identity is not None:
            request.headers[HEADER] = f"Bearer {identity.token()}"

    return httpx.Client(
        base_url=settings.tools_base_url, event_hooks={"request": [add]}, timeout=timeout
    )


def async_client(
    settings: ChatSettings,
    identity: ServiceIdentity | None,
    timeout: float,
    max_connections: int = 100,
) -> httpx.AsyncClient:
    """The same, for the proxy. A request waits at most 5 s for a free connection."""

    async def add(request: httpx.Request) -> None:
        if identity is not None:
            request.headers[HEADER] = f"Bearer {identity.token()}"

    return httpx.AsyncClient(
        base_url=settings.tools_base_url,
        event_hooks={"request": [add]},
        timeout=httpx.Timeout(timeout, pool=5.0),
        limits=httpx.Limits(max_connections=max_connections),
    )
