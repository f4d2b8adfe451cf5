"""A failure in user code is recorded with its traceback, file:line and cause, as data.

The engine's own frames (smithers, anyio, asyncio, worker threads) are trimmed from the
traceback; the location is the innermost frame of the user's code. `RunHandle.node`
gives a node's whole story.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from smithers.engine import NodeNotFoundError, node_detail
from smithers.eventstore import MemoryEventStore
from smithers.eventstore.errors import ERROR_JSON_KEYS, error_info_to_json
from smithers.eventstore.events import (
    ErrorInfo,
    NodeFailed,
    NodeFinished,
    NodePending,
    NodeStarted,
    RunFailed,
    RunStarted,
    TaskHeartbeat,
)

import smithers
from smithers import (
    Backoff,
    Sequence,
    Task,
    TaskContext,
    connect,
    run_workflow,
    workflow,
)

HERE = str(Path(__file__).resolve())
ENGINE_DIRS = [
    str(Path(smithers.engine.__file__).resolve().parent),
    str(Path(anyio.__file__).resolve().parent),
    "asyncio",
    "threading.py",
    "concurrent",
]
NO_WAIT = Backoff(kind="fixed", initial_ms=0)


class N(msgspec.Struct):
    n: int


def line_of(fn: Any, text: str) -> int:
    """The line number of the first line of `fn`'s source containing `text`."""
    lines, first = __import__("inspect").getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


def assert_no_engine_frames(stack: str) -> None:
    frames = [line for line in stack.splitlines() if line.lstrip().startswith('File "')]
    assert frames, stack
    for frame in frames:
        assert not any(d in frame for d in ENGINE_DIRS), frame


async def node_errors(db: Path, run_id: str) -> list[ErrorInfo]:
    async with connect(db) as client:
        events = await (await client.get_run(run_id)).events(types=["NodeFailed"])
    return [e.error for _, e in events if isinstance(e, NodeFailed)]


async def run_error(db: Path, run_id: str) -> ErrorInfo:
    async with connect(db) as client:
        events = await (await client.get_run(run_id)).events(types=["RunFailed"])
    (failed,) = [e for _, e in events if isinstance(e, RunFailed)]
    return failed.error


# ---------------------------------------------------------------------- tasks


def sync_boom() -> dict[str, int]:
    raise ValueError("sync boom")


async def async_boom() -> dict[str, int]:
    await anyio.sleep(0)
    raise ValueError("async boom")


@pytest.mark.parametrize(("fn", "message"), [(sync_boom, "sync boom"), (async_boom, "async boom")])
async def test_a_task_failure_records_its_traceback_and_where_it_raised(
    db: Path, fn: Any, message: str
) -> None:
    @workflow("boom")
    def wf(ctx: Any) -> Any:
        return Task("a", output=N, run=fn)

    result = await run_workflow(wf, db=db)
    assert result.status == "failed"
    (error,) = await node_errors(db, result.run_id)
    assert error.name == "ValueError"
    assert error.message == message
    assert error.file == HERE
    assert error.line == line_of(fn, "raise ValueError")
    assert error.function == fn.__name__
    assert error.stack is not None
    assert error.stack.startswith("Traceback (most recent call last):\n")
    assert f'File "{HERE}", line {error.line}, in {fn.__name__}' in error.stack
    assert error.stack.rstrip().endswith(f"ValueError: {message}")
    assert_no_engine_frames(error.stack)


def parse(text: str) -> Any:
    return json.loads(text)  # raises inside the standard library


async def test_the_location_is_the_users_line_not_the_librarys(db: Path) -> None:
    @workflow("lib")
    def wf(ctx: Any) -> Any:
        return Task("a", output=N, run=lambda: parse("{not json"))

    result = await run_workflow(wf, db=db)
    (error,) = await node_errors(db, result.run_id)
    assert error.name == "JSONDecodeError"
    assert (error.file, error.line, error.function) == (HERE, line_of(parse, "json.loads"), "parse")
    assert error.stack is not None
    assert "json/decoder.py" in error.stack  # the library's frames stay in the stack
    assert_no_engine_frames(error.stack)


def wrapped() -> dict[str, int]:
    try:
        {}["missing"]
    except KeyError as e:
        raise RuntimeError("lookup failed") from e
    return {"n": 0}


