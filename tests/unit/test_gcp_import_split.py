"""Splitting an uploaded dump on gcp reads each byte of a statement once: a string of many
lines that end in `;` (a post with code in it, or a hostile upload) is not read again from
its start at each line (that was quadratic: a 60 KB statement took minutes)."""

from __future__ import annotations

import io

import pytest

from controlplane.providers.gcp import imports
from controlplane.providers.gcp.imports import Quotes, upload_statements


def test_a_statement_of_many_lines_in_a_string_is_read_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[Quotes] = []

    class Counted(Quotes):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(imports, "Quotes", Counted)
    statement = b"INSERT INTO `t` VALUES ('" + b"x = 1;\n" * 5000 + b"', \"q;\", 'it''s')"
    assert list(upload_statements(io.BytesIO(statement + b";\n"))) == [statement]
    assert sum(q.read for q in made) == len(statement)


def test_an_escape_cut_by_a_line_end_is_read_with_the_rest() -> None:
    quotes = Quotes()
    assert not quotes.closed(b"'a\\", 3)
    assert quotes.closed(b"'a\\'b'", 6)
    assert not Quotes().closed(bytearray(b"`a\\` 'b"), 7)
