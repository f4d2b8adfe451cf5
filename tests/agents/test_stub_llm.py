"""The scripted model-API stub, driven through pydantic-ai's real OpenAI and Anthropic models.

Each test points ``OpenAIChatModel`` / ``AnthropicModel`` (and so the official ``openai``
and ``anthropic`` SDKs) at a `StubLLM` on 127.0.0.1 and checks both sides: what the agent
got back, and what the stub logged as sent.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from typing import TYPE_CHECKING, Any

import anyio
import pytest

pytest.importorskip("pydantic_ai")

import anthropic
import openai
from pydantic import BaseModel
from pydantic_ai import Agent, StructuredDict
from pydantic_ai.exceptions import (
    ModelAuthenticationError,
    ModelHTTPError,
    ModelOverloadedError,
    ModelRateLimitError,
    ModelRequestRejectedError,
    ModelServerError,
    ModelTimeoutError,
)
from pydantic_ai.messages import PartDeltaEvent, PartStartEvent, TextPart, TextPartDelta
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider
from smithers.engine.agents import classify_provider_error
from stub_llm import StubLLM, duplicate_fingerprints, fingerprint, read_log

if TYPE_CHECKING:
    from collections.abc import AsyncIterable
    from pathlib import Path

    from pydantic_ai import RunContext
    from pydantic_ai.messages import AgentStreamEvent
    from pydantic_ai.models import Model

PROVIDERS = ("openai", "anthropic")
ROUTE = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_model(provider: str, stub: StubLLM, *, sdk_max_retries: int | None = None) -> Model:
    """The real pydantic-ai model for `provider`, talking to `stub`.

    With `sdk_max_retries`, the SDK client is built here with that retry count and handed
    to the provider (``openai_client=`` / ``anthropic_client=``).
    """
    if provider == "openai":
        if sdk_max_retries is None:
            oai = OpenAIProvider(base_url=stub.openai_base_url, api_key="dummy")
        else:
            client = openai.AsyncOpenAI(
                base_url=stub.openai_base_url, api_key="dummy", max_retries=sdk_max_retries
            )
            oai = OpenAIProvider(openai_client=client)
        return OpenAIChatModel("gpt-stub", provider=oai)
    if sdk_max_retries is None:
        ant = AnthropicProvider(api_key="dummy", base_url=stub.anthropic_base_url)
    else:
        aclient = anthropic.AsyncAnthropic(
            base_url=stub.anthropic_base_url, api_key="dummy", max_retries=sdk_max_retries
        )
        ant = AnthropicProvider(anthropic_client=aclient)
    return AnthropicModel("claude-stub", provider=ant)


class EventLog:
    """An ``event_stream_handler`` that keeps every streamed event."""

    def __init__(self) -> None:
        self.events: list[AgentStreamEvent] = []

    async def __call__(self, ctx: RunContext[Any], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            self.events.append(event)

    def text(self) -> str:
        """The text streamed so far: the text parts' starts and their deltas."""
        pieces = [
            e.part.content
            for e in self.events
            if isinstance(e, PartStartEvent) and isinstance(e.part, TextPart)
        ]
        return "".join(pieces + self.text_deltas())

    def text_deltas(self) -> list[str]:
        return [
            e.delta.content_delta
            for e in self.events
            if isinstance(e, PartDeltaEvent) and isinstance(e.delta, TextPartDelta)
        ]


def adder(provider: str, stub: StubLLM, calls: list[tuple[int, int]]) -> Agent[None, str]:
    agent = Agent(make_model(provider, stub))

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b

    return agent


