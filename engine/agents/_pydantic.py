"""The Pydantic AI adapter: a ``pydantic_ai.Agent`` as a durable smithers `Agent`.

The pattern of Pydantic AI's own durable integrations (DBOS, Temporal), through its
public interface only:

- the agent's model is wrapped in a `WrapperModel` whose ``request`` and
  ``request_stream`` are the durable units: before each model request the conversation
  sent is fingerprinted and `AgentJournal.replayed_response` asked first; a recorded
  response is returned without calling the provider; otherwise the request and then the
  response (with its usage, as ``TokenUsageReported``) are recorded;
- the task's smithers tools are a `FunctionToolset` whose functions only call
  `AgentRequest.call_tool` (journaled, replayed by the model's ``tool_call_id``); the
  agent's own tools (``@agent.tool``, ``tools=[...]``) are journaled and replayed the
  same way by a capability's ``wrap_tool_execute`` hook;
- streamed text goes to `AgentRequest.on_text` (coalesced ``NodeOutput``), and every
  streamed event counts as a heartbeat.

Decisions:

- A smithers tool failing with a ``TOOL_*`` error (a path outside the sandbox, a bad
  patch, arguments its schema rejects) goes back to the model as Pydantic AI's
  `ModelRetry` (a retry prompt naming the code), so the model can correct itself; the
  agent's tool retry budget (``Agent(retries=...)``) bounds it. Any other exception of
  a tool fails the attempt. The agent's own tools keep Pydantic AI's semantics.
- ``UnexpectedModelBehavior`` (output or tool retries exhausted, an empty or cut-off
  reply) fails the attempt with ``INVALID_OUTPUT`` (retryable): the model did not
  produce a valid answer.
- ``UsageLimitExceeded`` (the agent's ``usage_limits``) and Pydantic AI's ``UserError``
  (a misconfigured agent) fail with ``AGENT_CONFIG_INVALID``: retrying the same agent
  cannot help, and a fallback chain moves on to its next agent.
- Provider failures (``ModelHTTPError``, ``ModelAPIError``) go through
  `classify_provider_error` with the status, the body and the response headers, so a
  ``retry-after`` reaches ``details.retryAfterMs``.
- Usage: Pydantic AI's ``input_tokens`` (which includes cached prompt tokens),
  ``output_tokens`` (which includes reasoning tokens), ``cache_read_tokens``,
  ``cache_write_tokens`` and ``output_reasoning_tokens``; a zero cache or reasoning
  count is recorded as "not reported" (None).
- A replayed streamed response yields no stream events: its text was recorded as
  ``NodeOutput`` by the attempt that paid for it. A live one is drained inside the
  journaled model (as the durable integrations do), so ``first_event_timeout`` is not
  enforced on it; the task's heartbeat timeout catches a silent provider.
- Output: the task's schema is asked for natively, as ``StructuredDict`` (Pydantic AI's
  output tool). A schema ``StructuredDict`` refuses (recursive) and ``dict`` outputs
  fall back to text with the prompt contract (`AgentRequest.instructions`) appended; an
  agent's own ``output_type`` (not ``str``) is kept and its output dumped to JSON.
- An agent's own tool result is recorded as JSON; a replayed call returns that JSON
  (the same value for JSON results; e.g. a dict for a Pydantic model).

Pydantic AI is an optional dependency (``pip install 'smithers-py[ai]'``): only this
module (and `_providers`, the `openai`/`anthropic` conveniences) imports it, lazily
(`as_agent`, ``smithers.agents``).
"""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic_ai import ModelMessagesTypeAdapter, ModelRetry, StructuredDict
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import (
    FallbackExceptionGroup,
    ModelAPIError,
    ModelHTTPError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)
from pydantic_ai.messages import (
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)
from pydantic_ai.models import CompletedStreamedResponse, Model, infer_model
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.tools import Tool as PydanticTool
from pydantic_ai.toolsets import FunctionToolset
from pydantic_core import to_jsonable_python

