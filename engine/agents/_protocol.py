"""The agent protocol: what an agent task hands an agent, and what it gets back.

As Smithers' agent interface (DESIGN §8): an agent is anything with
``async generate(request) -> AgentResult`` — duck-typed (`Agent` is a
`typing.Protocol`), so a test agent is a small class. The engine builds one
`AgentRequest` per call: the prompt (or the conversation to continue), the output's JSON
schema, the tools and their sandbox, the limits, the attempt's last heartbeat payload,
an abort signal, and callbacks that record what the agent streams. The agent answers
with an `AgentResult`: its text, its parsed output when it has one, the conversation,
usage and the finish reason. The engine validates the output and, when it does not fit,
calls `generate` again with the conversation and a repair prompt (`SCHEMA_REPAIR_TURNS`).

Durability goes through `AgentRequest.journal` (`AgentJournal`): model agents record
each model request and response there and ask it first for a recorded response, so a
resumed attempt replays the paid work of the attempt a crash interrupted instead of
paying for it again; tools called through `AgentRequest.call_tool` are journaled and
replayed the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio
import msgspec

from ..authoring import AGENT_HEARTBEAT_TIMEOUT_MS

if TYPE_CHECKING:
    from ..tools import Tool, ToolContext
    from ._journal import AgentJournal

__all__ = (
    "DEFAULT_AGENT_HEARTBEAT_TIMEOUT_MS",
    "DEFAULT_AGENT_RETRIES",
    "Agent",
    "AgentRequest",
    "AgentResult",
    "AgentUsage",
    "agent_id_of",
    "engine_of",
)

DEFAULT_AGENT_RETRIES = 2
"""Extra attempts of an agent task unless its ``retries=`` says otherwise (Smithers)."""
DEFAULT_AGENT_HEARTBEAT_TIMEOUT_MS = AGENT_HEARTBEAT_TIMEOUT_MS
"""An agent attempt silent for this long (no streamed event, no heartbeat) fails with
``TASK_HEARTBEAT_TIMEOUT``, in ms (10 minutes)."""


class AgentUsage(msgspec.Struct, frozen=True, kw_only=True):
    """Token usage of one model response (or a whole call), as ``TokenUsageReported``."""

    model: str = ""
    """Model id, e.g. ``"gpt-4o-mini"``."""
    input_tokens: int = 0
    """Prompt tokens."""
    output_tokens: int = 0
    """Completion tokens."""
    cache_read_tokens: int | None = None
    """Prompt tokens read from the provider's cache, when reported."""
    cache_write_tokens: int | None = None
    """Prompt tokens written to the provider's cache, when reported."""
    reasoning_tokens: int | None = None
    """Reasoning tokens, when reported."""


class AgentResult(msgspec.Struct, kw_only=True):
    """What one `generate` call returns.

    The engine validates `output` when it is set, else extracts JSON from `text`
    (whole text, last fenced json block, last balanced object).
    """

    text: str = ""
    """The final reply's text ("" when the reply was structured only)."""
    output: Any = None
    """The parsed structured output (a dict or any object msgspec can read), when the
    agent produced one natively; None to have the engine parse `text`."""
    messages: list[Any] = msgspec.field(default_factory=list)
    """The whole conversation as JSON values, passed back as `AgentRequest.messages`
    for a repair turn; the format is the agent's own."""
    usage: AgentUsage | None = None
    """Total usage of the call; recorded by the engine only if the agent reported none
    through the journal during the call."""
    finish_reason: str | None = None
    """Why the model stopped, e.g. ``"stop"``, ``"tool_calls"``, ``"length"``."""


