"""`state_at`: nearest checkpoint + the tail equals the fold of the log (DESIGN §5, §7).

The engine writes checkpoints as it appends (`checkpoint_due`); these tests shrink the
spacing so small runs have many. Every read is compared with a plain fold of the log
(`fold_stored`, fork ancestry included) and with the state the engine held live when
it committed each frame; deleting or corrupting checkpoints changes no answer.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smithers.engine import (
    RunNotFoundError,
    SnapshotNotFoundError,
    _checkpoints,
    fork,
    rewind,
    state_at,
    timeline,
    tree_at,
)
from smithers.engine.activation import _loop
from smithers.engine.history import load_state
from smithers.eventstore import MemoryEventStore, SQLiteEventStore, decode_event
from smithers.eventstore.events import NULL_RAW, FrameCommitted, RunForked, RunRewound
from smithers.projections import RunState, encode_state, fold_stored, fork_state

from smithers import Branch, Parallel, Sequence, Task, run_workflow, workflow

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from smithers.eventstore import EventStore

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@contextlib.contextmanager
def checkpoint_every(k: int) -> Iterator[None]:
    """Checkpoints every `k` events whatever the state's size."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_checkpoints, "CHECKPOINT_INTERVAL", k)
        mp.setattr(_checkpoints, "_STATE_PER_SPACING", 10**9)
        yield


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


async def full_fold(store: EventStore, run_id: str, upto_seq: int | None = None) -> RunState:
    """The state by folding the whole log, no checkpoint (fork ancestry included)."""
    rows = await store.read(run_id, upto_seq=upto_seq)
    first = decode_event(rows[0].type, rows[0].data)
    base = None
    if isinstance(first, RunForked):
        parent = await full_fold(store, first.parent_run_id, first.parent_seq)
        base = fork_state(parent, first, run_id=run_id)
    return fold_stored(run_id, rows, base=base)


async def checkpoint_seqs(store: EventStore, run_id: str) -> list[int]:
    seqs, at = [], await store.last_seq(run_id)
    while (found := await store.get_checkpoint(run_id, at_or_before_seq=at)) is not None:
        seqs.append(found[0])
        at = found[0] - 1
    return sorted(seqs)


def chain(n: int) -> Any:
    """`n` compute tasks, each mounted once the previous one has finished."""

    @workflow(f"chain-{n}")
    def wf(ctx: Any) -> Any:
        tasks = [Task("t0", output=dict, run=lambda: {"i": 0})]
        for i in range(1, n):
            if ctx.output_maybe(dict, f"t{i - 1}") is None:
                break
            tasks.append(Task(f"t{i}", output=dict, run=lambda i=i: {"i": i}))
        return Sequence(*tasks)

    return wf


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        yield MemoryEventStore()
        return
    sqlite = await SQLiteEventStore.open(tmp_path / "s.db")
    try:
        yield sqlite
    finally:
        await sqlite.close()


# ---------------------------------------------------------------------------- checkpoints


async def test_the_engine_writes_checkpoints_that_decode_to_the_fold(store: Any) -> None:
    with checkpoint_every(10):
        await run_workflow(chain(12), store=store, run_id="r")
    seqs = await checkpoint_seqs(store, "r")
    assert len(seqs) >= 4
    for seq in seqs:
        found = await store.get_checkpoint("r", at_or_before_seq=seq)
        assert found is not None
        assert found[1][:1] != b"{"  # stored compressed
        assert _checkpoints.decode_checkpoint(found[1]) == await full_fold(store, "r", seq)


async def test_state_at_every_seq_equals_the_fold_with_and_without_checkpoints(
    store: Any,
) -> None:
    with checkpoint_every(7):
        await run_workflow(chain(6), store=store, run_id="r")
    last = await store.last_seq("r")
    expected = [await full_fold(store, "r", seq) for seq in range(1, last + 1)]
    assert [await state_at(store, "r", seq=s) for s in range(1, last + 1)] == expected
    assert await state_at(store, "r") == expected[-1]
    assert await load_state(store, "r") == expected[-1]
    assert await store.delete_checkpoints() > 0
    assert [await state_at(store, "r", seq=s) for s in range(1, last + 1)] == expected


async def test_state_at_a_frame_is_the_state_the_engine_held_then(store: Any) -> None:
    with checkpoint_every(5), live_states() as live:
        await run_workflow(chain(5), store=store, run_id="r")
    assert sorted(live) == list(range(len(live)))
    for frame_no, state in live.items():
        assert await state_at(store, "r", frame=frame_no) == state
    await store.delete_checkpoints()
    for frame_no, state in live.items():
        assert await state_at(store, "r", frame=frame_no) == state