def tool_results(provider: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """(tool call id, result text) of every tool result in a request body."""
    found = []
    for message in body["messages"]:
        if provider == "openai" and message["role"] == "tool":
            found.append((message["tool_call_id"], message["content"]))
        if provider == "anthropic" and isinstance(message["content"], list):
            for block in message["content"]:
                if block["type"] == "tool_result":
                    content = block["content"]
                    if isinstance(content, list):
                        content = "".join(part["text"] for part in content)
                    found.append((block["tool_use_id"], content))
    return found


# ---------------------------------------------------------------------------- text replies


@pytest.mark.parametrize(
    ("provider", "input_tokens"),
    # Anthropic reports input_tokens without the cached part; pydantic-ai adds it back.
    [("openai", 7), ("anthropic", 7 + 2 + 4)],
)
async def test_text_reply_comes_back_with_the_scripted_usage(
    stub_llm: StubLLM, provider: str, input_tokens: int
) -> None:
    usage = {"input": 7, "output": 3, "cache_read": 2, "cache_write": 4}
    stub_llm.add({"text": "Hello from the stub.", "usage": usage})
    agent = Agent(make_model(provider, stub_llm), instructions="Be brief.")

    result = await agent.run("Say hello.")

    assert result.output == "Hello from the stub."
    assert result.usage.input_tokens == input_tokens
    assert result.usage.output_tokens == 3
    assert result.usage.cache_read_tokens == 2
    assert result.usage.requests == 1
    [request] = stub_llm.requests
    assert (request["method"], request["path"], request["status"]) == ("POST", ROUTE[provider], 200)
    assert request["answered"] is True
    assert request["body"]["stream"] is False
    assert request["body"]["model"] == f"{'gpt' if provider == 'openai' else 'claude'}-stub"
    assert "Be brief." in json.dumps(request["body"])
    secrets = {k: v for k, v in request["headers"].items() if k in ("authorization", "x-api-key")}
    assert list(secrets.values()) == ["<masked>"]  # the key was sent, and is not logged


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_run_stream_gets_the_text_in_pieces_and_the_usage(
    stub_llm: StubLLM, provider: str
) -> None:
    text = "A streamed answer, long enough to arrive in several chunks."
    stub_llm.add({"text": text, "usage": {"input": 11, "output": 13}})
    agent = Agent(make_model(provider, stub_llm))

    async with agent.run_stream("Stream, please.") as stream:
        pieces = [piece async for piece in stream.stream_text(delta=True, debounce_by=None)]
        usage = stream.usage

    assert "".join(pieces) == text
    assert len(pieces) > 1
    assert (usage.input_tokens, usage.output_tokens) == (11, 13)
    [request] = stub_llm.requests
    assert request["body"]["stream"] is True
    if provider == "openai":
        assert request["body"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_event_stream_handler_streams_the_reply(stub_llm: StubLLM, provider: str) -> None:
    text = "Events arrive as deltas of the text part."
    stub_llm.add({"text": text})
    events = EventLog()
    agent = Agent(make_model(provider, stub_llm))

    result = await agent.run("Go.", event_stream_handler=events)

    assert result.output == text
    assert len(events.text_deltas()) > 1
    assert events.text() == text
    assert stub_llm.requests[0]["body"]["stream"] is True


# ---------------------------------------------------------------------------- tools


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
async def test_tool_call_round_trip_sends_the_result_back(
    stub_llm: StubLLM, provider: str, streamed: bool
) -> None:
    stub_llm.add(
        {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 40}, "id": "call_add"}]},
        {"text": "The sum is 42."},
    )
    calls: list[tuple[int, int]] = []
    agent = adder(provider, stub_llm, calls)

    handler = EventLog() if streamed else None
    result = await agent.run("What is 2 + 40?", event_stream_handler=handler)

    assert result.output == "The sum is 42."
    assert calls == [(2, 40)]
    first, second = stub_llm.requests
    tools = first["body"]["tools"]
    assert [t["name"] if provider == "anthropic" else t["function"]["name"] for t in tools] == [
        "add"
    ]
    assert tool_results(provider, first["body"]) == []
    assert tool_results(provider, second["body"]) == [("call_add", "42")]
    assert (first["step"], second["step"]) == (0, 1)
    assert stub_llm.remaining == 0


