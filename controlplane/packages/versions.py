"""WordPress-style version order (PHP's version_compare, as WordPress uses it): "6.4.10" is
after "6.4.9", "1.0-beta2" before "1.0", "1.0" equal to "1.0.0"."""

from __future__ import annotations

import functools
import re

# PHP's special forms, lowest first; any other word sorts below them all (as "dev" does).
_SPECIAL = {"dev": 0, "alpha": 1, "a": 1, "beta": 2, "b": 2, "RC": 3, "rc": 3, "#": 4, "pl": 5}
_PART = re.compile(r"\d+|[A-Za-z]+")
VERSION_TEXT = re.compile(r"[0-9][0-9A-Za-z.+_-]{0,39}")


def _key(version: str) -> list[tuple[int, int]]:
    """Comparable parts: a number as (6, n), above every pre-release word's rank."""
    return [
        (6, int(token)) if token.isdigit() else (_SPECIAL.get(token, -1), 0)
        for token in _PART.findall(version)
    ]


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as `a` is before, equal to or after `b`."""
    ka, kb = _key(a), _key(b)
    for i in range(max(len(ka), len(kb))):
        # A missing part is a zero against a number ("1.0" == "1.0.0") and a release
        # against a word ("1.0" after "1.0-beta").
        other = kb[i] if i >= len(ka) else ka[i]
        pad = (6, 0) if other[0] == 6 else (4, 0)
        pa = ka[i] if i < len(ka) else pad
        pb = kb[i] if i < len(kb) else pad
        if pa != pb:
            return 1 if pa > pb else -1
    return 0


def newer(a: str, b: str) -> bool:
    """Whether `a` comes after `b`."""
    return compare(a, b) > 0


version_key = functools.cmp_to_key(compare)


def ascending(versions: list[str]) -> list[str]:
    """The versions oldest first."""
    return sorted(versions, key=version_key)
