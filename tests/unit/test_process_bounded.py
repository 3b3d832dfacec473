"""stack.process.run with max_output: commands running untrusted code are cut off at an
output cap or a timeout, with everything they started."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from controlplane.stack.process import StackError, run


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_input_goes_in_and_output_comes_back() -> None:
    assert run(["cat"], what="cat", input_text="hello", max_output=100) == "hello"
    # A command that never reads a large input neither hangs nor fails.
    assert run(["true"], what="true", input_text="x" * 300_000, max_output=100) == ""


def test_a_command_printing_past_the_cap_is_killed_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(StackError, match="printed more than 1000 bytes"):
        run(["yes"], what="yes", timeout=30, max_output=1000)
    assert time.monotonic() - started < 10


def test_a_failure_says_what_it_printed_and_a_cwd_is_used(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"exit 3\): oops"):
        run(["sh", "-c", "echo oops >&2; exit 3"], what="sh", max_output=100)
    assert run(["pwd"], what="pwd", cwd=str(tmp_path), max_output=1000).strip() == str(tmp_path)


def test_past_the_timeout_the_command_and_its_children_are_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    with pytest.raises(StackError, match="timed out after 1 s"):
        run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], what="sh", timeout=1,
            max_output=1000)  # fmt: skip
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
