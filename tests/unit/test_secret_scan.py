"""The secret scan itself: it finds a planted canary in each kind of log, and redaction masks
each secret shape in the platform log while leaving other values alone."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane import crypto
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from controlplane.kernel.logs import REDACTED, configure_logging, get_logger
from controlplane.settings import Settings
from tests.conftest import LOG_FILE, SCAN_ROOTS, SECRET_RECORD, record_files
from tests.secret_scan import find_leaks, log_files, read_record

# Where the run's logs live, relative to a home: the scan must find a canary in each.
LOG_PLACES = [
    "worker.log",
    "stack/nginx/logs/nginx-error.log",
    "stack/php-fpm/php-fpm.log",
    "stack/mariadb/mariadb.err",
    "sites/acme-crumbs/logs/php-error.log",
    "stack/nginx/logs/acme-crumbs.access.json",
    "chat.db",
    "chat.db-wal",
]


@pytest.mark.parametrize("place", LOG_PLACES)
def test_a_canary_in_any_log_of_the_run_is_found(tmp_path: Path, place: str) -> None:
    canary = f"canary-{secrets.token_urlsafe(24)}"
    log = tmp_path / "home" / place
    log.parent.mkdir(parents=True)
    log.write_bytes(b"\x00binary\x01 prefix " + canary.encode() + b" suffix\n")
    # The scan's own discovery over the run's real roots (this test's tmp_path is under one).
    assert any(tmp_path.is_relative_to(root) for root in SCAN_ROOTS)
    logs = log_files(SCAN_ROOTS, record_files())
    assert log in logs
    leaks = find_leaks({canary: "canary"}, logs)
    assert [(leak.source, leak.path) for leak in leaks] == [("canary", log)]
    assert canary not in leaks[0].preview  # the report does not leak it again


def test_secrets_with_any_character_are_found(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    tricky = "it's a 'secret' with spaces; DROP"
    log.write_text(f"value={tricky}\n")
    assert [leak.source for leak in find_leaks({tricky: "env"}, [log])] == ["env"]


def test_a_clean_log_and_other_files_report_nothing(tmp_path: Path) -> None:
    secret = crypto.generate_password()
    (tmp_path / "clean.log").write_text("nothing to see " + secret[:-1] + "\n")
    (tmp_path / "wp-config.php").write_text(secret)  # not a log: a site's own config
    logs = log_files([tmp_path])
    assert logs == [tmp_path / "clean.log"]
    assert find_leaks({secret: "password"}, logs) == []


def test_every_secret_source_is_recorded(tmp_path: Path) -> None:
    """In this process and in a subprocess worker (it inherits the record's variable)."""
    settings = Settings(provider="memory", home=tmp_path / "home")
    token = LocalTokenIssuer(settings).issue("u1", Role.ADMIN)
    keyring = crypto.load_keyring(settings)
    keyring.encrypt("sk_live_env_secret_value", "env:acme:STRIPE")
    worker = subprocess.run(
        [sys.executable, "-c", "from controlplane import crypto; print(crypto.generate_password())"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    recorded = read_record(SECRET_RECORD)
    key = base64.urlsafe_b64encode(keyring.keys[keyring.active_key_id]).decode()
    assert recorded[token] == "bearer token"
    assert recorded[key] == "keyring key"
    assert recorded["sk_live_env_secret_value"].startswith("sealed")
    assert recorded[worker.stdout.strip()] == "password"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "hunter2-but-longer"),
        ("db_password", "p4ss"),
        ("client_secret", "cs_123"),
        ("token", "eyJhbGciOi.x.y"),
        ("Authorization", "Bearer abc"),
        ("value", "sk_live_1"),
        ("api_key", "AKIA123"),
        ("wp_salt", "salty"),
    ],
)
def test_redaction_masks_each_secret_shape(tmp_path: Path, field: str, value: str) -> None:
    log_file = tmp_path / "platform.log"
    configure_logging("DEBUG", log_file)
    try:
        get_logger("t").info("event", **{field: value}, nested={"inner": {field: value}},
                             listed=[{field: value}], site="crumbs", key_id="k1")  # fmt: skip
        entry = json.loads(log_file.read_text())
    finally:
        configure_logging("DEBUG", LOG_FILE)
    assert entry[field] == REDACTED
    assert entry["nested"] == {"inner": {field: REDACTED}}
    assert entry["listed"] == [{field: REDACTED}]
    # Values of other keys are left alone.
    assert entry["site"] == "crumbs" and entry["key_id"] == "k1" and entry["event"] == "event"
    assert value not in log_file.read_text()


def test_chat_checkpoints_are_scanned_as_sqlite(tmp_path: Path) -> None:
    canary = f"canary-{secrets.token_urlsafe(24)}"
    db = tmp_path / "chat.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE checkpoints (blob BLOB)")
        conn.execute("INSERT INTO checkpoints VALUES (?)", (canary.encode(),))
    assert [leak.path for leak in find_leaks({canary: "canary"}, log_files([tmp_path]))] == [db]


@pytest.mark.parametrize(
    "production", [{"K_SERVICE": "aipress-control-plane"}, {"AIPRESS_PROVIDER": "gcp"}]
)
def test_production_never_records_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, production: dict[str, str]
) -> None:
    from controlplane.kernel.secret_record import RECORD_ENV, note_secret

    record = tmp_path / "record.jsonl"
    monkeypatch.setenv(RECORD_ENV, str(record))
    note_secret("recorded-in-tests-" + secrets.token_hex(8), "test")
    assert record.exists()
    before = record.read_text()
    for name, value in production.items():
        monkeypatch.setenv(name, value)
    note_secret("never-in-production-" + secrets.token_hex(8), "test")
    assert record.read_text() == before
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "elsewhere")
    monkeypatch.delenv("K_SERVICE", raising=False)
    monkeypatch.delenv("AIPRESS_PROVIDER", raising=False)
    monkeypatch.setenv(RECORD_ENV, str(link))
    with pytest.raises(OSError):  # a planted link is not followed
        note_secret("through-a-link-" + secrets.token_hex(8), "test")
