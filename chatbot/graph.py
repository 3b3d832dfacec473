"""The agent graph: agent -> (confirm ->) tools -> agent, with an interrupt before deletes.

The caller's identity reaches the tools through LangGraph's runtime context (`AgentContext`),
which is not part of the checkpointed state and never shown to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolCall, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from controlplane.kernel import clock
from controlplane.kernel.identity import Role
from prompts import load_prompt
from tools.context import AgentContext
from tools.registry import run_tool, toolset_for
from tools.results import ToolResult

HISTORY_MESSAGES = 40  # the model sees the system prompt and this many latest messages


class ChatState(MessagesState):
    """The conversation (LangGraph's add_messages reducer keeps ids and order)."""


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

    def agent(state: ChatState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        ctx = runtime.context
        prompt = SystemMessage(content=system_prompt(ctx))
        reply = bound[ctx.is_admin].invoke([prompt, *_history(state["messages"])])
        return {"messages": [reply]}

    def route(
        state: ChatState, runtime: Runtime[AgentContext]
    ) -> Literal["confirm", "tools", "__end__"]:
        calls = _unanswered(state["messages"])
        if not calls:
            return "__end__"
        specs = toolset_for(runtime.context.role)
        if any(specs[c["name"]].destructive for c in calls if c["name"] in specs):
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
                   if c["name"] in specs and specs[c["name"]].destructive]  # fmt: skip
        refused: list[ToolMessage] = []
        actions = []
        for call in pending:
            lookup = {k: v for k, v in call["args"].items() if k in ("site", "tenant_id")}
            found = run_tool("get_site", lookup, ctx, lambda _e: None, http)
            if found.status != "ok":
                refused.append(_tool_message(call, found))
                continue
            site = found.data
            needed = specs[call["name"]].site_action
            if needed is None or needed not in site["allowed_actions"]:
                # Asking to confirm what the control plane will refuse helps nobody; the
                # control plane said what this caller may do, and still decides the call.
                denied = ToolResult.failed(
                    f"the control plane does not allow your role ({ctx.role.value}) to "
                    f"{needed} site {site['name']} while it is {site['status']}",
                    http_status=403,
                )
                refused.append(_tool_message(call, denied))
                continue
            actions.append({
                "tool_call_id": call["id"], "action": call["name"], "site": site["name"],
                "tenant_id": site["tenant_id"], "url": site["url"],
                "question": f"Delete site {site['name']} of tenant {site['tenant_id']}? Its "
                "database, files and address are removed; a backup is taken first.",
            })  # fmt: skip
        if not actions:
            return Command(goto="agent", update={"messages": refused})
        answer = interrupt({"type": "confirm", "actions": actions})
        approved = isinstance(answer, dict) and answer.get("approve") is True
        if approved:
            return Command(goto="tools", update={"messages": refused})
        cancelled = [
            _tool_message(call, ToolResult(status="cancelled", error="the user cancelled"))
            for call in pending
            if call["id"] in {a["tool_call_id"] for a in actions}
        ]
        return Command(goto="tools", update={"messages": refused + cancelled})

    def tools(state: ChatState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        ctx = runtime.context
        writer = get_stream_writer()
        results = []
        for call in _unanswered(state["messages"]):
            writer({"type": "tool_start", "id": call["id"], "name": call["name"],
                    "args": call["args"]})  # fmt: skip
            result = run_tool(call["name"], call["args"], ctx, writer, http)
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
