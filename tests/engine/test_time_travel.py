"""Time travel as events (DESIGN §7): rewind, fork, replay, retry-task, ancestry.

Examples first, then Hypothesis properties over generated deterministic workflows
(sequences, parallels, branches on outputs, ``depends_on``):
(b) a fork at frame N run to its end gives the original's outputs and re-executes
exactly the tasks not finished at N; (c) rewind and fork never change earlier events;
(d) retry-task re-runs the node and its dependents only.
"""

from __future__ import annotations

import itertools
import os
import socket
import textwrap
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smithers.engine import (
    InvalidInputError,
    NodeNotFoundError,
    ResumeMetadataMismatchError,
    RunNotFoundError,
    RunOwnerAliveError,
    RunStillRunningError,
    SnapshotNotFoundError,
    load_run,
    load_workflow,
    read_events,
    resume_run,
    task_dependents,
)
from smithers.engine import fork as fork_api
from smithers.eventstore import (
    EventStore,
    Lease,
    MemoryEventStore,
    StoredEvent,
    decode_event,
    decode_json,
)
from smithers.eventstore.events import (
    NodeCancelled,
    NodeStarted,
    ReplayStarted,
    RetryTaskFinished,
    RetryTaskStarted,
    RunFinished,
    RunForked,
    RunRewound,
    RunStarted,
    RunStatusChanged,
)
from smithers.projections import RunState

