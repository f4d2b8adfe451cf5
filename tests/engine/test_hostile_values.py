"""Issue 15, items 2 and 6: oversized and unencodable values fail once, with a code.

An output over the run's ``max_task_output_bytes`` fails its attempt with the
non-retryable ``TASK_OUTPUT_TOO_LARGE`` before it is recorded; a lone surrogate, NaN or
infinity, or a tree deeper than ``MAX_JSON_DEPTH`` in an output, an input, a heartbeat
or a signal payload is refused with a code naming what is wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from smithers.engine import InvalidInputError, TaskContext, signal
from smithers.engine.activation import MAX_TREE_DEPTH
from smithers.eventstore import (
    MAX_JSON_DEPTH,
    JsonValueError,
    SQLiteEventStore,
    decode_json,
    encode_json_strict,
)
from smithers.projections import fold_stored

from smithers import Backoff, Sequence, Task, WaitForEvent, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path

RETRY = {"retries": 3, "backoff": Backoff(kind="fixed", initial_ms=0)}


def nested(depth: int) -> Any:
    """A list nested `depth` deep: ``nested(2) == [[]]``."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def one_task(run: Any, *, retry: bool = True) -> Any:
    @workflow("one")
    def one(ctx: Any) -> Any:
        return Task("t", output=dict[str, Any], run=run, **(RETRY if retry else {}))

    return one


async def _log(db: Path, run_id: str) -> tuple[Any, list[str]]:
    store = await SQLiteEventStore.open(db)
    try:
        rows = await store.read(run_id)
    finally:
        await store.close()
    return fold_stored(run_id, rows), [r.type for r in rows]


# ------------------------------------------------------------------ item 2: output size


@pytest.mark.parametrize(("size", "ok"), [(990, True), (1010, False)])
async def test_an_output_over_the_limit_fails_once_and_is_not_recorded(
    db: Path, size: int, ok: bool
) -> None:
    calls: list[int] = []

    def run() -> dict[str, str]:
        calls.append(1)
        return {"s": "x" * (size - 8)}  # {"s":"…"} is 8 bytes of JSON around the text

    result = await run_workflow(
        one_task(run), db=db, run_id="r1", log_dir=None, max_task_output_bytes=1000
    )
    state, types = await _log(db, "r1")
    rec = state.nodes[("t", 0)]
    if ok:
        assert result.status == "finished"
        assert len(decode_json(rec.output)["s"]) == size - 8
        return
    assert result.status == "failed"
    assert rec.state == "failed"
    assert len(calls) == 1  # not retried, although the task has 3 retries
    assert "NodeFinished" not in types
    assert result.error is not None
    assert result.error["code"] == "TASK_OUTPUT_TOO_LARGE"
    assert result.error["retryable"] is False
    assert result.error["details"] == {
        "nodeId": "t",
        "iteration": 0,
        "attempt": 1,
        "sizeBytes": size,
        "maxBytes": 1000,
    }
    assert "1,010 bytes" in result.error["message"]
    assert "1,000" in result.error["message"]


async def test_the_output_limit_is_recorded_in_the_run_config(db: Path) -> None:
    await run_workflow(
        one_task(lambda: {}), db=db, run_id="r1", log_dir=None, max_task_output_bytes=4096
    )
    state, _ = await _log(db, "r1")
    assert decode_json(state.config)["maxTaskOutputBytes"] == 4096


async def test_an_oversized_output_is_not_run_again_by_a_resume(db: Path) -> None:
    calls: list[int] = []

    def run() -> dict[str, str]:
        calls.append(1)
        return {"s": "x" * 2000}

    # Before: the node stayed `running` (the write of its output failed) and every
    # resume ran the task again. Now it ends `failed` and a resume leaves it so.
    wf = one_task(run, retry=False)
    first = await run_workflow(wf, db=db, run_id="r1", log_dir=None, max_task_output_bytes=1000)
    state, _ = await _log(db, "r1")
    assert state.nodes[("t", 0)].state == "failed"
    again = await run_workflow(
        wf, db=db, run_id="r1", resume=True, log_dir=None, max_task_output_bytes=1000
    )
    assert (first.status, again.status) == ("failed", "failed")
    assert len(calls) == 1


