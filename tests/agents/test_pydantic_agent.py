"""The Pydantic AI adapter: a pydantic_ai.Agent journaled, replayed and mapped to smithers.

Offline: the models are Pydantic AI's `FunctionModel`s; the journal is a real
`AgentJournal` whose events land in a list, and tools run in a real `ToolContext` on a
temporary folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.exceptions import ModelHTTPError, UsageLimitExceeded
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.usage import RequestUsage
from smithers.engine.agents import (
    AgentJournal,
    as_agent,
    output_instructions,
    output_json_schema,
)
from smithers.engine.errors import InvalidOutputError
from smithers.engine.tools import READ, Tool, ToolContext, define_tool
from smithers.eventstore import decode_json
from smithers.eventstore.events import (
    AgentEvent,
    Event,
    NodeOutput,
    TokenUsageReported,
    ToolCallFinished,
    ToolCallStarted,
)
from smithers.projections import AgentReplay

from smithers.agents import (
    AgentConfigInvalidError,
    AgentRateLimitedError,
    AgentRequest,
    AgentResult,
    PydanticAIAgent,
    anthropic,
    openai,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path


class Summary(msgspec.Struct):
    title: str
    lines: int


class Ticket(msgspec.Struct):
    title: str


class Recorder:
    """The events one attempt records, and the heartbeats it beats."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.beats = 0

    def send(self, event: Event) -> None:
        self.events.append(event)

    def beat(self, _data: Any) -> None:
        self.beats += 1

    def agent_events(self, kind: str | None = None) -> list[dict[str, Any]]:
        out = [decode_json(e.event) for e in self.events if isinstance(e, AgentEvent)]
        return [e for e in out if kind is None or e["type"] == kind]

    def raw_responses(self) -> tuple[msgspec.Raw, ...]:
        return tuple(
            e.event
            for e in self.events
            if isinstance(e, AgentEvent) and decode_json(e.event)["type"] == "response"
        )

    def tool_results(self) -> dict[str, msgspec.Raw]:
        return {
            e.call_id: e.result
            for e in self.events
            if isinstance(e, ToolCallFinished) and e.status == "success" and e.call_id
        }

    def kinds(self) -> list[str]:
        """Event types in order, agent events as ``AgentEvent:<type>``."""
        out = []
        for e in self.events:
            name = type(e).__name__
            if isinstance(e, AgentEvent):
                name += ":" + decode_json(e.event)["type"]
            out.append(name)
        return out


def make_request(
    root: Path,
    agent: PydanticAIAgent,
    rec: Recorder,
    *,
    prompt: str = "Summarise notes.txt",
    output: Any = Summary,
    tools: tuple[Tool, ...] = (READ,),
    replay: AgentReplay | None = None,
    messages: list[Any] | None = None,
) -> AgentRequest:
    tctx = ToolContext(
        root, journal=rec.send, run_id="run-1", node_id="t", attempt=1, now_ms=lambda: 1_000
    )
    journal = AgentJournal(
        run_id="run-1",
        node_id="t",
        iteration=0,
        attempt=1,
        engine=agent.engine,
        agent_id=agent.id,
        send=rec.send,
        beat=rec.beat,
        now_ms=lambda: 1_000,
        replay=replay,
    )
    return AgentRequest(
        prompt=prompt,
        messages=messages,
        output_type=output,
        output_schema=output_json_schema(output) if output is not dict else None,
        instructions=output_instructions(output),
        tools=tools,
        tool_context=tctx,
        journal=journal,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "notes.txt").write_text("Quarterly notes\nAll good\n", encoding="utf-8")
    return tmp_path


def _tool_return(messages: list[ModelMessage], tool_name: str) -> Any:
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, ToolReturnPart) and part.tool_name == tool_name:
                    return part.content
    return None


