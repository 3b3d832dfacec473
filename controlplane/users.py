"""Where a user's role and tenants are written: the local table, and Firebase in gcp mode."""

from __future__ import annotations

from typing import Any, Protocol

from controlplane.errors import BadRequest
from controlplane.kernel.auth import FirebaseTokenVerifier, TokenVerifier
from controlplane.kernel.identity import Role, claims_for
from controlplane.settings import Settings


class ClaimsWriter(Protocol):
    """Publishes a user's role and tenants to the identity provider."""

    def write(self, uid: str, role: Role, tenants: list[str]) -> None:
        """Make the user's next token carry these claims."""
        ...


class LocalClaimsWriter:
    """Embedded default: the users table is the source `aipress token` reads."""

    def write(self, uid: str, role: Role, tenants: list[str]) -> None:
        """Nothing beyond the table row (written by the caller)."""
        claims_for(role, tenants)  # validates the combination


class FirebaseClaimsWriter:
    """gcp mode: Firebase custom claims via firebase-admin."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def write(self, uid: str, role: Role, tenants: list[str]) -> None:
        """Set custom claims; they reach the user's next ID token."""
        from firebase_admin import auth

        try:
            auth.set_custom_user_claims(uid, claims_for(role, tenants), app=self._app)
        except auth.UserNotFoundError as exc:
            raise BadRequest(
                f"no Firebase user has uid {uid!r}; the user must sign in once (or be created) "
                "before a role can be assigned"
            ) from exc


def make_claims_writer(settings: Settings, verifier: TokenVerifier) -> ClaimsWriter:
    """Firebase custom claims in gcp mode, the local table otherwise."""
    if isinstance(verifier, FirebaseTokenVerifier):
        return FirebaseClaimsWriter(verifier.app)
    return LocalClaimsWriter()