from ..errors import InvalidOutputError
from ..tools import Tool, ToolError
from ._cli import inline_schema
from ._journal import fingerprint
from ._protocol import AgentResult, AgentUsage
from ._provider_errors import classify_provider_error
from .errors import AgentConfigInvalidError

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping

    from pydantic_ai.capabilities import ValidatedToolArgs, WrapToolExecuteHandler
    from pydantic_ai.messages import ModelMessage, ToolCallPart
    from pydantic_ai.models import ModelRequestParameters, StreamedResponse
    from pydantic_ai.models._request_timeout import RequestDeadline
    from pydantic_ai.settings import ModelSettings
    from pydantic_ai.tools import RunContext, ToolDefinition

    from ._protocol import AgentRequest

__all__ = ("PydanticAIAgent",)

ENGINE = "pydantic-ai"
"""The engine name recorded on the ``AgentEvent``s of a Pydantic AI agent."""

_RESPONSE: TypeAdapter[ModelResponse] = TypeAdapter(ModelResponse)

_MESSAGE_KEYS = ("kind", "instructions")
_PART_KEYS = ("part_kind", "content", "tool_name", "args", "tool_call_id", "outcome")
"""What a fingerprint keeps of a message and of its parts: what the model reads, not
timestamps, ids, run ids or provider details (a resumed attempt rebuilds the user
prompt with a new timestamp)."""


def _normalise(messages: list[Any]) -> list[dict[str, Any]]:
    """The content-bearing keys of JSON-dumped messages (see `_PART_KEYS`)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        body = {k: message[k] for k in _MESSAGE_KEYS if k in message}
        body["parts"] = [
            {k: part[k] for k in _PART_KEYS if k in part} for part in message.get("parts", ())
        ]
        out.append(body)
    return out


def _count(value: int) -> int | None:
    return value or None


def _usage_of(response: ModelResponse, model: str) -> AgentUsage:
    """The `AgentUsage` of one response (zero cache/reasoning counts as None)."""
    usage = response.usage
    return AgentUsage(
        model=response.model_name or model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=_count(usage.cache_read_tokens),
        cache_write_tokens=_count(usage.cache_write_tokens),
        reasoning_tokens=_count(usage.output_reasoning_tokens),
    )


def _cannot_stream(model: Model) -> bool:
    """True for a model known to have no streamed requests.

    A `FunctionModel` without ``stream_function``: its requests are made unstreamed.
    """
    return isinstance(model, FunctionModel) and model.stream_function is None


class _JournaledModel(WrapperModel):
    """The agent's model with each request made through the attempt's `AgentJournal`."""

    def __init__(self, wrapped: Model, request: AgentRequest) -> None:
        super().__init__(wrapped)
        self._request = request
        self._journal = request.journal

    def _begin(self, messages: list[ModelMessage]) -> tuple[str, ModelResponse | None]:
        """Fingerprint `messages`; return the replayed response, or record the request."""
        dumped: list[Any] = ModelMessagesTypeAdapter.dump_python(messages, mode="json")
        fp = fingerprint(_normalise(dumped))
        recorded = self._journal.replayed_response(fp)
        if recorded is not None:
            return fp, _RESPONSE.validate_python(recorded)
        new = dumped[-1:] if dumped and dumped[-1].get("kind") == "request" else []
        self._journal.model_request(fp, new, model=self.model_name)
        return fp, None

    def _end(self, fp: str, response: ModelResponse) -> None:
        self._journal.model_response(
            fp,
            _RESPONSE.dump_python(response, mode="json"),
            usage=_usage_of(response, self.model_name),
        )

    def _start_request_deadline(
        self, model_settings: ModelSettings | None, *, stream: bool
    ) -> RequestDeadline | None:
        # The one non-public hook used, as every durable integration of Pydantic AI
        # (DBOS, Temporal, Prefect) overrides it: the stream is drained inside
        # `request_stream` before the agent sees it, so the agent's side of a streamed
        # request keeps `request_timeout` but not `first_event_timeout` (which would
        # otherwise bound the whole reply).
        return super()._start_request_deadline(model_settings, stream=False)

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Return the recorded response to `messages`, or ask the model and record it."""
        fp, response = self._begin(messages)
        if response is None:
            response = await self.wrapped.request(
                messages, model_settings, model_request_parameters
            )
            self._end(fp, response)
        return response

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        """Stream the model's reply (text to ``on_text``), record it, yield it completed.

        As Pydantic AI's durable models: the live stream is drained here, inside the
        durable unit, and the agent gets a `CompletedStreamedResponse` of the recorded
        response (with no events: its text was streamed here, or by the attempt that
        recorded it when it is replayed).
        """
        fp, response = self._begin(messages)
        if response is None:
            response = await self._stream(
                messages, model_settings, model_request_parameters, run_context
            )
            self._end(fp, response)
        yield CompletedStreamedResponse(response, model_request_parameters=model_request_parameters)

    async def _stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        params: ModelRequestParameters,
        run_context: RunContext[Any] | None,
    ) -> ModelResponse:
        if _cannot_stream(self.wrapped):
            return await self.wrapped.request(messages, model_settings, params)
        async with AsyncExitStack() as stack:
            try:
                stream = await stack.enter_async_context(
                    self.wrapped.request_stream(messages, model_settings, params, run_context)
                )
            except NotImplementedError:  # the model has no streamed requests
                return await self.wrapped.request(messages, model_settings, params)
            async for event in stream:
                self._request.heartbeat()
                if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                    self._request.on_text(event.part.content)
                elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                    self._request.on_text(event.delta.content_delta)
            return stream.get()
        raise AssertionError("unreachable")  # pragma: no cover


