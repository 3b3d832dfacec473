"""The benchmark harness: its statistics, its argument checks and tables drawn from data."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def test_percentiles_interpolate_between_ranks() -> None:
    harness = _load("harness")
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert harness.percentile(values, 0) == 1.0
    assert harness.percentile(values, 50) == 2.5
    assert harness.percentile(values, 95) == pytest.approx(3.85)
    assert harness.percentile(values, 100) == 4.0
    assert math.isnan(harness.percentile([], 50))


def test_stats_scale_and_round_and_say_nothing_of_nothing() -> None:
    harness = _load("harness")
    summary = harness.stats([0.001, 0.002, 0.003], digits=3, scale=1000)
    assert summary == {
        "n": 3,
        "min": 1.0,
        "mean": 2.0,
        "p50": 2.0,
        "p90": 2.8,
        "p95": 2.9,
        "p99": 2.98,
        "max": 3.0,
    }
    assert harness.stats([]) == {}


def test_counts_that_make_no_sense_name_the_option() -> None:
    harness = _load("harness")
    parser = harness.parser("x", "test")
    parser.add_argument("--sites", type=int, default=1)
    parser.add_argument("--load-seconds", type=int, default=0)
    args = parser.parse_args(["--sites", "-1"])
    with pytest.raises(SystemExit):
        harness.check_counts(parser, args, non_negative=("sites",))
    harness.check_counts(parser, args, non_negative=("load_seconds",))  # 0 is fine
    assert parser.parse_args([]).output.name == "x.json"


def test_a_table_cell_with_brackets_is_printed_as_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    harness = _load("harness")
    harness.print_facts("t", [("stack PSS", "375.5 MB  [mariadbd 120.7 (1p)]")])
    assert "[mariadbd 120.7 (1p)]" in capsys.readouterr().out


def test_the_provision_table_is_drawn_from_saved_results(tmp_path: Path) -> None:
    provision = _load("provision")
    summary = {
        "requested": 2,
        "succeeded": 2,
        "failed": [],
        "operation_seconds": {"p50": 1.5, "p95": 2.0},
        "steps_seconds": {"database": {"p50": 0.25}},
        "post_to_first_200_seconds": {"p50": 1.75, "p95": 2.25, "min": 1.5, "max": 2.5},
        "cpu": {"machine_cpu_busy_pct": 97.0, "loadavg_1m_at_end": 1.5},
    }
    results = {
        "machine": {"cpu_count": 2, "mem_total_mb": 1024},
        "sequential": {"summary": summary},
        "delete": {"summary": {**summary, "concurrency": 1, "homepage_after_delete": {"404": 2}}},
        "error": "boom",
    }
    saved = tmp_path / "provision.json"
    saved.write_text(json.dumps(results))
    rows = dict(provision.table(json.loads(saved.read_text())))
    first = rows["create 1 at a time (2/2 ok): POST -> first 200 with the title p50 / p95"]
    assert first.startswith("1.75 s / 2.25 s")
    assert "machine CPU busy 97%" in first
    assert rows["  step p50 (s)"] == "database 0.25"
    assert rows["delete 1 at a time (2/2 ok) p50 / p95"].startswith("1.50 s / 2.00 s")
    assert rows["ERROR"] == "boom"
    assert not any(label.startswith("create 4") for label in rows)  # no concurrent phase ran


def test_a_run_is_reported_between_the_machines_facts_and_written_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = _load("harness")
    printed: list[dict[str, object]] = []
    output = tmp_path / "out" / "bench.json"
    harness.run_and_report(
        output, {"python": [sys.executable, "--version"]}, lambda: {"seconds": 1.5}, printed.append
    )
    written = json.loads(output.read_text())
    assert written["seconds"] == 1.5
    machine = written["machine"]
    assert machine["versions"]["python"].startswith("Python 3")
    assert "loadavg_at_start" in machine and "loadavg_at_end" in machine  # closed after the run
    assert printed == [written]  # the tables are drawn from what is written
    assert str(output) in capsys.readouterr().out


def test_an_operations_steps_are_timed_from_their_start_and_end() -> None:
    local_platform = _load("local_platform")
    op = {
        "steps": [
            {"name": "database", "started_at": "2026-01-01T00:00:00+00:00",
             "finished_at": "2026-01-01T00:00:01.500+00:00"},
            {"name": "wordpress", "started_at": "2026-01-01T00:00:01+00:00", "finished_at": None},
            {"name": "dns", "started_at": None, "finished_at": None},
        ]
    }  # fmt: skip
    assert local_platform.step_seconds(op) == {"database": 1.5}


def test_keep_is_an_option_only_of_benchmarks_that_can_keep_what_they_made() -> None:
    harness = _load("harness")
    kept = harness.parser("x", "test", keep="the home")
    assert kept.parse_args([]).keep is False
    assert kept.parse_args(["--keep"]).keep is True
    assert "keep the home (for debugging)" in kept.format_help()
    with pytest.raises(SystemExit):
        harness.parser("x", "test").parse_args(["--keep"])


def test_a_local_platform_benchmark_runs_with_its_own_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_platform = _load("local_platform")
    reported: list[tuple[object, dict[str, object], object]] = []

    def run_and_report(args: object, run: object, print_results: object) -> None:
        assert callable(run)
        reported.append((args, run(), print_results))

    monkeypatch.setattr(local_platform, "run_and_report", run_and_report)
    parsed: list[list[str] | None] = []

    def parse_args(argv: list[str] | None) -> dict[str, object]:
        parsed.append(argv)
        return {"argv": argv}

    local_platform.main(["--keep"], parse_args, lambda args: {"ran with": args}, print)
    assert parsed == [["--keep"]]
    assert reported == [({"argv": ["--keep"]}, {"ran with": {"argv": ["--keep"]}}, print)]


def test_an_operations_outcome_is_its_status_and_the_seconds_the_api_reports() -> None:
    provision = _load("provision")
    op = {
        "status": "succeeded",
        "created_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:02.250Z",
        "steps": [
            {"name": "database", "started_at": "2026-01-01T00:00:00Z",
             "finished_at": "2026-01-01T00:00:01.500Z"},
            {"name": "dns", "started_at": None, "finished_at": None},
        ],
    }  # fmt: skip
    assert provision.operation_outcome(op) == {
        "status": "succeeded",
        "operation_seconds": 2.25,
        "steps": {"database": 1.5, "dns": None},
    }


def test_the_upload_options_say_how_much_fill_uploads_writes() -> None:
    harness, local_platform = _load("harness"), _load("local_platform")
    parser = harness.parser("x", "test")
    local_platform.add_upload_options(parser, uploads_mb=100)
    args = parser.parse_args([])
    assert (args.uploads_mb, args.file_mb) == (100, 4)
    args = parser.parse_args(["--uploads-mb", "8", "--file-mb", "2"])
    assert (args.uploads_mb, args.file_mb) == (8, 2)
