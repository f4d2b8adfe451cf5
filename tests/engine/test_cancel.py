"""Cancellation: a `cancel` event, and cancelling the caller of `run_workflow`.

STYLE §4: never swallow cancellation; record NodeCancelled (shielded), then re-raise.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import msgspec
import pytest
from smithers.eventstore import MemoryEventStore, SQLiteEventStore
from smithers.projections import fold_stored

from smithers import Backoff, Parallel, Sequence, Task, TaskContext, run_workflow, workflow


class Count(msgspec.Struct):
    n: int


def long_running(started: anyio.Event) -> Any:
    async def run() -> dict[str, int]:
        started.set()
        await anyio.sleep(30)
        return {"n": 1}

    return run


async def cancel_when(event: anyio.Event, cancel: anyio.Event) -> None:
    await event.wait()
    cancel.set()


# ---------------------------------------------------------------------------- cancel=


async def test_cancel_event_cancels_the_running_task(db: Any, read_log: Any) -> None:
    started = anyio.Event()
    cancel = anyio.Event()

    @workflow("long")
    def long_wf(ctx: Any) -> Any:
        return Sequence(
            Task("first", output=Count, value={"n": 0}),
            Task("long", output=Count, run=long_running(started)),
            Task("never", output=Count, value={"n": 2}),
        )

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_when, started, cancel)
            result = await run_workflow(long_wf, input={}, db=db, cancel=cancel)

    assert result.status == "cancelled"
    assert result.outputs == {"first": {"n": 0}}
    log = await read_log(result.run_id)
    (cancelled,) = log.find("NodeCancelled", "long")
    assert cancelled.attempt == 1
    assert cancelled.reason == "cancelled"
    assert log.types[-1] == "RunCancelled"
    run_cancelled = log.find("RunCancelled")[0]
    assert run_cancelled.reason == "cancel-requested"
    assert run_cancelled.source == "api"
    assert log.find("RunStatusChanged")[-1].status == "cancelled"
    assert log.seq_of("NodeCancelled", "long") < log.seq_of("RunCancelled")
    assert log.find("NodeStarted", "never") == []
    assert "RunFinished" not in log.types
    assert "RunFailed" not in log.types
    state = fold_stored(result.run_id, log.rows)
    assert state.status == "cancelled"
    rec = state.node("long")
    assert rec is not None
    assert rec.state == "cancelled"


async def test_cancel_stops_queued_tasks_from_starting(db: Any, read_log: Any) -> None:
    started = anyio.Event()
    cancel = anyio.Event()

    @workflow("queued")
    def queued(ctx: Any) -> Any:
        return Parallel(
            Task("long", output=Count, run=long_running(started)),
            *(Task(f"q{i}", output=Count, run=lambda: {"n": 1}) for i in range(3)),
        )

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_when, started, cancel)
            result = await run_workflow(queued, input={}, db=db, cancel=cancel, max_concurrency=1)

    assert result.status == "cancelled"
    log = await read_log(result.run_id)
    assert [e.node_id for e in log.find("NodeStarted")] == ["long"]


async def test_cancel_event_cancels_several_running_tasks(db: Any, read_log: Any) -> None:
    events = [anyio.Event() for _ in range(3)]
    all_started = anyio.Event()
    cancel = anyio.Event()

    async def wait_all() -> None:
        for e in events:
            await e.wait()
        all_started.set()

    @workflow("many")
    def many(ctx: Any) -> Any:
        return Parallel(
            *(Task(f"t{i}", output=Count, run=long_running(e)) for i, e in enumerate(events))
        )

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_all)
            tg.start_soon(cancel_when, all_started, cancel)
            result = await run_workflow(many, input={}, db=db, cancel=cancel)

    assert result.status == "cancelled"
    log = await read_log(result.run_id)
    assert sorted(e.node_id for e in log.find("NodeCancelled")) == ["t0", "t1", "t2"]
    assert all(e.attempt == 1 for e in log.find("NodeCancelled"))
    assert log.types[-1] == "RunCancelled"


async def test_cancel_during_a_retry_backoff(db: Any, read_log: Any) -> None:
    retrying = anyio.Event()
    cancel = anyio.Event()

    def on_progress(event: Any) -> None:
        if type(event).__name__ == "NodeRetrying":
            retrying.set()

    def flaky() -> dict[str, int]:
        raise RuntimeError("transient")

    @workflow("backing-off")
    def backing_off(ctx: Any) -> Any:
        return Task(
            "flaky",
            output=Count,
            run=flaky,
            retries=3,
            backoff=Backoff(kind="fixed", initial_ms=30_000),
        )

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_when, retrying, cancel)
            result = await run_workflow(
                backing_off, input={}, db=db, cancel=cancel, on_progress=on_progress
            )

    assert result.status == "cancelled"
    log = await read_log(result.run_id)
    assert len(log.find("NodeStarted", "flaky")) == 1
    assert len(log.find("NodeCancelled", "flaky")) == 1
    assert log.types[-1] == "RunCancelled"


async def test_cancel_abandons_a_sync_task_thread(db: Any, read_log: Any) -> None:
    started = anyio.Event()
    cancel = anyio.Event()
    token = anyio.lowlevel.current_token()

    def blocking() -> dict[str, int]:
        anyio.from_thread.run_sync(started.set, token=token)
        time.sleep(0.3)
        return {"n": 1}

    @workflow("blocking")
    def blocking_wf(ctx: Any) -> Any:
        return Task("blocking", output=Count, run=blocking)

    begun = time.monotonic()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_when, started, cancel)
            result = await run_workflow(blocking_wf, input={}, db=db, cancel=cancel)

    assert time.monotonic() - begun < 0.25
    assert result.status == "cancelled"
    log = await read_log(result.run_id)
    assert log.find("NodeCancelled", "blocking")[0].attempt == 1


async def test_a_cancel_event_never_set_changes_nothing(db: Any) -> None:
    @workflow("calm")
    def calm(ctx: Any) -> Any:
        return Task("a", output=Count, run=lambda: {"n": 1})

    result = await run_workflow(calm, input={}, db=db, cancel=anyio.Event())

    assert result.status == "finished"


# ---------------------------------------------------------------------------- the caller


async def test_cancelling_the_caller_records_the_cancellation(db: Any, read_log: Any) -> None:
    started = anyio.Event()

    @workflow("interrupted")
    def interrupted(ctx: Any) -> Any:
        return [
            Task("first", output=Count, value={"n": 0}),
            Task("long", output=Count, run=long_running(started)),
        ]

    reached_end = False
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:

                async def cancel_caller() -> None:
                    await started.wait()
                    scope.cancel()

                tg.start_soon(cancel_caller)
                await run_workflow(interrupted, input={}, db=db, run_id="run-int")
                reached_end = True

    assert scope.cancelled_caught
    assert not reached_end  # the cancellation went on to the caller
    log = await read_log("run-int")
    (cancelled,) = log.find("NodeCancelled", "long")
    assert cancelled.attempt == 1
    assert log.types[-1] == "RunCancelled"
    assert log.seq_of("NodeCancelled", "long") < log.seq_of("RunCancelled")
    assert log.seqs == list(range(1, len(log) + 1))
    assert fold_stored("run-int", log.rows).status == "cancelled"
    store = await SQLiteEventStore.open(db, create=False)
    try:
        run = await store.get_run("run-int")
    finally:
        await store.close()
    assert run is not None
    assert run.status == "cancelled"


async def test_move_on_after_around_run_workflow(db: Any, read_log: Any) -> None:
    started = anyio.Event()

    @workflow("deadline")
    def deadline(ctx: Any) -> Any:
        return Task("long", output=Count, run=long_running(started))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(started.wait)  # keeps the group alive until the task runs
            with anyio.move_on_after(0.2) as scope:
                await run_workflow(deadline, input={}, db=db, run_id="run-deadline")

    assert scope.cancelled_caught
    assert started.is_set()
    log = await read_log("run-deadline")
    assert log.find("NodeCancelled", "long")[0].attempt == 1
    assert log.types[-1] == "RunCancelled"


async def test_cancelling_the_caller_during_a_backoff_closes_the_node(
    db: Any, read_log: Any
) -> None:
    # As with the cancel= event (which records NodeCancelled for a node waiting out its
    # backoff), an interrupted run must not leave the node pending a retry forever.
    retrying = anyio.Event()

    def on_progress(event: Any) -> None:
        if type(event).__name__ == "NodeRetrying":
            retrying.set()

    def flaky(tctx: TaskContext) -> dict[str, int]:
        raise RuntimeError("transient")

    @workflow("interrupted-backoff")
    def interrupted_backoff(ctx: Any) -> Any:
        return Task(
            "flaky",
            output=Count,
            run=flaky,
            retries=3,
            backoff=Backoff(kind="fixed", initial_ms=30_000),
        )

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:

                async def cancel_caller() -> None:
                    await retrying.wait()
                    scope.cancel()

                tg.start_soon(cancel_caller)
                await run_workflow(
                    interrupted_backoff,
                    input={},
                    db=db,
                    run_id="run-ib",
                    on_progress=on_progress,
                )

    log = await read_log("run-ib")
    assert log.types[-1] == "RunCancelled"
    rec = fold_stored("run-ib", log.rows).node("flaky")
    assert rec is not None
    assert rec.state == "cancelled", log.node_types("flaky")


# ---------------------------------------------------------------------------- unmounting


async def test_a_running_task_unmounted_by_a_re_render_is_cancelled(db: Any, read_log: Any) -> None:
    started = anyio.Event()

    async def gate() -> dict[str, int]:
        with anyio.fail_after(5):
            await started.wait()
        return {"n": 1}

    @workflow("unmount")
    def unmount(ctx: Any) -> Any:
        gate_done = ctx.output_maybe(Count, "gate") is not None
        return Parallel(
            Task("gate", output=Count, run=gate),
            not gate_done and Task("long", output=Count, run=long_running(started)),
        )

    with anyio.fail_after(5):
        result = await run_workflow(unmount, input={}, db=db)

    assert result.status == "finished", result.error
    assert result.outputs == {"gate": {"n": 1}}
    log = await read_log(result.run_id)
    (cancelled,) = log.find("NodeCancelled", "long")
    assert cancelled.attempt == 1
    assert cancelled.reason == "unmounted"
    assert log.types[-1] == "RunFinished"


async def test_a_task_unmounted_during_its_backoff_does_not_hold_the_run(
    db: Any, read_log: Any
) -> None:
    # Unmounting cancels a running attempt; a node waiting out a retry backoff is just as
    # gone from the tree, so the run must not sit out its 30 s backoff before finishing.
    retrying = anyio.Event()

    def on_progress(event: Any) -> None:
        if type(event).__name__ == "NodeRetrying":
            retrying.set()

    async def gate() -> dict[str, int]:
        with anyio.fail_after(5):
            await retrying.wait()
        return {"n": 1}

    def flaky() -> dict[str, int]:
        raise RuntimeError("transient")

    @workflow("unmount-backoff")
    def unmount_backoff(ctx: Any) -> Any:
        gate_done = ctx.output_maybe(Count, "gate") is not None
        return Parallel(
            Task("gate", output=Count, run=gate),
            not gate_done
            and Task(
                "flaky",
                output=Count,
                run=flaky,
                retries=1,
                backoff=Backoff(kind="fixed", initial_ms=30_000),
            ),
        )

    with anyio.move_on_after(2) as scope:
        result = await run_workflow(unmount_backoff, input={}, db=db, on_progress=on_progress)

    assert not scope.cancelled_caught, "the run waited out the backoff of an unmounted task"
    assert result.status == "finished"
    log = await read_log(result.run_id)
    assert len(log.find("NodeStarted", "flaky")) == 1
    rec = fold_stored(result.run_id, log.rows).node("flaky")
    assert rec is not None
    assert rec.state != "pending", log.node_types("flaky")


# ---------------------------------------------------------------------------- cancelled appends


class CommitThenStall:
    """A store whose append commits, then takes a while to return (once, when armed).

    This is aiosqlite's situation when the awaiting task is cancelled mid-append: its
    worker thread commits the transaction whatever the caller does. The engine must wait
    for the result (not drop it), or it loses track of the run's seq.
    """

    def __init__(self, inner: Any, node_id: str) -> None:
        self.inner = inner
        self.node_id = node_id
        self.stalled = anyio.Event()

    async def append(self, run_id: str, events: Any, **kwargs: Any) -> int:
        seq = await self.inner.append(run_id, events, **kwargs)
        starts = [e for e in events if type(e).__name__ == "NodeStarted"]
        if not self.stalled.is_set() and any(e.node_id == self.node_id for e in starts):
            self.stalled.set()
            await anyio.sleep(0.05)
        return seq

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("stall_at", ["a", "b"], ids=["first-append", "later-append"])
async def test_cancelling_the_caller_mid_append_still_records_the_cancellation(
    read_log: Any, stall_at: str
) -> None:
    inner = MemoryEventStore()
    store = CommitThenStall(inner, stall_at)

    async def quick() -> dict[str, int]:
        await anyio.sleep(0)
        return {"n": 1}

    @workflow("mid-append")
    def mid_append(ctx: Any) -> Any:
        return Sequence(
            Task("a", output=Count, run=quick),
            Task("b", output=Count, run=quick),
        )

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:

                async def cancel_caller() -> None:
                    await store.stalled.wait()
                    scope.cancel()

                tg.start_soon(cancel_caller)
                await run_workflow(mid_append, input={}, store=store, run_id="run-mid")

    assert scope.cancelled_caught
    log = await read_log("run-mid", store=inner)
    assert log.find("NodeStarted", stall_at), "the stalled append was committed"
    assert log.types[-1] == "RunCancelled", log.types[-4:]
    assert fold_stored("run-mid", log.rows).node(stall_at).state == "cancelled"


async def test_a_cancel_event_set_before_the_run_cancels_it(db: Any, read_log: Any) -> None:
    cancel = anyio.Event()
    cancel.set()
    started = anyio.Event()

    @workflow("pre-cancelled")
    def pre_cancelled(ctx: Any) -> Any:
        return Task("long", output=Count, run=long_running(started))

    with anyio.fail_after(5):
        result = await run_workflow(pre_cancelled, input={}, db=db, cancel=cancel)

    assert result.status == "cancelled"
    log = await read_log(result.run_id)
    assert log.types[-1] == "RunCancelled"
