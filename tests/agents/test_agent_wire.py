"""Agent tasks over the wire: the real OpenAI and Anthropic providers against `stub_llm`.

Each test runs a workflow whose agent is ``smithers.agents.openai``/``anthropic`` with
its base URL at the stub on 127.0.0.1, so the requests, streams and error bodies are
the providers' real wire formats, parsed by the official SDKs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest

pytest.importorskip("pydantic_ai")

from smithers.engine import read_events
from smithers.eventstore import decode_json
from smithers.eventstore.events import (
    AgentEvent,
    NodeFailed,
    NodeRetrying,
    TokenUsageReported,
    ToolCallFinished,
)

import smithers
from smithers import Backoff, Task, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path

    from stub_llm import StubLLM


class Answer(msgspec.Struct):
    answer: str
    confidence: int


NO_WAIT = Backoff(kind="fixed", initial_ms=0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _agent(stub: StubLLM, provider: str) -> Any:
    if provider == "openai":
        return smithers.agents.openai("gpt-stub", base_url=stub.openai_base_url, api_key="k")
    return smithers.agents.anthropic("claude-stub", base_url=stub.anthropic_base_url, api_key="k")


async def _run(stub: StubLLM, provider: str, tmp_path: Path, **task: Any) -> Any:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    (root / "facts.txt").write_text("The answer is 42.\n")

    @workflow("wire")
    def flow(ctx: Any) -> Any:
        return Task("ask", output=Answer, agent=_agent(stub, provider), prompt="Ask.", **task)

    with anyio.fail_after(30):
        return await run_workflow(flow, db=tmp_path / "runs.db", root_dir=root)


async def _events(result: Any, tmp_path: Path) -> list[Any]:
    return [e for _, e in await read_events(result.run_id, db=tmp_path / "runs.db")]


def _final(args: Any, call_id: str = "out-1") -> dict[str, Any]:
    return {"tool_calls": [{"name": "final_result", "arguments": args, "id": call_id}]}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_tool_call_round_trip_lands_in_the_log(
    stub_llm: StubLLM, provider: str, tmp_path: Path
) -> None:
    stub_llm.add(
        {
            "tool_calls": [{"name": "read", "arguments": {"path": "facts.txt"}, "id": "c1"}],
            "usage": {"input": 50, "output": 7, "cache_read": 20},
        },
        {**_final({"answer": "42", "confidence": 3}), "usage": {"input": 70, "output": 9}},
    )

    result = await _run(stub_llm, provider, tmp_path, tools=["read"])

    assert result.status == "finished", result.error
    assert result.outputs["ask"] == {"answer": "42", "confidence": 3}
    assert len(stub_llm.requests) == 2
    second = msgspec.json.encode(stub_llm.requests[1]["body"]).decode()
    assert "The answer is 42." in second  # the tool's result went back to the model
    events = await _events(result, tmp_path)
    (read,) = [e for e in events if isinstance(e, ToolCallFinished)]
    assert (read.tool_name, read.call_id, read.status) == ("read", "c1", "success")
    assert decode_json(read.result) == "The answer is 42.\n"
    usage = [(e.input_tokens, e.output_tokens) for e in events if isinstance(e, TokenUsageReported)]
    if provider == "openai":
        assert usage == [(50, 7), (70, 9)]
    else:  # Pydantic AI counts Anthropic's cached prompt tokens as input too
        assert usage == [(70, 7), (70, 9)]
    kinds = [decode_json(e.event)["type"] for e in events if isinstance(e, AgentEvent)]
    assert kinds == ["start", "request", "response", "request", "response", "output"]


async def test_a_429_is_retried_after_the_providers_retry_after(
    stub_llm: StubLLM, tmp_path: Path
) -> None:
    stub_llm.add(
        {"error": 429, "retry_after": "1"},
        _final({"answer": "ok", "confidence": 1}),
    )

    result = await _run(stub_llm, "openai", tmp_path, backoff=NO_WAIT)

    assert result.status == "finished", result.error
    assert len(stub_llm.requests) == 2  # the SDK did not retry on its own
    events = await _events(result, tmp_path)
    (failed,) = [e for e in events if isinstance(e, NodeFailed)]
    assert failed.error.code == "AGENT_RATE_LIMITED"
    assert decode_json(failed.error.details)["retryAfterMs"] == 1000
    (retrying,) = [e for e in events if isinstance(e, NodeRetrying)]
    assert retrying.delay_ms == 1000


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_401_fails_the_task_without_a_retry(
    stub_llm: StubLLM, provider: str, tmp_path: Path
) -> None:
    stub_llm.add({"error": 401, "message": "invalid x-api-key"})

    result = await _run(stub_llm, provider, tmp_path, backoff=NO_WAIT)

    assert result.status == "failed"
    assert len(stub_llm.requests) == 1
    (failed,) = [e for e in await _events(result, tmp_path) if isinstance(e, NodeFailed)]
    assert failed.error.code == "AGENT_CONFIG_INVALID"
    assert not failed.error.retryable
    assert "HTTP 401" in failed.error.message
    details = decode_json(failed.error.details)
    assert (
        details["agentId"] == f"{provider}:{'gpt-stub' if provider == 'openai' else 'claude-stub'}"
    )


async def test_a_reply_that_misses_a_field_is_repaired_in_one_turn(
    stub_llm: StubLLM, tmp_path: Path
) -> None:
    stub_llm.add(
        _final({"answer": "42"}, "out-1"),  # no confidence: the schema says it is required
        _final({"answer": "42", "confidence": 2}, "out-2"),
    )

    result = await _run(stub_llm, "openai", tmp_path)

    assert result.status == "finished", result.error
    assert result.outputs["ask"] == {"answer": "42", "confidence": 2}
    assert len(stub_llm.requests) == 2
    repair = msgspec.json.encode(stub_llm.requests[1]["body"]["messages"]).decode()
    assert "did not match the required output schema" in repair
    assert "confidence" in repair
    # The same conversation: the first request's prompt is still there.
    assert "Ask." in repair
    events = await _events(result, tmp_path)
    kinds = [decode_json(e.event)["type"] for e in events if isinstance(e, AgentEvent)]
    assert kinds.count("repair") == 1
    assert not [e for e in events if isinstance(e, NodeFailed)]


async def test_malformed_json_arguments_are_sent_back_to_the_model(
    stub_llm: StubLLM, tmp_path: Path
) -> None:
    broken = {"tool_calls": [{"name": "final_result", "arguments": '{"answer": "4', "id": "x"}]}
    stub_llm.add(broken, _final({"answer": "42", "confidence": 5}, "out-2"))

    result = await _run(stub_llm, "openai", tmp_path)

    assert result.status == "finished", result.error
    assert result.outputs["ask"] == {"answer": "42", "confidence": 5}
    assert len(stub_llm.requests) == 2