def _tool_name(name: str) -> str:
    """`name` with the characters a smithers `Tool` name refuses replaced by ``_``."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in name) or "_"


class _JournalAgentTools(AbstractCapability[Any]):
    """Journals and replays the agent's own tool calls (``wrap_tool_execute``).

    The request's smithers tools are skipped: `AgentRequest.call_tool` journals them.
    """

    def __init__(self, request: AgentRequest) -> None:
        self._request = request
        self._skip = frozenset(t.name for t in request.tools)

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        """Return the recorded result of `call`, or run it as a journaled smithers tool.

        The result is recorded as JSON (``ToolCallFinished.result``); the live call
        returns the tool's own value to the agent, a replayed one its JSON.
        """
        if tool_def.name in self._skip or tool_def.kind != "function":
            return await handler(args)
        found, value = self._request.journal.replayed_tool_result(call.tool_call_id)
        if found:
            return value
        live: list[Any] = []

        async def execute(_ctx: Any, _arguments: Any) -> Any:
            result = await handler(args)
            live.append(result)
            return to_jsonable_python(result, fallback=repr)

        tool = Tool(
            _tool_name(tool_def.name),
            {"type": "object"},
            execute,
            description=tool_def.description or "",
        )
        await tool.call(self._request.tool_context, call.args_as_dict(), call_id=call.tool_call_id)
        return live[0]


def _smithers_tool(request: AgentRequest, tool: Tool) -> PydanticTool[Any]:
    """One of the request's tools as a Pydantic AI tool calling `AgentRequest.call_tool`."""

    async def call(ctx: RunContext[Any], **arguments: Any) -> Any:
        try:
            return await request.call_tool(tool.name, arguments, call_id=ctx.tool_call_id)
        except ToolError as e:
            raise ModelRetry(f"{tool.name} failed with {e.code}: {e.summary}") from e

    return PydanticTool.from_schema(
        call, tool.name, tool.description or None, tool.parameters, takes_ctx=True
    )


