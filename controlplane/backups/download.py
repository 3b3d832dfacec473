"""The owner's download link: one backup, for a short time, signed with the keyring.

The token is `<base64url(JSON claims)>.<hex HMAC-SHA256>`; the HMAC key is derived from the
keyring key named in the claims, so a link stays valid across a key rotation for its life.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime

from controlplane.crypto import Keyring

PURPOSE = b"aipress backup download v1"


class BadLink(Exception):
    """The link is malformed, forged, expired or signed with a key no longer kept."""


def _key(keyring: Keyring, key_id: str) -> bytes:
    secret = keyring.keys.get(key_id)
    if secret is None:
        raise BadLink("the link was signed with a key that is no longer kept")
    return hmac.new(secret, PURPOSE, hashlib.sha256).digest()


def sign(
    keyring: Keyring, *, tenant_id: str, backup_id: str, user: str, expires_at: datetime
) -> str:
    """A token for `user` downloading `backup_id` of `tenant_id` until `expires_at`."""
    claims = {
        "b": backup_id,
        "t": tenant_id,
        "u": user,
        "exp": int(expires_at.timestamp()),
        "k": keyring.active_key_id,
    }
    text = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    payload = base64.urlsafe_b64encode(text).rstrip(b"=").decode()
    mac = hmac.new(_key(keyring, keyring.active_key_id), payload.encode(), hashlib.sha256)
    return f"{payload}.{mac.hexdigest()}"


def verify(keyring: Keyring, token: str, *, now: datetime) -> tuple[str, str, str]:
    """(tenant id, backup id, user) of a valid token; BadLink otherwise."""
    payload, _, signature = token.partition(".")
    try:
        text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(text)
        key_id, tenant_id, backup_id = str(claims["k"]), str(claims["t"]), str(claims["b"])
        user = str(claims["u"])
        expires = int(claims["exp"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BadLink("the link is malformed") from exc
    expected = hmac.new(_key(keyring, key_id), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise BadLink("the link's signature does not match")
    if now.timestamp() >= expires:
        raise BadLink("the link has expired: ask for a new one")
    return tenant_id, backup_id, user
