"""Agent tasks on the engine: the protocol, fallback chains, repair turns, the journal.

The agents here are small duck-typed classes (the protocol is ``async generate``); the
Pydantic AI adapter and the provider wire formats are tested in tests/agents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from smithers.engine import UnsupportedFeatureError, read_events
from smithers.engine.agents import (
    AgentConfigInvalidError,
    AgentProviderError,
    AgentQuotaExceededError,
    AgentRateLimitedError,
    AgentRequest,
    AgentResult,
    AgentUsage,
    fingerprint,
)
from smithers.eventstore import decode_json
from smithers.eventstore.events import (
    AgentEvent,
    NodeFailed,
    NodeOutput,
    NodeRetrying,
    TokenUsageReported,
    ToolCallFinished,
    ToolCallStarted,
)

from smithers import Backoff, Task, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path

NO_WAIT = Backoff(kind="fixed", initial_ms=0)


class Triage(msgspec.Struct):
    label: str
    priority: int


class Scripted:
    """An agent answering from a list of replies (str: text; Exception: raised)."""

    def __init__(self, *replies: Any, id: str = "scripted", model: str = "m-1") -> None:
        self.replies = list(replies)
        self.id = id
        self.engine = "test"
        self.model = model
        self.requests: list[AgentRequest] = []

    async def generate(self, request: AgentRequest) -> AgentResult:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        history = [*(request.messages or []), {"user": request.prompt}, {"assistant": reply}]
        return AgentResult(
            text=reply,
            messages=history,
            usage=AgentUsage(model=self.model, input_tokens=10, output_tokens=3),
            finish_reason="stop",
        )


async def _events(run_id: str, db: Path, *types: type) -> list[Any]:
    return [e for _, e in await read_events(run_id, db=db) if isinstance(e, types)]


def _kinds(events: list[Any]) -> list[str]:
    return [decode_json(e.event)["type"] for e in events if isinstance(e, AgentEvent)]


async def test_an_agent_task_validates_the_reply_and_records_the_attempt(db: Path) -> None:
    agent = Scripted('Sure: ```json\n{"label": "bug", "priority": 2}\n```')

    @workflow("triage")
    def flow(ctx: Any) -> Any:
        return Task(
            "triage",
            output=Triage,
            agent=agent,
            prompt=lambda c: f"Triage: {c.input['title']}",
        )

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db, input={"title": "crash on start"})

    assert result.status == "finished"
    assert result.outputs["triage"] == {"label": "bug", "priority": 2}
    request = agent.requests[0]
    assert request.prompt == "Triage: crash on start"
    assert request.output_schema is not None
    assert "priority" in msgspec.json.encode(request.output_schema).decode()
    assert request.heartbeat_timeout_ms == 600_000
    events = await _events(result.run_id, db, AgentEvent, TokenUsageReported)
    assert _kinds(events) == ["start", "output"]
    start = decode_json(events[0].event)
    assert (start["agent"], start["model"], start["chainIndex"]) == ("scripted", "m-1", 0)
    usage = [e for e in events if isinstance(e, TokenUsageReported)]
    assert [(u.agent, u.model, u.input_tokens, u.output_tokens) for u in usage] == [
        ("scripted", "m-1", 10, 3)
    ]


async def test_a_reply_that_does_not_fit_gets_repair_turns_in_the_same_conversation(
    db: Path,
) -> None:
    agent = Scripted('{"label": "bug"}', "no json here", '{"label": "bug", "priority": 1}')

    @workflow("repair")
    def flow(ctx: Any) -> Any:
        return Task("t", output=Triage, agent=agent, prompt="triage it")

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    assert result.outputs["t"] == {"label": "bug", "priority": 1}
    first, second, third = agent.requests
    assert (first.repair_turn, second.repair_turn, third.repair_turn) == (0, 1, 2)
    assert "priority" in second.prompt
    assert "Repair 1 of 2" in second.prompt
    assert "no JSON" in third.prompt
    # The conversation goes on: each repair turn carries the previous messages.
    assert second.messages == [{"user": "triage it"}, {"assistant": '{"label": "bug"}'}]
    assert third.messages is not None
    assert len(third.messages) == 4
    kinds = _kinds(await _events(result.run_id, db, AgentEvent))
    assert kinds == ["start", "repair", "repair", "output"]


async def test_spent_repair_turns_fail_the_attempt_with_invalid_output(db: Path) -> None:
    agent = Scripted("nope", "still nope", "no")

    @workflow("spent")
    def flow(ctx: Any) -> Any:
        return Task("t", output=Triage, agent=agent, prompt="p", retries=0)

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    assert result.status == "failed"
    (failed,) = await _events(result.run_id, db, NodeFailed)
    assert failed.error.code == "INVALID_OUTPUT"
    assert decode_json(failed.error.details)["schemaRetryAttempts"] == 3


async def test_a_fallback_chain_moves_on_and_skips_a_refused_agent_for_the_run(
    db: Path,
) -> None:
    refused = AgentConfigInvalidError("bad key", details={"status": 401})
    a = Scripted(refused, id="a")
    b = Scripted('{"label": "x", "priority": 1}', '{"label": "y", "priority": 2}', id="b")

    @workflow("fallback")
    def flow(ctx: Any) -> Any:
        return [
            Task("one", output=Triage, agent=[a, b], prompt="p", backoff=NO_WAIT),
            Task("two", output=Triage, agent=[a, b], prompt="p", backoff=NO_WAIT),
        ]

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    assert result.status == "finished"
    assert result.outputs == {
        "one": {"label": "x", "priority": 1},
        "two": {"label": "y", "priority": 2},
    }
    assert len(a.requests) == 1  # "two" never asked the refused agent
    (failed,) = await _events(result.run_id, db, NodeFailed)
    assert failed.error.code == "AGENT_CONFIG_INVALID"
    assert failed.error.retryable
    assert decode_json(failed.error.details)["fallbackAgentId"] == "b"
    starts = [
        (e.node_id, decode_json(e.event)["agent"])
        for e in await _events(result.run_id, db, AgentEvent)
        if decode_json(e.event)["type"] == "start"
    ]
    assert starts == [("one", "a"), ("one", "b"), ("two", "b")]


async def test_a_refused_agent_without_fallback_is_not_retried(db: Path) -> None:
    agent = Scripted(AgentConfigInvalidError("unknown model"))

    @workflow("refused")
    def flow(ctx: Any) -> Any:
        return Task("t", output=Triage, agent=agent, prompt="p", backoff=NO_WAIT)

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    assert result.status == "failed"
    assert len(agent.requests) == 1
    (failed,) = await _events(result.run_id, db, NodeFailed)
    assert not failed.error.retryable


async def test_a_rate_limit_waits_at_least_the_providers_retry_after(db: Path) -> None:
    limited = AgentRateLimitedError("slow down", details={"retryAfterMs": 300})
    agent = Scripted(limited, '{"label": "ok", "priority": 0}')

    @workflow("limited")
    def flow(ctx: Any) -> Any:
        return Task("t", output=Triage, agent=agent, prompt="p", backoff=NO_WAIT)

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    assert result.status == "finished"
    (retrying,) = await _events(result.run_id, db, NodeRetrying)
    assert retrying.delay_ms == 300


class Journaling:
    """A model agent in miniature: one journaled "model call" per turn, tools in between.

    Each turn asks the journal for a recorded response first; a live turn counts in
    `live_calls`; once `fail_after_live` live turns were paid, the next one fails once
    (ending the attempt after recording some of the work).
    """

    def __init__(self, turns: int, fail_after_live: int | None = None) -> None:
        self.turns = turns
        self.fail_after_live = fail_after_live
        self.live_calls = 0
        self.id = "journaling"
        self.engine = "test"

    async def generate(self, request: AgentRequest) -> AgentResult:
        conversation: list[Any] = [request.prompt]
        for turn in range(self.turns):
            fp = fingerprint(conversation)
            response = request.journal.replayed_response(fp)
            if response is None:
                if self.fail_after_live is not None and self.live_calls == self.fail_after_live:
                    self.fail_after_live = None  # fails once
                    raise AgentProviderError("the provider went away")
                self.live_calls += 1
                request.journal.model_request(fp, conversation[-1:])
                response = {"say": f"turn {turn}", "call": f"c{turn}"}
                request.journal.model_response(
                    fp, response, AgentUsage(model="m", input_tokens=1, output_tokens=1)
                )
            result = await request.call_tool(
                "note", {"text": response["say"]}, call_id=response["call"]
            )
            conversation += [response, result]
        return AgentResult(text=msgspec.json.encode({"label": "done", "priority": 9}).decode())


async def test_a_retry_after_a_provider_failure_replays_the_recorded_conversation(
    db: Path,
) -> None:
    from smithers.tools import define_tool

    executed: list[str] = []

    def note(ctx: Any, args: Any) -> str:
        executed.append(args["text"])
        return f"noted {args['text']}"

    note_tool = define_tool("note", {"type": "object"}, note, side_effect=True)
    agent = Journaling(turns=3, fail_after_live=2)

    @workflow("replay")
    def flow(ctx: Any) -> Any:
        return Task("t", output=Triage, agent=agent, prompt="p", tools=[note_tool], backoff=NO_WAIT)

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    assert result.status == "finished", result.error
    # Two paid turns in attempt 1, then the failure; attempt 2 replays both responses and
    # both tool results, and pays only for the third turn.
    assert agent.live_calls == 3
    assert executed == ["turn 0", "turn 1", "turn 2"]
    events = await _events(result.run_id, db, AgentEvent, ToolCallStarted, ToolCallFinished)
    second = [e for e in events if e.attempt == 2]
    assert [decode_json(e.event)["type"] for e in second if isinstance(e, AgentEvent)] == [
        "start",
        "replayed",
        "request",
        "response",
        "output",
    ]
    replayed = next(
        decode_json(e.event)
        for e in second
        if isinstance(e, AgentEvent) and decode_json(e.event)["type"] == "replayed"
    )
    assert (replayed["responses"], replayed["toolResults"]) == (2, 2)
    calls = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [(e.attempt, e.call_id) for e in calls] == [(1, "c0"), (1, "c1"), (2, "c2")]


async def test_a_retry_after_invalid_output_starts_a_fresh_conversation(db: Path) -> None:
    agent = Journaling(turns=1)
    agent_bad = Scripted("no json", "no json", "no json", id="journaling")

    class FirstBadThenJournaling:
        id = "journaling"
        engine = "test"

        async def generate(self, request: AgentRequest) -> AgentResult:
            if request.attempt == 1:
                request.journal.model_response("fp", {"x": 1})
                return await agent_bad.generate(request)
            return await agent.generate(request)

    @workflow("fresh")
    def flow(ctx: Any) -> Any:
        from smithers.tools import define_tool

        tool = define_tool("note", {"type": "object"}, lambda c, a: "ok")
        return Task(
            "t",
            output=Triage,
            agent=FirstBadThenJournaling(),
            prompt="p",
            tools=[tool],
            backoff=NO_WAIT,
        )

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    assert result.status == "finished"
    kinds = _kinds([e for e in await _events(result.run_id, db, AgentEvent) if e.attempt == 2])
    assert "replayed" not in kinds


async def test_streamed_text_is_recorded_coalesced(db: Path) -> None:
    class Streaming:
        async def generate(self, request: AgentRequest) -> AgentResult:
            for i in range(500):
                request.on_text(f"tok{i} ")
            return AgentResult(text='{"label": "s", "priority": 1}')

    @workflow("stream")
    def flow(ctx: Any) -> Any:
        return Task("t", output=Triage, agent=Streaming(), prompt="p")

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    outputs = await _events(result.run_id, db, NodeOutput)
    assert 1 <= len(outputs) < 10
    assert "".join(e.text for e in outputs) == "".join(f"tok{i} " for i in range(500))
    assert {e.stream for e in outputs} == {"stdout"}


async def test_agent_tools_are_sandboxed_journaled_and_filtered(db: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("alpha")
    seen: list[Any] = []

    class ToolUser:
        async def generate(self, request: AgentRequest) -> AgentResult:
            seen.append(sorted(t.name for t in request.tools))
            text = await request.call_tool("read", {"path": "a.txt"}, call_id="r1")
            try:
                await request.call_tool("bash", {"argv": ["true"]}, call_id="b1")
            except Exception as e:
                seen.append(getattr(e, "code", None))
            return AgentResult(output={"label": text, "priority": 0})

    @workflow("tools")
    def flow(ctx: Any) -> Any:
        return Task(
            "t",
            output=Triage,
            agent=ToolUser(),
            prompt="p",
            tools=["read", "grep", "bash"],
            allow_tools=["read", "grep"],
        )

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db, root_dir=root)

    assert result.outputs["t"] == {"label": "alpha", "priority": 0}
    assert seen == [["grep", "read"], "INVALID_INPUT"]
    calls = await _events(result.run_id, db, ToolCallStarted, ToolCallFinished)
    assert [(type(e).__name__, e.tool_name, e.call_id) for e in calls] == [
        ("ToolCallStarted", "read", "r1"),
        ("ToolCallFinished", "read", "r1"),
    ]


async def test_a_silent_agent_fails_on_its_heartbeat_timeout(db: Path) -> None:
    class Silent:
        async def generate(self, request: AgentRequest) -> AgentResult:
            await anyio.sleep(30)
            raise AssertionError("not reached")

    @workflow("silent")
    def flow(ctx: Any) -> Any:
        return Task(
            "t", output=Triage, agent=Silent(), prompt="p", heartbeat_timeout_ms=200, retries=0
        )

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    (failed,) = await _events(result.run_id, db, NodeFailed)
    assert failed.error.code == "TASK_HEARTBEAT_TIMEOUT"


async def test_streamed_events_keep_a_slow_agent_alive(db: Path) -> None:
    class Chatty:
        async def generate(self, request: AgentRequest) -> AgentResult:
            for _ in range(8):
                await anyio.sleep(0.05)
                request.on_event("progress", {"step": 1})
            return AgentResult(output={"label": "alive", "priority": 1})

    @workflow("chatty")
    def flow(ctx: Any) -> Any:
        return Task(
            "t", output=Triage, agent=Chatty(), prompt="p", heartbeat_timeout_ms=150, retries=0
        )

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    assert result.status == "finished"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"agent": object(), "prompt": "p"}, "is not an agent"),
        ({"agent": Scripted()}, "needs prompt="),
        ({"agent": [], "prompt": "p"}, "at least one agent"),
        ({"agent": Scripted(), "prompt": "p", "tools": ["rm"]}, "no built-in tool 'rm'"),
        ({"agent": Scripted(), "prompt": "p", "tools": ["read", "read"]}, "given twice"),
        ({"agent": Scripted(), "prompt": "p", "allow_tools": "read"}, "list of tool names"),
    ],
)
def test_bad_agent_task_definitions_are_refused_when_written(
    kwargs: dict[str, Any], needle: str
) -> None:
    with pytest.raises(UnsupportedFeatureError, match=needle):
        Task("t", output=Triage, **kwargs)


def test_agent_tasks_default_to_two_retries_and_a_ten_minute_heartbeat() -> None:
    task = Task("t", output=Triage, agent=Scripted(), prompt="p")
    assert (task.kind, task.retries, task.heartbeat_timeout_ms) == ("agent", 2, 600_000)
    assert task.agents == (task.agent,)


async def test_an_agent_that_returns_no_agent_result_fails_clearly(db: Path) -> None:
    class Wrong:
        async def generate(self, request: AgentRequest) -> Any:
            return {"label": "x"}

    @workflow("wrong")
    def flow(ctx: Any) -> Any:
        return Task("t", output=Triage, agent=Wrong(), prompt="p")

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    (failed,) = await _events(result.run_id, db, NodeFailed)
    assert failed.error.code == "AGENT_CONFIG_INVALID"
    assert "not an AgentResult" in failed.error.message


async def test_tool_events_keep_the_logs_seq_in_json_views(db: Path, tmp_path: Path) -> None:
    from smithers.engine import event_to_json

    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("alpha")

    class OneRead:
        async def generate(self, request: AgentRequest) -> AgentResult:
            await request.call_tool("read", {"path": "a.txt"}, call_id="r1")
            return AgentResult(output={"label": "a", "priority": 1})

    @workflow("seqs")
    def flow(ctx: Any) -> Any:
        return Task("t", output=Triage, agent=OneRead(), prompt="p", tools=["read"])

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db, root_dir=root)

    rows = await read_events(result.run_id, db=db)
    views = [event_to_json(stored) for stored, _ in rows]
    assert [v["seq"] for v in views] == list(range(1, len(views) + 1))
    tool_views = [v for v in views if v["type"].startswith("ToolCall")]
    assert [v["callSeq"] for v in tool_views] == [1, 1]
    lines = (db.parent / "executions" / result.run_id / "logs" / "stream.ndjson").read_text()
    mirrored = [msgspec.json.decode(line) for line in lines.splitlines()]
    assert [m["seq"] for m in mirrored] == list(range(1, len(views) + 1))
    assert [m["callSeq"] for m in mirrored if m["type"].startswith("ToolCall")] == [1, 1]


async def test_time_travel_works_on_a_run_with_agent_tasks(db: Path) -> None:
    """verify, retry-task, replay from a frame: agent tasks behave as any task."""
    import smithers

    class Counting:
        id = "counting"
        engine = "test"

        def __init__(self) -> None:
            self.calls = 0

        async def generate(self, request: AgentRequest) -> AgentResult:
            self.calls += 1
            request.journal.model_response(
                fingerprint([request.prompt]), {"n": self.calls}, AgentUsage(model="m")
            )
            return AgentResult(output={"label": request.prompt, "priority": self.calls})

    agent = Counting()

    @workflow("tt")
    def flow(ctx: Any) -> Any:
        return [
            Task("first", output=Triage, agent=agent, prompt="one"),
            Task("second", output=Triage, agent=agent, prompt="two"),
        ]

    async with smithers.connect(db) as client:
        with anyio.fail_after(20):
            result = await client.run(flow, run_id="tt")
            assert result.outputs["second"] == {"label": "two", "priority": 2}
            run = await client.get_run("tt")
            assert (await run.verify(workflow=flow)).ok
            retried = await run.retry_task("second", workflow=flow)
            assert retried.outputs["second"] == {"label": "two", "priority": 3}
            timeline = await run.timeline()
            replayed = await run.replay(timeline.frames[1].frame_no, workflow=flow)
            assert replayed.status == "finished"
            assert replayed.outputs["first"] == {"label": "one", "priority": 1}
    # The retry and the replay asked the agent again (a fresh conversation each time):
    # recorded responses are replayed only to an attempt a crash or a provider failure
    # interrupted, never to a task reset on purpose.
    assert agent.calls == 4


async def test_quota_failures_do_not_spend_the_tasks_retries(db: Path) -> None:
    import time as _time

    class Limited:
        id = "limited"

        def __init__(self) -> None:
            self.calls = 0

        async def generate(self, request: AgentRequest) -> AgentResult:
            self.calls += 1
            if self.calls <= 3:
                reset = int(_time.time() * 1000) + 30
                raise AgentQuotaExceededError("limit", details={"quotaResetAtMs": reset})
            return AgentResult(output={"label": "ok", "priority": 1})

    agent = Limited()

    @workflow("quota")
    def flow(ctx: Any) -> Any:
        return Task("t", output=Triage, agent=agent, prompt="p", retries=0, backoff=NO_WAIT)

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db)

    assert result.status == "finished", result.error
    assert agent.calls == 4
    retrying = await _events(result.run_id, db, NodeRetrying)
    assert len(retrying) == 3
    assert all(0 < e.delay_ms <= 30 for e in retrying)


async def test_a_retry_due_after_a_quota_reset_parks_the_run_until_then(db: Path) -> None:
    import time as _time

    from smithers.engine.lifecycle import wake_deadline

    import smithers

    reset_at: list[int] = []

    class Limited:
        id = "limited"

        def __init__(self) -> None:
            self.calls = 0

        async def generate(self, request: AgentRequest) -> AgentResult:
            self.calls += 1
            if self.calls == 1:
                reset_at.append(int(_time.time() * 1000) + 1500)
                raise AgentQuotaExceededError("limit", details={"quotaResetAtMs": reset_at[0]})
            return AgentResult(output={"label": "later", "priority": 2})

    agent = Limited()

    @workflow("park")
    def flow(ctx: Any) -> Any:
        return Task("t", output=Triage, agent=agent, prompt="p", backoff=NO_WAIT)

    async with smithers.connect(db) as client:
        with anyio.fail_after(20):
            parked = await client.run(flow, run_id="q1", hold_ms=200)
            assert parked.status == "waiting-timer"  # no process sleeps for an hour-long reset
            run = await client.get_run("q1")
            state = await run.state()
            assert state.nodes[("t", 0)].state == "pending"
            deadline = wake_deadline(state)
            assert deadline is not None
            assert deadline[1] == "retry"
            assert abs(deadline[0] - reset_at[0]) < 200
            # Resumed before the reset: the retry still waits (parks again), no attempt.
            early = await client.run(flow, run_id="q1", resume=True, hold_ms=200)
            assert early.status == "waiting-timer"
            assert agent.calls == 1
            await anyio.sleep(max(reset_at[0] / 1000 - _time.time(), 0) + 0.1)
            done = await client.run(flow, run_id="q1", resume=True, hold_ms=200)
    assert done.status == "finished"
    assert done.outputs["t"] == {"label": "later", "priority": 2}
    assert agent.calls == 2
