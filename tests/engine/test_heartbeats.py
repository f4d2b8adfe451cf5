"""Task heartbeats: liveness, timeouts, payload limits, the last payload handed on."""

from __future__ import annotations

import time
from typing import Any

import anyio
import msgspec
from smithers.eventstore.events import NodeFailed, TaskHeartbeat, TaskHeartbeatTimeout

from smithers import Backoff, Task, TaskContext, run_workflow, workflow


class N(msgspec.Struct):
    n: int


NO_WAIT = Backoff(kind="fixed", initial_ms=0)


async def test_a_silent_task_times_out_and_its_retry_gets_the_last_payload(db: Any) -> None:
    seen: list[tuple[int, Any]] = []
    release = anyio.Event()

    async def work(ctx: TaskContext) -> dict[str, int]:
        seen.append((ctx.attempt, ctx.last_heartbeat))
        start = (ctx.last_heartbeat or {}).get("step", 0)
        for step in range(start, 5):
            ctx.heartbeat({"step": step})
            await anyio.sleep(0.01)
            if ctx.attempt == 1 and step == 2:
                await release.wait()  # goes silent: never released
        return {"n": 5}

    @workflow("silent")
    def silent(ctx: Any) -> Any:
        return Task(
            "work", output=N, run=work, heartbeat_timeout_ms=150, retries=1, backoff=NO_WAIT
        )

    events: list[Any] = []
    with anyio.fail_after(10):
        result = await run_workflow(silent, db=db, on_progress=events.append)

    assert result.status == "finished"
    assert seen == [(1, None), (2, {"step": 2})]
    (timeout,) = [e for e in events if isinstance(e, TaskHeartbeatTimeout)]
    assert timeout.attempt == 1
    assert timeout.timeout_ms == 150
    (failed,) = [e for e in events if isinstance(e, NodeFailed)]
    assert failed.error.code == "TASK_HEARTBEAT_TIMEOUT"
    assert failed.error.retryable


async def test_heartbeats_are_coalesced_but_the_last_payload_is_recorded(db: Any) -> None:
    def chatty(ctx: TaskContext) -> dict[str, int]:
        for i in range(300):
            ctx.heartbeat({"i": i})
        return {"n": 1}

    @workflow("chatty")
    def wf(ctx: Any) -> Any:
        return Task("chatty", output=N, run=chatty)

    events: list[Any] = []
    result = await run_workflow(wf, db=db, on_progress=events.append)
    assert result.status == "finished"
    beats = [e for e in events if isinstance(e, TaskHeartbeat)]
    assert 1 <= len(beats) <= 3
    assert msgspec.json.decode(beats[-1].data) == {"i": 299}
    assert beats[-1].has_data
    assert beats[-1].data_size_bytes == len(b'{"i":299}')


async def test_a_heartbeat_without_data_keeps_a_task_alive(db: Any) -> None:
    def steady(ctx: TaskContext) -> dict[str, int]:
        for _ in range(6):
            ctx.heartbeat()
            time.sleep(0.05)
        return {"n": 1}

    @workflow("steady")
    def wf(ctx: Any) -> Any:
        return Task("steady", output=N, run=steady, heartbeat_timeout_ms=200)

    result = await run_workflow(wf, db=db)
    assert result.status == "finished"


async def test_a_payload_over_one_megabyte_fails_the_task_without_retry(db: Any) -> None:
    attempts: list[int] = []

    def big(ctx: TaskContext) -> dict[str, int]:
        attempts.append(ctx.attempt)
        ctx.heartbeat({"blob": "x" * 1_000_001})
        return {"n": 1}

    @workflow("big")
    def wf(ctx: Any) -> Any:
        return Task("big", output=N, run=big, retries=2, backoff=NO_WAIT)

    result = await run_workflow(wf, db=db)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "HEARTBEAT_PAYLOAD_TOO_LARGE"
    assert attempts == [1]


async def test_a_payload_that_is_not_json_fails_the_task_without_retry(db: Any) -> None:
    attempts: list[int] = []

    def odd(ctx: TaskContext) -> dict[str, int]:
        attempts.append(ctx.attempt)
        ctx.heartbeat({"when": object()})
        return {"n": 1}

    @workflow("odd")
    def wf(ctx: Any) -> Any:
        return Task("odd", output=N, run=odd, retries=2, backoff=NO_WAIT)

    result = await run_workflow(wf, db=db)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "HEARTBEAT_PAYLOAD_NOT_JSON_SERIALIZABLE"
    assert attempts == [1]
