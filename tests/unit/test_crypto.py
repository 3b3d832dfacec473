"""Credential encryption: AES-256-GCM, key ids, rotation, tamper detection."""

from __future__ import annotations

import base64
import stat

import pytest

from controlplane.crypto import (
    DecryptionError,
    Keyring,
    KeyringError,
    add_local_key,
    load_keyring,
    new_key,
    parse_keys,
)
from controlplane.settings import Settings


def test_round_trip_and_context_binding() -> None:
    ring = Keyring({"k1": new_key()}, "k1")
    sealed = ring.encrypt("hunter2", "site:1:database")
    assert "hunter2" not in sealed and sealed.startswith("v1:k1:")
    assert ring.decrypt(sealed, "site:1:database") == "hunter2"
    with pytest.raises(DecryptionError):
        ring.decrypt(sealed, "site:2:database")  # moved to another row


def test_tampering_is_detected() -> None:
    ring = Keyring({"k1": new_key()}, "k1")
    version, kid, blob = ring.encrypt("secret", "c").split(":")
    raw = bytearray(base64.urlsafe_b64decode(blob))
    raw[-1] ^= 1
    with pytest.raises(DecryptionError):
        ring.decrypt(f"{version}:{kid}:{base64.urlsafe_b64encode(bytes(raw)).decode()}", "c")


def test_rotation_keeps_old_ciphertexts_readable() -> None:
    old = Keyring({"k1": new_key()}, "k1")
    sealed = old.encrypt("pw", "c")
    rotated = Keyring({**old.keys, "k2": new_key()}, "k2")
    assert rotated.decrypt(sealed, "c") == "pw"
    moved = rotated.reencrypt(sealed, "c")
    assert rotated.key_id_of(moved) == "k2"
    without_old = Keyring({"k2": rotated.keys["k2"]}, "k2")
    assert without_old.decrypt(moved, "c") == "pw"
    with pytest.raises(KeyringError):
        without_old.decrypt(sealed, "c")


def test_bad_key_material_is_refused() -> None:
    with pytest.raises(KeyringError, match="32"):
        Keyring({"k1": b"short"}, "k1")
    with pytest.raises(KeyringError, match="active"):
        Keyring({"k1": new_key()}, "k2")
    with pytest.raises(KeyringError):
        parse_keys("")


def test_local_key_file_is_private_and_stable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(provider="memory", home=tmp_path)
    first = load_keyring(settings)
    path = tmp_path / "keys" / "encryption.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring(settings).keys == first.keys
    rotated = add_local_key(settings)
    assert rotated.active_key_id != first.active_key_id
    assert load_keyring(settings).active_key_id == rotated.active_key_id


def test_keys_from_settings() -> None:
    key = base64.urlsafe_b64encode(new_key()).decode()
    ring = load_keyring(Settings(provider="memory", encryption_keys=f"a:{key}", active_key_id="a"))
    assert ring.active_key_id == "a"