@pytest.mark.parametrize(
    "bad",
    [
        b"garbage",
        zlib.compress(b'{"format": "0.other", "state": {}, "nodes": []}'),
        zlib.compress(b"{not json"),
        b'{"plain": "json, not a checkpoint"}',
    ],
)
async def test_a_checkpoint_that_does_not_decode_falls_back_to_the_log(
    store: Any, bad: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    await run_workflow(chain(3), store=store, run_id="r")
    expected = await full_fold(store, "r")
    await store.delete_checkpoints()
    await store.put_checkpoint("r", expected.seq - 2, bad)
    with caplog.at_level(logging.WARNING, logger="smithers.engine"):
        assert await state_at(store, "r") == expected
    assert "ignoring checkpoint" in caplog.text


async def test_a_checkpoint_of_another_run_or_seq_is_ignored(store: Any) -> None:
    await run_workflow(chain(3), store=store, run_id="r")
    expected = await full_fold(store, "r")
    other = await full_fold(store, "r", 4)
    await store.put_checkpoint(
        "r", expected.seq - 1, _checkpoints.compress_checkpoint(encode_state(other))
    )
    assert await state_at(store, "r") == expected


async def test_state_at_starts_from_the_checkpoint(store: Any) -> None:
    # Proof the checkpoint is read, not the log: a doctored one shows through.
    await run_workflow(chain(3), store=store, run_id="r")
    last = await store.last_seq("r")
    doctored = await full_fold(store, "r")
    doctored.workflow_name = "from-the-checkpoint"
    await store.put_checkpoint("r", last, _checkpoints.compress_checkpoint(encode_state(doctored)))
    assert (await state_at(store, "r")).workflow_name == "from-the-checkpoint"
    assert (await load_state(store, "r")).workflow_name == "from-the-checkpoint"
    assert (await state_at(store, "r", seq=last - 1)).workflow_name == "chain-3"
    plain = encode_state(doctored)  # uncompressed checkpoints are read too
    await store.put_checkpoint("r", last, plain)
    assert (await state_at(store, "r")).workflow_name == "from-the-checkpoint"


async def test_a_rewind_after_a_checkpoint_to_before_it_uses_an_earlier_one(store: Any) -> None:
    with checkpoint_every(4):
        await run_workflow(chain(5), store=store, run_id="r")
    before = await store.last_seq("r")
    target = (await full_fold(store, "r")).frames[1]
    seq = await store.append(
        "r",
        [RunRewound(run_id="r", timestamp_ms=1, to_frame_no=target.frame_no, to_seq=target.seq)],
        expected_seq=before,
    )
    ck = await store.get_checkpoint("r", at_or_before_seq=seq)
    assert ck is not None
    assert ck[0] > target.seq  # the nearest checkpoint is past the rewind's target
    expected = await full_fold(store, "r")
    assert expected.rewinds == 1
    assert await state_at(store, "r") == expected
    for s in range(1, seq + 1):
        assert await state_at(store, "r", seq=s) == await full_fold(store, "r", s)


async def test_a_forks_state_folds_from_the_parents(store: Any) -> None:
    with checkpoint_every(6):
        await run_workflow(chain(4), store=store, run_id="p")
    at = await state_at(store, "p", frame=2)
    forked = RunForked(
        run_id="c",
        timestamp_ms=5,
        parent_run_id="p",
        parent_frame_no=2,
        parent_seq=at.seq,
        reset_nodes=("t0",),
    )
    await store.append("c", [forked], expected_seq=0)
    expected = fork_state(at, forked, run_id="c")
    expected = fold_stored("c", await store.read("c"), base=expected)
    assert await state_at(store, "c") == expected
    assert expected.nodes[("t0", 0)].state == "pending"


async def test_a_resumed_fork_checkpoints_its_whole_state(store: Any) -> None:
    wf = chain(5)
    with checkpoint_every(5):
        await run_workflow(wf, store=store, run_id="p")
        child = await fork("p", frame=2, store=store, run_id_new="c")
        result = await run_workflow(wf, run_id=child, resume=True, store=store)
    assert result.status == "finished"
    assert await checkpoint_seqs(store, "c")
    last = await store.last_seq("c")
    expected = [await full_fold(store, "c", s) for s in range(1, last + 1)]
    assert [await state_at(store, "c", seq=s) for s in range(1, last + 1)] == expected
    await store.delete_checkpoints()
    assert [await state_at(store, "c", seq=s) for s in range(1, last + 1)] == expected
    tl = await timeline("p", store=store)
    (fork_line,) = tl.children
    assert (fork_line.run_id, fork_line.kind, fork_line.parent_frame_no) == ("c", "fork", 2)
    assert fork_line.frames[0].frame_no == 3  # a fork's frames number on from its parent's
    for frame in fork_line.frames:
        tree = await tree_at("c", frame.frame_no, store=store)
        assert tree is not None
        assert tree["children"][0]["children"][0]["id"] == "t0"


# ---------------------------------------------------------------------------- errors


async def test_a_missing_frame_is_snapshot_not_found_with_the_range(store: Any) -> None:
    await run_workflow(chain(3), store=store, run_id="r")
    last = (await full_fold(store, "r")).frames[-1].frame_no
    with pytest.raises(SnapshotNotFoundError, match=f"its frames are 0 to {last}") as info:
        await state_at(store, "r", frame=last + 1)
    assert info.value.code == "SNAPSHOT_NOT_FOUND"
    assert info.value.details == {"runId": "r", "frameNo": last + 1}


async def test_unknown_runs_and_bad_arguments(store: Any) -> None:
    with pytest.raises(RunNotFoundError):
        await state_at(store, "nope")
    with pytest.raises(RunNotFoundError):
        await state_at(store, "nope", frame=0)
    await run_workflow(chain(1), store=store, run_id="r")
    with pytest.raises(ValueError, match="not both"):
        await state_at(store, "r", seq=1, frame=0)
    with pytest.raises(ValueError, match=">= 1"):
        await state_at(store, "r", seq=0)
    assert (await state_at(store, "r", seq=10**6)).seq == await store.last_seq("r")


# ---------------------------------------------------------------------------- policy


@pytest.mark.parametrize(
    ("first", "last", "records", "due"),
    [
        (1, 999, 0, False),
        (998, 1001, 0, True),
        (1000, 1000, 10, True),
        (1001, 1999, 10, False),
        (1, 1999, 8_001, False),  # spacing 2,000 for 8,001 records
        (1999, 2001, 8_001, True),
        (1, 4999, 40_000, False),  # spacing 5,000
        (4999, 5000, 40_000, True),
    ],
)
def test_checkpoint_spacing_grows_with_the_state(
    first: int, last: int, records: int, due: bool
) -> None:
    state = RunState(run_id="r")
    state.nodes = {(f"n{i}", 0): None for i in range(records)}  # type: ignore[misc]
    assert _checkpoints.checkpoint_due(first, last, state) is due


# ---------------------------------------------------------------------------- properties


@st.composite
def specs(draw: st.DrawFn) -> Any:
    """Deterministic workflows: sequences and parallels of tasks, branches on outputs."""
    ids = iter(f"n{i}" for i in range(100))
    made: list[str] = []

    def node(depth: int) -> Any:
        kind = draw(st.sampled_from(["task", "task", "seq", "par", "when"]))
        if depth >= 2 or kind == "task" or (kind == "when" and not made):
            made.append(next(ids))
            return ("task", made[-1])
        if kind == "when":
            dep = draw(st.sampled_from(made))
            return ("when", dep, node(depth + 1), node(depth + 1))
        return (kind, [node(depth + 1) for _ in range(draw(st.integers(1, 3)))])

    return ("seq", [node(0) for _ in range(draw(st.integers(1, 4)))])


def build(spec: Any, ctx: Any) -> Any:
    if spec[0] == "task":
        node_id = spec[1]
        return Task(node_id, output=dict, run=lambda: {"id": node_id})
    if spec[0] == "when":
        done = ctx.output_maybe(dict, spec[1]) is not None
        return Branch(done, then=build(spec[2], ctx), else_=build(spec[3], ctx))
    group = Sequence if spec[0] == "seq" else Parallel
    return group(*(build(k, ctx) for k in spec[1]))


async def check_spec(spec: Any, k: int) -> None:
    @workflow("generated")
    def wf(ctx: Any) -> Any:
        return build(spec, ctx)

    store = MemoryEventStore()
    with checkpoint_every(k), live_states() as live:
        result = await run_workflow(wf, store=store, run_id="g", max_concurrency=2)
    assert result.status == "finished"
    with_checkpoints = {n: await state_at(store, "g", frame=n) for n in live}
    assert with_checkpoints == live
    tl = await timeline("g", store=store)
    assert [f.frame_no for f in tl.frames] == sorted(live)
    for frame in tl.frames:
        finished = sum(1 for r in live[frame.frame_no].nodes.values() if r.state == "finished")
        assert frame.finished_count == finished
    await store.delete_checkpoints()
    assert {n: await state_at(store, "g", frame=n) for n in live} == live


@given(specs(), st.integers(2, 12))
@SETTINGS
def test_state_at_every_frame_is_the_live_state_with_any_checkpoints(spec: Any, k: int) -> None:
    anyio.run(check_spec, spec, k)


# ---------------------------------------------------------------------------- activations


async def test_rewound_and_resumed_runs_rebuild_every_frame(store: Any) -> None:
    wf = chain(4)
    with checkpoint_every(6), live_states() as live:
        await run_workflow(wf, store=store, run_id="r")
        await rewind("r", frame=2, store=store)
        result = await run_workflow(wf, run_id="r", resume=True, store=store)
    assert result.status == "finished"
    rows = await store.read("r")
    frames = [
        (r.seq, e) for r in rows if isinstance(e := decode_event(r.type, r.data), FrameCommitted)
    ]
    rewound_at = next(r.seq for r in rows if r.type == "RunRewound")
    first_after = next(e for seq, e in frames if seq > rewound_at)
    assert first_after.keyframe != NULL_RAW  # a new activation starts with a keyframe
    for _, frame in frames:
        assert await state_at(store, "r", frame=frame.frame_no) == live[frame.frame_no]
        tree = await tree_at("r", frame.frame_no, store=store)
        assert tree is not None
    tl = await timeline("r", store=store)
    assert [r.to_frame_no for r in tl.rewinds] == [2]
    discarded = [f.frame_no for f in tl.frames if f.discarded]
    assert discarded
    assert min(discarded) == 3
    assert msgspec.to_builtins(tl)["rewinds"][0]["toFrameNo"] == 2
