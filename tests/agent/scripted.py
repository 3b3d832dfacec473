"""A chat model that emits exactly the tool calls a test scripts: the stand-in for a model
that has been talked into trying something."""

from __future__ import annotations

import json
import uuid
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from pydantic import Field

from chatbot.offline.planner import SchemaReadingModel
from chatbot.situation import Situation


class ScriptedModel(SchemaReadingModel):
    """Each human turn pops the next list of tool calls; after tool results it echoes them."""

    script: list[list[tuple[str, dict[str, Any]]]] = Field(default_factory=list)
    seen_tools: list[list[str]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _respond(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]], situation: Situation | None
    ) -> AIMessage:
        self.seen_tools.append([t["function"]["name"] for t in tools])
        if isinstance(messages[-1], ToolMessage):
            results = [json.loads(str(m.content)) for m in messages if isinstance(m, ToolMessage)]
            reply = AIMessage(content="results: " + json.dumps(results[-5:]))
        else:
            calls = self.script.pop(0) if self.script else []
            reply = AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": n,
                        "args": a,
                        "id": f"call_{uuid.uuid4().hex[:8]}",
                        "type": "tool_call",
                    }
                    for n, a in calls
                ],
            )
        return reply
