"""Ready means serving: what the wordpress step of every provider checks on the homepage."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import httpx

TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
GENERATOR = re.compile(
    r"<meta\s+name=[\"']generator[\"']\s+content=[\"']WordPress\s+([^\"']+)", re.I
)
# wptexturize() curls quotes and dashes in the rendered title.
_TEXTURE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                          "\u2013": "-", "\u2014": "-", "\u2026": "...", "\xa0": " "})  # fmt: skip


# A probe reads at most this much of a page: a site can answer with an endless body.
PAGE_READ_LIMIT = 2 * 1024 * 1024


@dataclass(frozen=True)
class Page:
    """A probed page: its status, and its body (None when longer than PAGE_READ_LIMIT)."""

    status_code: int
    text: str | None


def get_page(client: httpx.Client, url: str, **kwargs: Any) -> Page:
    """GET `url` with `client`, reading the body only up to PAGE_READ_LIMIT bytes."""
    with client.stream("GET", url, **kwargs) as response:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > PAGE_READ_LIMIT:
                return Page(response.status_code, None)
        return Page(response.status_code, body.decode(response.encoding or "utf-8", "replace"))


def _plain(text: str) -> str:
    text = html.unescape(text).translate(_TEXTURE).replace("--", "-")
    return " ".join(text.split()).casefold()


def page_title(body: str) -> str | None:
    """The document's <title>, unescaped; None when it has none."""
    found = TITLE.search(body)
    return " ".join(html.unescape(found.group(1)).split()) if found else None


def generator_version(body: str) -> str | None:
    """The WordPress version in the page's generator tag."""
    found = GENERATOR.search(body)
    return found.group(1).strip() if found else None


def homepage_problem(status: int, body: str | None, title: str) -> str | None:
    """What keeps this answer from being the site's homepage, in words; None when it is
    (`body` None: longer than a probe reads)."""
    if status != 200:
        return f"the homepage answers HTTP {status}"
    if body is None:
        return f"the homepage is longer than {PAGE_READ_LIMIT >> 20} MiB; a probe reads no more"
    if not body.strip():
        return "the site renders an empty page"
    seen = page_title(body)
    if seen is None:
        return "the homepage has no <title>"
    if _plain(title) not in _plain(seen):
        return f"the homepage's title is {seen!r}, not {title!r}"
    if generator_version(body) is None:
        return "the homepage carries no WordPress generator tag"
    return None
