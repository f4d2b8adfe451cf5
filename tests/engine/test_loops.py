"""Loops and continue-as-new (issue 9, items 1 and 5), through the Python API.

A Loop's passes are iterations: its tasks are keyed ``(node_id, iteration)`` and every
pass keeps its attempts and outputs in the log; passes are events
(`LoopIterationStarted`, `LoopFinished`), so rewind, fork, retry-task and the fold at
any frame understand them. Continue-as-new ends a run ``continued`` and goes on in a
new run of the same process.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smithers.engine import (
    InvalidContinuationStateError,
    NestedLoopError,
    RunNotResumableError,
    UnsupportedFeatureError,
    state_at,
    timeline,
    tree_at,
)
from smithers.engine.activation import _loop
from smithers.engine.history import load_state, read_events
from smithers.eventstore import MemoryEventStore, decode_event
from smithers.eventstore.events import (
    ContinuationLoaded,
    LoopFinished,
    LoopIterationStarted,
    LoopRewound,
    NodeStarted,
    RunContinuedAsNew,
    RunStarted,
)

from smithers import (
    Branch,
    ContinueAsNew,
    Loop,
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
    from collections.abc import Iterator

    from smithers.eventstore import EventStore
    from smithers.projections import RunState

    from smithers import Workflow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Draft(msgspec.Struct):
    n: int


class Review(msgspec.Struct):
    ok: bool
    n: int


def refine(passes_to_ok: int = 3, *, max_iterations: int = 5, on_max: str = "return-last") -> Any:
    """Draft and review until the review passes (on pass ``passes_to_ok - 1``)."""

    @workflow("refine")
    def wf(ctx: Any) -> Any:
        last = ctx.latest(Review, "review")
        draft = ctx.output_maybe(Draft, "draft")
        return Sequence(
            Task("setup", output=dict, value={"ready": True}),
            Loop(
                "refine",
                Task("draft", output=Draft, run=lambda it=ctx.iteration: {"n": it}),
                draft
                and Task(
                    "review",
                    output=Review,
                    value={"ok": draft.n + 1 >= passes_to_ok, "n": draft.n},
                ),
                until=last is not None and last.ok,
                max_iterations=max_iterations,
                on_max_reached=on_max,  # type: ignore[arg-type]
            ),
            Task("publish", output=dict, value={"done": True}),
        )

    return wf


async def events_of(store: EventStore, run_id: str) -> list[Any]:
    return [decode_event(r.type, r.data) for r in await store.read(run_id)]


def of_type(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


# ---------------------------------------------------------------------------- passes


async def test_each_pass_is_an_iteration_kept_in_the_log_until_the_review_passes() -> None:
    store = MemoryEventStore()
    result = await run_workflow(refine(3), store=store, run_id="r")
    assert result.status == "finished"
    events = await events_of(store, "r")
    started = [(e.node_id, e.iteration) for e in of_type(events, NodeStarted)]
    assert started == [
        ("setup", 0),
        ("draft", 0),
        ("review", 0),
        ("draft", 1),
        ("review", 1),
        ("draft", 2),
        ("review", 2),
        ("publish", 0),
    ]
    passes = [(e.loop_id, e.iteration) for e in of_type(events, LoopIterationStarted)]
    assert passes == [("refine", 0), ("refine", 1), ("refine", 2)]
    (done,) = of_type(events, LoopFinished)
    assert (done.loop_id, done.iteration, done.reason) == ("refine", 2, "until")
    state = await load_state(store, "r")
    assert [bytes(state.nodes[("draft", i)].output) for i in range(3)] == [
        msgspec.json.encode({"n": i}) for i in range(3)
    ]
    assert state.loops["refine"].finished
    assert result.outputs["review"] == {"ok": True, "n": 2}


async def test_max_iterations_return_last_ends_the_loop_and_the_run_goes_on() -> None:
    store = MemoryEventStore()
    result = await run_workflow(refine(10, max_iterations=2), store=store, run_id="r")
    assert result.status == "finished"
    assert result.outputs["review"] == {"ok": False, "n": 1}
    assert result.outputs["publish"] == {"done": True}
    (done,) = of_type(await events_of(store, "r"), LoopFinished)
    assert (done.iteration, done.reason) == (1, "max-iterations")


async def test_max_iterations_fail_fails_the_run_with_ralph_max_reached() -> None:
    store = MemoryEventStore()
    result = await run_workflow(
        refine(10, max_iterations=2, on_max="fail"), store=store, run_id="r"
    )
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "RALPH_MAX_REACHED"
    assert result.error["details"] == {"ralphId": "refine", "maxIterations": 2}
    assert "publish" not in result.outputs


async def test_a_loop_whose_until_holds_at_the_first_pass_runs_it_once() -> None:
    @workflow("once")
    def wf(ctx: Any) -> Any:
        return Loop("l", Task("t", output=dict, value={"v": 1}), until=True)

    store = MemoryEventStore()
    result = await run_workflow(wf, store=store, run_id="r")
    assert result.status == "finished"
    assert len(of_type(await events_of(store, "r"), NodeStarted)) == 1


# ---------------------------------------------------------------------------- ctx


async def test_ctx_helpers_follow_the_running_pass() -> None:
    seen: list[tuple[int, int, int, Any, Any]] = []

    @workflow("ctx")
    def wf(ctx: Any) -> Any:
        seen.append(
            (
                ctx.iteration,
                ctx.loop_iteration("l"),
                ctx.iteration_count(Draft, "t"),
                ctx.latest(Draft, "t"),
                ctx.output_maybe(Draft, "t"),
            )
        )
        return Sequence(
            Loop(
                "l",
                Task("t", output=Draft, run=lambda it=ctx.iteration: {"n": it * 10}),
                max_iterations=3,
            ),
            Task("after", output=dict, run=lambda it=ctx.iteration: {"it": it}),
        )

    result = await run_workflow(wf, store=MemoryEventStore(), run_id="r")
    assert result.status == "finished"
    # Pass 2 is current: output_maybe defaults to it; latest and counts see every pass.
    assert (2, 2, 2, Draft(n=10), None) in seen
    assert (2, 2, 3, Draft(n=20), Draft(n=20)) in seen
    # Once the loop is done, ctx.iteration is 0 again (outside loops).
    assert seen[-1][:2] == (0, 2)
    assert result.outputs["after"] == {"it": 0}


# ---------------------------------------------------------------------------- nesting


async def test_a_loop_directly_inside_a_loop_fails_with_nested_loop() -> None:
    @workflow("nested")
    def wf(ctx: Any) -> Any:
        return Loop("outer", Loop("inner", Task("t", output=dict, value={})))

    result = await run_workflow(wf, store=MemoryEventStore(), run_id="r")
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "NESTED_LOOP"
    assert result.error["details"] == {"loopId": "inner", "parentLoopId": "outer"}
    assert NestedLoopError("a", "b").code == "NESTED_LOOP"


async def test_a_scoped_inner_loop_restarts_per_outer_pass_with_suffixed_ids() -> None:
    @workflow("scoped")
    def wf(ctx: Any) -> Any:
        return Loop(
            "outer",
            Task("o", output=dict, value={}),
            Sequence(Loop("inner", Task("i", output=dict, value={}), max_iterations=2)),
            max_iterations=2,
        )

    store = MemoryEventStore()
    result = await run_workflow(wf, store=store, run_id="r")
    assert result.status == "finished"
    events = await events_of(store, "r")
    started = {(e.node_id, e.iteration) for e in of_type(events, NodeStarted)}
    assert started == {
        ("o", 0),
        ("o", 1),
        ("i@0", 0),
        ("i@0", 1),
        ("i@1", 0),
        ("i@1", 1),
    }
    loops = {(e.loop_id, e.iteration) for e in of_type(events, LoopIterationStarted)}
    assert loops == {
        ("outer", 0),
        ("outer", 1),
        ("inner@0", 0),
        ("inner@0", 1),
        ("inner@1", 0),
        ("inner@1", 1),
    }


async def test_loops_side_by_side_and_in_a_branch() -> None:
    @workflow("side")
    def wf(ctx: Any) -> Any:
        return Parallel(
            Loop("a", Task("ta", output=dict, value={}), max_iterations=2),
            Branch(True, then=Loop("b", Task("tb", output=dict, value={}), max_iterations=3)),
        )

    store = MemoryEventStore()
    result = await run_workflow(wf, store=store, run_id="r")
    assert result.status == "finished"
    state = await load_state(store, "r")
    assert (state.loops["a"].iteration, state.loops["b"].iteration) == (1, 2)
    assert set(state.nodes) == {("ta", 0), ("ta", 1), ("tb", 0), ("tb", 1), ("tb", 2)}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_iterations": 0}, "max_iterations"),
        ({"on_max_reached": "explode"}, "on_max_reached"),
        ({"continue_as_new_every": 0}, "continue_as_new_every"),
    ],
)
def test_bad_loop_options_are_clear_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match=match) as info:
        Loop("l", Task("t", output=dict, value={}), **kwargs)
    assert info.value.code == "INVALID_INPUT"


def test_a_loop_needs_children_and_an_id() -> None:
    with pytest.raises(UnsupportedFeatureError, match="no children"):
        Loop("l")
    with pytest.raises(UnsupportedFeatureError, match="no children"):
        Loop("l", None)
    with pytest.raises(UnsupportedFeatureError, match="id"):
        Loop("", Task("t", output=dict, value={}))


# ---------------------------------------------------------------------------- crash, time travel


@contextlib.contextmanager
def live_states() -> Iterator[dict[int, RunState]]:
    """The state the engine held right after committing each frame, by frame number."""
    seen: dict[int, RunState] = {}
    original = _loop.RunLoop._commit_frame

    def commit(self: _loop.RunLoop, plan: Any) -> None:
        frame_no = self.frame_no
        original(self, plan)
        seen[frame_no] = self.state.copy()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_loop.RunLoop, "_commit_frame", commit)
        yield seen


@pytest.mark.parametrize("on_max", ["return-last", "fail"])
async def test_the_state_at_every_frame_is_the_live_state(on_max: str) -> None:
    store = MemoryEventStore()
    with live_states() as live:
        await run_workflow(
            refine(3, max_iterations=3 if on_max == "fail" else 2, on_max=on_max),
            store=store,
            run_id="r",
        )
    assert len(live) > 6
    for frame_no, state in live.items():
        assert await state_at(store, "r", frame=frame_no) == state


async def test_frames_record_the_loop_and_their_hash_changes_per_pass() -> None:
    store = MemoryEventStore()
    with live_states() as live:
        await run_workflow(refine(3), store=store, run_id="r")
    tl = await timeline("r", store=store)
    hashes = {f.xml_hash for f in tl.frames}
    assert len(hashes) >= 3
    trees = [await tree_at("r", f.frame_no, store=store) for f in tl.frames]
    iterations = {
        child["iteration"]
        for tree in trees
        for child in tree["children"][0]["children"]
        if child["tag"] == "loop"
    }
    assert iterations == {0, 1, 2}
    assert len(live) == len(tl.frames)


def gated_loop(ran: list[tuple[str, int]], gate_pass: int) -> Workflow:
    @workflow("gated-loop")
    def wf(ctx: Any) -> Any:
        it = ctx.iteration

        async def work() -> dict[str, int]:
            ran.append(("work", it))
            if it == gate_pass:
                await anyio.sleep(30)
            return {"it": it}

        return Loop("l", Task("work", output=dict, run=work), max_iterations=4)

    return wf


async def test_a_run_crashed_mid_loop_resumes_at_the_same_pass() -> None:
    ran: list[tuple[str, int]] = []
    wf = gated_loop(ran, gate_pass=2)
    live = MemoryEventStore()
    seen = anyio.Event()

    def on_progress(event: Any) -> None:
        if isinstance(event, NodeStarted) and event.iteration == 2:
            seen.set()

    async with anyio.create_task_group() as tg:

        async def drive() -> None:
            await run_workflow(wf, store=live, run_id="r", on_progress=on_progress)

        tg.start_soon(drive)
        await seen.wait()
        rows = await live.read("r")
        tg.cancel_scope.cancel()
    # The log as a crash left it: pass 2 running.
    copy = MemoryEventStore()
    await copy.append("r", [decode_event(r.type, r.data) for r in rows], expected_seq=0)  # type: ignore[misc]
    ran.clear()
    ok = gated_loop(ran, gate_pass=99)
    result = await run_workflow(ok, store=copy, run_id="r", resume=True, force=True)
    assert result.status == "finished"
    assert ran == [("work", 2), ("work", 3)]
    state = await load_state(copy, "r")
    assert [state.nodes[("work", i)].attempt_count for i in range(4)] == [1, 1, 2, 1]


async def test_rewind_into_an_earlier_pass_resumes_the_loop_there() -> None:
    store = MemoryEventStore()
    await run_workflow(refine(3), store=store, run_id="r")
    state = await load_state(store, "r")
    # The first frame where pass 1 is mounted and nothing of it ran yet.
    frames = [(f.frame_no, await state_at(store, "r", frame=f.frame_no)) for f in state.frames]
    frame = next(n for n, s in frames if s.loops.get("refine") and s.loops["refine"].iteration == 1)
    at = await state_at(store, "r", frame=frame)
    rewound = await rewind("r", frame=frame, store=store)
    assert rewound.loops == at.loops
    assert rewound.loops["refine"].iteration == 1
    before = len(await store.read("r"))
    result = await run_workflow(refine(3), store=store, run_id="r", resume=True)
    assert result.status == "finished"
    after = [decode_event(r.type, r.data) for r in (await store.read("r"))[before:]]
    again = [(e.node_id, e.iteration) for e in of_type(after, NodeStarted)]
    assert again[0][1] == 1
    assert ("draft", 0) not in again
    assert ("review", 2) in again


async def test_fork_and_replay_at_a_frame_in_an_earlier_pass_continue_the_loop() -> None:
    store = MemoryEventStore()
    await run_workflow(refine(3), store=store, run_id="r")
    state = await load_state(store, "r")
    frames = [(f.frame_no, await state_at(store, "r", frame=f.frame_no)) for f in state.frames]
    frame = next(n for n, s in frames if s.loops.get("refine") and s.loops["refine"].iteration == 1)
    child = await fork("r", frame=frame, store=store, workflow=refine(3))
    child_state = await load_state(store, child)
    assert child_state.loops["refine"].iteration == 1
    result = await replay("r", frame=frame, store=store, workflow=refine(3))
    assert result.status == "finished"
    replayed = [decode_event(r.type, r.data) for r in await store.read(result.run_id)]
    ran = [(e.node_id, e.iteration) for e in of_type(replayed, NodeStarted)]
    assert ("draft", 0) not in ran
    assert ("review", 2) in ran


async def test_retry_task_of_an_earlier_pass_reruns_from_that_pass() -> None:
    store = MemoryEventStore()
    await run_workflow(refine(3), store=store, run_id="r")
    before = len(await store.read("r"))
    result = await retry_task("r", node="review", iteration=1, store=store, workflow=refine(3))
    assert result.status == "finished"
    after = [decode_event(r.type, r.data) for r in (await store.read("r"))[before:]]
    (rewound,) = of_type(after, LoopRewound)
    assert (rewound.loop_id, rewound.iteration) == ("refine", 1)
    ran = [(e.node_id, e.iteration) for e in of_type(after, NodeStarted)]
    # review@1 (not draft@1), then all of pass 2, then what follows the loop.
    assert ran == [("review", 1), ("draft", 2), ("review", 2), ("publish", 0)]


async def test_retry_task_defaults_to_the_latest_iteration() -> None:
    store = MemoryEventStore()
    await run_workflow(refine(3), store=store, run_id="r")
    before = len(await store.read("r"))
    result = await retry_task("r", node="review", store=store, workflow=refine(3))
    assert result.status == "finished"
    after = [decode_event(r.type, r.data) for r in (await store.read("r"))[before:]]
    ran = [(e.node_id, e.iteration) for e in of_type(after, NodeStarted)]
    assert ran == [("review", 2), ("publish", 0)]


# ---------------------------------------------------------------------------- continue-as-new


def counting(every: int, max_iterations: int) -> Workflow:
    @workflow("counting")
    def wf(ctx: Any) -> Any:
        last = ctx.latest(Draft, "step")
        total = last.n if last else 0
        return Sequence(
            Task("setup", output=dict, value={"ok": True}),
            Loop(
                "count",
                Task("step", output=Draft, run=lambda total=total: {"n": total + 1}),
                max_iterations=max_iterations,
                continue_as_new_every=every,
            ),
            Task("output", output=dict, run=lambda total=total: {"total": total}),
        )

    return wf


async def test_continue_as_new_every_chains_runs_that_go_on_where_they_were() -> None:
    store = MemoryEventStore()
    result = await run_workflow(counting(every=3, max_iterations=7), store=store, run_id="r")
    assert result.status == "finished"
    assert result.output == {"total": 7}
    assert result.run_id.startswith("r:cont:2:")
    first = await load_state(store, "r")
    assert first.status == "continued"
    (ended,) = of_type(await events_of(store, "r"), RunContinuedAsNew)
    assert (ended.iteration, ended.ancestry_depth) == (3, 1)
    assert ended.carried_state_size > 0
    second_id = ended.new_run_id
    second = await events_of(store, second_id)
    assert isinstance(second[0], RunStarted)
    loaded = second[1]
    assert isinstance(loaded, ContinuationLoaded)
    assert (loaded.from_run_id, loaded.ancestry_depth, loaded.iteration) == ("r", 1, 3)
    ran = [(e.node_id, e.iteration) for e in of_type(second, NodeStarted)]
    assert ran == [("step", 3), ("step", 4), ("step", 5)]  # setup is not run again
    last = await load_state(store, result.run_id)
    assert last.continued_from_run_id == second_id
    assert last.ancestry_depth == 2
    assert (await load_state(store, second_id)).status == "continued"


async def test_events_follow_ancestry_reads_one_history_across_the_chain() -> None:
    # The last run of a chain, with its ancestry: every run's events, oldest run first,
    # each envelope keeping its own run id and seq.
    store = MemoryEventStore()
    result = await run_workflow(counting(every=3, max_iterations=7), store=store, run_id="r")
    rows = await read_events(result.run_id, store=store, follow_ancestry=True)
    runs = list(dict.fromkeys(row.run_id for row, _ in rows))
    assert runs[0] == "r"
    assert runs[-1] == result.run_id
    assert len(runs) == 3
    steps = [(e.node_id, e.iteration) for _, e in rows if isinstance(e, NodeStarted)]
    assert [it for node, it in steps if node == "step"] == list(range(7))
    own = await read_events(result.run_id, store=store)
    assert rows[-len(own) :] == own


async def test_resuming_a_continued_run_names_the_new_run() -> None:
    store = MemoryEventStore()
    await run_workflow(counting(every=2, max_iterations=3), store=store, run_id="r")
    new = (await load_state(store, "r")).continued_as_run_id
    assert new is not None
    with pytest.raises(RunNotResumableError, match=new):
        await run_workflow(counting(2, 3), store=store, run_id="r", resume=True)


async def test_continue_as_new_carries_state_and_starts_afresh() -> None:
    ran: list[int] = []

    @workflow("paged")
    def wf(ctx: Any) -> Any:
        page = (ctx.continuation or {}).get("page", 0)
        seen = ctx.iteration_count(dict, "fetch")
        return Sequence(
            Task("fetch", output=dict, run=lambda: ran.append(page) or {"page": page}),
            Task("output", output=dict, value={"page": page, "seen": seen}),
            ContinueAsNew(state={"page": page + 1}) if page < 2 else None,
        )

    store = MemoryEventStore()
    result = await run_workflow(wf, store=store, run_id="p")
    assert result.status == "finished"
    assert ran == [0, 1, 2]
    assert result.output == {"page": 2, "seen": 3}  # fetch ran once in each run
    last = await load_state(store, result.run_id)
    assert last.ancestry_depth == 2
    assert msgspec.json.decode(last.continuation) == {"page": 2}


def test_continue_as_new_state_must_be_json() -> None:
    with pytest.raises(InvalidContinuationStateError) as info:
        ContinueAsNew(state={"when": object()})
    assert info.value.code == "INVALID_CONTINUATION_STATE"


async def test_a_builder_returning_non_json_state_fails_the_run() -> None:
    @workflow("bad")
    def wf(ctx: Any) -> Any:
        return [Task("t", output=dict, value={}), ContinueAsNew(state={"when": object()})]

    result = await run_workflow(wf, store=MemoryEventStore(), run_id="r")
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "INVALID_CONTINUATION_STATE"


async def test_carried_state_over_10_mb_fails_with_continuation_state_too_large() -> None:
    big = "x" * (10 * 1024 * 1024 + 1)

    @workflow("big")
    def wf(ctx: Any) -> Any:
        return [Task("t", output=dict, value={}), ContinueAsNew(state={"blob": big})]

    store = MemoryEventStore()
    result = await run_workflow(wf, store=store, run_id="r")
    assert result.status == "failed"
    assert result.run_id == "r"
    assert result.error is not None
    assert result.error["code"] == "CONTINUATION_STATE_TOO_LARGE"
    details = result.error["details"]
    assert details["runId"] == "r"
    assert details["maxBytes"] == 10 * 1024 * 1024
    assert details["sizeBytes"] > details["maxBytes"]
    assert of_type(await events_of(store, "r"), RunContinuedAsNew) == []


async def test_the_state_at_every_frame_is_the_live_state_across_a_chain() -> None:
    store = MemoryEventStore()
    with live_states() as live_frames:
        result = await run_workflow(counting(every=2, max_iterations=5), store=store, run_id="r")
    # Frames of the last run of the chain (frame numbers restart in each run).
    last = await load_state(store, result.run_id)
    for frame in last.frames:
        assert (
            await state_at(store, result.run_id, frame=frame.frame_no)
            == live_frames[frame.frame_no]
        )


def scripted(passes_to_ok: int, max_iterations: int, on_max: str, every: int | None) -> Workflow:
    """A loop whose review passes on pass ``passes_to_ok - 1``, with a scoped inner loop."""

    @workflow("scripted")
    def wf(ctx: Any) -> Any:
        last = ctx.latest(Review, "review")
        # Not ctx.iteration: while the scoped inner loop runs, that is the inner pass.
        it = ctx.loop_iteration("l")
        return Sequence(
            Loop(
                "l",
                Task("draft", output=Draft, run=lambda: {"n": it}),
                Parallel(
                    Task("review", output=Review, value={"ok": it + 1 >= passes_to_ok, "n": it}),
                    Sequence(Loop("inner", Task("fix", output=dict, value={}), max_iterations=2)),
                ),
                until=last is not None and last.ok,
                max_iterations=max_iterations,
                on_max_reached=on_max,  # type: ignore[arg-type]
                continue_as_new_every=every,
            ),
            Task("after", output=dict, value={}),
        )

    return wf


@given(
    passes_to_ok=st.integers(1, 5),
    max_iterations=st.integers(1, 4),
    on_max=st.sampled_from(["return-last", "fail"]),
    every=st.sampled_from([None, 1, 2, 3]),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_every_frame_of_a_loop_run_folds_to_the_live_state(
    passes_to_ok: int, max_iterations: int, on_max: str, every: int | None
) -> None:
    async def check() -> None:
        store = MemoryEventStore()
        with live_states() as live:
            wf = scripted(passes_to_ok, max_iterations, on_max, every)
            result = await run_workflow(wf, store=store, run_id="r")
        reached = min(passes_to_ok, max_iterations)
        expected = "failed" if on_max == "fail" and passes_to_ok > max_iterations else "finished"
        assert result.status == expected
        last = await load_state(store, result.run_id)
        if expected == "finished":
            assert last.loops["l"].iteration == reached - 1
        for frame in last.frames:
            at = await state_at(store, result.run_id, frame=frame.frame_no)
            assert at == live[frame.frame_no]

    anyio.run(check)


def test_a_compiled_plan_is_garbage_collected() -> None:
    # Groups and leaves point at each other; msgspec used to leave groups untracked by
    # the GC, so every render's plan leaked (a 100,000-pass chain grew by 2 MB a run).
    import gc

    from smithers.engine.activation import Leaf, compile_tree

    def leaves_alive() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, Leaf))

    before = leaves_alive()
    for _ in range(20):
        compile_tree(
            Sequence(
                Task("a", output=dict, value={}),
                Loop("l", Parallel(Task("b", output=dict, value={}))),
            )
        )
    assert leaves_alive() == before