@pytest.mark.parametrize("bad", [0, -1])
async def test_the_output_limit_must_be_positive(db: Path, bad: int) -> None:
    with pytest.raises(InvalidInputError, match="max_task_output_bytes"):
        await run_workflow(one_task(lambda: {}), db=db, max_task_output_bytes=bad)


# ------------------------------------------------------------------ item 6: outputs


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"s": "ok \ud800"}, "lone surrogate"),
        ({"x": float("nan")}, "NaN or infinite"),
        ({"x": [1.0, float("inf")]}, "NaN or infinite"),
        ({"x": -float("inf")}, "NaN or infinite"),
    ],
)
async def test_an_unencodable_output_is_invalid_output(db: Path, value: Any, words: str) -> None:
    result = await run_workflow(one_task(lambda: value), db=db, run_id="r1", log_dir=None)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "INVALID_OUTPUT"
    assert words in result.error["message"]
    state, types = await _log(db, "r1")
    assert "NodeFinished" not in types
    assert state.nodes[("t", 0)].state == "failed"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 485, 2000])
async def test_an_output_nested_too_deep_names_the_limit(db: Path, depth: int) -> None:
    result = await run_workflow(
        one_task(lambda: {"x": nested(depth)}), db=db, run_id="r1", log_dir=None
    )
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "INVALID_OUTPUT"
    assert result.error["details"]["maxDepth"] == MAX_JSON_DEPTH
    assert str(MAX_JSON_DEPTH) in result.error["message"]


async def test_an_output_at_the_depth_limit_is_kept(db: Path) -> None:
    value = {"x": nested(MAX_JSON_DEPTH - 1)}  # the object is one level more
    result = await run_workflow(one_task(lambda: value), db=db, log_dir=None)
    assert result.status == "finished"
    assert result.outputs["t"] == value


async def test_a_null_output_is_not_taken_for_nan(db: Path) -> None:
    value = {"x": None, "y": [None, 1.5]}
    result = await run_workflow(one_task(lambda: value), db=db, log_dir=None)
    assert result.outputs["t"] == value


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    value = {"s": "[" * 5000, "t": '"{' * 300 + "\\"}
    assert msgspec.json.decode(encode_json_strict(value)) == value
    with pytest.raises(JsonValueError) as caught:
        encode_json_strict([nested(MAX_JSON_DEPTH), "]" * 10])
    assert caught.value.max_depth == MAX_JSON_DEPTH


# ------------------------------------------------------------------ inputs


@workflow("echo")
def echo(ctx: Any) -> Any:
    return Task("t", output=dict[str, Any], value={"ok": True})


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"s": "\udc80"}, "lone surrogate"),
        ({"x": float("nan")}, "NaN or infinite"),
        ({"x": nested(MAX_JSON_DEPTH + 5)}, f"deeper than {MAX_JSON_DEPTH}"),
        ({"x": nested(3000)}, f"deeper than {MAX_JSON_DEPTH}"),
    ],
)
async def test_an_unencodable_input_is_invalid_input_and_nothing_is_recorded(
    db: Path, value: Any, words: str
) -> None:
    with pytest.raises(InvalidInputError, match=words) as caught:
        await run_workflow(echo, input=value, db=db, run_id="r1", log_dir=None)
    assert caught.value.code == "INVALID_INPUT"
    store = await SQLiteEventStore.open(db)
    try:
        assert await store.read("r1") == []
    finally:
        await store.close()