# ---------------------------------------------------------------------------- structured output


class Verdict(BaseModel):
    severity: int
    title: str


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_structured_output_arrives_through_the_output_tool(
    stub_llm: StubLLM, provider: str
) -> None:
    args = {"severity": 2, "title": "Disk full"}
    stub_llm.add({"tool_calls": [{"name": "final_result", "arguments": args}]})
    agent = Agent(make_model(provider, stub_llm), output_type=Verdict)

    result = await agent.run("Triage this.")

    assert result.output == Verdict(severity=2, title="Disk full")
    [request] = stub_llm.requests
    assert "final_result" in json.dumps(request["body"]["tools"])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_structured_dict_output(stub_llm: StubLLM, provider: str) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    stub_llm.add(
        {"tool_calls": [{"name": "final_result", "arguments": {"name": "Ada", "age": 36}}]}
    )
    agent = Agent(make_model(provider, stub_llm), output_type=StructuredDict(schema))

    result = await agent.run("Who?")

    assert result.output == {"name": "Ada", "age": 36}


@pytest.mark.parametrize(
    ("provider", "bad_arguments", "streamed", "error_type"),
    [
        ("openai", '{"severity": 2, "title": ', False, "json_invalid"),
        ("openai", {"severity": "very", "title": "Disk full"}, False, "int_parsing"),
        ("anthropic", {"severity": "very", "title": "Disk full"}, False, "int_parsing"),
        # Anthropic's tool input is an object; invalid JSON can only come as input_json_delta.
        ("anthropic", '{"severity": 2, "title": ', True, "json_invalid"),
    ],
)
async def test_invalid_output_is_retried_with_the_error_sent_back(
    stub_llm: StubLLM, provider: str, bad_arguments: Any, streamed: bool, error_type: str
) -> None:
    stub_llm.add(
        {"tool_calls": [{"name": "final_result", "arguments": bad_arguments, "id": "out_1"}]},
        {"tool_calls": [{"name": "final_result", "arguments": {"severity": 3, "title": "Ok"}}]},
    )
    agent = Agent(make_model(provider, stub_llm), output_type=Verdict)

    result = await agent.run("Triage.", event_stream_handler=EventLog() if streamed else None)

    assert result.output == Verdict(severity=3, title="Ok")
    first, second = stub_llm.requests
    [(call_id, retry_prompt)] = tool_results(provider, second["body"])
    assert call_id == "out_1"
    assert f'"type":"{error_type}"' in retry_prompt  # pydantic's error, sent to the model
    assert tool_results(provider, first["body"]) == []
    assert first["fingerprint"] != second["fingerprint"]


# ---------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limit_is_retried_by_the_sdk_then_raised_with_retry_after(
    stub_llm: StubLLM, provider: str
) -> None:
    # The first two 429s ask for 5 ms (retry-after-ms), so the SDK's own retries are quick.
    quick = {"error": 429, "headers": {"retry-after-ms": "5"}}
    stub_llm.add(quick, quick, {"error": 429, "retry_after": "7"})
    agent = Agent(make_model(provider, stub_llm))

    with pytest.raises(ModelHTTPError) as caught:
        await agent.run("Hi.")

    exc = caught.value
    assert isinstance(exc, ModelRateLimitError)
    assert exc.status_code == 429
    assert exc.retry_after == 7.0
    assert exc.headers is not None
    assert exc.headers["retry-after"] == "7"
    sdk_error = exc.__cause__
    expected_cause = openai.RateLimitError if provider == "openai" else anthropic.RateLimitError
    assert isinstance(sdk_error, expected_cause)
    assert sdk_error.response.headers["retry-after"] == "7"
    if provider == "openai":
        assert exc.body == {
            "message": "Rate limit reached for requests (stub).",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        assert exc.provider_error_code == "rate_limit_exceeded"
    else:
        assert exc.body == {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "Number of requests has exceeded your rate limit (stub).",
            },
        }
        assert exc.provider_error_type == "rate_limit_error"
    # The SDK sent the request three times (2 retries by default), counting its retries.
    retry_counts = [r["headers"]["x-stainless-retry-count"] for r in stub_llm.requests]
    assert retry_counts == ["0", "1", "2"]
    assert duplicate_fingerprints(stub_llm.requests) == [stub_llm.requests[0]["fingerprint"]]
    # What the engine's classifier makes of what the exception carries.
    verdict = classify_provider_error(exc.status_code, exc.body, exc.headers)
    assert (verdict.code, verdict.retry_after_ms) == ("AGENT_RATE_LIMITED", 7000)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("how", ["model_settings", "client"])
