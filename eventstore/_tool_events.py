"""Events of tool calls and agent tasks: tool calls, streamed output, agent messages, token usage.

Part of the event catalogue; import these from `smithers.eventstore.events`, which
re-exports every event (the tag on disk is the class name, not the module).
"""

from __future__ import annotations

import msgspec  # noqa: TC002 (msgspec resolves Struct annotations at run time)

from ._event_base import NULL_RAW, AttemptEvent, ErrorInfo

__all__ = ("AgentEvent", "NodeOutput", "TokenUsageReported", "ToolCallFinished", "ToolCallStarted")


# --------------------------------------------------------------------------- tools


class ToolCallStarted(AttemptEvent, frozen=True, kw_only=True):
    """A tool call of an attempt began, journaled before the tool does anything.

    Built-in tools (`read`, `write`, `edit`, `grep`, `bash`) and user tools alike.
    """

    tool_name: str
    """Name of the called tool."""
    seq: int
    """Sequential counter of tool calls within the attempt, from 1."""
    arguments: msgspec.Raw = NULL_RAW
    """The call's arguments as a JSON object (JSON null when not recorded)."""
    call_id: str | None = None
    """The model's id of the call (an agent's tool call), None for a direct call."""


class ToolCallFinished(AttemptEvent, frozen=True, kw_only=True):
    """A tool call of an attempt ended, with its outcome and cost."""

    tool_name: str
    """Name of the called tool."""
    seq: int
    """Sequential counter of tool calls within the attempt (as in ToolCallStarted)."""
    status: str
    """Outcome of the call: ``"success"`` or ``"error"``."""
    result_size_bytes: int = 0
    """Size of the result's JSON encoding, in bytes (0 on error)."""
    duration_ms: int = 0
    """Wall-clock time the call took, in milliseconds."""
    error: ErrorInfo | None = None
    """The failure, when `status` is ``"error"``."""
    result: msgspec.Raw = NULL_RAW
    """The result as JSON (already capped at the sandbox's ``max_output_bytes``), so a
    resumed attempt can replay a side-effecting call instead of running it again; JSON
    null on error."""
    call_id: str | None = None
    """The model's id of the call (as in ToolCallStarted), None for a direct call."""


class NodeOutput(AttemptEvent, frozen=True, kw_only=True):
    """Streaming text from an agent, coalesced (at most ~2 events per second per attempt)."""

    text: str
    """The text chunk."""
    stream: str
    """Which stream the text came from, e.g. ``"stdout"`` or ``"stderr"``."""


class AgentEvent(AttemptEvent, frozen=True, kw_only=True):
    """A structured event reported by an agent engine during an attempt."""

    engine: str
    """Agent engine that reported it, e.g. ``"claude-code"``."""
    event: msgspec.Raw = NULL_RAW
    """The engine's event as JSON."""


class TokenUsageReported(AttemptEvent, frozen=True, kw_only=True):
    """An agent attempt reported model token usage."""

    model: str
    """Model id."""
    agent: str
    """Agent that used the tokens."""
    input_tokens: int
    """Prompt tokens."""
    output_tokens: int
    """Completion tokens."""
    cache_read_tokens: int | None = None
    """Prompt tokens read from the provider's cache, when reported."""
    cache_write_tokens: int | None = None
    """Prompt tokens written to the provider's cache, when reported."""
    reasoning_tokens: int | None = None
    """Reasoning tokens, when reported."""
