"""The control-plane token the tools use for an MCP caller, derived for that user: a local
token (embedded default) or a Firebase ID token obtained through a custom token (gcp). The
MCP access token itself never leaves the chat service."""

from __future__ import annotations

import os
import threading
import time
from typing import Protocol

import httpx

from chatbot.settings import ChatSettings
from controlplane.kernel.auth import FirebaseTokenVerifier, LocalTokenIssuer
from controlplane.kernel.identity import Principal
from controlplane.kernel.secret_record import note_secret

LOCAL_TTL_SECONDS = 300
# Firebase ID tokens live an hour; one is reused until this close to its end.
REUSE_MARGIN_SECONDS = 600
IDENTITY_TOOLKIT = "https://identitytoolkit.googleapis.com"


class ControlPlaneUnavailable(Exception):
    """No control-plane token could be derived (the identity service refused or is down)."""


class ControlPlaneTokens(Protocol):
    """Mints control-plane tokens for a verified user."""

    def token_for(self, principal: Principal, client_id: str) -> str:
        """A bearer token the control plane accepts as `principal`'s, acting through the
        OAuth client `client_id` (which the audit log records)."""
        ...


class LocalControlPlaneTokens:
    """Embedded default: a five-minute token from the local issuer."""

    def __init__(self, settings: ChatSettings) -> None:
        self._issuer = LocalTokenIssuer(settings)

    def token_for(self, principal: Principal, client_id: str) -> str:
        """A local token with the principal's role, tenants and client."""
        return self._issuer.issue(principal.sub, principal.role, sorted(principal.tenants),
                                  email=principal.email, ttl_seconds=LOCAL_TTL_SECONDS,
                                  client_id=client_id)  # fmt: skip


class FirebaseControlPlaneTokens:
    """gcp mode: the control plane accepts Firebase ID tokens only, so the chat service signs
    a custom token for the user (its service account) and exchanges it with Identity
    Platform for an ID token, which carries the user's current role claims."""

    def __init__(self, settings: ChatSettings) -> None:
        self._app = FirebaseTokenVerifier(settings).app
        self._api_key = settings.firebase_web_api_key or ""
        emulator = os.environ.get("FIREBASE_AUTH_EMULATOR_HOST")
        # Settings refuse the emulator variable in gcp mode unless a test opted in.
        self._base = f"http://{emulator}/identitytoolkit.googleapis.com" if emulator and \
            settings.allow_auth_emulator else IDENTITY_TOOLKIT  # fmt: skip
        self._held: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def token_for(self, principal: Principal, client_id: str) -> str:
        """The user's ID token naming the client (reused while it has ten minutes to live)."""
        held_as = (principal.sub, client_id)
        with self._lock:
            held = self._held.get(held_as)
        if held and held[1] - REUSE_MARGIN_SECONDS > time.time():
            return held[0]
        from firebase_admin import auth

        # A developer claim of the custom token reaches the ID token: the audit's client id.
        custom = auth.create_custom_token(
            principal.sub, {"client_id": client_id}, app=self._app
        ).decode()
        note_secret(custom, "firebase custom token")
        try:
            answered = httpx.post(
                f"{self._base}/v1/accounts:signInWithCustomToken", params={"key": self._api_key},
                json={"token": custom, "returnSecureToken": True}, timeout=10,
            )  # fmt: skip
        except httpx.HTTPError as exc:
            raise ControlPlaneUnavailable(
                f"Identity Platform is unreachable ({type(exc).__name__}); try again shortly"
            ) from exc
        if answered.status_code != 200:
            raise ControlPlaneUnavailable(
                f"Identity Platform refused the custom token ({answered.status_code}); check "
                "that the chat service account may sign tokens (iam.serviceAccountTokenCreator)"
            )
        body = answered.json()
        token: str = body["idToken"]
        note_secret(token, "firebase id token")
        with self._lock:
            self._held[held_as] = (token, time.time() + int(body.get("expiresIn", 3600)))
        return token


def control_plane_tokens(settings: ChatSettings) -> ControlPlaneTokens:
    """Firebase-backed in gcp mode, the local issuer otherwise."""
    if settings.provider == "gcp":
        return FirebaseControlPlaneTokens(settings)
    return LocalControlPlaneTokens(settings)
