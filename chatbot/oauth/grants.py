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
from typing import Generic, TypeVar

from chatbot.oauth.clients import Client
from controlplane.kernel.identity import Principal

REQUEST_TTL_SECONDS = 600
CODE_TTL_SECONDS = 60
MAX_HELD = 10_000
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
        self._lock = threading.Lock()

    def put(self, value: T) -> str:
        """Keep `value`; return its key (unguessable)."""
        key = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._held = {k: v for k, v in self._held.items() if v[1] > now}
            if len(self._held) >= MAX_HELD:
                raise OverflowError("too many authorizations in progress; try again shortly")
            self._held[key] = (value, now + self._ttl)
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


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of `verifier`."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verifier_matches(verifier: str, challenge: str) -> bool:
    """Whether `verifier` is well-formed and hashes to `challenge` (constant time)."""
    if not VERIFIER_PATTERN.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
