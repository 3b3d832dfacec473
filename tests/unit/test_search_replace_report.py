"""The search-replace report as the providers read it and as an operation says it."""

from __future__ import annotations

import pytest

from controlplane.engine.provider import RewriteReport
from controlplane.providers.search_replace import job_input, parse_report


def test_the_report_is_read_from_the_scripts_last_line_and_said_in_one_sentence() -> None:
    output = ('PHP Notice: x\n{"tables":{"wp_posts":{"post_content":40},"wp_options":'
              '{"option_value":2}},"rows":41,"cells":42,"dry_run":false,"unparsed":0,"skipped":[]}\n')  # fmt: skip
    report = parse_report(output)
    assert report.tables == {"wp_posts": {"post_content": 40}, "wp_options": {"option_value": 2}}
    assert (report.rows, report.cells, report.dry_run) == (41, 42, False)
    assert report.summary() == "rewrote 42 values in 2 tables"
    one = RewriteReport(tables={"wp_posts": {"guidless": 1}}, rows=1, cells=1, dry_run=True,
                        unparsed=3)  # fmt: skip
    assert one.summary() == (
        "would rewrite 1 value in 1 table (3 unreadable serialized left as they were)"
    )
    assert parse_report('{"tables":{},"rows":0,"cells":0,"dry_run":true}').summary() == (
        "would rewrite 0 values in 0 tables"
    )


@pytest.mark.parametrize("output", ["", "Fatal error: x", '{"rows": 1}', "[]"])
def test_output_without_a_report_is_an_error_that_shows_it(output: str) -> None:
    with pytest.raises(ValueError, match="the search-replace printed no report"):
        parse_report(output)


def test_a_jobs_input_carries_no_connection_and_no_password() -> None:
    assert job_input("db__restore", "https://old.example/", "https://new.example/") == (
        '{"database": "db__restore", "from": "https://old.example", "to": '
        '"https://new.example", "dry_run": false, "report_table": "aipress_search_replace_report"}'
    )
