"""Diffs between two points of history, and the determinism check (issue 8, items 2, 3, 9).

Examples first, then Hypothesis properties over generated small workflows: the diff of
a run against itself is empty (at its end and at every frame), and `verify` passes on
every run, its forks and its replays.
"""

from __future__ import annotations

import itertools
import textwrap
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smithers.engine import (
    InvalidInputError,
    RunNotFoundError,
    SnapshotNotFoundError,
    WorkflowMissingDefaultError,
    connect,
    diff_runs,
    load_workflow,
    verify_run,
)
from smithers.engine.history import json_diff
from smithers.eventstore import MemoryEventStore

from smithers import (
    Branch,
    Parallel,
    Sequence,
    Task,
    fork,
    replay,
    rewind,
    run_workflow,
    workflow,
)

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.engine import Workflow


class Count(msgspec.Struct):
    n: int


FLOW = """
import msgspec
from smithers import Sequence, Task, workflow

class Count(msgspec.Struct):
    n: int

LABEL = None

@workflow("count")
def count(ctx):
    first = ctx.output_maybe(Count, "first")
    return Sequence(
        Task("first", output=Count, value={"n": 1}),
        Task("second", output=Count, run=lambda: {"n": ctx.input.get("start", 0) + 1}),
        first and Task("third", output=Count, value={"n": first.n + 10}, label=LABEL),
    )
"""


def count_flow() -> Workflow:
    @workflow("count")
    def count(ctx: Any) -> Any:
        first = ctx.output_maybe(Count, "first")
        return Sequence(
            Task("first", output=Count, value={"n": 1}),
            Task("second", output=Count, run=lambda: {"n": ctx.input.get("start", 0) + 1}),
            first and Task("third", output=Count, value={"n": first.n + 10}),
        )

    return count


# ---------------------------------------------------------------------- json diff


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"n": 1}, {"n": 1}, []),
        ({"n": 1}, {"n": 2}, [("$.n", "changed", 1, 2)]),
        ({"n": 1}, {"n": 1.0}, [("$.n", "changed", 1, 1.0)]),
        ({"n": 1}, {"n": True}, [("$.n", "changed", 1, True)]),
        ({"a": [1, 2]}, {"a": [1]}, [("$.a[1]", "removed", 2, None)]),
        ({}, {"odd key": {"x": None}}, [('$["odd key"]', "added", None, {"x": None})]),
        (
            {"a": {"b": 1, "c": 2}},
            {"a": {"b": 3}, "d": 4},
            [("$.a.b", "changed", 1, 3), ("$.a.c", "removed", 2, None), ("$.d", "added", None, 4)],
        ),
        ([1], {"x": 1}, [("$", "changed", [1], {"x": 1})]),
    ],
)
def test_json_diff(old: Any, new: Any, expected: list[tuple[Any, ...]]) -> None:
    assert [(c.path, c.op, c.old, c.new) for c in json_diff(old, new)] == expected


# ---------------------------------------------------------------------- diff


async def test_a_replay_with_another_input_differs_in_input_and_output() -> None:
    store = MemoryEventStore()
    wf = count_flow()
    await run_workflow(wf, input={"start": 5}, store=store, run_id="p")
    child = await replay("p", frame=1, input={"start": 7}, store=store, workflow=wf)

    d = await diff_runs("p", child.run_id, store=store)

    assert d.status is None
    assert [(c.path, c.op, c.old, c.new) for c in d.input] == [("$.start", "changed", 5, 7)]
    assert [(n.node_id, n.change, n.state_a, n.state_b) for n in d.nodes] == [
        ("second", "changed", "finished", "finished")
    ]
    assert [(c.path, c.old, c.new) for c in d.nodes[0].output] == [("$.n", 6, 8)]
    assert not d.empty


async def test_a_fork_not_run_yet_shows_its_reset_nodes_pending() -> None:
    store = MemoryEventStore()
    await run_workflow(count_flow(), input={"start": 5}, store=store, run_id="p")
    child = await fork("p", frame=3, reset_nodes=["second"], store=store)

    d = await diff_runs("p", child, store=store)

    assert d.status == ("finished", "pending")
    second = next(n for n in d.nodes if n.node_id == "second")
    assert (second.change, second.state_a, second.state_b) == ("changed", "finished", "pending")
    assert [(c.path, c.op) for c in second.output] == [("$", "removed")]


async def test_between_two_frames_of_a_run_nodes_are_added_and_finish() -> None:
    store = MemoryEventStore()
    await run_workflow(count_flow(), input={"start": 5}, store=store, run_id="p")

    d = await diff_runs("p", from_frame=0, to_frame=1, store=store)

    assert (d.a.frame_no, d.b.frame_no) == (0, 1)
    changes = {(n.node_id, n.change, n.state_a, n.state_b) for n in d.nodes}
    assert ("first", "added", None, "finished") in changes
    assert ("second", "added", None, "pending") in changes
    back = await diff_runs("p", from_frame=1, to_frame=0, store=store)
    assert {(n.node_id, n.change) for n in back.nodes} == {(n.node_id, "removed") for n in d.nodes}


