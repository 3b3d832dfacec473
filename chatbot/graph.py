"""The agent graph: agent -> (confirm ->) tools -> agent, with an interrupt before each
destructive call (deletes, env changes).

The caller's identity reaches the tools through LangGraph's runtime context (`AgentContext`),
which is not part of the checkpointed state and never shown to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolCall, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from chatbot.situation import SITUATION_KWARG, situation_of
from controlplane.kernel import clock
from controlplane.kernel.identity import Role
from prompts import load_prompt
from tools.context import AgentContext
from tools.registry import confirmation, run_tool, toolset_for
from tools.results import ToolResult

HISTORY_MESSAGES = 40
# Graph steps one turn may take (LangGraph's own default is ten thousand): a model that
# keeps calling tools is stopped by the agent node well before that.
STEP_LIMIT = 25
# A call needs the steps after the agent's: confirm, tools, and the agent again to answer.
STEPS_PER_CALL = 3
STEP_LIMIT_ANSWER = (
    "I went round in circles on this one and stopped before doing anything more. Nothing else "
    "was changed; could you say again what you need, perhaps in other words?"
)
# What a card that asks for something (its action's `input`) answers when it was not sent.
NOT_SENT = {
    "secret": "nothing changed: the secret's value was not sent",
    "file": "nothing changed: no file was uploaded",
}  # the model sees the system prompt and this many latest messages


def _merge(old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    return {**old, **new}


class ChatState(MessagesState):
    """The conversation (LangGraph's add_messages reducer keeps ids and order), and the
    operations confirmation cards started, by tool call (ids only, never a value)."""

    started: Annotated[dict[str, str], _merge]
    remaining_steps: RemainingSteps


def system_prompt(ctx: AgentContext) -> str:
    """The role's prompt, filled from the verified token."""
    principal = ctx.principal
    common = {"email": principal.email, "sub": principal.sub,
              "today": clock.today().isoformat(),
              "tools": list(toolset_for(principal.role).values())}  # fmt: skip
    if principal.is_admin:
        return load_prompt("admin", **common)
    return load_prompt(
        "tenant",
        role=principal.role.value,
        tenant_id=ctx.tenant_id,
        read_only=principal.role is Role.VIEWER,
        **common,
    )


def _history(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The latest messages, never starting on a tool result whose call was cut off."""
    recent = list(messages[-HISTORY_MESSAGES:])
    while recent and isinstance(recent[0], ToolMessage):
        recent = recent[1:]
    return recent


def _unanswered(messages: Sequence[BaseMessage]) -> list[ToolCall]:
    """Tool calls of the last assistant message that have no result yet."""
    answered = set()
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            answered.add(message.tool_call_id)
        elif isinstance(message, AIMessage):
            return [c for c in message.tool_calls if c["id"] not in answered]
    return []


def build_graph(
    model: BaseChatModel,
    checkpointer: BaseCheckpointSaver[Any] | None,
    http: httpx.Client | None = None,
) -> CompiledStateGraph[ChatState, AgentContext, ChatState, ChatState]:
    """Compile the agent graph around a chat model and a checkpointer."""
    bound = {
        admin: model.bind_tools(
            [spec.schema() for spec in toolset_for(Role.ADMIN if admin else Role.TENANT).values()]
        )
        for admin in (True, False)
    }
    situated = bool(getattr(model, "reads_situation", False))

    def agent(state: ChatState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        ctx = runtime.context
        prompt = SystemMessage(content=system_prompt(ctx))
        # A local model reads who is asking from this, never from the prompt's wording.
        told: dict[str, Any] = {SITUATION_KWARG: situation_of(ctx)} if situated else {}
        reply = bound[ctx.is_admin].invoke([prompt, *_history(state["messages"])], None, **told)
        if (
            isinstance(reply, AIMessage)
            and reply.tool_calls
            and state["remaining_steps"] <= STEPS_PER_CALL
        ):
            # Like react-agent's IsLastStep: a turn that keeps calling tools ends politely.
            reply = AIMessage(id=reply.id, content=STEP_LIMIT_ANSWER)
        return {"messages": [reply]}

    def route(
        state: ChatState, runtime: Runtime[AgentContext]
    ) -> Literal["confirm", "tools", "__end__"]:
        calls = _unanswered(state["messages"])
        if not calls:
            return "__end__"
        specs = toolset_for(runtime.context.role)
        if any(specs[c["name"]].asks(c["args"]) for c in calls if c["name"] in specs):
            return "confirm"
        return "tools"

    def confirm(
        state: ChatState, runtime: Runtime[AgentContext]
    ) -> Command[Literal["tools", "agent"]]:
        """Ask the human; nothing destructive happens before the answer (this node re-runs on
        resume, so it only reads)."""
        ctx = runtime.context
        specs = toolset_for(ctx.role)
        pending = [c for c in _unanswered(state["messages"])
                   if c["name"] in specs and specs[c["name"]].asks(c["args"])]  # fmt: skip
        refused: list[ToolMessage] = []
        actions = []
        for call in pending:
            asked = confirmation(call["name"], call["args"], ctx, http)
            if asked.status == "ok":
                actions.append({"tool_call_id": call["id"], **asked.data})
            else:
                refused.append(_tool_message(call, asked))
        if not actions:
            return Command(goto="agent", update={"messages": refused})
        answer = interrupt({"type": "confirm", "actions": actions})
        approved = isinstance(answer, dict) and answer.get("approve") is True
        # A secret's value went from the card to the control plane before the resume, and an
        # import's file from the widget to the import endpoint; the answer carries only the
        # operations that started (ChatEngine.turn).
        started = answer.get("started", {}) if approved else {}
        not_done = {
            a["tool_call_id"]: "the user cancelled" if not approved else NOT_SENT[a["input"]]
            for a in actions
            if not approved or (a.get("input") in NOT_SENT and a["tool_call_id"] not in started)
        }  # fmt: skip
        cancelled = [
            _tool_message(call, ToolResult(status="cancelled", error=not_done[call["id"]]))
            for call in pending
            if call["id"] in not_done
        ]
        return Command(goto="tools", update={"messages": refused + cancelled, "started": started})

    def tools(state: ChatState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        ctx = runtime.context
        writer = get_stream_writer()
        results = []
        for call in _unanswered(state["messages"]):
            writer({"type": "tool_start", "id": call["id"], "name": call["name"],
                    "args": call["args"]})  # fmt: skip
            started = state.get("started", {}).get(call["id"] or "")
            result = run_tool(call["name"], call["args"], ctx, writer, http, started)
            writer({"type": "tool_end", "id": call["id"], "name": call["name"],
                    "status": result.status, "error": result.error,
                    "data": result.data})  # fmt: skip
            results.append(_tool_message(call, result))
        return {"messages": results}

    graph = StateGraph(ChatState, context_schema=AgentContext)
    graph.add_node("agent", agent)
    graph.add_node("confirm", confirm)
    graph.add_node("tools", tools)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["confirm", "tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)


def _tool_message(call: ToolCall, result: ToolResult) -> ToolMessage:
    return ToolMessage(
        content=result.to_content(),
        tool_call_id=call["id"],
        name=call["name"],
        status="error" if result.status == "error" else "success",
    )