async def test_the_cause_is_recorded_and_the_stack_shows_the_chain(db: Path) -> None:
    @workflow("chain")
    def wf(ctx: Any) -> Any:
        return Task("a", output=N, run=wrapped)

    result = await run_workflow(wf, db=db)
    (error,) = await node_errors(db, result.run_id)
    assert error.name == "RuntimeError"
    assert error.line == line_of(wrapped, "raise RuntimeError")
    assert error.cause is not None
    assert error.cause.name == "KeyError"
    assert error.cause.line == line_of(wrapped, '{}["missing"]')
    assert error.cause.stack is None  # the top error's stack shows the chain
    assert error.stack is not None
    assert "The above exception was the direct cause" in error.stack
    assert "KeyError: 'missing'" in error.stack
    assert_no_engine_frames(error.stack)
    assert result.error is not None
    assert result.error["cause"]["name"] == "KeyError"


async def test_errors_the_engine_raises_itself_carry_no_stack(db: Path) -> None:
    @workflow("engine-errors")
    def wf(ctx: Any) -> Any:
        return Sequence(
            Task("shape", output=N, run=lambda: {"n": "not a number"}, continue_on_fail=True),
            Task("slow", output=N, run=lambda: anyio.sleep(5), timeout_ms=20),
        )

    result = await run_workflow(wf, db=db)
    shape, slow = await node_errors(db, result.run_id)
    assert shape.code == "INVALID_OUTPUT"
    assert slow.code == "TASK_TIMEOUT"
    for error in (shape, slow):
        assert (error.stack, error.file, error.line) == (None, None, None)


async def test_a_very_long_traceback_keeps_its_end(db: Path) -> None:
    def huge() -> dict[str, int]:
        raise ValueError("x" * 40_000)

    @workflow("huge")
    def wf(ctx: Any) -> Any:
        return Task("a", output=N, run=huge)

    result = await run_workflow(wf, db=db)
    (error,) = await node_errors(db, result.run_id)
    assert error.stack is not None
    assert len(error.stack) < 17_000
    assert error.stack.startswith("... (start of the traceback cut)\n")
    assert error.stack.rstrip().endswith("x" * 100)
    assert error.line == line_of(huge, "raise ValueError")


# ---------------------------------------------------------------------- builder


def exploding_builder(ctx: Any) -> Any:
    raise RuntimeError("builder exploded")


async def test_a_builder_failure_records_its_traceback_in_the_run_error(db: Path) -> None:
    wf = workflow("exploding")(exploding_builder)
    result = await run_workflow(wf, db=db)
    assert result.status == "failed"
    error = await run_error(db, result.run_id)
    assert error.name == "RuntimeError"
    assert error.file == HERE
    assert error.line == line_of(exploding_builder, "raise RuntimeError")
    assert error.function == "exploding_builder"
    assert error.stack is not None
    assert_no_engine_frames(error.stack)
    assert result.error is not None
    assert result.error["line"] == error.line
    assert result.error["stack"] == error.stack


# ---------------------------------------------------------------------- the one JSON shape


async def test_run_result_error_has_the_one_json_shape(db: Path) -> None:
    @workflow("boom")
    def wf(ctx: Any) -> Any:
        return Task("a", output=N, run=sync_boom)

    result = await run_workflow(wf, db=db)
    assert result.error is not None
    assert tuple(result.error) == ERROR_JSON_KEYS
    assert result.error["name"] == "ValueError"
    assert result.error["file"] == HERE
    assert result.error["details"] is None
    assert result.error["retryable"] is True


def test_error_info_to_json_fills_an_old_error_and_keeps_new_keys() -> None:
    old = {"name": "ValueError", "message": "boom", "retryable": False, "fromTheFuture": 1}
    out = error_info_to_json(old)
    assert out is not None
    assert tuple(out)[: len(ERROR_JSON_KEYS)] == ERROR_JSON_KEYS
    assert out["stack"] is None
    assert out["retryable"] is False
    assert out["fromTheFuture"] == 1
    assert error_info_to_json(None) is None
    struct = ErrorInfo(name="E", message="m", cause=ErrorInfo(name="C", message="c", line=3))
    as_json = error_info_to_json(struct)
    assert as_json is not None
    assert as_json["cause"]["line"] == 3
    assert tuple(as_json["cause"]) == ERROR_JSON_KEYS