def _error_of(e: BaseException, agent: PydanticAIAgent, request: AgentRequest) -> Exception | None:
    """The smithers error a failed run ends with (None: re-raise `e` as it is)."""
    if isinstance(e, FallbackExceptionGroup):
        last = e.exceptions[-1] if e.exceptions else None
        return _error_of(last, agent, request) if last is not None else None
    if isinstance(e, ModelAPIError):
        status: int | None = None
        headers: Mapping[str, str] | None = None
        body: Any = e.body
        if isinstance(e, ModelHTTPError):
            status = e.status_code
            headers = e.headers
            if headers is None:
                response = getattr(e.__cause__, "response", None)
                headers = getattr(response, "headers", None)
        if headers is None and e.retry_after is not None:  # e.g. Google's retryDelay
            headers = {"retry-after-ms": str(round(e.retry_after * 1000))}
        if body is None:
            body = {
                "error": {
                    "code": e.provider_error_code,
                    "type": e.provider_error_type,
                    "message": e.message,
                }
            }
        now_ms = request.journal.now_ms()
        verdict = classify_provider_error(status, body, headers, now_ms=now_ms)
        return verdict.to_error(
            agent_id=agent.id,
            agent_engine=agent.provider,
            agent_model=e.model_name or agent.model,
            now_ms=now_ms,
        )
    if isinstance(e, UsageLimitExceeded):
        return AgentConfigInvalidError(
            f"Agent {agent.id!r} hit its usage limit: {e.message}",
            details={"agentId": agent.id, "agentModel": agent.model},
            hint="Raise the pydantic_ai agent's usage_limits (requests or tokens), or "
            "split the task.",
        )
    if isinstance(e, UnexpectedModelBehavior):
        schema = getattr(request.output_type, "__name__", "output")
        return InvalidOutputError(request.node_id, schema, f"the model misbehaved: {e.message}")
    if isinstance(e, UserError):
        return AgentConfigInvalidError(
            f"Pydantic AI refused agent {agent.id!r}: {e.message}",
            details={"agentId": agent.id, "agentModel": agent.model},
            hint="Fix the pydantic_ai.Agent's configuration (model, tools, output type).",
        )
    return None