async def test_sdk_retries_can_be_turned_off(stub_llm: StubLLM, provider: str, how: str) -> None:
    stub_llm.add({"error": 429, "retry_after": "1"}, {"text": "never reached"})
    if how == "client":
        agent = Agent(make_model(provider, stub_llm, sdk_max_retries=0))
        settings = None
    else:
        agent = Agent(make_model(provider, stub_llm))
        settings = {"max_retries": 0}

    with pytest.raises(ModelRateLimitError) as caught:
        await agent.run("Hi.", model_settings=settings)  # type: ignore[arg-type]

    assert isinstance(caught.value, ModelHTTPError)
    assert caught.value.retry_after == 1.0
    assert len(stub_llm.requests) == 1
    assert stub_llm.remaining == 1


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("status", "category", "sdk_error", "sends"),
    [
        # 401 is not retried by the SDKs; 5xx is (the stub asks for 5 ms between tries).
        (401, ModelAuthenticationError, "AuthenticationError", 1),
        (400, ModelRequestRejectedError, "BadRequestError", 1),
        (500, ModelServerError, "InternalServerError", 3),
    ],
)
async def test_error_statuses_raise_model_http_error_categories(
    stub_llm: StubLLM,
    provider: str,
    status: int,
    category: type[Exception],
    sdk_error: str,
    sends: int,
) -> None:
    for _ in range(3):
        stub_llm.add({"error": status, "headers": {"retry-after-ms": "5"}})
    agent = Agent(make_model(provider, stub_llm))

    with pytest.raises(ModelHTTPError) as caught:
        await agent.run("Hi.")

    assert caught.value.status_code == status
    assert isinstance(caught.value, category)
    sdk = openai if provider == "openai" else anthropic
    assert isinstance(caught.value.__cause__, getattr(sdk, sdk_error))
    assert len(stub_llm.requests) == sends


async def test_anthropic_overloaded_529_is_its_own_category(stub_llm: StubLLM) -> None:
    stub_llm.add({"error": 529})
    agent = Agent(make_model("anthropic", stub_llm, sdk_max_retries=0))

    with pytest.raises(ModelOverloadedError) as caught:
        await agent.run("Hi.")

    assert isinstance(caught.value, ModelHTTPError)
    assert caught.value.status_code == 529
    assert caught.value.provider_error_type == "overloaded_error"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_exhausted_script_answers_500_naming_the_count(
    stub_llm: StubLLM, provider: str
) -> None:
    stub_llm.add({"text": "only answer"})
    agent = Agent(make_model(provider, stub_llm, sdk_max_retries=0))
    assert (await agent.run("one")).output == "only answer"

    with pytest.raises(ModelServerError, match="stub script exhausted after 1 requests"):
        await agent.run("two")

    assert [r["step"] for r in stub_llm.requests] == [0, None]
    assert [r["status"] for r in stub_llm.requests] == [200, 500]


