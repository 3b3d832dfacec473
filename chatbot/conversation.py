"""One chat turn as a stream of events, shared by HTTP, WebSocket and the tests.

Events (JSON objects with a `type`): `thread`, `token`, `tool_start`, `tool_end`,
`progress` (an operation's step events, relayed), `message` (a finished assistant message),
`interrupt` (confirmation needed), `answered` (a typed yes or no took the confirmation), `done`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, Interrupt, StreamMode

from chatbot.graph import STEP_LIMIT, build_graph
from chatbot.models import make_model
from chatbot.settings import ChatSettings
from chatbot.store import ThreadStore, open_checkpointer
from chatbot.typed_answers import reminder, typed_answer
from chatbot.upstream import ServiceIdentity, identity_for, sync_client
from controlplane.kernel.identity import Principal
from tools.context import AgentContext, scoped_tenant
from tools.registry import import_started, submit_secret

Event = dict[str, Any]
STREAM_MODES: list[StreamMode] = ["messages", "custom", "updates"]


class Busy(Exception):
    """A turn is already running in this thread."""


class NothingToResume(Exception):
    """Resume was asked for a thread that waits for no confirmation."""


class TenantMismatch(Exception):
    """A thread was continued for a tenant other than its own."""


class SecretRefused(Exception):
    """A confirmation card's secret was missing or the control plane refused it (`status`:
    its answer); nothing changed and the confirmation still waits."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class UploadRefused(SecretRefused):
    """A confirmation card's upload does not match what it asked for (`status`: why);
    nothing resumes and the confirmation still waits."""


def message_json(message: BaseMessage) -> dict[str, Any]:
    """A message as the API shows it (never the planner's internal notes)."""
    if isinstance(message, HumanMessage):
        return {"id": message.id, "role": "user", "content": message.content}
    if isinstance(message, ToolMessage):
        return {"id": message.id, "role": "tool", "name": message.name,
                "tool_call_id": message.tool_call_id, "content": message.content}  # fmt: skip
    calls = [
        {"id": c["id"], "name": c["name"], "args": c["args"]}
        for c in (message.tool_calls if isinstance(message, AIMessage) else [])
    ]
    return {"id": message.id, "role": "assistant", "content": message.content, "tool_calls": calls}


