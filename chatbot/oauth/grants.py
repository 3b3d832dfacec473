"""Pending authorization requests and authorization codes: short-lived, single-use, and the
same on every chat instance."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from chatbot.oauth.clients import Client
from chatbot.oauth.onetime import OneTimeRecords
from controlplane.kernel.identity import Principal, Role

REQUEST_TTL_SECONDS = 600
CODE_TTL_SECONDS = 60
MAX_HELD = 10_000
# Unredeemed codes one user may have at once (a signed-in user flooding consents would
# otherwise fill the store everyone's codes share).
MAX_HELD_PER_OWNER = 20
# Consent requests one user may answer within a request's lifetime: each answer is a row every
# instance shares, and /oauth/authorize hands out request ids to anyone for free.
MAX_ANSWERED_PER_OWNER = 30
# RFC 7636 §4.1: 43 to 128 unreserved characters.
VERIFIER_PATTERN = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
CHALLENGE_PATTERN = re.compile(r"[A-Za-z0-9\-_]{43}")


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated /authorize request waiting for the user to sign in and consent."""

    client: Client
    redirect_uri: str
    state: str | None
    code_challenge: str
    resource: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class AuthorizationCode:
    """What a code stands for: who consented, for which client, resource and scopes."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    resource: str
    scopes: frozenset[str]
    principal: Principal


REQUEST_KEY_LABEL = b"aipress oauth pending requests"
CODE_KIND = "code"
ANSWERED_KIND = "request"


def _principal_payload(principal: Principal) -> dict[str, Any]:
    return {"sub": principal.sub, "role": principal.role.value,
            "tenants": sorted(principal.tenants), "email": principal.email,
            "issuer": principal.issuer}  # fmt: skip


def _principal_of(payload: dict[str, Any]) -> Principal:
    return Principal(payload["sub"], Role(payload["role"]), frozenset(payload["tenants"]),
                     payload["email"], payload["issuer"])  # fmt: skip


class AuthorizationCodes:
    """Authorization codes in the shared one-time table: issued by any instance, redeemed
    once by any instance."""

    def __init__(self, records: OneTimeRecords, ttl: float = CODE_TTL_SECONDS) -> None:
        self._records = records
        self.ttl = ttl

    def put(self, code: AuthorizationCode) -> str:
        """A new code for `code` (its user may hold MAX_HELD_PER_OWNER unredeemed)."""
        payload = {"client_id": code.client_id, "redirect_uri": code.redirect_uri,
                   "code_challenge": code.code_challenge, "resource": code.resource,
                   "scopes": sorted(code.scopes),
                   "principal": _principal_payload(code.principal)}  # fmt: skip
        return self._records.put(CODE_KIND, payload, self.ttl, owner=code.principal.key,
                                 max_held=MAX_HELD, max_per_owner=MAX_HELD_PER_OWNER)  # fmt: skip

    def take(self, key: str) -> AuthorizationCode | None:
        """What the code stands for, spent (a second take, anywhere, gets None)."""
        p = self._records.spend(CODE_KIND, key)
        if p is None:
            return None
        return AuthorizationCode(p["client_id"], p["redirect_uri"], p["code_challenge"],
                                 p["resource"], frozenset(p["scopes"]),
                                 _principal_of(p["principal"]))  # fmt: skip


class PendingRequests:
    """Authorization requests waiting for sign-in and consent, carried by the browser and
    not held here: /oauth/authorize needs no sign-in, so a store of them is anyone's to
    fill. Each id is the request itself, signed with a key every instance derives from the
    shared MCP signing key, and expiring; only answered ids are recorded, in the shared
    one-time table (a request is answered once, by a signed-in user, on any instance)."""

    def __init__(self, ttl: float, key: bytes, records: OneTimeRecords) -> None:
        self._ttl = ttl
        self._key = key
        self._records = records

    def put(self, request: AuthorizationRequest) -> str:
        """The signed id of `request`."""
        claims = {
            "jti": secrets.token_urlsafe(12),
            "exp": int(time.time() + self._ttl),
            "client_id": request.client.client_id,
            "client_name": request.client.name,
            "redirect_uri": request.redirect_uri,
            "state": request.state,
            "code_challenge": request.code_challenge,
            "resource": request.resource,
            "scopes": sorted(request.scopes),
        }
        return jwt.encode(claims, self._key, algorithm="HS256")

    def _open(self, request_id: str) -> tuple[str, float, AuthorizationRequest] | None:
        try:
            c: dict[str, Any] = jwt.decode(request_id, self._key, algorithms=["HS256"],
                                           options={"require": ["exp", "jti"]})  # fmt: skip
        except jwt.PyJWTError:
            return None
        client = Client(c["client_id"], (c["redirect_uri"],), c["client_name"])
        request = AuthorizationRequest(client, c["redirect_uri"], c["state"],
                                       c["code_challenge"], c["resource"],
                                       frozenset(c["scopes"]))  # fmt: skip
        return c["jti"], float(c["exp"]), request

    def peek(self, request_id: str) -> AuthorizationRequest | None:
        """The request if its id is ours, unexpired and unanswered."""
        opened = self._open(request_id)
        if opened is None or self._records.spent(ANSWERED_KIND, opened[0]):
            return None
        return opened[2]

    def take(self, request_id: str, owner: str) -> AuthorizationRequest | None:
        """The request, marked answered by `owner` (a second take gets None); TooMany when
        `owner` answered MAX_ANSWERED_PER_OWNER requests that have not expired yet."""
        opened = self._open(request_id)
        if opened is None:
            return None
        jti, expires, request = opened
        # Recorded on first sight, then spent once: of two instances answering the same
        # request at once, the database lets one through.
        self._records.hold(ANSWERED_KIND, jti, {}, datetime.fromtimestamp(expires, UTC),
                           owner=owner, max_per_owner=MAX_ANSWERED_PER_OWNER,
                           what="authorization requests")  # fmt: skip
        return request if self._records.spend(ANSWERED_KIND, jti) is not None else None


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of `verifier`."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verifier_matches(verifier: str, challenge: str) -> bool:
    """Whether `verifier` is well-formed and hashes to `challenge` (constant time)."""
    if not VERIFIER_PATTERN.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