def test_an_input_over_the_limit_names_size_and_limit() -> None:
    from smithers.engine.authoring import check_input

    check_input(echo, {"s": "x" * 92}, max_bytes=100)  # {"s":"…"} is 100 bytes
    with pytest.raises(InvalidInputError) as caught:
        check_input(echo, {"s": "x" * 93}, max_bytes=100)
    assert caught.value.code == "INVALID_INPUT"
    assert caught.value.details == {"sizeBytes": 101, "maxBytes": 100}


# ------------------------------------------------------------------ heartbeats


@pytest.mark.parametrize(
    "payload", [{"s": "\ud800"}, {"x": float("nan")}, {"x": nested(MAX_JSON_DEPTH + 1)}]
)
async def test_an_unencodable_heartbeat_fails_the_task_with_a_code(db: Path, payload: Any) -> None:
    calls: list[int] = []

    def run(tctx: TaskContext) -> dict[str, Any]:
        calls.append(1)
        tctx.heartbeat(payload)
        return {}

    result = await run_workflow(one_task(run), db=db, run_id="r1", log_dir=None)
    assert result.error is not None
    assert result.error["code"] == "HEARTBEAT_PAYLOAD_NOT_JSON_SERIALIZABLE"
    assert len(calls) == 1  # not retryable
    _, types = await _log(db, "r1")
    assert "TaskHeartbeat" not in types


# ------------------------------------------------------------------ signals


@workflow("gate")
def gate(ctx: Any) -> Any:
    return WaitForEvent("w", event="go", output=dict[str, Any])


async def _parked(db: Path) -> SQLiteEventStore:
    result = await run_workflow(gate, db=db, run_id="g", log_dir=None, hold_ms=0)
    assert result.status == "waiting-event"
    return await SQLiteEventStore.open(db)


@pytest.mark.parametrize(
    ("data", "details"),
    [
        ({"s": "x" * 93}, {"sizeBytes": 101, "maxBytes": 100}),
        (b'{"s": "' + b"x" * 93 + b'"}', {"sizeBytes": 102, "maxBytes": 100}),
        ({"x": float("inf")}, None),
        ({"s": "\ud800"}, None),
        (b"[" * 3000 + b"]" * 3000, {"errors": "nested too deep", "maxDepth": MAX_JSON_DEPTH}),
    ],
)
async def test_a_signal_payload_over_the_limit_or_unencodable_is_refused(
    db: Path, data: Any, details: Any
) -> None:
    store = await _parked(db)
    try:
        before = len(await store.read("g"))
        with pytest.raises(InvalidInputError) as caught:
            await signal(store, "g", "go", data, wf=gate, max_bytes=100)
        assert caught.value.code == "INVALID_INPUT"
        if details is not None:
            assert caught.value.details == details
        assert len(await store.read("g")) == before
        ok = await signal(store, "g", "go", {"s": "x" * 92}, wf=gate, max_bytes=100)
        assert ok.delivered_to is not None
    finally:
        await store.close()


# ------------------------------------------------------------------ the frame tree


def nested_groups(depth: int) -> Any:
    @workflow("deep")
    def deep(ctx: Any) -> Any:
        node: Any = Task("leaf", output=dict[str, Any], value={"ok": True})
        for _ in range(depth):
            node = Sequence(node)
        return node

    return deep


@pytest.mark.parametrize(("depth", "ok"), [(MAX_TREE_DEPTH, True), (MAX_TREE_DEPTH + 1, False)])
async def test_components_nested_too_deep_fail_the_run_naming_the_limit(
    db: Path, depth: int, ok: bool
) -> None:
    # Before: a RecursionError with code null at about 485 nested Sequences.
    result = await run_workflow(nested_groups(depth), db=db, log_dir=None)
    if ok:
        assert result.status == "finished"
        return
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "TREE_TOO_DEEP"
    assert result.error["details"] == {"maxDepth": MAX_TREE_DEPTH}


async def test_components_nested_485_deep_fail_with_a_code(db: Path) -> None:
    result = await run_workflow(nested_groups(485), db=db, log_dir=None)
    assert result.error is not None
    assert result.error["code"] == "TREE_TOO_DEEP"
