"""MCP access tokens: short-lived, audience-bound JWTs signed with the local issuer key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from chatbot.oauth.scopes import scope_string
from chatbot.oauth.signing import parse_signing_key
from chatbot.settings import ChatSettings
from controlplane.kernel.auth import load_signing_key
from controlplane.kernel.identity import InvalidClaims, Principal, claims_for, principal_from_claims
from controlplane.kernel.secret_record import note_secret


class RefusedToken(Exception):
    """An MCP access token that is expired, for another audience, or not ours."""


@dataclass(frozen=True)
class VerifiedToken:
    """What a verified MCP access token says."""

    principal: Principal
    scopes: frozenset[str]
    client_id: str


class McpTokenIssuer:
    """Signs and verifies access tokens whose audience is one resource (RFC 8707)."""

    def __init__(self, settings: ChatSettings) -> None:
        self._settings = settings
        self.issuer = settings.chat_origin
        self.ttl = settings.mcp_token_ttl_seconds

    @cached_property
    def _key(self) -> Ed25519PrivateKey:
        # AIPRESS_MCP_SIGNING_KEY (every instance's, from Secret Manager in gcp mode), else
        # the embedded default's token key (read on first use): tokens for the control plane
        # carry the audience "aipress", these the MCP URL, so neither passes for the other.
        configured = self._settings.mcp_signing_key
        if configured is not None:
            return parse_signing_key(configured.get_secret_value())
        return load_signing_key(self._settings)

    def derived_key(self, label: bytes) -> bytes:
        """A 32-byte key for `label` that every instance holding the signing key derives."""
        raw = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return hmac.new(raw, label, hashlib.sha256).digest()

    def issue(
        self, principal: Principal, scopes: frozenset[str], client_id: str, resource: str
    ) -> str:
        """An access token for `principal` on `resource` holding `scopes`."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": resource,
            "sub": principal.sub,
            "iat": now,
            "exp": now + self.ttl,
            "jti": secrets.token_urlsafe(12),
            "scope": scope_string(scopes),
            "client_id": client_id,
            **claims_for(principal.role, sorted(principal.tenants)),
        }
        if principal.email:
            claims["email"] = principal.email
        token = jwt.encode(claims, self._key, algorithm="EdDSA")
        note_secret(token, "mcp access token")
        return token

    def verify(self, token: str, resource: str) -> VerifiedToken:
        """Check signature, issuer, audience (= `resource`) and expiry."""
        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["EdDSA"],
                audience=resource,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
            if claims["iss"] != self.issuer:
                raise jwt.InvalidIssuerError(claims["iss"])
            principal = principal_from_claims(claims)
            scope, client_id = claims.get("scope"), claims.get("client_id")
            if not isinstance(scope, str) or not isinstance(client_id, str):
                raise InvalidClaims("the access token has no scope or client_id claim")
        except jwt.ExpiredSignatureError as exc:
            raise RefusedToken("the access token expired; authorize again for a new one") from exc
        except jwt.InvalidAudienceError as exc:
            raise RefusedToken(
                f"the access token was issued for another audience; this resource accepts "
                f"only tokens issued for {resource} (the OAuth `resource` parameter)"
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise RefusedToken(f"the access token was not issued by {self.issuer}") from exc
        except (jwt.PyJWTError, InvalidClaims) as exc:
            raise RefusedToken(f"the access token was rejected: {exc}") from exc
        note_secret(token, "mcp access token")
        return VerifiedToken(
            principal, frozenset(str(claims["scope"]).split()), claims["client_id"]
        )