def summarising_model(calls: list[int]) -> FunctionModel:
    """Reads notes.txt with the built-in ``read``, then answers a `Summary`."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(len(messages))
        text = _tool_return(messages, "read")
        if text is None:
            return ModelResponse(
                parts=[ToolCallPart("read", {"path": "notes.txt"}, tool_call_id="call-read")],
                usage=RequestUsage(input_tokens=50, output_tokens=7, cache_read_tokens=20),
            )
        first, *rest = str(text).splitlines()
        args = {"title": first, "lines": 1 + len(rest)}
        return ModelResponse(
            parts=[ToolCallPart(info.output_tools[0].name, args, tool_call_id="call-out")],
            usage=RequestUsage(input_tokens=80, output_tokens=12),
        )

    return FunctionModel(respond, model_name="summariser")


def fail_if_called(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    pytest.fail("the model was called although its response was recorded")


# ---------------------------------------------------------------------------- a conversation


async def test_a_tool_call_and_a_structured_output_are_journaled_in_order(root: Path) -> None:
    calls: list[int] = []
    agent = PydanticAIAgent(PydanticAgent(summarising_model(calls)))
    rec = Recorder()

    result = await agent.generate(make_request(root, agent, rec))

    assert isinstance(result, AgentResult)
    assert result.output == {"title": "Quarterly notes", "lines": 2}
    assert result.text == ""
    assert result.usage is None
    assert calls == [1, 3]
    assert rec.kinds() == [
        "AgentEvent:request",
        "AgentEvent:response",
        "TokenUsageReported",
        "ToolCallStarted",
        "ToolCallFinished",
        "AgentEvent:request",
        "AgentEvent:response",
        "TokenUsageReported",
    ]
    started = next(e for e in rec.events if isinstance(e, ToolCallStarted))
    finished = next(e for e in rec.events if isinstance(e, ToolCallFinished))
    assert (started.tool_name, started.call_id) == ("read", "call-read")
    assert decode_json(started.arguments) == {"path": "notes.txt"}
    assert (finished.status, finished.call_id) == ("success", "call-read")
    assert decode_json(finished.result) == "Quarterly notes\nAll good\n"
    usage = [e for e in rec.events if isinstance(e, TokenUsageReported)]
    assert [(u.model, u.agent, u.input_tokens, u.output_tokens) for u in usage] == [
        ("summariser", agent.id, 50, 7),
        ("summariser", agent.id, 80, 12),
    ]
    assert usage[0].cache_read_tokens == 20
    assert usage[1].cache_read_tokens is None


async def test_a_request_records_only_its_new_messages_with_a_fingerprint(root: Path) -> None:
    agent = PydanticAIAgent(PydanticAgent(summarising_model([])))
    rec = Recorder()

    await agent.generate(make_request(root, agent, rec))

    first, second = rec.agent_events("request")
    assert first["model"] == "summariser"
    assert [m["kind"] for m in first["messages"]] == ["request"]
    assert first["messages"][0]["parts"][0]["content"] == "Summarise notes.txt"
    assert [p["part_kind"] for p in second["messages"][0]["parts"]] == ["tool-return"]
    responses = rec.agent_events("response")
    assert [r["fingerprint"] for r in responses] == [first["fingerprint"], second["fingerprint"]]
    assert first["fingerprint"] != second["fingerprint"]
    assert responses[0]["response"]["parts"][0]["tool_call_id"] == "call-read"


async def test_result_messages_round_trip_as_pydantic_ai_history(root: Path) -> None:
    from pydantic_ai import ModelMessagesTypeAdapter

    agent = PydanticAIAgent(PydanticAgent(summarising_model([])))
    result = await agent.generate(make_request(root, agent, Recorder()))

    history = ModelMessagesTypeAdapter.validate_python(result.messages)
    assert json.loads(json.dumps(result.messages)) == result.messages
    assert ModelMessagesTypeAdapter.dump_python(history, mode="json") == result.messages


# ---------------------------------------------------------------------------- replay

TICKETS: list[str] = []


def _open_ticket(_ctx: ToolContext, args: Ticket) -> dict[str, str]:
    TICKETS.append(args.title)
    return {"ticket": f"T-{len(TICKETS)}"}


def ticket_agent(calls: list[int], own_calls: list[str]) -> PydanticAgent[None, str]:
    """Opens a ticket (a side-effecting smithers tool), pings (its own tool), answers."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(len(messages))
        ticket = _tool_return(messages, "open_ticket")
        if ticket is None:
            return ModelResponse(
                parts=[
                    ToolCallPart("open_ticket", {"title": "Broken build"}, tool_call_id="c1"),
                    ToolCallPart("ping", {"note": "hello"}, tool_call_id="c2"),
                ]
            )
        pong = _tool_return(messages, "ping")
        args = {"title": f"{ticket['ticket']} {pong}", "lines": 1}
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, args)])

    agent = PydanticAgent(FunctionModel(respond, model_name="ticketer"), name="ticketer")

    @agent.tool_plain
    def ping(note: str) -> str:
        """Answer a ping."""
        own_calls.append(note)
        return f"pong:{note}"

    return agent