@pytest.mark.parametrize(
    ("provider", "status", "category"),
    [
        ("openai", 429, ModelRateLimitError),
        ("anthropic", 429, ModelRateLimitError),
        ("anthropic", 529, ModelOverloadedError),
    ],
)
async def test_an_error_inside_the_stream_raises_with_in_stream_set(
    stub_llm: StubLLM, provider: str, status: int, category: type[Exception]
) -> None:
    stub_llm.add({"error": status, "error_in_stream": True, "text": "Half an ans"})
    events = EventLog()
    agent = Agent(make_model(provider, stub_llm))

    with pytest.raises(ModelHTTPError) as caught:
        await agent.run("Hi.", event_stream_handler=events)

    assert isinstance(caught.value, category)
    assert caught.value.in_stream is True
    assert caught.value.status_code == status
    assert events.text() == "Half an ans"  # what came before the error was streamed
    [request] = stub_llm.requests
    assert (request["status"], request["answered"]) == (200, True)


# ---------------------------------------------------------------------------- script modes


async def test_guarded_steps_answer_by_the_last_user_message_in_any_order(
    stub_llm: StubLLM,
) -> None:
    stub_llm.add(
        {"when_last_user_contains": "weather", "text": "Sunny."},
        {"when_last_user_contains": "time", "text": "Noon."},
        {"text": "Anything else.", "repeat": True},
    )
    agent = Agent(make_model("anthropic", stub_llm))

    prompts = ("What time is it?", "Other?", "Is the weather fine?", "And now?")
    outputs = [(await agent.run(prompt)).output for prompt in prompts]

    assert outputs == ["Noon.", "Anything else.", "Sunny.", "Anything else."]
    assert [r["step"] for r in stub_llm.requests] == [1, 2, 0, 2]


async def test_a_function_step_answers_from_the_request(stub_llm: StubLLM) -> None:
    def echo(body: dict[str, Any]) -> dict[str, Any]:
        return {"text": f"You sent {len(body['messages'])} message(s)."}

    stub_llm.add(echo)
    agent = Agent(make_model("openai", stub_llm))

    result = await agent.run("Count.")

    assert result.output == "You sent 1 message(s)."


