"""The one shape every tool returns: status, data, and an error the model can act on."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# awaiting_confirmation: an MCP destructive call that previewed and waits for its second call.
ToolStatus = Literal["ok", "error", "cancelled", "unavailable", "running", "awaiting_confirmation"]


class ToolResult(BaseModel):
    """A tool's structured answer (serialised as the ToolMessage content)."""

    status: ToolStatus
    data: Any = None
    error: str | None = Field(
        default=None, description="What went wrong, with the control plane's own message"
    )
    http_status: int | None = None
    request: str | None = Field(default=None, description="The API call that failed")

    def to_content(self) -> str:
        """JSON for the ToolMessage."""
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def ok(cls, data: Any) -> ToolResult:
        """A success."""
        return cls(status="ok", data=data)

    @classmethod
    def failed(
        cls, error: str, *, http_status: int | None = None, request: str | None = None
    ) -> ToolResult:
        """A failure with the message that says what to fix."""
        return cls(status="error", error=error, http_status=http_status, request=request)