OPEN_TICKET = define_tool("open_ticket", Ticket, _open_ticket, side_effect=True)


@pytest.fixture(autouse=True)
def _no_tickets() -> None:
    TICKETS.clear()


async def test_the_agents_own_tools_are_journaled_with_the_call_id(root: Path) -> None:
    own: list[str] = []
    agent = PydanticAIAgent(ticket_agent([], own))
    rec = Recorder()

    result = await agent.generate(make_request(root, agent, rec, tools=(OPEN_TICKET,)))

    assert result.output == {"title": "T-1 pong:hello", "lines": 1}
    assert own == ["hello"]
    started = {e.call_id: e.tool_name for e in rec.events if isinstance(e, ToolCallStarted)}
    assert started == {"c1": "open_ticket", "c2": "ping"}
    assert {k: decode_json(v) for k, v in rec.tool_results().items()} == {
        "c1": {"ticket": "T-1"},
        "c2": "pong:hello",
    }


async def test_a_resumed_attempt_replays_responses_and_tools_without_calling_them(
    root: Path,
) -> None:
    own: list[str] = []
    first = PydanticAIAgent(ticket_agent([], own))
    rec1 = Recorder()
    out1 = await first.generate(make_request(root, first, rec1, tools=(OPEN_TICKET,)))
    replay = AgentReplay(
        agent_id=first.id, responses=rec1.raw_responses(), tool_results=rec1.tool_results()
    )

    again = PydanticAIAgent(PydanticAgent(FunctionModel(fail_if_called), name="ticketer"))
    own_again: list[str] = []

    @again.agent.tool_plain
    def ping(note: str) -> str:
        own_again.append(note)
        return "pong"

    rec2 = Recorder()
    request = make_request(root, again, rec2, tools=(OPEN_TICKET,), replay=replay)
    out2 = await again.generate(request)
    request.journal.close()

    assert out2.output == out1.output
    assert TICKETS == ["Broken build"]  # opened once, by the first attempt
    assert own_again == []
    assert not [e for e in rec2.events if isinstance(e, ToolCallStarted | TokenUsageReported)]
    assert rec2.agent_events("request") == []
    assert rec2.agent_events("replayed") == [{"type": "replayed", "responses": 2, "toolResults": 2}]


async def test_a_partial_replay_calls_the_model_only_for_the_unrecorded_request(
    root: Path,
) -> None:
    calls: list[int] = []
    first = PydanticAIAgent(PydanticAgent(summarising_model([])))
    rec1 = Recorder()
    await first.generate(make_request(root, first, rec1))
    replay = AgentReplay(
        agent_id=first.id,
        responses=rec1.raw_responses()[:1],  # crashed before the second response
        tool_results=rec1.tool_results(),
    )
    (root / "notes.txt").write_text("Changed since\n", encoding="utf-8")

    again = PydanticAIAgent(PydanticAgent(summarising_model(calls)))
    rec2 = Recorder()
    result = await again.generate(make_request(root, again, rec2, replay=replay))

    assert calls == [3]  # only the request after the tool result
    assert result.output == {"title": "Quarterly notes", "lines": 2}  # the recorded read
    assert not [e for e in rec2.events if isinstance(e, ToolCallStarted)]
    assert rec2.kinds() == [
        "AgentEvent:replayed",
        "AgentEvent:request",
        "AgentEvent:response",
        "TokenUsageReported",
    ]
    assert rec2.agent_events("replayed")[0] == {
        "type": "replayed",
        "responses": 1,
        "toolResults": 1,
    }


