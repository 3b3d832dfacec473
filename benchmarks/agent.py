#!/usr/bin/env python
"""Per-turn overhead of the agent: graph + tools + service, excluding model time.

What it does, in order:

1. Starts the control plane in its own process (uvicorn, AIPRESS_PROVIDER=memory, a fresh
   AIPRESS_HOME) and seeds tenant acme with `--sites` sites.
2. Starts the chat service in this process (uvicorn in a thread) with the offline planner
   wrapped in a timer, so the model's own time is measured and subtracted.
3. For each kind of turn (no tool; one read tool; a log query; a bill), sends `--turns`
   turns over HTTP (POST /v1/chat, one client, a new thread every 10 turns) and records
   total latency, model time and overhead (total - model). The overhead holds the HTTP
   service, token check, checkpoint writes (SQLite), graph steps, the tool's control-plane
   call(s) and serialisation.
4. Over the WebSocket, measures time from sending a message to the first streamed event
   and to the first token.
5. Prints a table and writes JSON to `--output`.

Example:
    .venv/bin/python benchmarks/agent.py
    .venv/bin/python benchmarks/agent.py --turns 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot.offline.planner import OfflinePlanner  # noqa: E402
from chatbot.service import create_app  # noqa: E402
from controlplane.auth import LocalTokenIssuer  # noqa: E402
from controlplane.permissions import Role  # noqa: E402
from controlplane.settings import Settings  # noqa: E402
from tests.live import serve  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
P95_TARGET_MS = 50.0
TURNS = {
    "no tool (help)": "hello",
    "list_sites": "list my sites",
    "query_logs": "any errors on site1 in the last hour?",
    "get_billing": "what did I spend this month?",
}


class ModelClock:
    """Seconds spent inside the model (turns run one at a time, in graph worker threads)."""

    total = 0.0
    lock = threading.Lock()


class TimedPlanner(OfflinePlanner):
    """The offline planner, timing itself."""

    def _respond(self, messages: Any, kwargs: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return super()._respond(messages, kwargs)
        finally:
            with ModelClock.lock:
                ModelClock.total += time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_control_plane(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The control plane in its own process."""
    port = _free_port()
    env = {**os.environ, "AIPRESS_PROVIDER": "memory", "AIPRESS_HOME": str(home),
           "AIPRESS_LOG_LEVEL": "WARNING", "AIPRESS_LOG_FILE": str(home / "cp.log")}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "controlplane.api.app:create_app", "--factory",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("control plane did not start")


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--sites", type=int, default=5)
    parser.add_argument("--ws-turns", type=int, default=100)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "agent.json")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="aipress-bench-agent-"))
    settings = Settings(provider="memory", home=home, log_level="WARNING",
                        log_file=home / "chat.log", chat_rate_per_minute=10**6)  # fmt: skip
    control, url = start_control_plane(home)
    results: dict[str, Any] = {}
    try:
        issuer = LocalTokenIssuer(settings)
        admin = {"Authorization": f"Bearer {issuer.issue('root', Role.ADMIN)}"}
        with httpx.Client(base_url=url, headers=admin, timeout=30) as api:
            api.post("/v1/tenants", json={"id": "acme", "name": "Acme"}).raise_for_status()
            for i in range(1, args.sites + 1):
                api.post("/v1/tenants/acme/sites",
                         json={"name": f"site{i}", "admin_email": "o@example.com"})  # fmt: skip
        token = issuer.issue("alice", Role.TENANT, ["acme"], email="alice@acme.example")
        alice = {"Authorization": f"Bearer {token}"}
        chat_settings = settings.model_copy(update={"chat_control_plane_url": url})
        with (
            serve(create_app(chat_settings, model=TimedPlanner())) as chat_url,
            httpx.Client(base_url=chat_url, headers=alice, timeout=60) as client,
        ):
            for kind, message in TURNS.items():
                totals, models = [], []
                thread = None
                for i in range(args.turns + 10):
                    ModelClock.total = 0.0
                    body: dict[str, Any] = {"message": message}
                    if thread and i % 10:
                        body["thread_id"] = thread
                    started = time.perf_counter()
                    response = client.post("/v1/chat", json=body)
                    elapsed = time.perf_counter() - started
                    response.raise_for_status()
                    thread = response.json()["thread_id"]
                    if i >= 10:  # warm-up
                        totals.append(elapsed * 1000)
                        models.append(ModelClock.total * 1000)
                overhead = [t - m for t, m in zip(totals, models, strict=True)]
                results[kind] = {
                    "turns": len(totals),
                    "total_p50_ms": round(pct(totals, 0.5), 2),
                    "total_p95_ms": round(pct(totals, 0.95), 2),
                    "model_p50_ms": round(pct(models, 0.5), 2),
                    "overhead_p50_ms": round(pct(overhead, 0.5), 2),
                    "overhead_p95_ms": round(pct(overhead, 0.95), 2),
                    "overhead_mean_ms": round(statistics.fmean(overhead), 2),
                }
            first_event, first_token = [], []
            ws_url = chat_url.replace("http://", "ws://") + "/v1/chat/ws"
            with connect(ws_url, additional_headers=alice) as ws:
                json.loads(ws.recv())
                for _ in range(args.ws_turns):
                    started = time.perf_counter()
                    ws.send(json.dumps({"type": "message", "text": "list my sites"}))
                    got_event = got_token = None
                    while True:
                        event = json.loads(ws.recv())
                        now = (time.perf_counter() - started) * 1000
                        got_event = got_event or now
                        if event["type"] == "token" and got_token is None:
                            got_token = now
                        if event["type"] == "done":
                            break
                    first_event.append(got_event)
                    first_token.append(got_token or got_event)
            results["websocket"] = {
                "turns": len(first_event),
                "first_event_p50_ms": round(pct(first_event, 0.5), 2),
                "first_event_p95_ms": round(pct(first_event, 0.95), 2),
                "first_token_p50_ms": round(pct(first_token, 0.5), 2),
                "first_token_p95_ms": round(pct(first_token, 0.95), 2),
            }
    finally:
        control.terminate()
        control.wait(timeout=20)

    print(f"{'turn':18} {'total p50':>10} {'total p95':>10} {'model p50':>10} "
          f"{'overhead p50':>13} {'overhead p95':>13}")  # fmt: skip
    for kind in TURNS:
        r = results[kind]
        print(f"{kind:18} {r['total_p50_ms']:>10} {r['total_p95_ms']:>10} {r['model_p50_ms']:>10} "
              f"{r['overhead_p50_ms']:>13} {r['overhead_p95_ms']:>13}")  # fmt: skip
    ws = results["websocket"]
    print(f"WebSocket 'list my sites': first event p50 {ws['first_event_p50_ms']} ms, "
          f"p95 {ws['first_event_p95_ms']} ms; first token p50 {ws['first_token_p50_ms']} ms, "
          f"p95 {ws['first_token_p95_ms']} ms")  # fmt: skip
    worst = max(results[k]["overhead_p95_ms"] for k in TURNS)
    verdict = "meets" if worst < P95_TARGET_MS else "misses"
    print(f"Worst overhead p95 {worst} ms {verdict} the {P95_TARGET_MS:g} ms target.")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "benchmark": "agent", "at": dt.datetime.now(dt.UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "turns_per_kind": args.turns, "target_overhead_p95_ms": P95_TARGET_MS,
        "results": results,
    }, indent=2))  # fmt: skip
    print(f"JSON: {args.output}")


if __name__ == "__main__":
    main()