class AgentRequest:
    """Everything one `generate` call gets (built by the engine, read by the agent).

    Attributes:
        prompt: The user prompt of this call: the task's prompt, or a repair prompt.
        messages: The conversation to continue (a previous `AgentResult.messages`), or
            None to start one.
        output_type: The task's output type (a msgspec Struct type, or ``dict``).
        output_schema: Its JSON schema (msgspec's, `output_json_schema`), None for
            ``dict``.
        instructions: The prompt contract for agents without native structured output:
            "answer with one JSON object matching this schema" (`output_instructions`).
        tools: The tools the agent may call (the task's ``tools=`` filtered by
            ``allow_tools=``).
        tool_context: The sandbox and journal tool calls run in.
        root_dir: The sandbox root (absolute path).
        max_output_bytes: Cap of one tool call's output, in bytes.
        tool_timeout_ms: Limit of one tool call, in ms.
        timeout_ms: The task's attempt timeout in ms, or None.
        heartbeat_timeout_ms: Silence after which the attempt fails, in ms, or None.
        last_heartbeat: The payload of the node's last recorded heartbeat (any attempt;
            e.g. a CLI session id to resume), or None.
        abort: Set when the attempt is cancelled or times out; long calls may watch it.
        journal: Records model requests/responses, usage, text and events, and hands
            out recorded responses to replay (`AgentJournal`).
        run_id, node_id, iteration, attempt: Where the call belongs.
        idempotency_key: The attempt's key for side effects outside the run.
        repair_turn: 0 for the first call of an attempt, then 1..`SCHEMA_REPAIR_TURNS`.
    """

    __slots__ = (
        "abort",
        "attempt",
        "heartbeat_timeout_ms",
        "idempotency_key",
        "instructions",
        "iteration",
        "journal",
        "last_heartbeat",
        "max_output_bytes",
        "messages",
        "node_id",
        "output_schema",
        "output_type",
        "prompt",
        "repair_turn",
        "root_dir",
        "run_id",
        "timeout_ms",
        "tool_context",
        "tool_timeout_ms",
        "tools",
    )

    def __init__(
        self,
        *,
        prompt: str,
        output_type: Any,
        output_schema: dict[str, Any] | None,
        instructions: str,
        tools: tuple[Tool, ...],
        tool_context: ToolContext,
        journal: AgentJournal,
        messages: list[Any] | None = None,
        timeout_ms: int | None = None,
        heartbeat_timeout_ms: int | None = None,
        last_heartbeat: Any = None,
        abort: anyio.Event | None = None,
        idempotency_key: str = "",
        repair_turn: int = 0,
    ) -> None:
        self.prompt = prompt
        self.messages = messages
        self.output_type = output_type
        self.output_schema = output_schema
        self.instructions = instructions
        self.tools = tools
        self.tool_context = tool_context
        self.root_dir = str(tool_context.root_dir)
        self.max_output_bytes = tool_context.max_output_bytes
        self.tool_timeout_ms = tool_context.tool_timeout_ms
        self.timeout_ms = timeout_ms
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self.last_heartbeat = last_heartbeat
        self.abort = abort if abort is not None else anyio.Event()
        self.journal = journal
        self.run_id = tool_context.run_id
        self.node_id = tool_context.node_id
        self.iteration = tool_context.iteration
        self.attempt = tool_context.attempt
        self.idempotency_key = idempotency_key
        self.repair_turn = repair_turn

    def on_text(self, chunk: str) -> None:
        """Report streamed text; it reaches ``on_progress`` as coalesced `NodeOutput`."""
        self.journal.text(chunk)

    def on_event(self, kind: str, payload: Any = None) -> None:
        """Record an agent event (``AgentEvent`` with ``{"type": kind, ...payload}``)."""
        self.journal.event(kind, payload)

    def heartbeat(self, data: Any = None) -> None:
        """Report liveness, with a JSON payload kept as the attempt's last heartbeat."""
        self.journal.heartbeat(data)

    def tool(self, name: str) -> Tool | None:
        """The tool of this request named `name`, or None."""
        for tool in self.tools:
            if tool.name == name:
                return tool
        return None

    async def call_tool(self, name: str, arguments: Any, *, call_id: str | None = None) -> Any:
        """Call one of the request's tools in the sandbox, journaled; replay if recorded.

        When the interrupted attempt this one resumes recorded a successful result for
        `call_id`, that result is returned and the tool is not run again (side-effecting
        tools are never re-executed once their result is in the log).

        Args:
            name: The tool's name.
            arguments: The call's arguments (a JSON object).
            call_id: The model's id of this call (stable across a replay, since the
                response that asked for it is replayed verbatim); None: not replayable.

        Returns:
            The tool's result (a JSON value).

        Raises:
            ToolArgumentsError: if no tool of that name is allowed (``INVALID_INPUT``)
                or the arguments do not fit its schema.
            ToolError: whatever the tool raises.
        """
        from ..tools import ToolArgumentsError

        tool = self.tool(name)
        if tool is None:
            allowed = ", ".join(t.name for t in self.tools) or "none"
            raise ToolArgumentsError(name, f"no such tool for this task (allowed: {allowed})")
        if call_id is not None:
            found, value = self.journal.replayed_tool_result(call_id)
            if found:
                return value
        return await tool.call(self.tool_context, arguments, call_id=call_id)


@runtime_checkable
class Agent(Protocol):
    """Anything that can answer an agent task: ``async generate(request) -> AgentResult``.

    Optional attributes read by the engine: ``id`` (a stable name for logs, usage and
    fallback bookkeeping; default: the class name), ``engine`` (e.g. ``"openai"``),
    ``model``.
    """

    async def generate(self, request: AgentRequest) -> AgentResult:
        """Answer `request` (see `AgentRequest`); raise an `AgentError` on failure."""
        ...


def agent_id_of(agent: object) -> str:
    """The stable id of `agent`: its ``id`` attribute, else ``engine:model``, else its type."""
    ident = getattr(agent, "id", None)
    if isinstance(ident, str) and ident:
        return ident
    engine = getattr(agent, "engine", None)
    model = getattr(agent, "model", None)
    if isinstance(engine, str) and isinstance(model, str) and model:
        return f"{engine}:{model}"
    return type(agent).__name__


def engine_of(agent: object) -> str:
    """The engine name recorded on `AgentEvent`s: ``agent.engine`` or the class name."""
    engine = getattr(agent, "engine", None)
    return engine if isinstance(engine, str) and engine else type(agent).__name__
