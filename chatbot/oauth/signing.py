"""The MCP token signing key as configured: an Ed25519 private key, PEM or base64 raw."""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

SETTING = "AIPRESS_MCP_SIGNING_KEY"
HOW = (
    f"{SETTING} must be an Ed25519 private key: PEM (openssl genpkey -algorithm ed25519) or "
    "the base64 of its 32 raw bytes"
)


def parse_signing_key(value: str) -> Ed25519PrivateKey:
    """The key `value` holds; ValueError (never quoting the value) if it holds none."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{HOW}; the PEM given does not load") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{HOW}; the PEM given holds another kind of key")
        return key
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{HOW}; the value is neither PEM nor base64") from exc
    if len(raw) != 32:
        raise ValueError(f"{HOW}; the base64 value decodes to {len(raw)} bytes, not 32")
    return Ed25519PrivateKey.from_private_bytes(raw)