async def test_a_diverging_conversation_drops_the_replay_and_calls_the_model(root: Path) -> None:
    first = PydanticAIAgent(PydanticAgent(summarising_model([])))
    rec1 = Recorder()
    await first.generate(make_request(root, first, rec1))
    replay = AgentReplay(agent_id=first.id, responses=rec1.raw_responses())

    calls: list[int] = []
    again = PydanticAIAgent(PydanticAgent(summarising_model(calls)))
    rec2 = Recorder()
    request = make_request(root, again, rec2, prompt="Summarise it differently", replay=replay)
    result = await again.generate(request)

    assert calls == [1, 3]
    assert result.output == {"title": "Quarterly notes", "lines": 2}
    assert len(rec2.agent_events("response")) == 2
    assert rec2.agent_events("replayed") == []
    assert not request.journal.replaying


# ---------------------------------------------------------------------------- streaming

CHUNKS = ['{"title": ', '"Stream', 'ed", ', '"lines": ', "3}"]


async def _stream_text(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    for chunk in CHUNKS:
        yield chunk


async def test_streamed_text_reaches_node_output_coalesced(root: Path) -> None:
    agent = PydanticAIAgent(PydanticAgent(FunctionModel(stream_function=_stream_text)))
    rec = Recorder()

    result = await agent.generate(make_request(root, agent, rec, output=dict, tools=()))

    assert result.text == "".join(CHUNKS)
    assert result.output is None
    outputs = [e for e in rec.events if isinstance(e, NodeOutput)]
    assert 1 <= len(outputs) < len(CHUNKS)
    assert "".join(e.text for e in outputs) == "".join(CHUNKS)
    # Streamed events are heartbeats, passed on at most once per LIVENESS_BEAT_MS (the
    # NodeOutput events recorded already count as signs of life for the watchdog).
    assert rec.beats <= 1
    kinds = rec.kinds()
    assert kinds.index("NodeOutput") < kinds.index("AgentEvent:response")


async def test_a_text_output_gets_the_prompt_contract_appended(root: Path) -> None:
    seen: list[str] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        part = messages[0].parts[-1]
        assert isinstance(part, UserPromptPart)
        seen.append(str(part.content))
        assert info.output_tools == []
        return ModelResponse(parts=[TextPart('{"a": 1}')])

    agent = PydanticAIAgent(PydanticAgent(FunctionModel(respond)))
    result = await agent.generate(make_request(root, agent, Recorder(), output=dict, tools=()))

    assert result.text == '{"a": 1}'
    assert seen[0].startswith("Summarise notes.txt\n\nReply with a single JSON object")


async def test_a_streamed_structured_output_is_recorded_whole(root: Path) -> None:
    async def stream(
        messages: list[ModelMessage], info: AgentInfo
    ) -> AsyncIterator[dict[int, DeltaToolCall]]:
        name = info.output_tools[0].name
        yield {0: DeltaToolCall(name=name, json_args='{"title": "S", ', tool_call_id="o1")}
        yield {0: DeltaToolCall(json_args='"lines": 4}')}

    agent = PydanticAIAgent(PydanticAgent(FunctionModel(stream_function=stream)))
    rec = Recorder()
    result = await agent.generate(make_request(root, agent, rec, tools=()))

    assert result.output == {"title": "S", "lines": 4}
    (response,) = rec.agent_events("response")
    assert response["response"]["parts"][0]["tool_call_id"] == "o1"


class Node(msgspec.Struct):
    value: int
    children: list[Node] = []


class Tree(msgspec.Struct):
    root: Node


async def test_a_recursive_schema_falls_back_to_text_with_the_prompt_contract(
    root: Path,
) -> None:
    seen: list[AgentInfo] = []
    prompts: list[str] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(info)
        prompts.append(str(messages[0].parts[-1].content))
        return ModelResponse(parts=[TextPart('{"root": {"value": 1}}')])

    agent = PydanticAIAgent(PydanticAgent(FunctionModel(respond)))
    result = await agent.generate(make_request(root, agent, Recorder(), output=Tree, tools=()))

    assert result.text == '{"root": {"value": 1}}'
    assert result.output is None
    assert seen[0].output_tools == []
    assert seen[0].allow_text_output
    assert '"Node"' in prompts[0]
    assert "Reply with a single JSON object" in prompts[0]


async def test_the_agents_own_output_type_is_kept_and_dumped_to_json(root: Path) -> None:
    from pydantic import BaseModel

    class Verdict(BaseModel):
        title: str
        lines: int

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        (tool,) = info.output_tools
        assert set(tool.parameters_json_schema["properties"]) == {"title", "lines"}
        args = {"title": "own", "lines": 5}
        return ModelResponse(parts=[ToolCallPart(tool.name, args)])

    agent = PydanticAIAgent(PydanticAgent(FunctionModel(respond), output_type=Verdict))
    result = await agent.generate(make_request(root, agent, Recorder(), tools=()))

    assert result.output == {"title": "own", "lines": 5}


async def test_cancelling_a_streamed_request_propagates_and_records_no_response(
    root: Path,
) -> None:
    import anyio

    streaming = anyio.Event()

    async def hang(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "partial "
        streaming.set()
        await anyio.Event().wait()  # a provider that never finishes
        yield "never"

    agent = PydanticAIAgent(PydanticAgent(FunctionModel(stream_function=hang)))
    rec = Recorder()
    request = make_request(root, agent, rec, output=dict, tools=())
    finished: list[AgentResult] = []

    async with anyio.create_task_group() as tg:

        async def run() -> None:
            finished.append(await agent.generate(request))

        tg.start_soon(run)
        await streaming.wait()
        tg.cancel_scope.cancel()

    assert tg.cancel_scope.cancelled_caught
    assert finished == []
    request.journal.close()
    assert [k for k in rec.kinds() if k.startswith("AgentEvent")] == ["AgentEvent:request"]
    assert [e.text for e in rec.events if isinstance(e, NodeOutput)] == ["partial "]


# ---------------------------------------------------------------------------- repair turns


async def test_a_repair_turn_continues_the_conversation(root: Path) -> None:
    seen: list[list[ModelMessage]] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(list(messages))
        lines = "two" if len(seen) == 1 else 2  # wrong type first, then fixed
        args = {"title": "Notes", "lines": lines}
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, args)])

    agent = PydanticAIAgent(PydanticAgent(FunctionModel(respond)))
    rec = Recorder()
    first = await agent.generate(make_request(root, agent, rec, tools=()))
    assert first.output == {"title": "Notes", "lines": "two"}  # the engine validates it

    repair = make_request(
        root, agent, rec, tools=(), prompt="lines must be an integer", messages=first.messages
    )
    second = await agent.generate(repair)

    assert second.output == {"title": "Notes", "lines": 2}
    earlier = seen[1]
    assert len(earlier) > len(seen[0])
    prompts = [
        p.content
        for m in earlier
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, UserPromptPart)
    ]
    assert prompts == ["Summarise notes.txt", "lines must be an integer"]
    assert second.messages[: len(first.messages)] == first.messages