class ChatEngine:
    """The graph, its checkpointer, thread owners and the HTTP pool the tools share."""

    def __init__(
        self,
        settings: ChatSettings,
        model: BaseChatModel | None = None,
        identity: ServiceIdentity | None = None,
    ) -> None:
        self.settings = settings
        self.identity = identity or identity_for(settings)
        self.http = sync_client(settings, self.identity, timeout=30)
        self.checkpointer, self._close_checkpointer = open_checkpointer(
            settings.chat_checkpoint_url
        )
        self.threads = ThreadStore(settings.chat_checkpoint_url)
        self.graph = build_graph(model or make_model(settings), self.checkpointer, self.http)
        self._running: set[str] = set()
        self._running_lock = threading.Lock()

    def close(self) -> None:
        """Release connections."""
        self.http.close()
        self.threads.close()
        self._close_checkpointer()

    def context(
        self,
        principal: Principal,
        token: str,
        *,
        tenant_id: str | None = None,
        request_id: str | None = None,
    ) -> AgentContext:
        """The runtime context of a turn (raises PermissionError for a tenant not in the token)."""
        return AgentContext(
            token=token,
            principal=principal,
            control_plane_url=self.settings.tools_base_url,
            tenant_id=scoped_tenant(principal, tenant_id),
            request_id=request_id,
            operation_wait_seconds=self.settings.chat_operation_wait_seconds,
        )

    def _config(self, thread_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id}, "recursion_limit": STEP_LIMIT}

    @contextmanager
    def _exclusive(self, thread_id: str) -> Iterator[None]:
        with self._running_lock:
            if thread_id in self._running:
                raise Busy(f"a turn is already running in thread {thread_id}; wait for it")
            self._running.add(thread_id)
        try:
            yield
        finally:
            with self._running_lock:
                self._running.discard(thread_id)

    def pending_interrupt(self, thread_id: str) -> dict[str, Any] | None:
        """The confirmation a thread waits for, if any."""
        state = self.graph.get_state(self._config(thread_id))
        for item in state.interrupts:
            return {**item.value, "type": "interrupt", "id": item.id, "thread_id": thread_id}
        return None

    def history(self, thread_id: str) -> list[dict[str, Any]]:
        """Every message of a thread."""
        state = self.graph.get_state(self._config(thread_id))
        return [message_json(m) for m in state.values.get("messages", [])]

    def open_thread(self, ctx: AgentContext, thread_id: str | None, first_message: str) -> str:
        """The caller's existing thread (ThreadNotFound otherwise) or a new one."""
        owner = ctx.principal.key
        if thread_id is None:
            return self.threads.create(
                owner_key=owner, owner_sub=ctx.principal.sub, tenant_id=ctx.tenant_id,
                first_message=first_message,
            )  # fmt: skip
        thread = self.threads.get(thread_id, owner_key=owner)
        if thread.tenant_id != ctx.tenant_id:
            # A thread acts for one tenant: its pending confirmation names that tenant, and a
            # resume runs with it. Another tenant means another thread.
            raise TenantMismatch(
                f"thread {thread_id} acts for tenant {thread.tenant_id}; "
                "start a new thread for another tenant"
            )
        return thread_id

    def turn(
        self,
        ctx: AgentContext,
        thread_id: str,
        *,
        message: str | None = None,
        approve: bool | None = None,
        secrets: dict[str, str] | None = None,
        uploads: dict[str, str] | None = None,
    ) -> Iterator[Event]:
        """Run one turn (a new message, or the answer to a confirmation, with the values its
        card asked for by tool call id in `secrets` and the operations its file uploads
        started in `uploads`) and stream events."""
        self.threads.get(thread_id, owner_key=ctx.principal.key)
        graph_input: Any
        if message is not None:
            waiting = self.pending_interrupt(thread_id)
            if waiting is not None:
                yield from self._typed(ctx, thread_id, waiting, message)
                return
            graph_input = {"messages": [HumanMessage(content=message)]}
        else:
            if self.pending_interrupt(thread_id) is None:
                raise NothingToResume(f"thread {thread_id} is not waiting for a confirmation")
        with self._exclusive(thread_id):
            if message is None:
                started = (
                    {**self._submit_secrets(ctx, thread_id, secrets or {}),
                     **self._check_uploads(ctx, thread_id, uploads or {})}
                    if approve else {}
                )  # fmt: skip
                graph_input = Command(resume={"approve": bool(approve), "started": started})
            yield {"type": "thread", "thread_id": thread_id}
            config = self._config(thread_id)
            pending: list[Event] = []
            for mode, payload in self.graph.stream(
                graph_input, config, context=ctx, stream_mode=STREAM_MODES
            ):
                if mode == "updates" and isinstance(payload, dict) and "__interrupt__" in payload:
                    items: tuple[Interrupt, ...] = payload["__interrupt__"]
                    pending += [
                        {**item.value, "type": "interrupt", "id": item.id, "thread_id": thread_id}
                        for item in items
                    ]
                    continue
                yield from self._events(mode, payload)
            self.threads.touch(thread_id)
            yield from pending
            yield {"type": "done", "thread_id": thread_id}

    def _typed(
        self, ctx: AgentContext, thread_id: str, waiting: Event, message: str
    ) -> Iterator[Event]:
        """A message typed while a confirmation waits: a clear yes or no answers it as the
        buttons would (a card that asks for a value takes it only in the card); anything else
        gets a reminder of what waits, and nothing changes."""
        approve = typed_answer(message)
        needs_input = any(a.get("input") for a in waiting.get("actions", []))
        if approve is None or (approve and needs_input):
            text = reminder(waiting, approve)
            yield {"type": "thread", "thread_id": thread_id}
            said: dict[str, Any] = {
                "id": None,
                "role": "assistant",
                "content": text,
                "tool_calls": [],
            }
            yield {"type": "message", "message": said}
            yield waiting
            yield {"type": "done", "thread_id": thread_id}
            return
        yield {"type": "answered", "thread_id": thread_id, "approve": approve}
        yield from self.turn(ctx, thread_id, approve=approve)

    def _submit_secrets(
        self, ctx: AgentContext, thread_id: str, secrets: dict[str, str]
    ) -> dict[str, str]:
        """Send each secret the pending confirmation asks for straight to the control plane,
        before the graph resumes: the value never enters the graph, its checkpoints or the
        model. Answers the started operations by tool call id."""
        pending = self.pending_interrupt(thread_id) or {}
        asked = [a for a in pending.get("actions", []) if a.get("input") == "secret"]
        missing = [a["variable"] for a in asked if not secrets.get(a["tool_call_id"])]
        if missing:
            raise SecretRefused(
                422, f"type the value of {', '.join(missing)} into the confirmation card"
            )
        started = {}
        for action in asked:
            saved = submit_secret(action, secrets[action["tool_call_id"]], ctx, self.http)
            if saved.status != "ok":
                raise SecretRefused(
                    saved.http_status or 502, f"{action['variable']}: {saved.error}"
                )
            started[action["tool_call_id"]] = str(saved.data)
        return started

    def _check_uploads(
        self, ctx: AgentContext, thread_id: str, uploads: dict[str, str]
    ) -> dict[str, str]:
        """The operations the card's uploads started, by tool call id: each must answer an
        action that asked for a file, and be that site's import as the caller sees it."""
        pending = self.pending_interrupt(thread_id) or {}
        asked = {
            a["tool_call_id"]: a for a in pending.get("actions", []) if a.get("input") == "file"
        }
        started = {}
        for call_id, operation_id in uploads.items():
            action = asked.get(call_id)
            if action is None:
                raise UploadRefused(422, f"no file was asked for by tool call {call_id}")
            found = import_started(action, operation_id, ctx, self.http)
            if found.status != "ok":
                raise UploadRefused(found.http_status or 502, str(found.error))
            started[call_id] = operation_id
        return started

    def _events(self, mode: str, payload: Any) -> Iterator[Event]:
        if mode == "messages":
            chunk, meta = payload
            if (
                isinstance(chunk, AIMessageChunk)
                and meta.get("langgraph_node") == "agent"
                and isinstance(chunk.content, str)
                and chunk.content
            ):
                yield {"type": "token", "text": chunk.content}
        elif mode == "custom":
            yield dict(payload)
        elif mode == "updates":
            for node, update in payload.items():
                if node == "agent" and update:
                    for msg in update.get("messages", []):
                        yield {"type": "message", "message": message_json(msg)}
