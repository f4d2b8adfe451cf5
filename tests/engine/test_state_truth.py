"""State that tells the truth (issue 8, item 7): engine and projection side.

- A rewound run that is not resumed is ``waiting-resume`` (appended as
  `RunStatusChanged`), which the ownership verdict, the supervisor, `RunHandle.result`
  and a resume all treat as parked, waiting for a person.
- ``fork(input=...)`` and ``replay(input=...)`` check the input against the workflow's
  input type before anything is recorded.
- `RunState.frame_count` counts frames as the timeline lists them; `branch_label` is
  the fork's label.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from smithers.engine import InvalidInputError, load_run, read_events, supervise
from smithers.engine.history import timeline
from smithers.engine.lifecycle import judge_owner
from smithers.eventstore import MemoryEventStore
from smithers.eventstore.events import RunRewound, RunStatusChanged
from smithers.projections import RunState, apply_event, is_run_status

from smithers import (
    Sequence,
    Task,
    connect,
    fork,
    replay,
    resume_run,
    rewind,
    run_workflow,
    workflow,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Start(msgspec.Struct):
    start: int


class Count(msgspec.Struct):
    n: int


FLOW = """
    import msgspec
    from smithers import Sequence, Task, workflow

    class Start(msgspec.Struct):
        start: int

    class Count(msgspec.Struct):
        n: int

    @workflow("typed", input=Start)
    def typed(ctx):
        first = ctx.output_maybe(Count, "first")
        return Sequence(
            Task("first", output=Count, value={"n": 1}),
            Task("second", output=Count, run=lambda: {"n": ctx.input.start + 1}),
            first and Task("third", output=Count, value={"n": first.n + 10}),
        )
