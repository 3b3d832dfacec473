"""Test runs only: each secret the platform makes or is handed is appended to the file that
AIPRESS_TEST_SECRET_RECORD names, so the run can prove that no log it wrote holds one, also for
secrets made in subprocess workers (they inherit the variable). Only the test suite's conftest
sets it; unset, this does nothing. Terraform's services never carry it."""

from __future__ import annotations

import json
import os

RECORD_ENV = "AIPRESS_TEST_SECRET_RECORD"


def in_production() -> bool:
    """On Cloud Run (K_SERVICE) or in gcp mode nothing is ever recorded, whatever is set."""
    return bool(os.environ.get("K_SERVICE")) or os.environ.get("AIPRESS_PROVIDER") == "gcp"


def note_secret(value: str | bytes, source: str) -> None:
    """Append `value` (labelled by `source`) to the record file, if one is configured."""
    path = os.environ.get(RECORD_ENV)
    if not path or not value or in_production():
        return
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as record:
        record.write(json.dumps({"source": source, "value": text}) + "\n")
