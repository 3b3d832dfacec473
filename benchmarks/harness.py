"""What every benchmark shares: arguments, machine facts, server processes, percentiles, output.

A benchmark builds its parser with `parser()`, measures into plain data (dicts of numbers),
prints tables drawn from that data (`print_table`, `print_facts`) and writes the data, with
`machine_info()`, as JSON to `--output` (`write_json`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
CONTROL_PLANE_APP = "controlplane.api.app:create_app"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from controlplane.kernel import clock  # noqa: E402  (after the path: runs from a checkout too)

# --------------------------------------------------------------------------------------
# Arguments


def parser(name: str, description: str, *, keep: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark has (`--output`), and `--keep`
    when the benchmark can leave `keep` (what it made, e.g. "the home") for debugging."""
    result = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    result.add_argument(
        "--output", type=Path, default=RESULTS_DIR / f"{name}.json", help="JSON result file"
    )
    if keep is not None:
        result.add_argument("--keep", action="store_true", help=f"keep {keep} (for debugging)")
    return result


def check_counts(
    arguments: argparse.ArgumentParser,
    args: argparse.Namespace,
    *,
    positive: Iterable[str] = (),
    non_negative: Iterable[str] = (),
) -> None:
    """Refuse counts that make no sense, naming the option to fix."""
    for name in positive:
        if getattr(args, name) < 1:
            arguments.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in non_negative:
        if getattr(args, name) < 0:
            arguments.error(f"--{name.replace('_', '-')} must not be negative")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments as JSON-ready values."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