"""


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    """A workflow file with a typed input (``start: int``)."""
    path = tmp_path / "typed.py"
    path.write_text(textwrap.dedent(FLOW), encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "smithers.db"


async def finished(flow: Path, db: Path, run_id: str = "r") -> str:
    """Run the typed workflow from its file to the end; return its run id."""
    from smithers.engine import load_workflow

    wf, path = load_workflow(str(flow))
    result = await run_workflow(
        wf, input={"start": 5}, db=db, run_id=run_id, log_dir=None, workflow_path=path
    )
    assert result.status == "finished"
    return run_id


# ---------------------------------------------------------------------- the status


def test_waiting_resume_is_a_known_status() -> None:
    assert is_run_status("waiting-resume")
    state = RunState(run_id="r", status="running")
    apply_event(state, RunStatusChanged(run_id="r", timestamp_ms=1, status="waiting-resume"), seq=1)
    assert state.status == "waiting-resume"


async def test_a_rewound_run_waits_for_a_person(flow: Path, db: Path) -> None:
    run_id = await finished(flow, db)

    state = await rewind(run_id, frame=1, db=db)

    assert state.status == "waiting-resume"
    events = [e for _, e in await read_events(run_id, db=db)]
    assert isinstance(events[-2], RunRewound)
    assert isinstance(events[-1], RunStatusChanged)
    assert events[-1].status == "waiting-resume"
    folded = await load_run(run_id, db=db)
    assert folded.status == "waiting-resume"
    assert (folded.seq, folded.owner_id) == (state.seq, "")
    verdict = judge_owner(folded, None, now_ms=folded.updated_at_ms or 0)
    assert verdict.kind == "none"
    async with connect(db) as client:
        assert [r.status for r in await client.runs()] == ["waiting-resume"]
        assert [r.run_id for r in await client.runs(status="waiting-resume")] == [run_id]


async def test_the_supervisor_leaves_a_rewound_run_alone(flow: Path, db: Path) -> None:
    run_id = await finished(flow, db)
    await rewind(run_id, frame=1, db=db)
    spawned: list[str] = []

    def spawn(run: str, *_: Any) -> Any:
        spawned.append(run)
        raise AssertionError("a rewound run must not be resumed by the supervisor")

    # Threshold 1 ms: a "running" run nobody claimed would be resumed at once.
    events = await supervise(db=db, once=True, stale_threshold_ms=1, spawn=spawn)

    assert spawned == []
    assert [type(e).__name__ for e in events if type(e).__name__.startswith("RunAuto")] == []
    assert (await load_run(run_id, db=db)).status == "waiting-resume"


async def test_result_returns_for_a_rewound_run_and_a_resume_continues_it(
    flow: Path, db: Path
) -> None:
    run_id = await finished(flow, db)
    async with connect(db) as client:
        run = await client.get_run(run_id)
        await run.rewind(1)

        parked = await run.result(poll_interval_s=0.01)
        assert parked.status == "waiting-resume"
        assert "third" not in parked.outputs

    result = await resume_run(run_id, db=db, log_dir=None)
    assert result.status == "finished"
    assert result.outputs["third"] == {"n": 11}
    assert (await load_run(run_id, db=db)).status == "finished"


async def test_a_rewind_of_a_rewound_run_keeps_it_waiting(flow: Path, db: Path) -> None:
    run_id = await finished(flow, db)
    await rewind(run_id, frame=2, db=db)
    state = await rewind(run_id, frame=0, db=db)
    assert state.status == "waiting-resume"
    assert state.rewinds == 1  # the first rewind is after frame 0: it no longer counts
    assert (await load_run(run_id, db=db)).status == "waiting-resume"


# ---------------------------------------------------------------------- fork/replay input


async def test_fork_and_replay_refuse_a_bad_input_before_recording(flow: Path, db: Path) -> None:
    run_id = await finished(flow, db)
    async with connect(db) as client:
        before = [r.run_id for r in await client.runs()]

    with pytest.raises(InvalidInputError, match="start"):
        await fork(run_id, frame=1, input={"start": "x"}, db=db)
    with pytest.raises(InvalidInputError, match="start"):
        await fork(run_id, frame=1, input={}, db=db)
    with pytest.raises(InvalidInputError, match="start"):
        await replay(run_id, frame=1, input={"start": "x"}, db=db, log_dir=None)

    async with connect(db) as client:
        assert [r.run_id for r in await client.runs()] == before
    child = await fork(run_id, frame=1, input={"start": 7}, db=db, run_id_new="ok")
    assert child == "ok"


async def test_fork_checks_the_input_against_a_given_workflow() -> None:
    store = MemoryEventStore()

    @workflow("typed-inline", input=Start)
    def typed(ctx: Any) -> Any:
        return Sequence(Task("only", output=Count, run=lambda: {"n": ctx.input.start}))

    await run_workflow(typed, input={"start": 1}, store=store, run_id="p")
    runs = len(await store.list_runs())

    with pytest.raises(InvalidInputError):
        await fork("p", frame=0, input={"start": "x"}, store=store, workflow=typed)
    assert len(await store.list_runs()) == runs
    # No loadable file and no workflow given: checked when the fork runs.
    child = await fork("p", frame=0, input={"start": 3}, store=store)
    result = await run_workflow(typed, run_id=child, resume=True, store=store)
    assert result.outputs["only"] == {"n": 3}


# ---------------------------------------------------------------------- frames, label


def _own_frames(tl: Any, run_id: str) -> int:
    if tl.run_id == run_id:
        return len(tl.frames)
    return sum(_own_frames(child, run_id) for child in tl.children)


async def test_frame_count_is_the_timelines(flow: Path, db: Path) -> None:
    run_id = await finished(flow, db)
    await rewind(run_id, frame=1, db=db)
    await resume_run(run_id, db=db, log_dir=None)
    child = await fork(run_id, frame=1, db=db, label="[/]x", run_id_new="f")
    replayed = await replay(run_id, frame=0, db=db, run_id_new="rp", log_dir=None)
    empty = await fork(run_id, frame=2, db=db, run_id_new="e")

    tl = await timeline(run_id, db=db)
    for rid in (run_id, child, replayed.run_id, empty):
        state = await load_run(rid, db=db)
        assert state.frame_count == _own_frames(tl, rid), rid
    state = await load_run(run_id, db=db)
    assert state.frame_count > len(state.frames)  # discarded frames still count
    assert (await load_run(child, db=db)).branch_label == "[/]x"
    assert (await load_run(empty, db=db)).branch_label is None
    assert (await load_run(empty, db=db)).frame_count == 0


async def test_a_fork_of_a_fork_does_not_inherit_the_label(flow: Path, db: Path) -> None:
    run_id = await finished(flow, db)
    first = await fork(run_id, frame=1, db=db, label="one", run_id_new="f1")
    await resume_run(first, db=db, log_dir=None)
    frame = (await load_run(first, db=db)).frames[-1].frame_no
    second = await fork(first, frame=frame, db=db, run_id_new="f2")
    state = await load_run(second, db=db)
    assert (state.parent_run_id, state.branch_label) == ("f1", None)
