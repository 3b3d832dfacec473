"""Dates come from the one clock (controlplane/kernel/clock.py), so `travel` moves all of them:
no other module reads the wall clock's date or time through `datetime` or `date`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("controlplane", "chatbot", "tools", "tests", "benchmarks", "scripts", "runtime")
# The only places allowed to read the wall clock's date: the clock itself.
ALLOWED = {"controlplane/kernel/clock.py"}
READERS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}


def wall_clock_reads(source: str) -> list[int]:
    """Lines that call datetime.now/utcnow/today or date.today (also as dt.datetime.now)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
        if (name, node.func.attr) in READERS:
            lines.append(node.lineno)
    return lines


def test_the_detector_sees_every_spelling() -> None:
    source = (
        "import datetime as dt\nfrom datetime import date, datetime\n"
        "a = datetime.now(UTC)\nb = date.today()\nc = dt.datetime.now(dt.UTC)\n"
        "d = datetime.utcnow()\ne = clock.now()\nf = utcnow()\n"
    )
    assert wall_clock_reads(source) == [3, 4, 5, 6]


def test_only_the_clock_reads_the_wall_clock() -> None:
    offenders = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in ALLOWED:
                continue
            offenders += [f"{relative}:{n}" for n in wall_clock_reads(path.read_text())]
    assert offenders == [], "use controlplane.kernel.clock.now()/today() instead: " + ", ".join(
        offenders
    )
    assert wall_clock_reads((ROOT / "controlplane/kernel/clock.py").read_text())  # it does read it
