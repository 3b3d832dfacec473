"""System prompts as files (Jinja2 templates), loaded by name."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

PROMPTS_DIR = Path(__file__).resolve().parent


@cache
def _template(name: str) -> Template:
    env = Environment(
        loader=FileSystemLoader(PROMPTS_DIR),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - plain text for a model, never HTML
    )
    return env.get_template(f"{name}.md.j2")


def names() -> list[str]:
    """Every prompt that exists."""
    return sorted(
        p.name.removesuffix(".md.j2")
        for p in PROMPTS_DIR.glob("*.md.j2")
        if not p.name.startswith("_")  # partials, included by the others
    )


def load_prompt(name: str, **values: Any) -> str:
    """The prompt `name` with its placeholders filled (a missing value is an error)."""
    if name not in names():
        raise KeyError(f"no prompt named {name!r}; there are: {', '.join(names())}")
    return _template(name).render(**values)