async def test_a_frame_a_fork_inherited_is_read_from_its_parent() -> None:
    store = MemoryEventStore()
    wf = count_flow()
    await run_workflow(wf, input={"start": 5}, store=store, run_id="p")
    child = await replay("p", frame=1, input={"start": 7}, store=store, workflow=wf)

    d = await diff_runs("p", child.run_id, frame=1, store=store)

    assert d.empty
    assert (d.b.run_id, d.b.source_run_id, d.b.seq) == (child.run_id, "p", d.a.seq)


async def test_diff_refusals() -> None:
    store = MemoryEventStore()
    await run_workflow(count_flow(), store=store, run_id="p")
    with pytest.raises(InvalidInputError, match="not both"):
        await diff_runs("p", frame=1, from_frame=0, store=store)
    with pytest.raises(SnapshotNotFoundError, match="0 to"):
        await diff_runs("p", from_frame=99, store=store)
    with pytest.raises(RunNotFoundError):
        await diff_runs("p", "nosuch", store=store)


async def test_the_handle_diffs_against_a_handle_or_an_id(tmp_path: Path) -> None:
    async with connect(tmp_path / "smithers.db") as client:
        result = await client.run(count_flow(), input={"start": 1}, run_id="p")
        handle = await client.get_run(result.run_id)
        other = await handle.replay(1, input={"start": 2}, workflow=count_flow())
        by_handle = await handle.diff(await client.get_run(other.run_id))
        by_id = await handle.diff(other.run_id)
        assert by_handle == by_id
        assert not by_id.empty
        assert (await handle.diff()).empty
        assert (await handle.diff(from_frame=2, to_frame=2)).empty
        assert (await handle.verify(workflow=count_flow())).ok


# ---------------------------------------------------------------------- verify


async def test_verify_passes_on_a_run_its_replay_and_after_a_rewind() -> None:
    store = MemoryEventStore()
    wf = count_flow()
    await run_workflow(wf, input={"start": 5}, store=store, run_id="p")
    child = await replay("p", frame=1, input={"start": 7}, store=store, workflow=wf)
    await rewind("p", frame=1, store=store)
    await run_workflow(wf, run_id="p", resume=True, store=store)

    for run_id in ("p", child.run_id):
        result = await verify_run(run_id, workflow=wf, store=store)
        assert result.ok, result
        assert result.mismatched_frames == []
    full = await verify_run("p", workflow=wf, store=store)
    assert full.frames_checked > 4  # the discarded frames are checked too


async def test_a_builder_that_reads_a_global_is_caught_at_the_first_frame_it_changes() -> None:
    flag = {"label": None}

    @workflow("leaky")
    def leaky(ctx: Any) -> Any:
        first = ctx.output_maybe(dict, "first")
        return Sequence(
            Task("first", output=dict, value={"n": 1}),
            first and Task("second", output=dict, value={"n": 2}, label=flag["label"]),
        )

    store = MemoryEventStore()
    await run_workflow(leaky, store=store, run_id="p")
    assert (await verify_run("p", workflow=leaky, store=store)).ok

    flag["label"] = "now"  # what reading the clock does to a builder
    result = await verify_run("p", workflow=leaky, store=store)

    assert not result.ok
    m = result.first_mismatch
    assert m is not None
    assert m.frame_no == 1 == result.mismatched_frames[0]
    assert m.rendered_hash is not None
    assert m.rendered_hash != m.recorded_hash
    assert [(n.node_id, n.change) for n in m.nodes] == [("second", "changed")]
    assert m.nodes[0].rendered == {**(m.nodes[0].recorded or {}), "label": "now"}


async def test_tasks_added_and_removed_and_a_builder_that_raises() -> None:
    mode = {"v": "same"}

    @workflow("shifty")
    def shifty(ctx: Any) -> Any:
        if mode["v"] == "raise":
            raise ValueError("the file it reads is gone")
        last = "b" if mode["v"] == "same" else "c"
        return [Task("a", output=dict, value={}), Task(last, output=dict, value={})]

    store = MemoryEventStore()
    await run_workflow(shifty, store=store, run_id="p")
    mode["v"] = "renamed"
    renamed = await verify_run("p", workflow=shifty, store=store)
    assert renamed.first_mismatch is not None
    assert renamed.first_mismatch.frame_no == 0
    assert [(n.node_id, n.change) for n in renamed.first_mismatch.nodes] == [
        ("b", "removed"),
        ("c", "added"),
    ]

    mode["v"] = "raise"
    raised = await verify_run("p", workflow=shifty, store=store)
    m = raised.first_mismatch
    assert m is not None
    assert m.rendered_hash is None
    assert m.error is not None
    assert (m.error["name"], m.error["message"]) == ("ValueError", "the file it reads is gone")


