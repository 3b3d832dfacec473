"""AES-256-GCM encryption of credentials with a key id per ciphertext, so keys can rotate."""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from controlplane.kernel.files import write_private_file
from controlplane.kernel.secret_record import note_secret
from controlplane.settings import Settings

FORMAT_VERSION = "v1"
NONCE_BYTES = 12
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_.~"


class KeyringError(Exception):
    """A ciphertext names a key the keyring does not hold, or the key material is invalid."""


class DecryptionError(Exception):
    """A ciphertext was tampered with or belongs to another context."""


def generate_password(length: int = 32) -> str:
    """A random password safe for SQL, shell and URLs."""
    password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
    note_secret(password, "password")
    return password


def new_key() -> bytes:
    """Fresh 256-bit key material."""
    key = AESGCM.generate_key(bit_length=256)
    for shown in (base64.urlsafe_b64encode(key), base64.b64encode(key), key.hex().encode()):
        note_secret(shown.decode(), "keyring key")
    return key


@dataclass(frozen=True)
class Keyring:
    """Named AES-256 keys; new ciphertexts use the active one, any listed one decrypts."""

    keys: dict[str, bytes]
    active_key_id: str

    def __post_init__(self) -> None:
        if self.active_key_id not in self.keys:
            raise KeyringError(f"active key id {self.active_key_id!r} is not among the keys")
        for kid, key in self.keys.items():
            if len(key) != 32:
                raise KeyringError(f"key {kid!r} is {len(key)} bytes; AES-256 needs 32")
            if ":" in kid or not kid:
                raise KeyringError(f"key id {kid!r} must be non-empty and contain no ':'")

    def encrypt(self, plaintext: str, context: str) -> str:
        """Encrypt `plaintext`, bound to `context` (e.g. the credential's owner)."""
        note_secret(plaintext, f"sealed {context}")
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.active_key_id]).encrypt(
            nonce, plaintext.encode(), context.encode()
        )
        blob = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{FORMAT_VERSION}:{self.active_key_id}:{blob}"

    def decrypt(self, ciphertext: str, context: str) -> str:
        """Decrypt a value made by `encrypt` with the same context."""
        try:
            version, kid, blob = ciphertext.split(":", 2)
        except ValueError as exc:
            raise DecryptionError("ciphertext is not in the v1:<key id>:<data> format") from exc
        if version != FORMAT_VERSION:
            raise DecryptionError(f"unknown ciphertext version {version!r}")
        if kid not in self.keys:
            raise KeyringError(f"ciphertext uses key {kid!r}, which the keyring does not hold")
        raw = base64.urlsafe_b64decode(blob)
        try:
            plain = AESGCM(self.keys[kid]).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()
            )
        except Exception as exc:  # cryptography raises InvalidTag without a message
            raise DecryptionError("ciphertext failed authentication") from exc
        return plain.decode()

    def key_id_of(self, ciphertext: str) -> str:
        """The key id a ciphertext was made with."""
        return ciphertext.split(":", 2)[1]

    def reencrypt(self, ciphertext: str, context: str) -> str:
        """The same plaintext under the active key (a no-op copy if already under it)."""
        if self.key_id_of(ciphertext) == self.active_key_id:
            return ciphertext
        return self.encrypt(self.decrypt(ciphertext, context), context)


def parse_keys(spec: str) -> dict[str, bytes]:
    """Parse "kid:base64,kid2:base64" into key material."""
    keys: dict[str, bytes] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        kid, _, b64 = part.partition(":")
        try:
            keys[kid] = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        except ValueError as exc:
            raise KeyringError(f"key {kid!r} is not valid base64") from exc
    if not keys:
        raise KeyringError("no encryption keys given")
    return keys


def key_file(settings: Settings) -> Path:
    """Where the embedded default keeps its generated keyring."""
    return settings.keys_dir / "encryption.json"


def _encode_keyring_file(keys: dict[str, bytes], active: str) -> bytes:
    return json.dumps(
        {
            "active": active,
            "keys": {kid: base64.urlsafe_b64encode(k).decode() for kid, k in keys.items()},
        }
    ).encode()


def load_keyring(settings: Settings) -> Keyring:
    """The keyring from settings, or (embedded default) from a file generated once (0600)."""
    if settings.encryption_keys:
        keys = parse_keys(settings.encryption_keys)
        return Keyring(keys, settings.active_key_id or next(reversed(keys)))
    path = key_file(settings)
    if not path.exists():
        write_private_file(path, _encode_keyring_file({"k1": new_key()}, "k1"))
    data = json.loads(path.read_text())
    keys = {kid: base64.urlsafe_b64decode(v) for kid, v in data["keys"].items()}
    return Keyring(keys, data["active"])


def add_local_key(settings: Settings) -> Keyring:
    """Add a new active key to the embedded default's key file and return the new keyring."""
    current = load_keyring(settings)
    if settings.encryption_keys:
        raise KeyringError(
            "keys come from AIPRESS_ENCRYPTION_KEYS: add the new key there (kid:base64) "
            "and set AIPRESS_ACTIVE_KEY_ID"
        )
    kid = f"k{len(current.keys) + 1}"
    while kid in current.keys:
        kid += "x"
    keys = {**current.keys, kid: new_key()}
    write_private_file(key_file(settings), _encode_keyring_file(keys, kid))
    return Keyring(keys, kid)