# ---------------------------------------------------------------------------- errors


def failing(error: Exception) -> Callable[[list[ModelMessage], AgentInfo], ModelResponse]:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise error

    return respond


async def test_a_429_is_rate_limited_with_the_providers_delay(root: Path) -> None:
    body = {"error": {"type": "rate_limit_error", "message": "slow down"}}
    error = ModelHTTPError(429, "gpt-x", body, headers={"Retry-After": "7"})
    agent = PydanticAIAgent(PydanticAgent(FunctionModel(failing(error))))

    with pytest.raises(AgentRateLimitedError, match="slow down") as info:
        await agent.generate(make_request(root, agent, Recorder()))

    assert info.value.retry_after_ms == 7_000
    assert info.value.retryable
    assert info.value.details["agentId"] == agent.id
    assert info.value.details["status"] == 429
    assert info.value.__cause__ is error


async def test_a_401_is_a_configuration_error(root: Path) -> None:
    body = {"error": {"code": "invalid_api_key", "message": "Incorrect API key"}}
    agent = PydanticAIAgent(PydanticAgent(FunctionModel(failing(ModelHTTPError(401, "m", body)))))

    with pytest.raises(AgentConfigInvalidError, match="Incorrect API key") as info:
        await agent.generate(make_request(root, agent, Recorder()))

    assert not info.value.retryable


