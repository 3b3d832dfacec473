"""The end-of-run check that no log holds a secret: which secrets, which logs, and the scan.

Secrets come from the record file that controlplane.kernel.secret_record fills (passwords, keyring
keys, every plaintext sealed in the vault: env secrets, salts' seeds, probe tokens; bearer
tokens issued, Firebase ID tokens verified, sign-in keys, derived WordPress salts), also from
subprocess workers. Logs are every file the run wrote that is a log: the platform log, captured
test output, worker logs, the local stack's nginx/php-fpm/MariaDB logs, site access and error
logs, and the chat service's SQLite checkpoints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MIN_LENGTH = 12  # shorter values (test literals like "v") would match by chance
LOG_SUFFIXES = (".log", ".err", ".access.json", ".jsonl")
CHAT_DATABASES = re.compile(r"chat\.db(-wal|-journal)?$")
# Third-party tools' own logs: the Firebase Auth emulator logs the test tokens it mints.
NOT_OURS = frozenset({"emulator.log", "firebase-debug.log"})
SECRET_CHARS = re.compile(rb"[A-Za-z0-9+/=_.~-]{%d,}" % MIN_LENGTH)


@dataclass(frozen=True)
class Leak:
    """A recorded secret found in a log."""

    source: str
    preview: str  # the first characters only: the report must not leak it again
    path: Path


def read_record(record: Path) -> dict[str, str]:
    """The recorded secrets (value -> source), long enough to be told apart from chance."""
    secrets: dict[str, str] = {}
    if not record.exists():
        return secrets
    for line in record.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if len(entry["value"]) >= MIN_LENGTH:
            secrets[entry["value"]] = entry["source"]
    return secrets


def is_log(path: Path) -> bool:
    """Whether the run's file at `path` is a log (or chat history) that must hold no secret."""
    if path.name in NOT_OURS or not path.is_file():
        return False
    return path.name.endswith(LOG_SUFFIXES) or bool(CHAT_DATABASES.search(path.name))


def log_files(roots: Iterable[Path], exclude: Iterable[Path] = ()) -> list[Path]:
    """Every log under the roots (the record file itself excluded)."""
    skipped = {p.resolve() for p in exclude}
    found = []
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            if not path.is_symlink() and is_log(path) and path.resolve() not in skipped:
                found.append(path)
    return sorted(found)


def find_leaks(secrets: dict[str, str], paths: Iterable[Path]) -> list[Leak]:
    """Each (secret, log) where the log contains the secret. Secrets are made of URL-safe,
    base64 and hex characters, so only runs of those characters are searched, each distinct
    run once, through an index of the secrets' first MIN_LENGTH characters."""
    by_prefix: dict[bytes, list[bytes]] = {}
    other: list[bytes] = []  # with a space, a quote...: looked for in the whole text
    for value in secrets:
        raw = value.encode("utf-8")
        if SECRET_CHARS.fullmatch(raw):
            by_prefix.setdefault(raw[:MIN_LENGTH], []).append(raw)
        else:
            other.append(raw)
    leaks: list[Leak] = []
    for path in paths:
        text = path.read_bytes()
        found = {raw for raw in other if raw in text}
        runs = set(SECRET_CHARS.findall(text))
        for run in runs:
            for start in range(len(run) - MIN_LENGTH + 1):
                for raw in by_prefix.get(run[start : start + MIN_LENGTH], ()):
                    if run.startswith(raw, start):
                        found.add(raw)
        for raw in sorted(found):
            value = raw.decode("utf-8")
            leaks.append(Leak(secrets[value], value[:4] + "…", path))
    return leaks
