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

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness
import httpx
from langchain_core.messages import AIMessage, BaseMessage
from websockets.sync.client import connect

from chatbot.offline.planner import OfflinePlanner
from chatbot.service import create_app
from chatbot.settings import ChatSettings
from chatbot.situation import Situation
from controlplane.kernel.auth import LocalTokenIssuer
from controlplane.kernel.identity import Role
from tests.live import serve

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

    def _respond(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]], situation: Situation | None
    ) -> AIMessage:
        started = time.perf_counter()
        try:
            return super()._respond(messages, tools, situation)
        finally:
            with ModelClock.lock:
                ModelClock.total += time.perf_counter() - started


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95 (ms) of one measure."""
    summary = harness.stats(values, digits=2)
    return {"p50": summary["p50"], "p95": summary["p95"]}


def measure_turns(client: httpx.Client, turns: int) -> dict[str, Any]:
    """Each kind of turn over POST /v1/chat: total, model time and the overhead between."""
    results: dict[str, Any] = {}
    for kind, message in TURNS.items():
        totals, models = [], []
        thread = None
        for i in range(turns + 10):
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
            "total_ms": percentiles(totals),
            "model_ms": percentiles(models),
            "overhead_ms": percentiles(overhead),
            "overhead_mean_ms": round(statistics.fmean(overhead), 2),
        }
    return results


def measure_websocket(chat_url: str, headers: dict[str, str], turns: int) -> dict[str, Any]:
    """Time from sending a message to the first streamed event and to the first token."""
    first_event, first_token = [], []
    ws_url = chat_url.replace("http://", "ws://") + "/v1/chat/ws"
    with connect(ws_url, additional_headers=headers) as ws:
        json.loads(ws.recv())
        for _ in range(turns):
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
    return {
        "turns": len(first_event),
        "first_event_ms": percentiles(first_event),
        "first_token_ms": percentiles(first_token),
    }


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per kind of turn, then the WebSocket row."""
    rows = [
        [
            kind,
            f"{r['total_ms']['p50']}",
            f"{r['total_ms']['p95']}",
            f"{r['model_ms']['p50']}",
            f"{r['overhead_ms']['p50']}",
            f"{r['overhead_ms']['p95']}",
        ]
        for kind, r in results["turns"].items()
    ]
    ws = results["websocket"]
    rows.append(
        [
            "WebSocket first event / token",
            f"{ws['first_event_ms']['p50']} / {ws['first_token_ms']['p50']}",
            f"{ws['first_event_ms']['p95']} / {ws['first_token_ms']['p95']}",
            "-",
            "-",
            "-",
        ]
    )
    return rows


def main() -> None:
    """Run the benchmark."""
    parser = harness.parser("agent", __doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--sites", type=int, default=5)
    parser.add_argument("--ws-turns", type=int, default=100)
    args = parser.parse_args()
    harness.check_counts(parser, args, positive=("turns", "ws_turns"), non_negative=("sites",))
    machine = harness.machine_info()

    home = Path(tempfile.mkdtemp(prefix="aipress-bench-agent-"))
    env = harness.aipress_environment(
        provider="memory", home=str(home), log_level="WARNING", log_file=str(home / "cp.log")
    )
    settings = ChatSettings(chat_rate_per_minute=10**6, log_file=home / "chat.log")
    results: dict[str, Any] = {}
    with harness.Server(env, home / "control-plane.out") as control:
        issuer = LocalTokenIssuer(settings)
        admin = {"Authorization": f"Bearer {issuer.issue('root', Role.ADMIN)}"}
        with httpx.Client(base_url=control.url, headers=admin, timeout=30) as api:
            api.post("/v1/tenants", json={"id": "acme", "name": "Acme"}).raise_for_status()
            for i in range(1, args.sites + 1):
                api.post("/v1/tenants/acme/sites",
                         json={"name": f"site{i}", "admin_email": "o@example.com"})  # fmt: skip
        token = issuer.issue("alice", Role.TENANT, ["acme"], email="alice@acme.example")
        alice = {"Authorization": f"Bearer {token}"}
        chat_settings = settings.model_copy(update={"chat_control_plane_url": control.url})
        with (
            serve(create_app(chat_settings, model=TimedPlanner())) as chat_url,
            httpx.Client(base_url=chat_url, headers=alice, timeout=60) as client,
        ):
            results["turns"] = measure_turns(client, args.turns)
            results["websocket"] = measure_websocket(chat_url, alice, args.ws_turns)
    harness.close_machine_info(machine)

    harness.print_table(
        f"Agent overhead per turn (ms, model time excluded), {args.turns} turns per kind",
        ["turn", "total p50", "total p95", "model p50", "overhead p50", "overhead p95"],
        table_rows(results),
    )
    worst = max(r["overhead_ms"]["p95"] for r in results["turns"].values())
    verdict = "meets" if worst < P95_TARGET_MS else "misses"
    print(f"Worst overhead p95 {worst} ms {verdict} the {P95_TARGET_MS:g} ms target.")
    harness.write_json(args.output, {
        "benchmark": "agent", "machine": machine, "parameters": harness.parameters(args),
        "target_overhead_p95_ms": P95_TARGET_MS, "worst_overhead_p95_ms": worst,
        "results": results,
    })  # fmt: skip


if __name__ == "__main__":
    main()
