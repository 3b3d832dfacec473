"""Bearer-token verification: Firebase ID tokens (gcp) or locally signed tokens (embedded)."""

from __future__ import annotations

import hmac
import secrets
import time
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.kernel.files import write_private_file
from controlplane.kernel.identity import Principal, Role, claims_for, principal_from_claims
from controlplane.kernel.secret_record import note_secret
from controlplane.kernel.settings import SharedSettings

LOCAL_ISSUER = "aipress-local"
AUDIENCE = "aipress"
VERIFIED_CACHE_SIZE = 10_000


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired or not signed by a trusted issuer."""


class TokenVerifier(Protocol):
    """Turns a bearer token into a principal, or raises InvalidToken."""

    def verify(self, token: str) -> Principal:
        """Verify the token and return the caller."""
        ...


def _signing_key_path(settings: SharedSettings) -> Path:
    return settings.keys_dir / "token-signing.pem"


def load_signing_key(settings: SharedSettings) -> Ed25519PrivateKey:
    """The embedded default's token signing key, generated once (0600)."""
    path = _signing_key_path(settings)
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private_file(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidToken(f"{path} does not hold an Ed25519 key")
    return key


def sign_in_key_path(settings: SharedSettings) -> Path:
    """Where the embedded default keeps the browser sign-in key (root-only, next to the
    token signing key)."""
    return settings.keys_dir / "sign-in.key"


def load_sign_in_key(settings: SharedSettings, *, rotate: bool = False) -> str:
    """The machine's browser sign-in key, generated once (0600); `rotate` makes a new one."""
    path = sign_in_key_path(settings)
    if rotate or not path.exists():
        write_private_file(path, secrets.token_urlsafe(32).encode())
    key = path.read_text().strip()
    note_secret(key, "sign-in key")
    return key


def sign_in_key_matches(settings: SharedSettings, presented: str | None) -> bool:
    """Whether `presented` is the machine's sign-in key (compared in constant time)."""
    path = sign_in_key_path(settings)
    if not presented or not path.exists():
        return False
    return hmac.compare_digest(presented.encode(), path.read_text().strip().encode())


def sign_in_url(settings: SharedSettings, key: str) -> str:
    """The browser sign-in URL; the key rides in the fragment, which no request carries."""
    return f"{settings.chat_url}/signin#key={key}"


class LocalTokenIssuer:
    """Signs and verifies the embedded default's tokens (same claims as Firebase's)."""

    def __init__(self, settings: SharedSettings) -> None:
        if settings.provider == "gcp":
            raise InvalidToken("local tokens are refused in gcp mode; use Firebase ID tokens")
        self._key = load_signing_key(settings)
        self._public = self._key.public_key()
        self._ttl = settings.token_ttl_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}

    def issue(
        self,
        sub: str,
        role: Role,
        tenants: list[str] | None = None,
        email: str | None = None,
        ttl_seconds: int | None = None,
        client_id: str | None = None,
    ) -> str:
        """A signed token for `sub` with the role's claims (and the OAuth client acting)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": LOCAL_ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "iat": now,
            "exp": now + (ttl_seconds or self._ttl),
            **claims_for(role, tenants or []),
        }
        if email:
            claims["email"] = email
        if client_id:
            claims["client_id"] = client_id
        token = jwt.encode(claims, self._key, algorithm="EdDSA")
        note_secret(token, "bearer token")
        return token

    def verify(self, token: str) -> Principal:
        """Check signature, issuer, audience and expiry (verified tokens are cached to expiry)."""
        cached = self._cache.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        principal, expires = self._verify(token)
        if len(self._cache) >= VERIFIED_CACHE_SIZE:
            self._cache.clear()
        self._cache[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=["EdDSA"],
                audience=AUDIENCE,
                issuer=LOCAL_ISSUER,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired; get a new one with `aipress token`") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"token rejected: {exc}") from exc
        return principal_from_claims(claims), float(claims["exp"])


class FirebaseTokenVerifier:
    """Verifies Firebase ID tokens with firebase-admin; claims come from custom claims."""

    def __init__(self, settings: SharedSettings) -> None:
        import firebase_admin

        self._firebase_admin = firebase_admin
        name = f"aipress-{settings.firebase_project_id}"
        try:
            self._app = firebase_admin.get_app(name)
        except ValueError:
            self._app = firebase_admin.initialize_app(
                options={"projectId": settings.firebase_project_id}, name=name
            )

    @property
    def app(self) -> Any:
        """The firebase-admin app (used to write custom claims)."""
        return self._app

    def verify(self, token: str) -> Principal:
        """Verify signature (Google's keys), audience, issuer and expiry."""
        from firebase_admin import auth

        try:
            claims = auth.verify_id_token(token, app=self._app, clock_skew_seconds=5)
        except (ValueError, auth.InvalidIdTokenError) as exc:
            raise InvalidToken(f"Firebase ID token rejected: {_without_token(exc, token)}") from exc
        except Exception as exc:  # CertificateFetchError and kin: never a 500 with token text
            raise InvalidToken(
                f"Firebase ID token could not be verified: {type(exc).__name__}"
            ) from exc
        note_secret(token, "firebase id token")
        return principal_from_claims(claims)


def _without_token(exc: Exception, token: str) -> str:
    """The error text minus the token: google-auth quotes malformed tokens in full."""
    message = str(exc).replace(repr(token.encode()), "<token>")
    return message.replace(token, "<token>") if len(token) >= 16 else message


def make_verifier(settings: SharedSettings) -> TokenVerifier:
    """Firebase in gcp mode, the local issuer otherwise."""
    if settings.provider == "gcp":
        return FirebaseTokenVerifier(settings)
    return LocalTokenIssuer(settings)