# --------------------------------------------------------------------------------------
# Statistics


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (numpy's default) of the values; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def stats(values: Sequence[float], digits: int = 3, scale: float = 1.0) -> dict[str, float]:
    """n, min, mean, p50, p90, p95, p99 and max of the values times `scale` ({} when empty)."""
    if not values:
        return {}
    scaled = [v * scale for v in values]
    summary = {"n": float(len(scaled)), "min": min(scaled), "mean": sum(scaled) / len(scaled)}
    for pct in (50, 90, 95, 99):
        summary[f"p{pct}"] = percentile(scaled, pct)
    summary["max"] = max(scaled)
    return {k: v if k == "n" else round(v, digits) for k, v in summary.items()}


def fmt(value: Any, unit: str = "", digits: int = 2) -> str:
    """A number for a table cell: '-' when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


# --------------------------------------------------------------------------------------
# The machine


def command_version(command: list[str]) -> str | None:
    """First line a program prints about its version, or None when it is missing."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def stacks_running() -> dict[str, int]:
    """How many mariadbd / php-fpm / nginx masters / uvicorn run on the machine (ours too)."""
    counts: Counter[str] = Counter()
    markers = (
        ("mariadbd ", "mariadbd"),
        ("php-fpm: master", "php-fpm master"),
        ("nginx: master", "nginx master"),
    )
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for prefix, label in markers:
            if cmd.startswith(prefix):
                counts[label] += 1
        if "uvicorn" in cmd and "python" in cmd:
            counts["uvicorn"] += 1
    return dict(counts)


def machine_info(versions: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Date, CPU, memory, load and software versions: what a reader needs to compare runs."""
    info: dict[str, Any] = {
        # The benchmark's own date, for the record; nothing is computed from it.
        "date": clock.now().isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": versions or {},
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_total_mb"] = round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    if hasattr(os, "sched_getaffinity"):
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    info["stacks_running_at_start"] = stacks_running()
    return info


def close_machine_info(info: dict[str, Any]) -> None:
    """Add the load and the stacks at the end of the run (others may have run meanwhile)."""
    info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    info["stacks_running_at_end"] = stacks_running()


class CpuMeter:
    """Machine-wide CPU busy share and load average over a phase (other runs included)."""

    def __init__(self) -> None:
        self._start = self._read()
        self._t0 = time.perf_counter()

    @staticmethod
    def _read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields[:8]), idle

    def result(self) -> dict[str, Any]:
        """Seconds since the meter started, busy percentage and the 1-minute load now."""
        total, idle = self._read()
        d_total, d_idle = total - self._start[0], idle - self._start[1]
        busy = 100 * (d_total - d_idle) / d_total if d_total else math.nan
        return {
            "seconds": round(time.perf_counter() - self._t0, 2),
            "machine_cpu_busy_pct": round(busy, 1),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        }


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_children() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process on the machine."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(pid: int | None, children: dict[int, list[int]]) -> list[int]:
    """A process and all its descendants."""
    if pid is None:
        return []
    out, pending = [], [pid]
    while pending:
        current = pending.pop()
        out.append(current)
        pending.extend(children.get(current, []))
    return out


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process and its live descendants (Linux /proc), else None."""
    if _proc_stat(pid) is None:
        return None
    ticks = 0
    for member in process_tree(pid, process_children()):
        fields = _proc_stat(member)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------
# Ports and server processes


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether a loopback port can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def aipress_environment(**settings: str) -> dict[str, str]:
    """This process's environment with only the given AIPRESS_* settings (others removed).

    The process's own `os.environ` is changed too, so Settings() read here agrees with the
    server's.
    """
    for key in [k for k in os.environ if k.startswith("AIPRESS_")]:
        del os.environ[key]
    os.environ.update({f"AIPRESS_{k.upper()}": v for k, v in settings.items()})
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


class Server:
    """A uvicorn server in its own process on loopback (the control plane by default)."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        port: int = 0,
        app: str = CONTROL_PLANE_APP,
        workers: int = 1,
        command: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.command = command or [
            sys.executable, "-m", "uvicorn", app, "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        self._env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = math.nan

    @property
    def pid(self) -> int:
        """The server's process id (it must be running)."""
        assert self.process is not None, "the server is not started"
        return self.process.pid

    def start(self, timeout: float = 60.0) -> Server:
        """Start the process and wait until GET /healthz answers 200."""
        import httpx

        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self._env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        started = time.perf_counter()
        with httpx.Client(base_url=self.url, trust_env=False, timeout=2.0) as client:
            while time.perf_counter() - started < timeout:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"server exited with status {self.process.returncode} during start-up; "
                        f"see {self.log_path}"
                    )
                try:
                    if client.get("/healthz").status_code == 200:
                        self.startup_seconds = time.perf_counter() - started
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout:.0f} s; see {self.log_path}")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGINT (a graceful shutdown: lifespan, profile dumps), then SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, limit: int = 4000) -> str:
        """The end of what the server printed."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-limit:]

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------
# Output

Row = Sequence[str]


def print_table(title: str, columns: Sequence[str], rows: Iterable[Row]) -> None:
    """A table on stdout: the first column left-aligned, the others right-aligned."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: a "[...]" in a cell is not markup
    Console(width=max(120, shutil.get_terminal_size().columns)).print(table)


def print_facts(title: str, rows: Iterable[tuple[str, str]]) -> None:
    """A two-column 'metric | value' table, values left-aligned (they are sentences)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    table.add_column("metric", justify="left")
    table.add_column("value", justify="left", overflow="fold")
    for label, value in rows:
        table.add_row(Text(label), Text(value))
    Console(width=max(140, shutil.get_terminal_size().columns)).print(table)


def require_root(why: str) -> None:
    """Exit with `why` unless this process runs as root."""
    if os.geteuid() != 0:
        raise SystemExit(why)


def run_and_report(
    output: Path,
    versions: dict[str, list[str]],
    run: Callable[[], dict[str, Any]],
    print_results: Callable[[dict[str, Any]], None],
) -> None:
    """Run the measurement between the machine's facts at start and end (with the versions
    of the named programs), print its tables and write it all as JSON to `output`."""
    info = machine_info({name: command_version(command) for name, command in versions.items()})
    results = run()
    close_machine_info(info)
    results["machine"] = info
    print_results(results)
    write_json(output, results)


def write_json(path: Path, results: dict[str, Any]) -> None:
    """Write the results (machine facts included by the caller) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwritten to {path}")