async def test_a_function_step_that_raises_answers_500_naming_the_error(
    stub_llm: StubLLM,
) -> None:
    def broken(body: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("no such field")

    stub_llm.add(broken)
    agent = Agent(make_model("anthropic", stub_llm, sdk_max_retries=0))

    with pytest.raises(ModelServerError, match=r"stub step 0 raised KeyError\('no such field'\)"):
        await agent.run("Hi.")


async def test_fingerprints_spot_the_same_request_sent_twice(stub_llm: StubLLM) -> None:
    stub_llm.add({"text": "a"}, {"text": "b"}, {"text": "c"})
    agent = Agent(make_model("openai", stub_llm))

    for prompt in ("first", "second", "first"):
        await agent.run(prompt)

    prints = stub_llm.fingerprints()
    assert prints[0] == prints[2] != prints[1]
    assert duplicate_fingerprints(stub_llm.requests) == [prints[0]]
    assert fingerprint(stub_llm.requests[0]) == prints[0]


async def test_a_delayed_request_is_logged_before_it_is_answered(stub_llm: StubLLM) -> None:
    stub_llm.add({"text": "late", "delay_ms": 300})
    agent = Agent(make_model("anthropic", stub_llm))
    results: list[str] = []

    async def ask() -> None:
        results.append((await agent.run("Slowly.")).output)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        with anyio.fail_after(5):
            while not stub_llm.requests:
                await anyio.sleep(0.01)
        assert results == []  # logged, still unanswered
        assert stub_llm.requests[0]["step"] == 0

    assert results == ["late"]


async def test_a_request_the_client_gave_up_on_is_logged_as_not_answered(
    stub_llm: StubLLM,
) -> None:
    stub_llm.add({"text": "too late", "delay_ms": 60_000}, {"text": "in time"})
    agent = Agent(make_model("openai", stub_llm))

    with pytest.raises(ModelTimeoutError):
        await agent.run("Hi.", model_settings={"timeout": 0.1, "max_retries": 0})
    with anyio.fail_after(5):
        while stub_llm.requests[0]["answered"] is None:
            await anyio.sleep(0.02)
    result = await agent.run("Hi.")

    assert result.output == "in time"
    first, second = stub_llm.requests
    assert (first["answered"], second["answered"]) == (False, True)
    assert first["fingerprint"] == second["fingerprint"]
    assert duplicate_fingerprints(stub_llm.requests) == [first["fingerprint"]]
    assert duplicate_fingerprints(stub_llm.requests, answered_only=True) == []


# ---------------------------------------------------------------------------- as a process


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


async def test_the_stub_runs_as_a_process_and_logs_every_request(
    stub_llm_script: Path, tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            [
                {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}, "id": "c1"}]},
                {"text": "3", "usage": {"input": 20, "output": 1}},
            ]
        )
    )
    log = tmp_path / "requests.ndjson"
    argv = [sys.executable, str(stub_llm_script), "--port", "0", "--script", str(script)]
    proc = subprocess.Popen([*argv, "--log", str(log)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first_line = proc.stdout.readline()
        assert first_line.startswith("listening on http://127.0.0.1:")
        url = first_line.split()[-1]
        calls: list[tuple[int, int]] = []
        provider = OpenAIProvider(base_url=f"{url}/v1", api_key="dummy")
        agent = Agent(OpenAIChatModel("gpt-stub", provider=provider))

        @agent.tool_plain
        def add(a: int, b: int) -> int:
            calls.append((a, b))
            return a + b

        result = await agent.run("1 + 2?")
        served = get_json(f"{url}/_requests")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    assert result.output == "3"
    assert calls == [(1, 2)]
    logged = read_log(log)
    assert logged == served
    assert [(r["index"], r["step"], r["status"]) for r in logged] == [(0, 0, 200), (1, 1, 200)]
    assert tool_results("openai", logged[1]["body"]) == [("c1", "3")]
    assert duplicate_fingerprints(logged) == []


CLIENT = """
import sys, urllib.request
headers = {"content-type": "application/json"}
urllib.request.urlopen(urllib.request.Request(sys.argv[1], sys.argv[2].encode(), headers))
"""
"""A client process: POST argv[2] (JSON text) to argv[1]."""


def post_json(url: str, body: Any) -> Any:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


async def test_a_client_killed_mid_request_leaves_an_unanswered_line_in_the_log(
    stub_llm_script: Path, tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": "slow", "delay_ms": 60_000}, {"text": "fast"}]))
    log = tmp_path / "requests.ndjson"
    argv = [sys.executable, str(stub_llm_script), "--script", str(script), "--log", str(log)]
    stub = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert stub.stdout is not None
        url = stub.stdout.readline().split()[-1] + "/v1/messages"
        body = {
            "model": "claude-stub",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Hi."}],
        }
        client = subprocess.Popen([sys.executable, "-c", CLIENT, url, json.dumps(body)])
        with anyio.fail_after(10):
            while not (log.exists() and read_log(log)):
                await anyio.sleep(0.02)
            client.send_signal(signal.SIGKILL)
            client.wait()
            while read_log(log)[0]["answered"] is None:
                await anyio.sleep(0.02)
        resent = post_json(url, body)  # the resumed client sends the same request again
    finally:
        stub.send_signal(signal.SIGKILL)
        stub.wait(timeout=10)
        if stub.stdout is not None:
            stub.stdout.close()

    assert resent["content"] == [{"type": "text", "text": "fast"}]
    killed, again = read_log(log)
    assert (killed["step"], killed["answered"]) == (0, False)
    assert (again["step"], again["answered"]) == (1, True)
    assert duplicate_fingerprints([killed, again], answered_only=True) == []
    assert duplicate_fingerprints([killed, again]) == [killed["fingerprint"]]
