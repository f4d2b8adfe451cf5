"""Resume and replay check the frame they go on from against the code (issue 8, item 3).

Before appending anything, a resume re-renders the run's last recorded frame, a replay
the parent's frame it starts from, and refuses (`RESUME_FRAME_MISMATCH`) when the render
contradicts the log, unless ``allow_nondeterminism=True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from smithers.engine import (
    ResumeFrameMismatchError,
    connect,
    load_workflow,
    resume_run,
)
from smithers.eventstore import MemoryEventStore
from smithers.eventstore.events import RunStarted

from smithers import (
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
    from smithers.eventstore import EventStore


class Count(msgspec.Struct):
    n: int


SETTING: dict[str, Any] = {"label": "one"}
"""A global the builder below reads: changing it between run and resume is the bug."""


def reads_a_global(fails: list[bool]) -> Workflow:
    """``a`` (labelled from `SETTING`), then ``b`` which fails while ``fails[0]``."""

    def b() -> dict[str, int]:
        if fails[0]:
            raise ValueError("b fails")
        return {"n": 2}

    @workflow("global")
    def flow(ctx: Any) -> Any:
        return Sequence(
            Task("a", output=dict, value={"n": 1}, label=SETTING["label"]),
            Task("b", output=dict, run=b, retries=0),
            Task("c", output=dict, value={"n": 3}, label=SETTING.get("c")),
        )

    return flow


def count_flow(
    first_label: str | None = None, third: int = 10, second_label: str | None = None
) -> Workflow:
    """The README's count workflow; the arguments stand for edits to its code.

    Labels are part of the rendered tree; a static task's value is not.
    """

    @workflow("count")
    def count(ctx: Any) -> Any:
        done = ctx.output_maybe(Count, "first")
        return Sequence(
            Task("first", output=Count, value={"n": 1}, label=first_label),
            Task(
                "second",
                output=Count,
                run=lambda: {"n": ctx.input.get("start", 0) + 1},
                label=second_label,
            ),
            done and Task("third", output=Count, value={"n": done.n + third}),
        )

    return count


async def seqs(store: EventStore) -> dict[str, int]:
    """Last seq of every run in the store."""
    return {r.run_id: r.last_seq for r in await store.list_runs()}


@pytest.fixture(autouse=True)
def _reset_setting() -> Any:
    SETTING.clear()
    SETTING["label"] = "one"
    yield
    SETTING.clear()
    SETTING["label"] = "one"


# ---------------------------------------------------------------------- resume


async def test_a_builder_reading_a_global_that_changed_is_refused_on_resume() -> None:
    store, fails = MemoryEventStore(), [True]
    wf = reads_a_global(fails)
    assert (await run_workflow(wf, run_id="r", store=store)).status == "failed"
    before = await seqs(store)
    SETTING["label"] = "two"
    fails[0] = False

    with pytest.raises(ResumeFrameMismatchError) as caught:
        await run_workflow(wf, run_id="r", resume=True, store=store)

    err = caught.value
    assert err.code == "RESUME_FRAME_MISMATCH"
    (record,) = await store.list_runs()
    assert err.details["runId"] == err.details["frameRunId"] == "r"
    assert err.details["nodes"] == [{"nodeId": "a", "change": "changed"}]
    assert "frame" in err.summary
    assert "a (changed)" in err.summary
    assert err.hint is not None
    assert "smithers verify r" in err.hint
    assert "--allow-nondeterminism" in err.hint
    assert await seqs(store) == before  # nothing appended
    assert record.status == "failed"


async def test_the_same_resume_with_allow_nondeterminism_runs() -> None:
    store, fails = MemoryEventStore(), [True]
    wf = reads_a_global(fails)
    await run_workflow(wf, run_id="r", store=store)
    SETTING["label"] = "two"

    result = await run_workflow(wf, run_id="r", resume=True, store=store, allow_nondeterminism=True)

    assert result.status == "failed"  # b stays failed: it has no retries left
    starts = [r for r in await store.read("r") if r.type == RunStarted.__name__]
    assert len(starts) == 2


async def test_a_global_that_only_changes_a_task_not_run_yet_is_let_through() -> None:
    store, fails = MemoryEventStore(), [True]
    wf = reads_a_global(fails)
    await run_workflow(wf, run_id="r", store=store)
    SETTING["c"] = "new label"  # `c` never ran: it is what the run does next

    result = await run_workflow(wf, run_id="r", resume=True, store=store)

    assert result.status == "failed"


async def test_a_builder_that_now_raises_is_refused_with_its_error() -> None:
    store, fails = MemoryEventStore(), [True]
    wf = reads_a_global(fails)
    await run_workflow(wf, run_id="r", store=store)
    del SETTING["label"]

    with pytest.raises(ResumeFrameMismatchError, match="builder raised KeyError") as caught:
        await run_workflow(wf, run_id="r", resume=True, store=store)

    assert caught.value.details["error"]["name"] == "KeyError"
    assert caught.value.details["renderedHash"] is None


async def test_resume_run_and_the_handle_check_too(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        "import os\n"
        "from smithers import Sequence, Task, workflow\n\n"
        "def boom():\n"
        "    raise ValueError('boom')\n\n"
        "@workflow('env')\n"
        "def env(ctx):\n"
        "    return Sequence(\n"
        "        Task('a', output=dict, value={'n': 1}, label=os.environ.get('SMITHERS_T_LBL')),\n"
        "        Task('b', output=dict, run=boom, retries=0),\n"
        "    )\n",
        encoding="utf-8",
    )
    wf, path = load_workflow(str(flow))
    db = tmp_path / "smithers.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMITHERS_T_LBL", "one")
        result = await run_workflow(wf, run_id="e", db=db, workflow_path=path)
        assert result.status == "failed"
        mp.setenv("SMITHERS_T_LBL", "two")
        with pytest.raises(ResumeFrameMismatchError):
            await resume_run("e", db=db)
        async with connect(db) as client:
            handle = await client.get_run("e")
            with pytest.raises(ResumeFrameMismatchError):
                await handle.resume()
            with pytest.raises(ResumeFrameMismatchError):
                await client.run(wf, run_id="e", resume=True, workflow_path=path)
            with pytest.raises(ResumeFrameMismatchError):
                await client.start(wf, run_id="e", resume=True, workflow_path=path)
            assert (await handle.resume(allow_nondeterminism=True)).status == "failed"


async def test_a_finished_run_is_not_checked() -> None:
    store = MemoryEventStore()
    await run_workflow(count_flow(), run_id="p", store=store)

    result = await run_workflow(
        count_flow(first_label="edited"), run_id="p", resume=True, store=store
    )

    assert result.status == "finished"
    assert result.outputs["first"] == {"n": 1}


async def test_a_rewound_run_checks_the_frame_it_went_back_to() -> None:
    store = MemoryEventStore()
    await run_workflow(count_flow(), run_id="p", store=store)
    await rewind("p", frame=2, store=store)
    before = await seqs(store)

    with pytest.raises(ResumeFrameMismatchError, match="frame 2") as caught:
        await run_workflow(count_flow(first_label="edited"), run_id="p", resume=True, store=store)
    assert caught.value.details["frameNo"] == 2
    assert await seqs(store) == before

    result = await run_workflow(count_flow(), run_id="p", resume=True, store=store)
    assert result.status == "finished"


# ---------------------------------------------------------------------- replay and fork


async def test_a_replay_onto_code_that_renders_another_tree_is_refused() -> None:
    store = MemoryEventStore()
    await run_workflow(count_flow(), input={"start": 5}, run_id="p", store=store)
    before = await seqs(store)

    with pytest.raises(ResumeFrameMismatchError) as caught:
        await replay("p", frame=2, store=store, workflow=count_flow(first_label="edited"))

    err = caught.value
    assert (err.details["runId"], err.details["frameRunId"], err.details["frameNo"]) == (
        "p",
        "p",
        2,
    )
    assert err.details["nodes"] == [{"nodeId": "first", "change": "changed"}]
    assert "Cannot replay run 'p'" in err.summary
    assert await seqs(store) == before  # no fork recorded


async def test_the_same_replay_with_allow_nondeterminism_runs() -> None:
    store = MemoryEventStore()
    await run_workflow(count_flow(), input={"start": 5}, run_id="p", store=store)

    result = await replay(
        "p",
        frame=2,
        store=store,
        workflow=count_flow(first_label="edited"),
        allow_nondeterminism=True,
    )

    assert result.status == "finished"
    assert result.outputs["third"] == {"n": 11}  # `first` finished before the frame


async def test_a_replay_onto_edited_code_with_the_same_tree_runs() -> None:
    store = MemoryEventStore()
    await run_workflow(count_flow(), input={"start": 5}, run_id="p", store=store)

    # `third`'s value changes, but `third` is not mounted yet at frame 1.
    result = await replay("p", frame=1, store=store, workflow=count_flow(third=100))

    assert result.status == "finished"
    assert result.outputs["third"] == {"n": 101}


async def test_a_replay_editing_only_a_task_still_pending_at_the_frame_runs() -> None:
    store = MemoryEventStore()
    await run_workflow(count_flow(), input={"start": 5}, run_id="p", store=store)

    result = await replay("p", frame=1, store=store, workflow=count_flow(second_label="now"))

    assert result.status == "finished"


async def test_a_fork_checks_its_parents_frame_when_it_first_runs() -> None:
    store = MemoryEventStore()
    await run_workflow(count_flow(), input={"start": 5}, run_id="p", store=store)
    child = await fork("p", frame=2, store=store)
    before = await seqs(store)

    with pytest.raises(ResumeFrameMismatchError, match="frame 2 of run 'p'") as caught:
        await run_workflow(count_flow(first_label="edited"), run_id=child, resume=True, store=store)

    assert (caught.value.details["runId"], caught.value.details["frameRunId"]) == (child, "p")
    assert await seqs(store) == before
    result = await run_workflow(count_flow(), run_id=child, resume=True, store=store)
    assert result.status == "finished"
