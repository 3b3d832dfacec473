"""provision.py's density and baseline phases: their figures and rows drawn from data."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def _memory(total: float, mariadb: float) -> dict[str, Any]:
    components = {
        "mariadbd": {"pss_mb": mariadb, "processes": 1},
        "php-fpm": {"pss_mb": 30.0, "processes": 2},
        "nginx": {"pss_mb": 5.0, "processes": 5},
        "control plane (uvicorn)": {"pss_mb": total - mariadb - 35.0, "processes": 1},
    }
    return {"components": components, "total": {"pss_mb": total}}


def test_the_first_and_last_creates_are_ordered_by_start_not_by_list_order() -> None:
    density = _load("provision_density")
    # Listed in reverse: the slow ones started last.
    records = [
        {"name": f"d{i:04d}", "started": float(i), "first_200_seconds": 1.0 + (i >= 100)}
        for i in reversed(range(150))
    ]
    records.append({"name": "failed", "started": 0.5})  # no time: left out
    edge = density.edge_comparison(records, "first_200_seconds")
    assert edge["first"]["p50"] == 1.0 and edge["last"]["p50"] == 2.0
    assert edge["ratio_p50"] == 2.0
    assert (edge["first_n"], edge["last_n"], edge["overlap"]) == (50, 50, 0)
    few = density.edge_comparison(records[:60], "first_200_seconds")
    assert few["overlap"] == 40  # 60 sites: both ends share 40 of them, and say so


def test_idle_cost_per_site_and_names() -> None:
    density = _load("provision_density")
    assert density.idle_per_site(200.0, 500.0, 200) == 1.5
    assert density.idle_per_site(200.0, 500.0, 0) is None
    assert density.density_names(3) == ["d0001", "d0002", "d0003"]


def test_the_density_rows_are_drawn_from_saved_results(tmp_path: Path) -> None:
    provision = _load("provision")
    density = _load("provision_density")
    fast, slow = {"p50": 0.8, "p95": 1.0}, {"p50": 1.0, "p95": 1.4}
    results = {
        "density": {
            "requested": 200,
            "created": 198,
            "failed": [{"name": "d0007", "error": "boom"}],
            "skipped_by_deadline": 1,
            "density_seconds": 1200.0,
            "create_wall_seconds": 412.3,
            "sites_total": 199,
            "idle_wait_seconds": 25.0,
            "idle": _memory(640.0, 150.0),
            "idle_pss_mb_per_site": density.idle_per_site(340.0, 640.0, 199),
            "post_to_first_200": {
                "first": fast, "last": slow, "first_n": 50, "last_n": 50, "ratio_p50": 1.25,
            },
            "operation": {"first": fast, "last": fast, "first_n": 50, "last_n": 50},
            "list_sites": {"seconds": {"p50": 0.0123, "p95": 0.0456}, "requests": 50,
                           "sites_listed": [199]},
            "opcache_resident_mb": 12.5,
        }
    }  # fmt: skip
    saved = tmp_path / "provision.json"
    saved.write_text(json.dumps(results))
    rows = dict(provision.table(json.loads(saved.read_text())))
    assert rows["density: 198/200 created in 412 s"] == (
        "1 not started (--density-seconds 1200); 1 failed"
    )
    memory = rows["  stack PSS, 199 sites, after 25 s idle"]
    assert memory.startswith("640.0 MB  [mariadbd 150.0 (1p), php-fpm 30.0 (2p)")
    assert rows["  derived: idle PSS per extra site"] == "1.508 MB"
    assert rows["  POST -> first 200 p50, first 50 vs last 50"] == "0.80 s vs 1.00 s = 1.250x"
    assert rows["  operation p50, first 50 vs last 50"] == "0.80 s vs 0.80 s = -"
    assert rows["  GET .../sites at [199] sites, 50 requests p50 / p95"] == "0.0123 s / 0.0456 s"
    opcache = "  + PHP-FPM's OPcache segment resident (in no process's PSS once workers exit)"
    assert rows[opcache] == "12.5 MB"


def test_resident_shared_memory_of_a_process_that_has_none_or_is_gone() -> None:
    density = _load("provision_density")
    assert density.shm_resident_mb(None) is None
    assert density.shm_resident_mb(2**22 + 12345) is None  # above pid_max: no such process
    assert density.shm_resident_mb(os.getpid()) == 0.0  # no large shared anonymous mapping


def test_the_baseline_ratio_and_rows() -> None:
    provision = _load("provision")
    baseline = _load("provision_baseline")
    compared = baseline.comparison([110.0, 100.0, 120.0], [50.0, 40.0, 60.0])
    assert compared["platform_ms"]["p50"] == 110.0 and compared["bare_ms"]["p50"] == 50.0
    assert compared["ratio_p50"] == 2.2
    assert compared["ratio_p95"] == pytest.approx(119.0 / 59.0, abs=0.001)
    assert "ratio_p50" not in baseline.comparison([100.0], [])  # nothing to divide by
    compared.update(
        site="s001", rounds=3, warmup_rounds=1,
        status={"platform": {"200 BYPASS": 3}, "bare": {"200": 3}},
        cpu={"machine_cpu_busy_pct": 97.0, "loadavg_1m_at_end": 4.2},
    )  # fmt: skip
    rows = dict(provision.table({"baseline": compared}))
    assert rows["uncached homepage, platform site s001, 3 rounds p50 / p95"].startswith(
        "110.00 ms / 119.00 ms  status {'200 BYPASS': 3}"
    )
    assert rows["  bare WordPress, plain PHP-FPM pool, interleaved p50 / p95"].startswith(
        "50.00 ms / 59.00 ms"
    )
    assert rows["  platform / bare, p50; p95"].startswith("2.200x; 2.017x")


def test_the_bare_config_changes_only_the_urls() -> None:
    baseline = _load("provision_baseline")
    config = (
        "<?php\ndefine('DB_NAME', 'wp_a');\ndefine('WP_HOME', 'http://a.t.localhost:8080');\n"
        "define('WP_SITEURL', 'http://a.t.localhost:8080');\n"
    )
    bare = baseline.bare_config(config, "http://127.0.0.1:9")
    assert bare == config.replace("http://a.t.localhost:8080", "http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="WP_HOME and WP_SITEURL"):
        baseline.bare_config("<?php\ndefine('DB_NAME', 'wp_a');\n", "http://127.0.0.1:9")


def test_density_sites_are_left_to_the_stack_teardown_unless_asked() -> None:
    provision = _load("provision")
    args = provision.parse_args(["--density", "3"])
    assert provision.kept_for_teardown(args) == {"d0001", "d0002", "d0003"}
    args = provision.parse_args(["--density", "3", "--density-teardown", "api"])
    assert provision.kept_for_teardown(args) == set()
    with pytest.raises(SystemExit):
        provision.parse_args(["--density", "-1"])


def test_resident_shared_memory_counts_only_the_touched_pages() -> None:
    import mmap

    density = _load("provision_density")
    segment = mmap.mmap(-1, 64 << 20)  # anonymous MAP_SHARED: "/dev/zero (deleted)"
    try:
        before = density.shm_resident_mb(os.getpid())
        segment[: 3 << 20] = b"x" * (3 << 20)  # 3 MB touched of 64
        assert density.shm_resident_mb(os.getpid()) == before + 3.0
    finally:
        segment.close()
