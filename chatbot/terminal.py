"""`aipress chat`: the agent in a terminal, over the same WebSocket the widget uses."""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from websockets.sync.client import ClientConnection, connect

from chatbot.typed_answers import typed_answer

Answer = Callable[[str], str]  # asks the question, returns what the person typed
AskSecret = Callable[[str], str]
AskPath = Callable[[str], str]


def ws_url(http_url: str) -> str:
    """The chat WebSocket of a chatbot base URL."""
    return http_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/v1/chat/ws"


class TerminalChat:
    """Sends messages, prints streamed events, and sends what is typed at a confirmation
    as the answer ("yes", "no, keep it"; anything else is reminded of what waits)."""

    def __init__(
        self,
        url: str,
        token: str,
        console: Console,
        answer: Answer,
        ask_secret: AskSecret = getpass.getpass,
        ask_path: AskPath = input,
    ) -> None:
        self.console = console
        self.ask_answer = answer
        self.ask_secret = ask_secret  # a secret's value is read unechoed, never sent as chat
        self.ask_path = ask_path  # an import's export file, uploaded from here, never as chat
        self.url, self.token = url.rstrip("/"), token
        self.thread_id: str | None = None
        self._ws: ClientConnection = connect(
            ws_url(url), additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10
        ).__enter__()  # closed by close(); the session outlives any one `with` block
        ready = self._recv()
        if ready.get("type") != "ready":
            raise RuntimeError(ready.get("detail", "the chat service refused the connection"))

    def _answer(self, interrupt: dict[str, Any]) -> None:
        """Ask for the answer; a card that needs values (a secret, an export file) takes them
        here after a yes, and everything else typed goes to the chat service as the answer."""
        question = " ".join(action["question"] for action in interrupt["actions"])
        typed = self.ask_answer(f"{question} [yes/no]")
        if not any(a.get("input") for a in interrupt["actions"]) or not typed_answer(typed):
            self._ws.send(json.dumps({"type": "message", "text": typed or "no",
                                      "thread_id": interrupt["thread_id"]}))  # fmt: skip
            return
        approve = True
        frame: dict[str, Any] = {"type": "resume", "thread_id": interrupt["thread_id"],
                                 "approve": approve}  # fmt: skip
        secrets = {
            action["tool_call_id"]: self.ask_secret(f"Value of {action['variable']} (not shown): ")
            for action in interrupt["actions"]
            if approve and action.get("input") == "secret"
        }
        if secrets:
            frame["secrets"] = secrets
        uploads = {}
        for action in interrupt["actions"]:
            if approve and action.get("input") == "file":
                operation = self._upload(action)
                if operation is None:
                    frame["approve"] = False
                    break
                uploads[action["tool_call_id"]] = operation
        if uploads and frame["approve"]:
            frame["uploads"] = uploads
        self._ws.send(json.dumps(frame))

    def _upload(self, action: dict[str, Any]) -> str | None:
        """Upload the export the card asks for (through the chat service's proxy, with this
        token); the import's operation id, or None (said why) if there is none."""
        named = self.ask_path("Export to import (.tar.gz, or .sql / .sql.gz): ").strip()
        path = Path(named).expanduser()
        if not path.is_file():
            self.console.print(f"[red]No file {named!r}: nothing was imported.[/red]")
            return None
        field = "dump" if re.search(r"\.sql(\.gz)?$", path.name, re.I) else "archive"
        with path.open("rb") as export:
            response = httpx.post(
                f"{self.url}/api{action['upload']['path']}", data=action["upload"]["fields"],
                files={field: (path.name, export)}, timeout=httpx.Timeout(60, write=None),
                headers={"Authorization": f"Bearer {self.token}"},
            )  # fmt: skip
        if response.status_code != 202:
            detail = response.json().get("detail", response.text) if response.content else ""
            self.console.print(f"[red]The import was refused ({response.status_code}): "
                               f"{detail}[/red]", markup=False)  # fmt: skip
            return None
        return str(response.json()["operation"]["id"])

    def close(self) -> None:
        """Close the socket."""
        self._ws.close()

    def _recv(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(self._ws.recv())
        return frame

    def send(self, text: str, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """One user message; returns every event of the turn (and of any confirmation)."""
        frame: dict[str, Any] = {"type": "message", "text": text}
        if self.thread_id:
            frame["thread_id"] = self.thread_id
        if tenant_id:
            frame["tenant_id"] = tenant_id
        self._ws.send(json.dumps(frame))
        return self._follow()

    def _follow(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        streaming = False
        answering: dict[str, Any] | None = None
        while True:
            event = self._recv()
            events.append(event)
            kind = event["type"]
            if kind == "thread":
                self.thread_id = event["thread_id"]
                answering = None  # the answer was taken
            elif kind == "token":
                if not streaming:
                    self.console.print("[bold cyan]aipress>[/bold cyan] ", end="")
                    streaming = True
                self.console.print(event["text"], end="", markup=False, highlight=False)
            elif kind == "message" and streaming:
                self.console.print()
                streaming = False
            elif kind == "message" and event["message"]["content"]:  # not streamed: a reminder
                self.console.print("[bold cyan]aipress>[/bold cyan] ", end="")
                self.console.print(event["message"]["content"], markup=False, highlight=False)
            elif kind == "tool_start":
                args = ", ".join(f"{k}={v!r}" for k, v in event["args"].items())
                self.console.print(f"  [dim]→ {event['name']}({args})[/dim]")
            elif kind == "progress" and event.get("step"):
                self.console.print(f"    [dim]· {event['message']}[/dim]")
            elif kind == "tool_end":
                mark = "[green]✓[/green]" if event["status"] == "ok" else "[yellow]![/yellow]"
                self.console.print(f"  {mark} [dim]{event['name']}: {event['status']}[/dim]")
            elif kind == "interrupt":
                answering = event
                self._answer(event)
            elif kind == "error":
                self.console.print(f"[red]Error {event['status']}:[/red] {event['detail']}")
                if answering is None or event["status"] >= 500:
                    return events
                self._answer(answering)  # the answer was refused: nothing changed, ask again
            elif kind == "done":
                if streaming:
                    self.console.print()
                if not any(e["type"] == "interrupt" for e in events[-3:]):
                    return events
