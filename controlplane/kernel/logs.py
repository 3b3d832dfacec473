"""Structured JSON logs for the platform itself, with a request id and secret redaction."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"
SENSITIVE_KEYS = ("password", "secret", "token", "authorization", "value", "key", "salt")


def _is_sensitive(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SENSITIVE_KEYS) and lowered not in {
        "key_id",
        "request_id",
    }


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace values of keys that may hold secrets, however deep."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if _is_sensitive(str(k)) else clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    for key in list(event_dict):
        if key == "event":
            continue
        event_dict[key] = REDACTED if _is_sensitive(key) else clean(event_dict[key])
    return event_dict


def new_request_id() -> str:
    """A fresh request id."""
    return uuid.uuid4().hex


def bind_request_id(request_id: str) -> None:
    """Attach a request id to every log line of the current context."""
    structlog.contextvars.bind_contextvars(request_id=request_id)


def current_request_id() -> str | None:
    """The request id bound to the current context, if any."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value) if value else None


def configure_logging(level: str = "INFO", log_file: Path | None = None, json: bool = True) -> None:
    """Configure structlog (and stdlib logging) once per process."""
    stream: TextIO
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        stream = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
    else:
        stream = sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(stream=stream, level=logging.WARNING, force=True)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A named structured logger."""
    return structlog.get_logger(name)  # type: ignore[no-any-return]
