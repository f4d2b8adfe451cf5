"""What a loop's pass costs and how its end is decided (DESIGN §11, issue 9).

A pass whose outputs the builder does not read ends on the render that mounted it:
one render and one frame per pass. A pass whose outputs it reads (``until`` from
``ctx``) is rendered again first, so ``until`` sees them. Either way every frame
re-renders to its recorded hash (`verify_run`), and a pass that ends on a skipped node
ends like any other.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from smithers.engine import timeline, verify_run
from smithers.eventstore import MemoryEventStore, decode_event
from smithers.eventstore.events import FrameCommitted, LoopFinished, LoopIterationStarted

from smithers import Loop, Task, WaitForEvent, run_workflow, workflow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Step(msgspec.Struct):
    n: int


def counting(passes: int) -> Any:
    """A loop of `passes` passes whose builder reads only ``ctx.iteration``."""

    @workflow("counting")
    def wf(ctx: Any) -> Any:
        it = ctx.iteration
        return Loop(
            "count",
            Task("step", output=Step, run=lambda: {"n": it}),
            max_iterations=passes,
        )

    return wf


def until_three() -> Any:
    """A loop whose ``until`` reads the output of the pass that just ended."""

    @workflow("until-three")
    def wf(ctx: Any) -> Any:
        last = ctx.latest(Step, "step")
        it = ctx.iteration
        return Loop(
            "count",
            Task("step", output=Step, run=lambda: {"n": it}),
            until=last is not None and last.n >= 2,
            max_iterations=10,
        )

    return wf


async def _events(store: MemoryEventStore, run_id: str) -> list[Any]:
    return [decode_event(r.type, r.data) for r in await store.read(run_id)]


@pytest.mark.anyio
async def test_a_pass_nothing_reads_takes_one_frame_and_frames_still_verify() -> None:
    store = MemoryEventStore()
    wf = counting(20)
    result = await run_workflow(wf, store=store, run_id="r")
    assert result.status == "finished"
    assert result.outputs["step"] == {"n": 19}
    events = await _events(store, "r")
    started = [e for e in events if isinstance(e, LoopIterationStarted)]
    assert [e.iteration for e in started] == list(range(20))
    frames = [e for e in events if isinstance(e, FrameCommitted)]
    # One frame per pass (the render that mounts it), plus the run's first and last.
    assert len(frames) <= 20 + 2
    assert (await verify_run("r", workflow=wf, store=store)).ok
    tl = await timeline("r", store=store)
    assert len(tl.frames) == len(frames)


@pytest.mark.anyio
async def test_until_reading_the_pass_outputs_still_sees_them() -> None:
    store = MemoryEventStore()
    wf = until_three()
    result = await run_workflow(wf, store=store, run_id="r")
    assert result.status == "finished"
    events = await _events(store, "r")
    # Passes 0, 1, 2 ran; pass 2's output made `until` true: no pass 3.
    assert [e.iteration for e in events if isinstance(e, LoopIterationStarted)] == [0, 1, 2]
    (done,) = [e for e in events if isinstance(e, LoopFinished)]
    assert (done.iteration, done.reason) == (2, "until")
    assert result.outputs["step"] == {"n": 2}
    assert (await verify_run("r", workflow=wf, store=store)).ok


@pytest.mark.anyio
async def test_a_pass_that_ends_on_a_skipped_wait_goes_on_to_the_next() -> None:
    @workflow("skip-ends-pass")
    def wf(ctx: Any) -> Any:
        return Loop(
            "l",
            Task("a", output=dict, value={"x": 1}),
            WaitForEvent("w", event="go", output=dict, timeout_ms=1, on_timeout="skip"),
            max_iterations=3,
        )

    store = MemoryEventStore()
    result = await run_workflow(wf, store=store, run_id="r")
    assert result.status == "finished", result.error
    events = await _events(store, "r")
    assert [e.iteration for e in events if isinstance(e, LoopIterationStarted)] == [0, 1, 2]
    assert (await verify_run("r", workflow=wf, store=store)).ok