async def test_a_usage_limit_is_a_configuration_error(root: Path) -> None:
    error = UsageLimitExceeded("The next request would exceed the request_limit of 1")
    agent = PydanticAIAgent(PydanticAgent(FunctionModel(failing(error))))

    with pytest.raises(AgentConfigInvalidError, match="usage limit"):
        await agent.generate(make_request(root, agent, Recorder()))


async def test_exhausted_output_retries_are_an_invalid_output(root: Path) -> None:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("no tool call, just prose")])

    agent = PydanticAIAgent(PydanticAgent(FunctionModel(respond), retries=1))

    with pytest.raises(InvalidOutputError) as info:
        await agent.generate(make_request(root, agent, Recorder(), tools=()))

    assert info.value.retryable
    assert info.value.details["nodeId"] == "t"


async def test_a_tool_error_goes_back_to_the_model_as_a_retry(root: Path) -> None:
    retries: list[str] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1].parts[-1]
        if isinstance(last, ToolReturnPart) and last.outcome == "retried":
            retries.append(str(last.content))
            args = {"title": "gave up", "lines": 0}
            return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, args)])
        return ModelResponse(parts=[ToolCallPart("read", {"path": "../outside.txt"})])

    agent = PydanticAIAgent(PydanticAgent(FunctionModel(respond)))
    rec = Recorder()
    result = await agent.generate(make_request(root, agent, rec))

    assert result.output == {"title": "gave up", "lines": 0}
    assert "TOOL_PATH_ESCAPE" in retries[0]
    finished = [e for e in rec.events if isinstance(e, ToolCallFinished)]
    assert [f.status for f in finished] == ["error"]


# ---------------------------------------------------------------------------- construction


def test_as_agent_wraps_a_pydantic_ai_agent_with_a_stable_id() -> None:
    agent = as_agent(PydanticAgent(FunctionModel(fail_if_called, model_name="m1")))

    assert isinstance(agent, PydanticAIAgent)
    assert agent.engine == "pydantic-ai"
    assert agent.model == "m1"
    assert agent.id == "pydantic-ai:m1"
    named = PydanticAIAgent(PydanticAgent(FunctionModel(fail_if_called), name="triager"))
    assert named.id == "triager"
    assert PydanticAIAgent(PydanticAgent(FunctionModel(fail_if_called)), id="x").id == "x"


@pytest.mark.parametrize(
    ("factory", "env"), [(openai, "OPENAI_API_KEY"), (anthropic, "ANTHROPIC_API_KEY")]
)
async def test_a_missing_api_key_fails_at_generate_not_at_definition(
    root: Path, monkeypatch: pytest.MonkeyPatch, factory: Any, env: str
) -> None:
    monkeypatch.delenv(env, raising=False)
    agent = factory("some-model")  # defining the workflow needs no key

    assert agent.id.endswith(":some-model")
    assert agent.model == "some-model"
    with pytest.raises(AgentConfigInvalidError, match=env):
        await agent.generate(make_request(root, agent, Recorder()))


