"""Pending authorization requests and authorization codes: short-lived and single-use."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import jwt

from chatbot.oauth.clients import Client
from controlplane.kernel.identity import Principal

REQUEST_TTL_SECONDS = 600
CODE_TTL_SECONDS = 60
MAX_HELD = 10_000
# Unredeemed codes one user may have at once (a signed-in user flooding consents would
# otherwise fill the store everyone's codes share).
MAX_HELD_PER_OWNER = 20
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


T = TypeVar("T")


class OneTimeStore(Generic[T]):
    """Values under random keys that expire after `ttl` seconds and can be taken once."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._held: dict[str, tuple[T, float]] = {}
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(self, value: T, owner: str | None = None) -> str:
        """Keep `value` (for `owner`, who may hold MAX_HELD_PER_OWNER); return its key."""
        key = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._held = {k: v for k, v in self._held.items() if v[1] > now}
            self._owners = {k: o for k, o in self._owners.items() if k in self._held}
            if owner is not None and sum(o == owner for o in self._owners.values()) >= (
                MAX_HELD_PER_OWNER
            ):
                raise OverflowError("you have too many unused authorizations; try again shortly")
            if len(self._held) >= MAX_HELD:
                raise OverflowError("too many authorizations in progress; try again shortly")
            self._held[key] = (value, now + self._ttl)
            if owner is not None:
                self._owners[key] = owner
        return key

    def peek(self, key: str) -> T | None:
        """The value under `key` if it has not expired or been taken."""
        with self._lock:
            held = self._held.get(key)
        return held[0] if held and held[1] > time.monotonic() else None

    def take(self, key: str) -> T | None:
        """The value under `key`, removed (a second take gets None)."""
        with self._lock:
            held = self._held.pop(key, None)
        return held[0] if held and held[1] > time.monotonic() else None


class PendingRequests:
    """Authorization requests waiting for sign-in and consent, carried by the browser and
    not held here: /oauth/authorize needs no sign-in, so a store of them is anyone's to
    fill. Each id is the request itself, signed with this process's key and expiring; only
    answered ids are remembered (a request is answered once, by a signed-in user)."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._key = secrets.token_bytes(32)
        self._answered: dict[str, float] = {}
        self._lock = threading.Lock()

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
        with self._lock:
            if opened is None or opened[0] in self._answered:
                return None
        return opened[2]

    def take(self, request_id: str) -> AuthorizationRequest | None:
        """The request, marked answered (a second take gets None)."""
        opened = self._open(request_id)
        if opened is None:
            return None
        jti, expires, request = opened
        now = time.time()
        with self._lock:
            self._answered = {k: e for k, e in self._answered.items() if e > now}
            if jti in self._answered:
                return None
            self._answered[jti] = expires
        return request


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of `verifier`."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verifier_matches(verifier: str, challenge: str) -> bool:
    """Whether `verifier` is well-formed and hashes to `challenge` (constant time)."""
    if not VERIFIER_PATTERN.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