def test_an_error_recorded_before_tracebacks_decodes_with_defaults() -> None:
    data = b'{"name":"ValueError","message":"boom","code":"X","retryable":false}'
    info = msgspec.json.decode(data, type=ErrorInfo)
    assert (info.stack, info.file, info.line, info.function, info.cause) == (None,) * 5


# ---------------------------------------------------------------------- RunHandle.node


async def test_node_story_has_every_attempt_with_errors_and_heartbeats(db: Path) -> None:
    def flaky(ctx: TaskContext) -> dict[str, int]:
        ctx.heartbeat({"attempt": ctx.attempt})
        if ctx.attempt < 3:
            raise ValueError(f"boom on attempt {ctx.attempt}")
        return {"n": ctx.attempt}

    @workflow("flaky")
    def wf(ctx: Any) -> Any:
        return Task("work", output=N, run=flaky, retries=2, backoff=NO_WAIT)

    async with connect(db) as client:
        result = await client.run(wf)
        assert result.status == "finished"
        detail = await (await client.get_run(result.run_id)).node("work")

    assert (detail.run_id, detail.node_id) == (result.run_id, "work")
    (it,) = detail.iterations
    assert it.state == "finished"
    assert [a.state for a in it.attempts] == ["failed", "failed", "finished"]
    assert [a.attempt for a in it.attempts] == [1, 2, 3]
    for a in it.attempts:
        assert a.finished_at_ms is not None
        assert a.duration_ms == a.finished_at_ms - a.started_at_ms
        assert len(a.heartbeats) == 1
        assert msgspec.json.decode(a.heartbeats[0].data) == {"attempt": a.attempt}
    first = it.attempts[0].error
    assert first is not None
    assert first.message == "boom on attempt 1"
    assert first.line == line_of(flaky, "raise ValueError")
    assert it.attempts[2].error is None
    assert it.duration_ms == sum(a.duration_ms or 0 for a in it.attempts)
    assert it.has_output
    assert msgspec.json.decode(it.output) == {"n": 3}
    assert detail.last_error is not None
    assert detail.last_error.message == "boom on attempt 2"
    types = [stored.type for stored, _ in detail.events]
    assert types.count("NodeStarted") == 3
    assert types.count("NodeFailed") == 2
    assert types.count("TaskHeartbeat") == 3
    assert all(getattr(e, "node_id", None) == "work" for _, e in detail.events)


async def test_node_story_per_iteration_and_unknown_ids() -> None:
    # No Loop component yet: the iterations are written as a loop would write them.
    def ev(cls: Any, t: int, **fields: Any) -> Any:
        return cls(run_id="r", timestamp_ms=t, **fields)

    events = [ev(RunStarted, 1, workflow_name="looped")]
    for i in range(3):
        t = 10 * (i + 1)
        events += [
            ev(NodePending, t, node_id="step", iteration=i),
            ev(NodeStarted, t + 1, node_id="step", iteration=i, attempt=1),
            ev(
                TaskHeartbeat,
                t + 2,
                node_id="step",
                iteration=i,
                attempt=1,
                has_data=False,
                data_size_bytes=0,
            ),
            ev(
                NodeFinished,
                t + 5,
                node_id="step",
                iteration=i,
                attempt=1,
                output=msgspec.Raw(b'{"n":%d}' % i),
            ),
        ]
    store = MemoryEventStore()
    await store.append("r", events, expected_seq=0)

    detail = await node_detail("r", "step", store=store)
    second = await node_detail("r", "step", iteration=1, store=store)
    with pytest.raises(NodeNotFoundError, match="no node 'nosuch'"):
        await node_detail("r", "nosuch", store=store)
    with pytest.raises(NodeNotFoundError, match="no iteration 9") as caught:
        await node_detail("r", "step", iteration=9, store=store)

    assert [it.iteration for it in detail.iterations] == [0, 1, 2]
    assert [msgspec.json.decode(it.output) for it in detail.iterations] == [
        {"n": 0},
        {"n": 1},
        {"n": 2},
    ]
    assert [it.duration_ms for it in detail.iterations] == [4, 4, 4]
    assert [len(it.attempts[0].heartbeats) for it in detail.iterations] == [1, 1, 1]
    (it,) = second.iterations
    assert it.iteration == 1
    assert it.attempts[0].heartbeats[0].timestamp_ms == 22
    assert {getattr(e, "iteration", None) for _, e in second.events} == {1}
    assert caught.value.code == "NODE_NOT_FOUND"
    assert caught.value.hint == "Its iterations: 0, 1, 2."