from smithers import (
    Branch,
    Parallel,
    Sequence,
    Task,
    fork,
    replay,
    retry_task,
    rewind,
    run_workflow,
    workflow,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from smithers.engine import Workflow


class Count(msgspec.Struct):
    n: int


def recorder(log: list[str], node_id: str, value: dict[str, Any]) -> Callable[[], Any]:
    def run() -> dict[str, Any]:
        log.append(node_id)
        return value

    return run


def chain(log: list[str]) -> Workflow:
    """a -> Parallel(b, c) -> d, every task a compute task recording its execution."""

    @workflow("chain")
    def wf(ctx: Any) -> Any:
        return Sequence(
            Task("a", output=dict, run=recorder(log, "a", {"v": 1})),
            Parallel(
                Task("b", output=dict, run=recorder(log, "b", {"v": 2})),
                Task("c", output=dict, run=recorder(log, "c", {"v": 3})),
            ),
            Task("d", output=dict, run=recorder(log, "d", {"v": 4})),
        )

    return wf


async def rows_of(store: EventStore, run_id: str) -> list[StoredEvent]:
    return await store.read(run_id)


def events_of(rows: list[StoredEvent]) -> list[Any]:
    return [decode_event(r.type, r.data) for r in rows]


def started(rows: list[StoredEvent], after_seq: int = 0) -> list[str]:
    """Node ids of the NodeStarted events after `after_seq`, in order."""
    return [
        e.node_id
        for r, e in zip(rows, events_of(rows), strict=True)
        if isinstance(e, NodeStarted) and r.seq > after_seq
    ]


def node_states(state: RunState) -> dict[str, str]:
    return {node_id: rec.state for (node_id, _), rec in state.nodes.items()}


async def state_of(store: EventStore, run_id: str, upto_seq: int | None = None) -> RunState:
    from smithers.engine.history import load_state  # the fold with fork ancestry

    return await load_state(store, run_id, upto_seq=upto_seq)


def frame_seq(state: RunState, frame_no: int) -> int:
    (rec,) = [f for f in state.frames if f.frame_no == frame_no]
    return rec.seq


# ---------------------------------------------------------------------------- rewind


async def test_rewind_appends_one_event_and_the_state_is_the_frames() -> None:
    store, ran = MemoryEventStore(), []
    wf = chain(ran)
    await run_workflow(wf, input={}, store=store, run_id="r")
    before = await rows_of(store, "r")
    full = await state_of(store, "r")
    seq1 = frame_seq(full, 1)

    state = await rewind("r", frame=1, store=store)

    after = await rows_of(store, "r")
    assert after[: len(before)] == before
    # Issue 8: the run was running at the frame, so it now waits for a person.
    (rewound, status) = events_of(after[len(before) :])
    assert isinstance(rewound, RunRewound)
    assert (rewound.to_frame_no, rewound.to_seq) == (1, seq1)
    assert isinstance(status, RunStatusChanged)
    assert status.status == "waiting-resume"
    at_frame = await state_of(store, "r", upto_seq=seq1)
    assert state.seq == len(after)
    assert at_frame.status == "running"
    assert state.status == "waiting-resume"
    assert node_states(state) == node_states(at_frame)
    assert state.outputs() == at_frame.outputs()
    assert state.rewinds == 1
    refolded = await state_of(store, "r")
    assert node_states(refolded) == node_states(state)
    assert refolded.status == "waiting-resume"
    assert (await store.get_run("r")) is not None
    assert (await store.get_run("r")).status == "waiting-resume"  # type: ignore[union-attr]


async def test_a_rewound_run_resumes_and_reruns_only_what_was_not_finished() -> None:
    store, ran = MemoryEventStore(), []
    wf = chain(ran)
    original = await run_workflow(wf, input={}, store=store, run_id="r")
    ran.clear()
    state = await rewind("r", frame=1, store=store)
    finished = {n for n, s in node_states(state).items() if s == "finished"}
    assert finished == {"a"}

    result = await run_workflow(wf, run_id="r", resume=True, store=store)

    assert result.status == "finished"
    assert result.outputs == original.outputs
    assert sorted(ran) == ["b", "c", "d"]


async def test_tasks_in_flight_at_the_frame_are_abandoned_and_run_again() -> None:
    store = MemoryEventStore()
    go = anyio.Event()
    ran: list[str] = []

    async def slow() -> dict[str, int]:
        ran.append("slow")
        await go.wait()
        return {"v": 1}

    @workflow("flight")
    def wf(ctx: Any) -> Any:
        return Sequence(
            Parallel(
                Task("slow", output=dict, run=slow),
                Task("fast", output=dict, run=recorder(ran, "fast", {"v": 2})),
            ),
            Task("after", output=dict, value={"v": 3}),
        )

    def on_progress(event: Any) -> None:
        # The frame committed with fast's completion is recorded while slow still runs.
        if isinstance(event, RunStatusChanged) or type(event).__name__ != "FrameCommitted":
            return
        if ran.count("fast") and not go.is_set():
            go.set()

    original = await run_workflow(wf, input={}, store=store, run_id="r", on_progress=on_progress)
    full = await state_of(store, "r")
    in_flight = []
    for f in full.frames:
        at = await state_of(store, "r", upto_seq=f.seq)
        if at.node("slow") is not None and at.node("slow").state == "running":  # type: ignore[union-attr]
            in_flight.append(f.frame_no)
    assert in_flight, "no frame with slow running"
    go = anyio.Event()
    go.set()
    ran.clear()

    state = await rewind("r", frame=in_flight[-1], store=store)
    assert node_states(state)["slow"] == "running"
    n = len(await rows_of(store, "r"))
    result = await run_workflow(wf, run_id="r", resume=True, store=store)

    assert result.outputs == original.outputs
    rows = await rows_of(store, "r")
    new = events_of(rows[n:])
    (abandoned,) = [e for e in new if isinstance(e, NodeCancelled)]
    assert (abandoned.node_id, abandoned.reason, abandoned.attempt) == ("slow", "abandoned", 1)
    assert started(rows, after_seq=n) == ["slow", "after"]
    assert ran == ["slow"]


async def test_rewind_to_a_missing_frame_is_snapshot_not_found_with_the_range() -> None:
    store = MemoryEventStore()
    await run_workflow(chain([]), input={}, store=store, run_id="r")
    last = (await state_of(store, "r")).frames[-1].frame_no
    n = len(await rows_of(store, "r"))

    with pytest.raises(
        SnapshotNotFoundError, match=f"no frame 99: its frames are 0 to {last}"
    ) as e:
        await rewind("r", frame=99, store=store)

    assert e.value.code == "SNAPSHOT_NOT_FOUND"
    assert e.value.details == {"runId": "r", "frameNo": 99}
    assert len(await rows_of(store, "r")) == n
    with pytest.raises(RunNotFoundError):
        await rewind("nope", frame=0, store=store)


async def test_rewind_can_go_to_a_frame_an_earlier_rewind_discarded() -> None:
    store, ran = MemoryEventStore(), []
    wf = chain(ran)
    original = await run_workflow(wf, input={}, store=store, run_id="r")
    last = (await state_of(store, "r")).frames[-1].frame_no
    await rewind("r", frame=0, store=store)

    state = await rewind("r", frame=last, store=store)

    assert node_states(state) == {
        "a": "finished",
        "b": "finished",
        "c": "finished",
        "d": "finished",
    }
    ran.clear()
    result = await run_workflow(wf, run_id="r", resume=True, store=store)
    assert result.outputs == original.outputs
    assert ran == []


# ---------------------------------------------------------------------------- activity


async def crashed_run(
    wf: Workflow, gate: str, *, owner: tuple[str, int] | None = None
) -> tuple[MemoryEventStore, str]:
    """A store holding `wf`'s run as a crash left it: `gate` running, status running.

    `owner` (host, pid) replaces the owner its `RunStarted` records (default: this
    process, which is certainly not driving the copy).
    """
    live = MemoryEventStore()
    seen = anyio.Event()

    def on_progress(event: Any) -> None:
        if isinstance(event, NodeStarted) and event.node_id == gate:
            seen.set()

    async with anyio.create_task_group() as tg:

        async def drive() -> None:
            await run_workflow(wf, input={}, store=live, run_id="r", on_progress=on_progress)

        tg.start_soon(drive)
        await seen.wait()
        rows = await live.read("r")
        tg.cancel_scope.cancel()
    events = [e for e in events_of(rows) if e is not None]
    if owner is not None:
        events = [
            msgspec.structs.replace(e, host=owner[0], pid=owner[1], timestamp_ms=now_ms())
            if isinstance(e, RunStarted)
            else e
            for e in events
        ]
    copy = MemoryEventStore()
    await copy.append("r", events, expected_seq=0)
    return copy, "r"


def gated(ran: list[str]) -> Workflow:
    async def hang() -> dict[str, int]:
        ran.append("hang")
        await anyio.sleep(30)
        return {"v": 0}

    @workflow("gated")
    def wf(ctx: Any) -> Any:
        return Sequence(
            Task("first", output=dict, run=recorder(ran, "first", {"v": 1})),
            Task("hang", output=dict, run=hang),
            Task("after", output=dict, value={"v": 2}),
        )

    return wf


def lease(state: RunState, heartbeat_ms: int) -> Lease:
    """The lease of `state`'s current owner, renewed at `heartbeat_ms`."""
    return Lease(
        run_id=state.run_id,
        owner_id=state.owner_id,
        pid=state.pid or 0,
        host=state.host or "",
        acquired_at_ms=0,
        heartbeat_at_ms=heartbeat_ms,
    )


def now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


async def test_rewind_and_retry_refuse_a_run_owned_by_a_live_process_here() -> None:
    store, _ = await crashed_run(gated([]), "hang", owner=(socket.gethostname(), os.getppid()))
    n = len(await rows_of(store, "r"))

    with pytest.raises(RunOwnerAliveError):
        await rewind("r", frame=0, store=store, force=True)
    with pytest.raises(RunOwnerAliveError):
        await retry_task("r", node="first", store=store, workflow=gated([]), force=True)
    assert len(await rows_of(store, "r")) == n


async def test_an_owner_elsewhere_with_a_fresh_lease_needs_force() -> None:
    ran: list[str] = []
    store, _ = await crashed_run(gated(ran), "hang", owner=("another-host", 12345))
    await store.put_lease(lease(await state_of(store, "r"), now_ms()))
    n = len(await rows_of(store, "r"))

    with pytest.raises(RunStillRunningError):
        await rewind("r", frame=0, store=store)
    with pytest.raises(RunStillRunningError, match="looks active"):
        await retry_task("r", node="first", store=store, workflow=gated(ran))
    assert len(await rows_of(store, "r")) == n

    state = await rewind("r", frame=0, store=store, force=True)
    assert node_states(state) == {}


async def copy_with_owner(store: EventStore, run_id: str, host: str, pid: int) -> EventStore:
    """A copy of the run's log whose activations were owned by (host, pid)."""
    events = [
        msgspec.structs.replace(e, host=host, pid=pid) if isinstance(e, RunStarted) else e
        for e in events_of(await rows_of(store, run_id))
    ]
    copy = MemoryEventStore()
    await copy.append(run_id, events, expected_seq=0)
    return copy


async def test_a_run_ended_by_a_process_still_alive_can_be_rewound_and_retried() -> None:
    # E.g. a long-lived service ran it: its process lives on, but it no longer drives
    # the run. Rewind and retry-task are appended from outside: the run has no owner.
    ran: list[str] = []
    wf = chain(ran)
    first = MemoryEventStore()
    original = await run_workflow(wf, input={}, store=first, run_id="r")
    here = socket.gethostname()

    store = await copy_with_owner(first, "r", here, os.getppid())
    state = await rewind("r", frame=1, store=store)
    assert (state.owner_id, state.pid, state.host) == ("", None, None)
    assert (await run_workflow(wf, run_id="r", resume=True, store=store)).outputs == (
        original.outputs
    )

    store = await copy_with_owner(first, "r", here, os.getppid())
    result = await retry_task("r", node="d", store=store, workflow=wf)
    assert result.status == "finished"


async def test_a_run_still_driven_by_this_process_is_refused() -> None:
    ran: list[str] = []
    store = MemoryEventStore()
    seen = anyio.Event()

    def on_progress(event: Any) -> None:
        if isinstance(event, NodeStarted) and event.node_id == "hang":
            seen.set()

    async with anyio.create_task_group() as tg:

        async def drive() -> None:
            await run_workflow(
                gated(ran), input={}, store=store, run_id="r", on_progress=on_progress
            )

        tg.start_soon(drive)
        await seen.wait()
        with pytest.raises(RunStillRunningError):
            await rewind("r", frame=0, store=store)
        with pytest.raises(RunStillRunningError):
            await retry_task("r", node="first", store=store, workflow=gated(ran))
        tg.cancel_scope.cancel()


async def test_a_crashed_run_can_be_rewound_and_resumed() -> None:
    ran: list[str] = []
    store, _ = await crashed_run(gated(ran), "hang")
    ran.clear()

    state = await rewind("r", frame=0, store=store)

    assert node_states(state) == {}

    @workflow("gated")
    def quick(ctx: Any) -> Any:
        return Sequence(
            Task("first", output=dict, run=recorder(ran, "first", {"v": 1})),
            Task("hang", output=dict, value={"v": 0}),
            Task("after", output=dict, value={"v": 2}),
        )

    result = await run_workflow(quick, run_id="r", resume=True, store=store)
    assert result.status == "finished"
    assert ran == ["first"]


# ---------------------------------------------------------------------------- fork


async def test_fork_writes_one_event_and_leaves_the_parent_alone() -> None:
    store, ran = MemoryEventStore(), []
    wf = chain(ran)
    await run_workflow(wf, input={"k": 1}, store=store, run_id="p")
    parent_before = await rows_of(store, "p")
    seq2 = frame_seq(await state_of(store, "p"), 2)

    child = await fork("p", frame=2, reset_nodes=["a"], label="again", store=store)

    assert await rows_of(store, "p") == parent_before
    (row,) = await rows_of(store, child)
    forked = decode_event(row.type, row.data)
    assert isinstance(forked, RunForked)
    assert (forked.parent_run_id, forked.parent_frame_no, forked.parent_seq) == ("p", 2, seq2)
    assert forked.reset_nodes == ("a",)
    assert forked.branch_label == "again"
    assert decode_json(forked.input) is None
    state = await state_of(store, child)
    at_frame = await state_of(store, "p", upto_seq=seq2)
    expected = node_states(at_frame) | {"a": "pending"}
    assert node_states(state) == expected
    assert state.status == "pending"
    assert state.parent_run_id == "p"
    assert decode_json(state.input) == {"k": 1}
    record = await store.get_run(child)
    assert record is not None
    assert (record.status, record.workflow_name) == ("pending", "chain")


async def test_a_fork_runs_what_was_not_finished_and_its_reset_nodes() -> None:
    store, ran = MemoryEventStore(), []
    wf = chain(ran)
    original = await run_workflow(wf, input={}, store=store, run_id="p")
    ran.clear()
    child = await fork("p", frame=1, reset_nodes=["a"], store=store)

    result = await run_workflow(wf, run_id=child, resume=True, store=store)

    assert result.run_id == child
    assert result.outputs == original.outputs
    assert sorted(ran) == ["a", "b", "c", "d"]
    state = await state_of(store, child)
    assert state.node("a").attempt_count == 2  # type: ignore[union-attr]
    assert state.activation == 1


async def test_a_fork_with_a_new_input_runs_with_it() -> None:
    store = MemoryEventStore()

    @workflow("inputs")
    def wf(ctx: Any) -> Any:
        return Sequence(
            Task("first", output=Count, value={"n": 1}),
            Task("second", output=Count, run=lambda: {"n": ctx.input["start"] + 1}),
        )

    original = await run_workflow(wf, input={"start": 1}, store=store, run_id="p")
    child = await fork("p", frame=0, input={"start": 10}, store=store)
    (row,) = await rows_of(store, child)
    forked = decode_event(row.type, row.data)
    assert isinstance(forked, RunForked)
    assert decode_json(forked.input) == {"start": 10}
    assert decode_json((await state_of(store, child)).input) == {"start": 10}

    result = await run_workflow(wf, run_id=child, resume=True, store=store)

    assert original.outputs["second"] == {"n": 2}
    assert result.outputs["second"] == {"n": 11}
    assert decode_json((await state_of(store, child)).input) == {"start": 10}


async def test_an_input_given_to_a_forks_first_run_wins() -> None:
    store = MemoryEventStore()

    @workflow("inputs")
    def wf(ctx: Any) -> Any:
        return [Task("echo", output=dict, run=lambda: dict(ctx.input))]

    await run_workflow(wf, input={"x": 1}, store=store, run_id="p")
    child = await fork("p", frame=0, store=store)

    result = await run_workflow(wf, run_id=child, resume=True, input={"x": 2}, store=store)

    assert result.outputs["echo"] == {"x": 2}
    # Once a fork has run, the log has its input: a later resume ignores `input`.
    again = await run_workflow(wf, run_id=child, resume=True, input={"x": 3}, store=store)
    assert again.outputs["echo"] == {"x": 2}


async def test_fork_refusals_record_nothing() -> None:
    store = MemoryEventStore()
    await run_workflow(chain([]), input={}, store=store, run_id="p")
    runs = len(await store.list_runs())

    with pytest.raises(SnapshotNotFoundError, match="no frame 42"):
        await fork("p", frame=42, store=store)
    with pytest.raises(NodeNotFoundError, match="no node 'zz'"):
        await fork("p", frame=1, reset_nodes=["zz"], store=store)
    with pytest.raises(InvalidInputError):
        await fork("p", frame=1, input=[1, 2], store=store)
    with pytest.raises(RunNotFoundError):
        await fork("nope", frame=0, store=store)
    assert len(await store.list_runs()) == runs


async def test_a_fork_of_a_fork_builds_on_both_ancestors() -> None:
    store, ran = MemoryEventStore(), []
    wf = chain(ran)
    original = await run_workflow(wf, input={}, store=store, run_id="p")
    child = await fork("p", frame=1, store=store, run_id_new="c")
    await run_workflow(wf, run_id=child, resume=True, store=store)
    child_frames = (await state_of(store, "c")).frames
    ran.clear()

    grandchild = await fork("c", frame=child_frames[0].frame_no, store=store, run_id_new="g")
    result = await run_workflow(wf, run_id=grandchild, resume=True, store=store)

    assert result.outputs == original.outputs
    assert sorted(ran) == ["b", "c", "d"]
    rows = await read_ancestry(store, "g")
    assert [r.run_id for r in rows][:3] == ["p", "p", "p"]
    assert rows[-1].run_id == "g"


async def read_ancestry(store: EventStore, run_id: str) -> list[StoredEvent]:
    from smithers.engine.history._queries import _ancestor_rows

    return [*await _ancestor_rows(store, run_id), *await store.read(run_id)]  # type: ignore[arg-type]


async def test_fork_cost_does_not_grow_with_the_parent() -> None:
    store = MemoryEventStore()

    @workflow("long")
    def wf(ctx: Any) -> Any:
        return [Task(f"t{i}", output=dict, value={"i": i}) for i in range(200)]

    await run_workflow(wf, input={}, store=store, run_id="p")
    total_before = len(await store.read_all())

    child = await fork("p", frame=0, store=store)

    assert len(await store.read_all()) == total_before + 1
    assert len(await rows_of(store, child)) == 1


async def test_a_fork_may_run_on_edited_code_its_parent_may_not(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    body = """
        from smithers import Sequence, Task, workflow

        @workflow("edit")
        def edit(ctx):
            return Sequence(
                Task("first", output=dict, value={"n": 1}),
                Task("second", output=dict, run=lambda: {"n": VALUE}),
            )

        VALUE = {value}
    """
    path.write_text(textwrap.dedent(body.replace("{value}", "1")), encoding="utf-8")
    db = tmp_path / "smithers.db"
    wf, _ = load_workflow(str(path))
    parent = await run_workflow(wf, input={}, db=db, run_id="p")
    assert parent.outputs["second"] == {"n": 1}
    path.write_text(textwrap.dedent(body.replace("{value}", "2")), encoding="utf-8")

    await rewind("p", frame=0, db=db)
    with pytest.raises(ResumeMetadataMismatchError):
        await resume_run("p", db=db)
    child = await fork("p", frame=0, db=db)
    result = await resume_run(child, db=db)

    assert result.status == "finished"
    assert result.outputs["second"] == {"n": 2}


# ---------------------------------------------------------------------------- replay


async def test_replay_forks_records_replay_started_and_runs_now() -> None:
    store, ran = MemoryEventStore(), []
    wf = chain(ran)
    original = await run_workflow(wf, input={}, store=store, run_id="p")
    parent_rows = await rows_of(store, "p")
    ran.clear()

    result = await replay("p", frame=1, store=store, workflow=wf, label="re")

    assert result.run_id != "p"
    assert result.status == "finished"
    assert result.outputs == original.outputs
    assert sorted(ran) == ["b", "c", "d"]
    rows = await rows_of(store, result.run_id)
    first, second = events_of(rows[:2])
    assert isinstance(first, RunForked)
    assert first.branch_label == "re"
    assert isinstance(second, ReplayStarted)
    assert (second.parent_run_id, second.parent_frame_no) == ("p", 1)
    assert rows[2].type == "RunStarted"
    assert (await state_of(store, result.run_id)).replay_of == ("p", 1)
    assert await rows_of(store, "p") == parent_rows


async def test_replay_with_an_input_that_fails_the_schema_records_nothing() -> None:
    class In(msgspec.Struct):
        start: int

    @workflow("typed", input=In)
    def wf(ctx: Any) -> Any:
        return [Task("echo", output=dict, run=lambda: {"start": ctx.input.start})]

    store = MemoryEventStore()
    await run_workflow(wf, input={"start": 1}, store=store, run_id="p")
    runs = len(await store.list_runs())

    with pytest.raises(InvalidInputError):
        await replay("p", frame=0, input={"start": "x"}, store=store, workflow=wf)
    assert len(await store.list_runs()) == runs

    result = await replay("p", frame=0, input={"start": 7}, store=store, workflow=wf)
    assert result.outputs["echo"] == {"start": 7}


# ---------------------------------------------------------------------------- retry-task


async def test_retry_task_reruns_the_node_and_its_dependents_in_the_same_run() -> None:
    store, ran = MemoryEventStore(), []
    wf = chain(ran)
    original = await run_workflow(wf, input={}, store=store, run_id="r")
    n = len(await rows_of(store, "r"))
    ran.clear()

    result = await retry_task("r", node="b", store=store, workflow=wf)

    assert result.run_id == "r"
    assert result.status == "finished"
    assert result.outputs == original.outputs
    assert sorted(ran) == ["b", "d"]
    rows = await rows_of(store, "r")
    new = events_of(rows[n:])
    retry = new[0]
    assert isinstance(retry, RetryTaskStarted)
    assert (retry.node_id, retry.iteration, retry.reset_dependents) == ("b", 0, True)
    assert retry.reset_nodes == ("b", "d")
    assert isinstance(new[1], RunStatusChanged)
    assert new[1].status == "running"
    (done,) = [e for e in new if isinstance(e, RetryTaskFinished)]
    assert (done.reset_nodes, done.success, done.error) == (("b", "d"), True, None)
    assert isinstance(new[-1], RunFinished)  # the run's end recorded the retry's end first
    state = await state_of(store, "r")
    assert state.node("b").attempt_count == 2  # type: ignore[union-attr]
    assert state.node("c").attempt_count == 1  # type: ignore[union-attr]


async def test_retry_task_without_deps_resets_only_the_node() -> None:
    store, ran = MemoryEventStore(), []
    wf = chain(ran)
    await run_workflow(wf, input={}, store=store, run_id="r")
    ran.clear()

    await retry_task("r", node="a", deps=False, store=store, workflow=wf)

    assert ran == ["a"]
    (retry,) = [e for e in events_of(await rows_of(store, "r")) if isinstance(e, RetryTaskStarted)]
    assert (retry.reset_nodes, retry.reset_dependents) == (("a",), False)


async def test_retry_task_of_a_failed_node_after_the_cause_is_fixed() -> None:
    store = MemoryEventStore()
    broken = {"yes": True}

    def flaky() -> dict[str, int]:
        if broken["yes"]:
            raise RuntimeError("down")
        return {"v": 1}

    @workflow("flaky")
    def wf(ctx: Any) -> Any:
        return Sequence(
            Task("first", output=dict, value={"v": 0}),
            Task("flaky", output=dict, run=flaky),
            Task("after", output=dict, value={"v": 2}),
        )

    failed = await run_workflow(wf, input={}, store=store, run_id="r")
    assert failed.status == "failed"
    broken["yes"] = False

    result = await retry_task("r", node="flaky", store=store, workflow=wf)

    assert result.status == "finished"
    assert result.outputs == {"first": {"v": 0}, "flaky": {"v": 1}, "after": {"v": 2}}
    (retry,) = [e for e in events_of(await rows_of(store, "r")) if isinstance(e, RetryTaskStarted)]
    assert retry.reset_nodes == ("flaky",)  # "after" never ran: nothing to clear


async def test_a_retry_whose_node_fails_again_reports_no_success() -> None:
    store = MemoryEventStore()

    def boom() -> dict[str, int]:
        raise RuntimeError("boom")

    @workflow("boom")
    def wf(ctx: Any) -> Any:
        return [Task("boom", output=dict, run=boom)]

    await run_workflow(wf, input={}, store=store, run_id="r")

    result = await retry_task("r", node="boom", store=store, workflow=wf)

    assert result.status == "failed"
    (done,) = [e for e in events_of(await rows_of(store, "r")) if isinstance(e, RetryTaskFinished)]
    assert (done.success, done.error) == (False, None)


async def test_retry_task_of_an_unknown_node_records_nothing() -> None:
    store = MemoryEventStore()
    wf = chain([])
    await run_workflow(wf, input={}, store=store, run_id="r")
    n = len(await rows_of(store, "r"))

    with pytest.raises(NodeNotFoundError, match="no node 'zz'"):
        await retry_task("r", node="zz", store=store, workflow=wf)
    assert len(await rows_of(store, "r")) == n


async def test_retry_task_on_edited_code_is_refused_before_anything_is_recorded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "flow.py"
    path.write_text(
        "from smithers import Task, workflow\n\n"
        "@workflow('one')\n"
        "def one(ctx):\n"
        "    return [Task('a', output=dict, value={'n': 1})]\n",
        encoding="utf-8",
    )
    db = tmp_path / "smithers.db"
    wf, _ = load_workflow(str(path))
    await run_workflow(wf, input={}, db=db, run_id="r")
    n = (await load_run("r", db=db)).seq
    path.write_text(path.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")

    with pytest.raises(ResumeMetadataMismatchError):
        await retry_task("r", node="a", db=db)
    assert (await load_run("r", db=db)).seq == n


async def test_retry_task_on_a_crashed_run_closes_the_open_attempt_first() -> None:
    ran: list[str] = []
    store, _ = await crashed_run(gated(ran), "hang")

    @workflow("gated")
    def quick(ctx: Any) -> Any:
        return Sequence(
            Task("first", output=dict, run=recorder(ran, "first", {"v": 1})),
            Task("hang", output=dict, value={"v": 0}),
            Task("after", output=dict, value={"v": 2}),
        )

    ran.clear()
    n = len(await rows_of(store, "r"))
    result = await retry_task("r", node="first", store=store, workflow=quick)

    assert result.status == "finished"
    assert ran == ["first"]
    new = events_of((await rows_of(store, "r"))[n:])
    assert isinstance(new[0], NodeCancelled)
    assert (new[0].node_id, new[0].reason) == ("hang", "abandoned")
    assert isinstance(new[1], RetryTaskStarted)
    assert new[1].reset_nodes == ("first", "hang")
    state = await state_of(store, "r")
    assert [a.state for a in state.node("hang").attempts] == ["cancelled", "finished"]  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- dependents


def deps_of(wf: Workflow, outputs: dict[str, Any], node_id: str) -> list[str]:
    state = RunState(run_id="r")
    for key, value in outputs.items():
        from smithers.projections import NodeRecord

        state.nodes[(key, 0)] = NodeRecord(
            node_id=key,
            state="finished",
            output=msgspec.Raw(msgspec.json.encode(value)),
            has_output=True,
        )
    return task_dependents(wf, state, node_id)


def test_dependents_follow_sequences_parallels_and_depends_on() -> None:
    @workflow("graph")
    def wf(ctx: Any) -> Any:
        return Sequence(
            Task("a", output=dict, value={}),
            Parallel(
                Sequence(Task("b1", output=dict, value={}), Task("b2", output=dict, value={})),
                Task("c", output=dict, value={}),
                Task("e", output=dict, value={}, depends_on=["c"]),
            ),
            Task("d", output=dict, value={}),
            Parallel(Task("f", output=dict, value={}), Task("g", output=dict, value={})),
        )

    assert deps_of(wf, {}, "a") == ["b1", "b2", "c", "e", "d", "f", "g"]
    assert deps_of(wf, {}, "b1") == ["b2", "d", "f", "g"]
    assert deps_of(wf, {}, "c") == ["e", "d", "f", "g"]
    assert deps_of(wf, {}, "e") == ["d", "f", "g"]
    assert deps_of(wf, {}, "f") == []
    assert deps_of(wf, {}, "unmounted") == []


def test_tasks_mounted_on_an_output_are_dependents_wherever_they_are() -> None:
    @workflow("mounted")
    def wf(ctx: Any) -> Any:
        first = ctx.output_maybe(dict, "first")
        return Parallel(
            Task("first", output=dict, value={"ok": True}),
            first and Task("uses", output=dict, value={}),
            Branch(bool(first and first["ok"]), then=Task("then", output=dict, value={})),
            Task("other", output=dict, value={}),
        )

    assert deps_of(wf, {"first": {"ok": True}}, "first") == ["uses", "then"]
    assert deps_of(wf, {"first": {"ok": True}}, "other") == []


# ---------------------------------------------------------------------------- ancestry


async def test_read_events_follows_a_forks_ancestry(tmp_path: Path) -> None:
    db = tmp_path / "smithers.db"
    wf = chain([])
    await run_workflow(wf, input={}, db=db, run_id="p")
    parent = await read_events("p", db=db)
    seq1 = frame_seq(await load_run("p", db=db), 1)
    await fork_api("p", frame=1, db=db, run_id_new="c")
    own = await read_events("c", db=db)

    both = await read_events("c", db=db, follow_ancestry=True)

    assert [(s.run_id, s.seq) for s, _ in both] == [
        *(("p", s.seq) for s, _ in parent if s.seq <= seq1),
        *(("c", s.seq) for s, _ in own),
    ]
    only = await read_events("c", db=db, follow_ancestry=True, types=["RunForked"])
    assert [(s.run_id, s.seq) for s, _ in only] == [("c", 1)]
    assert await read_events("p", db=db, follow_ancestry=True) == parent


# ---------------------------------------------------------------------------- README


README_FLOW = """
import msgspec
from smithers import Sequence, Task, workflow


class Count(msgspec.Struct):
    n: int


def second(task):
    if task.input["start"] < 0:
        raise ValueError("negative start")
    return {"n": task.input["start"] + 1}


@workflow("checked")
def checked(ctx):
    first = ctx.output_maybe(Count, "first")
    return Sequence(
        Task("first", output=Count, value={"n": 1}),
        Task("second", output=Count, run=second),
        first and Task("third", output=Count, value={"n": first.n + 10}),
    )
"""


async def test_the_readme_debug_a_failed_run_example(tmp_path: Path) -> None:
    from smithers import load_run as facade_load_run
    from smithers import timeline

    assert facade_load_run is load_run
    path = tmp_path / "checked.py"
    path.write_text(README_FLOW, encoding="utf-8")
    checked, _ = load_workflow(str(path))
    db = tmp_path / "smithers.db"

    failed = await run_workflow(checked, input={"start": -1}, db=db)
    assert failed.status == "failed"
    tl = await timeline(failed.run_id, db=db)
    assert [(f.frame_no, f.finished_count) for f in tl.frames] == [(0, 0), (1, 1), (2, 1)]
    fixed = await replay(failed.run_id, frame=1, input={"start": 5}, db=db)
    assert (fixed.status, fixed.outputs["second"]) == ("finished", {"n": 6})

    before, after = await load_run(failed.run_id, db=db), await load_run(fixed.run_id, db=db)
    assert before.node("second").last_error.message == "negative start"  # type: ignore[union-attr]
    assert after.node("first").attempt_count == 1  # type: ignore[union-attr]
    assert after.parent_run_id == failed.run_id


# ---------------------------------------------------------------------------- properties

# A generated workflow: ("task", id, kind, depends_on) | ("seq", children) |
# ("par", children) | ("branch", condition node id, then, else). Ids are t0, t1, ...
# A branch reads a task that is done before the branch is reached (an earlier sibling
# of an enclosing sequence), and depends_on names an earlier task of the same Parallel,
# so every run of a spec mounts and runs the same tasks whatever the timing.

KINDS = ("static", "sync", "async")


@st.composite
def specs(draw: st.DrawFn) -> Any:
    ids = itertools.count()
    budget = [draw(st.integers(2, 9))]

    def task(deps: tuple[str, ...] = ()) -> Any:
        budget[0] -= 1
        return ("task", f"t{next(ids)}", draw(st.sampled_from(KINDS)), deps)

    def node(depth: int, before: tuple[str, ...]) -> Any:
        kinds = ["task"]
        if depth < 3 and budget[0] > 1:
            kinds += ["seq", "par"] + (["branch"] if before else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "task" or budget[0] <= 0:
            return task()
        if kind == "branch":
            cond = draw(st.sampled_from(before))
            return ("branch", cond, node(depth + 1, before), node(depth + 1, before))
        children: list[Any] = []
        done = before
        for _ in range(draw(st.integers(1, 3))):
            if budget[0] <= 0:
                break
            if kind == "par":
                earlier = [c[1] for c in children if c[0] == "task"]
                deps = tuple(draw(st.sets(st.sampled_from(earlier)))) if earlier else ()
                child = task(tuple(sorted(deps))) if deps else node(depth + 1, before)
            else:
                child = node(depth + 1, done)
                done = done + tuple(tasks_in(child))
            children.append(child)
        return (kind, children or [task()])

    return (
        "seq",
        [node(0, ()) for _ in range(draw(st.integers(1, 3))) if budget[0] > 0] or [task()],
    )


def tasks_in(spec: Any) -> list[str]:
    if spec[0] == "task":
        return [spec[1]]
    if spec[0] == "branch":
        return tasks_in(spec[2]) + tasks_in(spec[3])
    return [t for child in spec[1] for t in tasks_in(child)]


def value_of(node_id: str, seed: int) -> dict[str, int]:
    return {"v": (int(node_id[1:]) * 7 + seed) % 11}


def build_workflow(spec: Any, ran: list[str]) -> Workflow:
    def make_task(node_id: str, kind: str, deps: tuple[str, ...], seed: int) -> Task:
        value = value_of(node_id, seed)
        if kind == "static":
            return Task(node_id, output=dict, value=value, depends_on=deps)
        if kind == "sync":
            return Task(node_id, output=dict, run=recorder(ran, node_id, value), depends_on=deps)

        async def run() -> dict[str, int]:
            await anyio.sleep(0)
            ran.append(node_id)
            return value

        return Task(node_id, output=dict, run=run, depends_on=deps)

    @workflow("generated")
    def wf(ctx: Any) -> Any:
        seed = ctx.input["seed"]

        def build(s: Any) -> Any:
            if s[0] == "task":
                return make_task(s[1], s[2], s[3], seed)
            if s[0] == "branch":
                out = ctx.output_maybe(dict, s[1])
                return Branch(
                    out is not None and out["v"] % 2 == 0, then=build(s[2]), else_=build(s[3])
                )
            kids = [build(c) for c in s[1]]
            return Sequence(*kids) if s[0] == "seq" else Parallel(*kids)

        return build(spec)

    return wf


def mounted(spec: Any, outputs: dict[str, Any]) -> Any:
    """The spec with each branch replaced by the side its final condition chose."""
    if spec[0] == "task":
        return spec
    if spec[0] == "branch":
        out = outputs.get(spec[1])
        side = spec[2] if out is not None and out["v"] % 2 == 0 else spec[3]
        return ("seq", [mounted(side, outputs)])
    return (spec[0], [mounted(c, outputs) for c in spec[1]])


def oracle_dependents(spec: Any, node_id: str) -> set[str]:
    """Tasks after `node_id` in the mounted tree (sequence order, joins, depends_on)."""
    after: dict[str, set[str]] = {}
    depended: dict[str, set[str]] = {}

    def walk(s: Any, later: set[str]) -> None:
        if s[0] == "task":
            after[s[1]] = set(later)
            for dep in s[3]:
                depended.setdefault(dep, set()).add(s[1])
            return
        children = s[1]
        for i, child in enumerate(children):
            rest = {t for c in children[i + 1 :] for t in tasks_in(c)} if s[0] == "seq" else set()
            walk(child, later | rest)

    walk(spec, set())
    found: set[str] = set()
    work = [node_id]
    while work:
        n = work.pop()
        for m in after.get(n, set()) | depended.get(n, set()):
            if m not in found and m != node_id:
                found.add(m)
                work.append(m)
    return found


SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def finished(state: RunState) -> set[str]:
    return {n for n, s in node_states(state).items() if s == "finished"}


# Frames and nodes are picked by index modulo their count: how many frames a run
# commits depends on timing (completions landing in one tick or two), and a draw that
# depends on it would make Hypothesis' data generation inconsistent.
PICK = st.integers(0, 1_000)


@pytest.mark.slow
@SETTINGS
@given(spec=specs(), seed=st.integers(0, 10), pick=PICK)
def test_property_b_fork_at_n_reruns_exactly_what_was_not_finished(
    spec: Any, seed: int, pick: int
) -> None:
    async def check() -> None:
        store, ran = MemoryEventStore(), []
        wf = build_workflow(spec, ran)
        original = await run_workflow(wf, input={"seed": seed}, store=store, run_id="p")
        assert original.status == "finished"
        full = await state_of(store, "p")
        frame = full.frames[pick % len(full.frames)].frame_no
        at = await state_of(store, "p", upto_seq=frame_seq(full, frame))
        ran.clear()

        child = await fork("p", frame=frame, store=store)
        result = await run_workflow(wf, run_id=child, resume=True, store=store)

        assert result.status == "finished"
        assert result.outputs == original.outputs
        rows = await rows_of(store, child)
        assert sorted(started(rows)) == sorted(finished(full) - finished(at))
        computed = {n for n in finished(full) - finished(at) if kind_of(spec, n) != "static"}
        assert sorted(ran) == sorted(computed)

    anyio.run(check)


def kind_of(spec: Any, node_id: str) -> str:
    if spec[0] == "task":
        return str(spec[2]) if spec[1] == node_id else ""
    children = [spec[2], spec[3]] if spec[0] == "branch" else spec[1]
    return "".join(kind_of(c, node_id) for c in children)


@pytest.mark.slow
@SETTINGS
@given(spec=specs(), seed=st.integers(0, 10), pick_fork=PICK, pick_rewind=PICK)
def test_property_c_rewind_and_fork_never_change_earlier_events(
    spec: Any, seed: int, pick_fork: int, pick_rewind: int
) -> None:
    async def check() -> None:
        store, ran = MemoryEventStore(), []
        wf = build_workflow(spec, ran)
        original = await run_workflow(wf, input={"seed": seed}, store=store, run_id="p")
        frames = [f.frame_no for f in (await state_of(store, "p")).frames]
        before = await rows_of(store, "p")

        child = await fork("p", frame=frames[pick_fork % len(frames)], store=store)
        await run_workflow(wf, run_id=child, resume=True, store=store)
        assert await rows_of(store, "p") == before

        frame = frames[pick_rewind % len(frames)]
        await rewind("p", frame=frame, store=store)
        result = await run_workflow(wf, run_id="p", resume=True, store=store)
        after = await rows_of(store, "p")
        assert after[: len(before)] == before
        assert result.outputs == original.outputs
        assert (await state_of(store, "p")).status == "finished"

    anyio.run(check)


@pytest.mark.slow
@SETTINGS
@given(spec=specs(), seed=st.integers(0, 10), deps=st.booleans(), pick=PICK)
def test_property_d_retry_task_reruns_the_node_and_its_dependents_only(
    spec: Any, seed: int, deps: bool, pick: int
) -> None:
    async def check() -> None:
        store, ran = MemoryEventStore(), []
        wf = build_workflow(spec, ran)
        original = await run_workflow(wf, input={"seed": seed}, store=store, run_id="r")
        done = finished(await state_of(store, "r"))
        node = sorted(done)[pick % len(done)]
        before = await rows_of(store, "r")
        n = len(before)

        result = await retry_task("r", node=node, deps=deps, store=store, workflow=wf)

        assert result.status == "finished"
        assert result.outputs == original.outputs
        expected = {node} | (
            oracle_dependents(mounted(spec, original.outputs), node) & done if deps else set()
        )
        rows = await rows_of(store, "r")
        assert sorted(started(rows, after_seq=n)) == sorted(expected)
        retry = events_of(rows[n : n + 1])[0]
        assert isinstance(retry, RetryTaskStarted)
        assert set(retry.reset_nodes) == expected
        assert rows[:n] == before

    anyio.run(check)


async def test_a_retry_whose_process_died_is_closed_by_the_runs_end() -> None:
    # As a `retry-task` SIGKILLed after its RetryTaskStarted leaves the log: the next
    # resume drives the run to its end, which records the retry's end too.
    store, ran = MemoryEventStore(), []
    wf = chain(ran)
    await run_workflow(wf, run_id="r", store=store)
    rows = await rows_of(store, "r")
    started = RetryTaskStarted(
        run_id="r",
        timestamp_ms=events_of(rows)[-1].timestamp_ms + 1,
        node_id="b",
        reset_dependents=True,
        reset_nodes=("b", "d"),
    )
    reopened = RunStatusChanged(run_id="r", timestamp_ms=started.timestamp_ms, status="running")
    await store.append("r", [started, reopened], expected_seq=len(rows))
    assert (await state_of(store, "r")).open_retry is not None

    result = await run_workflow(wf, run_id="r", store=store, resume=True, force=True)

    assert result.status == "finished"
    new = events_of((await rows_of(store, "r"))[len(rows) :])
    (done,) = [e for e in new if isinstance(e, RetryTaskFinished)]
    assert (done.node_id, done.reset_nodes, done.success) == ("b", ("b", "d"), True)
    assert (await state_of(store, "r")).open_retry is None