class PydanticAIAgent:
    """A ``pydantic_ai.Agent`` as a smithers `Agent`, durable through the attempt journal.

    Each `generate` runs ``agent.run(...)`` once with the journaled model, the request's
    tools and its output schema (see the module docstring for what is recorded and
    replayed, and how failures map to error codes).

    Example:
        ```python
        from pydantic_ai import Agent

        Task("triage", output=Triage, agent=Agent("openai:gpt-4o-mini"), prompt="...")
        ```

    Args:
        agent: The ``pydantic_ai.Agent`` (any ``AbstractAgent``); it needs a model
            (``Agent(model, ...)``).
        id: The agent's stable id in logs, usage and fallback bookkeeping; default: the
            agent's ``name`` when set, else ``"pydantic-ai:<model name>"``.

    Raises:
        AgentConfigInvalidError: if `agent` is not a Pydantic AI agent.

    Attributes:
        id: As above.
        engine: ``"pydantic-ai"``.
        model: The model's name, or None when the agent has no model.
        provider: The model's provider (``"openai"``, ``"anthropic"``, ...), for errors.
    """

    engine = ENGINE

    def __init__(self, agent: object, *, id: str | None = None) -> None:
        if not isinstance(agent, AbstractAgent):
            raise AgentConfigInvalidError(
                f"{type(agent).__name__} is not a pydantic_ai agent",
                hint="Pass a pydantic_ai.Agent (or any pydantic_ai AbstractAgent).",
            )
        self._agent: AbstractAgent[Any, Any] | None = agent
        self._factory: Callable[[], AbstractAgent[Any, Any]] | None = None
        model = agent.model
        if isinstance(model, Model):
            self.model: str | None = model.model_name
            self.provider: str | None = model.system
        elif isinstance(model, str):
            self.provider, _, name = model.rpartition(":")
            self.model = name
            self.provider = self.provider or None
        else:
            self.model = self.provider = None
        self.id = id or agent.name or f"{ENGINE}:{self.model or 'unknown'}"

    @classmethod
    def _deferred(
        cls,
        factory: Callable[[], AbstractAgent[Any, Any]],
        *,
        id: str,
        model: str,
        provider: str,
    ) -> PydanticAIAgent:
        """An agent built by `factory` at its first `generate` (credentials checked then)."""
        self = cls.__new__(cls)
        self._agent = None
        self._factory = factory
        self.id = id
        self.model = model
        self.provider = provider
        return self

    @property
    def agent(self) -> AbstractAgent[Any, Any]:
        """The wrapped ``pydantic_ai.Agent`` (built now if it was deferred).

        Raises:
            AgentConfigInvalidError: if a deferred agent cannot be built (no API key).
        """
        if self._agent is None:
            assert self._factory is not None
            self._agent = self._factory()
        return self._agent

    def __repr__(self) -> str:
        return f"PydanticAIAgent(id={self.id!r})"

    def _model(self, agent: AbstractAgent[Any, Any]) -> Model:
        model = agent.model
        if model is None:
            raise AgentConfigInvalidError(
                f"Pydantic AI agent {self.id!r} has no model",
                details={"agentId": self.id},
                hint="Build it with a model: pydantic_ai.Agent('openai:gpt-4o-mini', ...).",
            )
        try:
            return model if isinstance(model, Model) else infer_model(model)
        except UserError as e:
            raise AgentConfigInvalidError(
                f"Pydantic AI agent {self.id!r}: {e.message}",
                details={"agentId": self.id, "agentModel": self.model},
                hint="Check the model name and the provider's API key.",
            ) from e

    async def generate(self, request: AgentRequest) -> AgentResult:
        """Run the agent on `request` (one ``agent.run``), journaled and replayable.

        Args:
            request: The engine's request (prompt or conversation, schema, tools, journal).

        Returns:
            An `AgentResult`: `output` is the structured output as a JSON object when
            the agent produced one (else `text` is the reply); `messages` is the whole
            conversation as JSON (Pydantic AI's ``ModelMessagesTypeAdapter``); `usage` is
            None (each response's usage is journaled); `finish_reason` is the last
            response's.

        Raises:
            AgentRateLimitedError, AgentProviderError, AgentQuotaExceededError,
                AgentConfigInvalidError: when the provider fails (`classify_provider_error`),
                on a usage limit, or for a misconfigured agent (no model, no API key).
            InvalidOutputError: when the model's replies never made a valid answer
                (``UnexpectedModelBehavior``).
            Exception: whatever a tool raised besides a ``TOOL_*`` error.
        """
        agent = self.agent
        model = _JournaledModel(self._model(agent), request)
        prompt = request.prompt
        output_type: Any = None
        append_instructions = False
        if agent.output_type is str:
            schema = request.output_schema
            if isinstance(schema, dict):
                title = schema.get("title")
                body = inline_schema(schema)
                name = title if isinstance(title, str) else body.get("title")
                try:
                    output_type = StructuredDict(
                        body, name=name if isinstance(name, str) and name else "Output"
                    )
                except UserError:  # e.g. a recursive schema: ask for it in the prompt
                    append_instructions = True
            else:
                append_instructions = True
        if append_instructions and request.messages is None and request.instructions:
            prompt = f"{prompt}\n\n{request.instructions}"
        history = (
            ModelMessagesTypeAdapter.validate_python(request.messages) if request.messages else None
        )
        tools = [_smithers_tool(request, t) for t in request.tools]
        toolsets = [FunctionToolset(tools, id="smithers")] if tools else None

        async def on_events(_ctx: RunContext[Any], events: AsyncIterable[Any]) -> None:
            async for _event in events:
                request.heartbeat()

        try:
            result = await agent.run(
                prompt,
                output_type=output_type,
                message_history=history,
                model=model,
                toolsets=toolsets,
                capabilities=[_JournalAgentTools(request)],
                event_stream_handler=on_events,
                infer_name=False,
            )
        except Exception as e:
            error = _error_of(e, self, request)
            if error is None:
                raise
            raise error from e
        output = result.output
        messages: list[Any] = ModelMessagesTypeAdapter.dump_python(
            result.all_messages(), mode="json"
        )
        finish = result.response.finish_reason
        if isinstance(output, str):
            return AgentResult(text=output, messages=messages, finish_reason=finish)
        return AgentResult(
            output=to_jsonable_python(output), messages=messages, finish_reason=finish
        )