def test_importing_smithers_agents_does_not_import_pydantic_ai() -> None:
    code = (
        "import sys, smithers.agents as a; "
        "assert 'pydantic_ai' not in sys.modules, 'imported early'; "
        "a.PydanticAIAgent; assert 'pydantic_ai' in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------- in a run


async def test_an_agent_task_with_a_pydantic_ai_agent_records_its_conversation(
    tmp_path: Path,
) -> None:
    from smithers.eventstore import SQLiteEventStore, decode_event

    from smithers import Task, run_workflow, workflow

    (tmp_path / "notes.txt").write_text("Quarterly notes\nAll good\n", encoding="utf-8")
    calls: list[int] = []
    model_agent = PydanticAgent(summarising_model(calls))

    @workflow("summarise")
    def summarise(ctx: Any) -> Any:
        return Task(
            "t", output=Summary, agent=model_agent, prompt="Summarise notes.txt", tools=["read"]
        )

    db = tmp_path / "smithers.db"
    result = await run_workflow(summarise, db=db, root_dir=tmp_path)

    assert result.status == "finished", result.error
    assert result.outputs == {"t": {"title": "Quarterly notes", "lines": 2}}
    assert calls == [1, 3]
    store = await SQLiteEventStore.open(db, create=False)
    try:
        rows = await store.read(result.run_id)
    finally:
        await store.close()
    events = [decode_event(r.type, r.data) for r in rows]
    node = [e for e in events if getattr(e, "node_id", None) == "t"]
    kinds = [
        type(e).__name__ + (":" + decode_json(e.event)["type"] if isinstance(e, AgentEvent) else "")
        for e in node
    ]
    agent_part = [k for k in kinds if k.startswith(("AgentEvent", "Tool", "TokenUsage"))]
    assert agent_part == [
        "AgentEvent:start",
        "AgentEvent:request",
        "AgentEvent:response",
        "TokenUsageReported",
        "ToolCallStarted",
        "ToolCallFinished",
        "AgentEvent:request",
        "AgentEvent:response",
        "TokenUsageReported",
        "AgentEvent:output",
    ]
    assert kinds.index("NodeStarted") < kinds.index("AgentEvent:start")
    assert kinds[-1] == "NodeFinished"
    start = decode_json(next(e for e in node if isinstance(e, AgentEvent)).event)
    assert start["agent"] == "pydantic-ai:summariser"
    assert {e.engine for e in node if isinstance(e, AgentEvent)} == {"pydantic-ai"}
    usage = [e for e in node if isinstance(e, TokenUsageReported)]
    assert [(u.agent, u.input_tokens) for u in usage] == [
        ("pydantic-ai:summariser", 50),
        ("pydantic-ai:summariser", 80),
    ]
    tool = next(e for e in node if isinstance(e, ToolCallFinished))
    assert (tool.tool_name, tool.call_id, tool.status) == ("read", "call-read", "success")


# ---------------------------------------------------------------------------- a real HTTP API


class _ChatStub:
    """A tiny OpenAI/Anthropic server on 127.0.0.1 (a thread), counting requests.

    Model ``"limited"`` answers 429 with ``retry-after: 3`` (in the API's error shape);
    any other model streams `CHUNKS` as an OpenAI chat completion, then usage.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        stub = self
        self.requests: list[dict[str, Any]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, **body})
                if body["model"] == "limited":
                    message = "Rate limit reached for requests"
                    payload: dict[str, Any] = (
                        {"type": "error", "error": {"type": "rate_limit_error", "message": message}}
                        if self.path.endswith("/messages")  # Anthropic
                        else {"error": {"message": message, "code": "rate_limit_exceeded"}}
                    )
                    self._send(429, json.dumps(payload).encode(), "application/json", 3)
                    return
                self._send(200, self._sse(body["model"]), "text/event-stream")

            def _sse(self, model: str) -> bytes:
                def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
                    data = {
                        "id": "chatcmpl-1",
                        "object": "chat.completion.chunk",
                        "created": 1_700_000_000,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                        **extra,
                    }
                    return f"data: {json.dumps(data)}\n\n"

                parts = [chunk({"role": "assistant", "content": ""})]
                parts += [chunk({"content": c}) for c in CHUNKS]
                usage = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
                parts.append(chunk({}, "stop", usage=usage))
                parts.append("data: [DONE]\n\n")
                return "".join(parts).encode()

            def _send(self, status: int, data: bytes, kind: str, retry_s: int = 0) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                if retry_s:
                    self.send_header("retry-after", str(retry_s))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def chat_stub() -> Any:
    stub = _ChatStub()
    yield stub
    stub.close()


async def test_openai_streams_text_and_usage_from_a_real_http_api(
    root: Path, chat_stub: _ChatStub
) -> None:
    agent = openai("gpt-x", api_key="sk-test", base_url=chat_stub.base_url)
    rec = Recorder()

    result = await agent.generate(make_request(root, agent, rec, output=dict, tools=()))

    assert result.text == "".join(CHUNKS)
    assert result.finish_reason == "stop"
    assert [r["path"] for r in chat_stub.requests] == ["/v1/chat/completions"]
    assert chat_stub.requests[0]["stream"] is True
    assert "".join(e.text for e in rec.events if isinstance(e, NodeOutput)) == "".join(CHUNKS)
    (usage,) = [e for e in rec.events if isinstance(e, TokenUsageReported)]
    assert (usage.agent, usage.model, usage.input_tokens, usage.output_tokens) == (
        "openai:gpt-x",
        "gpt-x",
        11,
        5,
    )


@pytest.mark.parametrize(
    ("factory", "path"), [(openai, "/v1/chat/completions"), (anthropic, "/v1/messages")]
)
async def test_a_rate_limit_is_not_retried_by_the_sdk_and_keeps_retry_after(
    root: Path, chat_stub: _ChatStub, factory: Any, path: str
) -> None:
    base_url = chat_stub.base_url.removesuffix("/v1") if factory is anthropic else None
    agent = factory("limited", api_key="sk-test", base_url=base_url or chat_stub.base_url)

    with pytest.raises(AgentRateLimitedError, match="Rate limit reached") as info:
        await agent.generate(make_request(root, agent, Recorder(), output=dict, tools=()))

    assert [r["path"] for r in chat_stub.requests] == [path]  # the SDK did not retry
    assert info.value.retry_after_ms == 3_000
    assert info.value.details["agentEngine"] == factory.__name__
    assert info.value.details["agentModel"] == "limited"


async def test_openai_agent_serves_a_second_call_after_the_first(
    root: Path, chat_stub: _ChatStub
) -> None:
    agent = openai("gpt-x", api_key="sk-test", base_url=chat_stub.base_url)
    first = await agent.generate(make_request(root, agent, Recorder(), output=dict, tools=()))
    again = make_request(
        root, agent, Recorder(), output=dict, tools=(), prompt="again", messages=first.messages
    )

    second = await agent.generate(again)

    assert second.text == "".join(CHUNKS)
    assert len(chat_stub.requests) == 2
    sent = [m["content"] for m in chat_stub.requests[1]["messages"] if m["role"] == "user"]
    assert sent[-1] == "again"
    assert len(sent) == 2


async def test_a_retry_after_a_provider_failure_replays_the_paid_part_of_the_conversation(
    tmp_path: Path,
) -> None:
    from smithers.eventstore import SQLiteEventStore, decode_event

    from smithers import Backoff, Task, run_workflow, workflow

    (tmp_path / "notes.txt").write_text("Quarterly notes\nAll good\n", encoding="utf-8")
    calls: list[int] = []
    inner = summarising_model([]).function
    assert inner is not None

    def flaky(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(len(messages))
        if calls == [1, 3]:  # the second request of the first attempt
            raise ModelHTTPError(503, "summariser", {"error": {"message": "overloaded"}})
        return inner(messages, info)

    model_agent = PydanticAgent(FunctionModel(flaky, model_name="summariser"))

    @workflow("flaky")
    def wf(ctx: Any) -> Any:
        return Task(
            "t",
            output=Summary,
            agent=model_agent,
            prompt="Summarise notes.txt",
            tools=["read"],
            backoff=Backoff(kind="fixed", initial_ms=0),
        )

    db = tmp_path / "smithers.db"
    result = await run_workflow(wf, db=db, root_dir=tmp_path)

    assert result.status == "finished", result.error
    assert result.outputs == {"t": {"title": "Quarterly notes", "lines": 2}}
    assert calls == [1, 3, 3]  # the retry asked only for the failed request
    store = await SQLiteEventStore.open(db, create=False)
    try:
        events = [decode_event(r.type, r.data) for r in await store.read(result.run_id)]
    finally:
        await store.close()
    assert len([e for e in events if isinstance(e, ToolCallStarted)]) == 1
    replayed = [
        (e.attempt, decode_json(e.event))
        for e in events
        if isinstance(e, AgentEvent) and decode_json(e.event)["type"] == "replayed"
    ]
    assert replayed == [(2, {"type": "replayed", "responses": 1, "toolResults": 1})]
