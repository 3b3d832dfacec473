"""Jinja2 rendering of the stack's configuration files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATE_DIR = Path(__file__).parent / "templates"


def php_string(value: Any) -> str:
    """A single-quoted PHP string literal (only backslash and quote need escaping)."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


_env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # noqa: S701 (config files, not HTML)
)
_env.filters["php"] = php_string


def render(template: str, **values: Any) -> str:
    """Render one of the templates in stack/templates."""
    return _env.get_template(template).render(**values)