async def test_verify_loads_the_recorded_file_and_sees_it_edited(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(textwrap.dedent(FLOW), encoding="utf-8")
    wf, _ = load_workflow(str(path))
    db = tmp_path / "smithers.db"
    result = await run_workflow(wf, input={"start": 5}, db=db)

    ok = await verify_run(result.run_id, db=db)
    assert ok.ok
    assert (ok.workflow_name, ok.workflow_path) == ("count", str(path))

    path.write_text(textwrap.dedent(FLOW).replace("LABEL = None", 'LABEL = "edited"'))
    edited = await verify_run(result.run_id, db=db)
    assert not edited.ok
    assert edited.first_mismatch is not None
    assert [n.node_id for n in edited.first_mismatch.nodes] == ["third"]

    path.unlink()
    with pytest.raises(WorkflowMissingDefaultError, match="no longer exists"):
        await verify_run(result.run_id, db=db)


async def test_a_run_started_from_code_needs_the_workflow_passed() -> None:
    store = MemoryEventStore()
    await run_workflow(count_flow(), store=store, run_id="p", workflow_path="")
    with pytest.raises(WorkflowMissingDefaultError, match="verify"):
        await verify_run("p", store=store)
    with pytest.raises(RunNotFoundError):
        await verify_run("nosuch", workflow=count_flow(), store=store)


async def test_verify_can_check_some_frames_only() -> None:
    store = MemoryEventStore()
    wf = count_flow()
    await run_workflow(wf, store=store, run_id="p")
    result = await verify_run("p", workflow=wf, frames={0, 2}, store=store)
    assert (result.ok, result.frames_checked) == (True, 2)


# ---------------------------------------------------------------------- properties

# A generated workflow: ("task", id, static?) | ("seq", children) | ("par", children)
# | ("branch", condition node id, then, else); a branch reads a task that finishes
# before it is reached (an earlier sibling in a sequence).


@st.composite
def specs(draw: st.DrawFn) -> Any:
    ids = itertools.count()
    budget = [draw(st.integers(1, 7))]

    def task() -> Any:
        budget[0] -= 1
        return ("task", f"t{next(ids)}", draw(st.booleans()))

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
            child = node(depth + 1, done if kind == "seq" else before)
            if kind == "seq":
                done = done + tuple(_tasks_in(child))
            children.append(child)
        return (kind, children or [task()])

    return ("seq", [node(0, ())])


def _tasks_in(spec: Any) -> list[str]:
    if spec[0] == "task":
        return [spec[1]]
    if spec[0] == "branch":
        return _tasks_in(spec[2]) + _tasks_in(spec[3])
    return [t for child in spec[1] for t in _tasks_in(child)]


def build_workflow(spec: Any) -> Workflow:
    @workflow("generated")
    def wf(ctx: Any) -> Any:
        seed = ctx.input["seed"]

        def build(s: Any) -> Any:
            if s[0] == "task":
                value = {"v": (int(s[1][1:]) * 7 + seed) % 11}
                if s[2]:
                    return Task(s[1], output=dict, value=value)
                return Task(s[1], output=dict, run=lambda: value)
            if s[0] == "branch":
                out = ctx.output_maybe(dict, s[1])
                return Branch(
                    out is not None and out["v"] % 2 == 0, then=build(s[2]), else_=build(s[3])
                )
            kids = [build(c) for c in s[1]]
            return Sequence(*kids) if s[0] == "seq" else Parallel(*kids)

        return build(spec)

    return wf


SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PICK = st.integers(0, 1_000)
"""Frames are picked by index modulo their count (how many a run commits is timing)."""


@SETTINGS
@given(spec=specs(), seed=st.integers(0, 10), pick=PICK)
def test_property_a_run_diffed_against_itself_is_empty_and_verify_passes(
    spec: Any, seed: int, pick: int
) -> None:
    async def check() -> None:
        store = MemoryEventStore()
        wf = build_workflow(spec)
        result = await run_workflow(wf, input={"seed": seed}, store=store, run_id="p")
        assert result.status == "finished"
        assert (await diff_runs("p", "p", store=store)).empty
        frames = [f.frame_no for f in (await store_state(store)).frames]
        frame = frames[pick % len(frames)]
        assert (await diff_runs("p", "p", frame=frame, store=store)).empty
        assert (await diff_runs("p", from_frame=frame, to_frame=frame, store=store)).empty

        child = await replay(
            "p", frame=frame, input={"seed": (seed + 1) % 11}, store=store, workflow=wf
        )
        assert (await diff_runs(child.run_id, child.run_id, store=store)).empty
        for run_id in ("p", child.run_id):
            verified = await verify_run(run_id, workflow=wf, store=store)
            assert verified.ok, verified
            assert verified.frames_checked >= 1

    async def store_state(store: MemoryEventStore) -> Any:
        from smithers.engine import state_at

        return await state_at(store, "p")

    anyio.run(check)
