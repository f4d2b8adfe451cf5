"""Loops meet waits through the Python API (issue 9): approvals, signals and timers per pass.

The classic agent loop with a human in it: each pass drafts, then parks for an
approval; a denial (``on_deny="continue"``) makes the next pass, a grant ends the loop.
A `WaitForEvent` in a loop waits once per pass and a signal resolves only the current
pass's wait; a `Timer` in a loop has one timer per pass (``node:iteration``). Time
travel across such a loop: a rewind to an earlier pass asks again (the decisions stay
in the log), a fork of a run parked in pass 2 parks at pass 2, ``retry_task`` of an
approval's pass asks again. Real SQLite files; workflow files in `tmp_path`.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from smithers.engine import load_run, load_workflow, read_events
from smithers.eventstore import decode_json

import smithers
from smithers import run_workflow

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.engine import Workflow

HEAD = """
    import msgspec
    from smithers import Approval, Loop, Sequence, Task, Timer, WaitForEvent, workflow
"""

REVIEW = """
    @workflow("review")
    def review(ctx):
        ok = ctx.latest(dict, "ok")
        it = ctx.loop_iteration("review")
        return Sequence(
            Loop(
                "review",
                Task("draft", output=dict, run=lambda: {"v": it}),
                Approval("ok", request={"title": f"Draft {it} good?"}, on_deny="continue"),
                until=bool(ok and ok["approved"]),
                max_iterations=5,
            ),
            Task("publish", output=dict, run=lambda: {"v": it}),
        )
"""

POLL = """
    @workflow("poll")
    def poll(ctx):
        return Sequence(
            Loop(
                "poll",
                Approval("go", request={"title": "Go?"}),
                WaitForEvent("tick", event="tick", output=dict),
                until=ctx.iteration_count(dict, "tick") >= 2,
                max_iterations=4,
            ),
            Task("done", output=dict, value={"ok": True}),
        )
"""

NAP = """
    @workflow("nap")
    def nap(ctx):
        return Loop(
            "naps",
            Task("work", output=dict, run=lambda: {"it": ctx.iteration}),
            Timer("pause", duration="2h"),
            until=ctx.iteration_count(dict, "pause") >= 3,
            max_iterations=5,
        )
"""


def flow(tmp_path: Path, name: str, body: str) -> Workflow:
    """Write a workflow file and load it."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(HEAD) + textwrap.dedent(body), encoding="utf-8")
    wf, _ = load_workflow(str(path))
    return wf


async def events_of(db: Path, run_id: str) -> list[Any]:
    return [e for _, e in await read_events(run_id, db=db)]


def named(events: list[Any], type_name: str, **fields: Any) -> list[Any]:
    return [
        e
        for e in events
        if type(e).__name__ == type_name and all(getattr(e, k) == v for k, v in fields.items())
    ]


def waiting(state: Any) -> list[tuple[str, int, str]]:
    return [(r.node_id, r.iteration, r.state) for r in state.waiting()]


async def parked_review(tmp_path: Path, db: Path, passes: int) -> tuple[Workflow, str]:
    """A review run parked on the approval of pass `passes` (earlier passes denied)."""
    wf = flow(tmp_path, "review", REVIEW)
    async with smithers.connect(db) as client:
        result = await client.run(wf, run_id="r")
        handle = await client.get_run("r")
        for i in range(passes):
            assert result.status == "waiting-approval"
            await handle.deny(iteration=i, note=f"redo {i}")
            result = await handle.result()
    assert result.status == "waiting-approval"
    return wf, "r"


# ---------------------------------------------------------------------------- approvals


async def test_each_pass_parks_for_approval_and_a_grant_ends_the_loop(
    tmp_path: Path, db: Path
) -> None:
    wf = flow(tmp_path, "review", REVIEW)
    async with smithers.connect(db) as client:
        first = await client.run(wf, run_id="r")
        assert first.status == "waiting-approval"
        assert first.outputs["draft"] == {"v": 0}
        handle = await client.get_run("r")
        # Only one approval waits: no node needed.
        denied = await handle.deny(note="too long")
        assert (denied.node_id, denied.iteration, denied.decision) == ("ok", 0, "denied")
        second = await handle.result()
        assert second.status == "waiting-approval"
        assert second.outputs["draft"] == {"v": 1}
        assert waiting(await handle.state()) == [("ok", 1, "waiting-approval")]
        granted = await handle.approve("ok", iteration=1, note="ship it", by="ann")
        assert (granted.iteration, granted.decision) == (1, "granted")
        done = await handle.result()
    assert done.status == "finished"
    assert done.outputs["publish"] == {"v": 1}
    state = await load_run("r", db=db)
    assert state.nodes[("ok", 0)].output is not None
    assert decode_json(state.nodes[("ok", 0)].output)["approved"] is False
    ok1 = decode_json(state.nodes[("ok", 1)].output)
    assert (ok1["approved"], ok1["note"], ok1["decidedBy"]) == (True, "ship it", "ann")
    assert state.loops["review"].finished
    assert state.loops["review"].reason == "until"
    assert ("draft", 2) not in state.nodes
    events = await events_of(db, "r")
    asked = named(events, "ApprovalRequested", node_id="ok")
    assert [(e.iteration, e.title) for e in asked] == [(0, "Draft 0 good?"), (1, "Draft 1 good?")]
    assert [e.iteration for e in named(events, "LoopIterationStarted")] == [0, 1]
    # Each park is recorded: two waiting-approval statuses before the end.
    statuses = [e.status for e in named(events, "RunStatusChanged")]
    assert statuses.count("waiting-approval") == 2
    assert statuses[-1] == "finished"


async def test_a_decision_for_a_pass_that_does_not_wait_is_refused(
    tmp_path: Path, db: Path
) -> None:
    _, run_id = await parked_review(tmp_path, db, 1)
    async with smithers.connect(db) as client:
        handle = await client.get_run(run_id)
        with pytest.raises(smithers.SmithersError) as caught:
            await handle.approve("ok", iteration=0)
        assert caught.value.code == "APPROVAL_ALREADY_DECIDED"
        with pytest.raises(smithers.SmithersError) as caught:
            await handle.approve("ok", iteration=3)
        assert caught.value.code == "NO_PENDING_APPROVALS"
    state = await load_run(run_id, db=db)
    assert waiting(state) == [("ok", 1, "waiting-approval")]


async def test_max_passes_of_denials_end_the_loop_and_the_run_goes_on(
    tmp_path: Path, db: Path
) -> None:
    _, run_id = await parked_review(tmp_path, db, 4)
    async with smithers.connect(db) as client:
        handle = await client.get_run(run_id)
        await handle.deny()
        done = await handle.result()
    assert done.status == "finished"
    state = await load_run(run_id, db=db)
    assert state.loops["review"].reason == "max-iterations"
    assert state.loops["review"].iteration == 4


# ---------------------------------------------------------------------------- signals


async def test_a_signal_resolves_only_the_wait_of_the_current_pass(
    tmp_path: Path, db: Path
) -> None:
    wf = flow(tmp_path, "poll", POLL)
    async with smithers.connect(db) as client:
        result = await client.run(wf, run_id="p")
        assert result.status == "waiting-approval"
        handle = await client.get_run("p")
        # Sent while pass 0 waits for its approval: its wait has not begun, so it is
        # kept for audit and resolves nothing, neither now nor later.
        early = await handle.signal("tick", {"n": "early"})
        assert early.delivered_to is None
        await handle.approve()
        assert (await handle.result()).status == "waiting-event"
        assert waiting(await handle.state()) == [("tick", 0, "waiting-event")]
        got = await handle.signal("tick", {"n": 0})
        assert got.delivered_to == ("tick", 0)
        assert (await handle.result()).status == "waiting-approval"
        assert waiting(await handle.state()) == [("go", 1, "waiting-approval")]
        await handle.approve(iteration=1)
        assert (await handle.result()).status == "waiting-event"
        got = await handle.signal("tick", {"n": 1})
        assert got.delivered_to == ("tick", 1)
        done = await handle.result()
    assert done.status == "finished"
    state = await load_run("p", db=db)
    assert decode_json(state.nodes[("tick", 0)].output) == {"n": 0}
    assert decode_json(state.nodes[("tick", 1)].output) == {"n": 1}
    assert [s.delivered_to for s in state.signals] == [None, ("tick", 0), ("tick", 1)]
    assert state.loops["poll"].iteration == 1


# ---------------------------------------------------------------------------- timers


class Clock:
    """Virtual time the test moves; sleeps pass at once."""

    def __init__(self) -> None:
        self.t = 1_800_000_000_000

    def now_ms(self) -> int:
        return self.t

    async def sleep_ms(self, ms: int) -> None:
        await anyio.sleep(0.001)
        self.t += ms


async def test_a_timer_in_a_loop_has_one_timer_per_pass(tmp_path: Path, db: Path) -> None:
    wf = flow(tmp_path, "nap", NAP)
    clock = Clock()
    # The activation's heartbeat sleeps on this clock too, so virtual time may move on
    # (1 s per beat) while a pass runs: the timer starts somewhere inside the pass.
    began = clock.t
    result = await run_workflow(wf, db=db, run_id="t", clock=clock, hold_ms=0)
    fires: list[int] = []
    for i in range(3):
        assert result.status == "waiting-timer", i
        state = await load_run("t", db=db)
        assert waiting(state) == [("pause", i, "waiting-timer")]
        timer = state.nodes[("pause", i)].timer
        assert timer is not None
        assert timer.timer_id == f"pause:{i}"
        assert began <= timer.created_at_ms <= clock.t  # counted from this pass
        assert timer.fires_at_ms == timer.created_at_ms + 2 * 3_600_000
        fires.append(timer.fires_at_ms)
        # Resuming before it is due does not reset it.
        again = await run_workflow(wf, db=db, run_id="t", resume=True, clock=clock, hold_ms=0)
        assert again.status == "waiting-timer"
        clock.t = timer.fires_at_ms + 5
        began = clock.t
        result = await run_workflow(wf, db=db, run_id="t", resume=True, clock=clock, hold_ms=0)
    assert result.status == "finished"
    events = await events_of(db, "t")
    assert [e.timer_id for e in named(events, "TimerCreated")] == ["pause:0", "pause:1", "pause:2"]
    assert [e.timer_id for e in named(events, "TimerFired")] == ["pause:0", "pause:1", "pause:2"]
    assert [e.fires_at_ms for e in named(events, "TimerFired")] == fires
    assert named(events, "TimerCancelled") == []


# ---------------------------------------------------------------------------- time travel


async def test_rewind_to_an_earlier_pass_before_its_approval_asks_again(
    tmp_path: Path, db: Path
) -> None:
    wf, run_id = await parked_review(tmp_path, db, 2)
    async with smithers.connect(db) as client:
        handle = await client.get_run(run_id)
        state = await handle.state()
        # The last frame of pass 0 where ok#0 waits (before its decision).
        frame = -1
        for f in state.frames:
            at = (await handle.state(frame=f.frame_no)).nodes.get(("ok", 0))
            undecided = at is not None and at.approval is not None and not at.approval.decision
            if undecided and at is not None and at.state == "waiting-approval":
                frame = f.frame_no
        assert frame >= 0
        rewound = await handle.rewind(frame)
        assert ("ok", 1) not in rewound.nodes
        assert rewound.loops["review"].iteration == 0
        resumed = await client.run(wf, run_id=run_id, resume=True)
        assert resumed.status == "waiting-approval"
        assert waiting(await handle.state()) == [("ok", 0, "waiting-approval")]
        await handle.approve(iteration=0, note="fine after all")
        done = await handle.result()
    assert done.status == "finished"
    assert done.outputs["publish"] == {"v": 0}
    events = await events_of(db, run_id)
    # The undone decisions stay in the log for audit.
    assert [e.iteration for e in named(events, "ApprovalDenied")] == [0, 1]
    assert [e.iteration for e in named(events, "ApprovalGranted")] == [0]


async def test_a_fork_of_a_run_parked_in_pass_2_parks_at_pass_2(tmp_path: Path, db: Path) -> None:
    wf, run_id = await parked_review(tmp_path, db, 2)
    async with smithers.connect(db) as client:
        handle = await client.get_run(run_id)
        last = (await handle.state()).frames[-1].frame_no
        fork = await handle.fork(last, run_id_new="f")
        result = await client.run(wf, run_id=fork.run_id, resume=True)
        assert result.status == "waiting-approval"
        state = await fork.state()
        assert waiting(state) == [("ok", 2, "waiting-approval")]
        assert state.loops["review"].iteration == 2
        assert ("draft", 3) not in state.nodes
        # The fork is decided on its own; the parent still waits.
        await fork.approve(note="fork ok")
        assert (await fork.result()).status == "finished"
        assert waiting(await handle.state()) == [("ok", 2, "waiting-approval")]
    events = await events_of(db, "f")
    # Pass 2 asked once, in the parent: the fork does not ask again.
    assert named(events, "ApprovalRequested") == []
    assert [e.iteration for e in named(events, "ApprovalGranted")] == [2]


async def test_retry_task_of_an_approval_pass_asks_again(tmp_path: Path, db: Path) -> None:
    wf, run_id = await parked_review(tmp_path, db, 1)
    async with smithers.connect(db) as client:
        handle = await client.get_run(run_id)
        await handle.approve(iteration=1)
        assert (await handle.result()).status == "finished"
        again = await handle.retry_task("ok", iteration=1, workflow=wf)
        assert again.status == "waiting-approval"
        state = await handle.state()
        assert waiting(state) == [("ok", 1, "waiting-approval")]
        assert state.nodes[("publish", 0)].state != "finished"
        await handle.deny(iteration=1, note="on second thought")
        assert (await handle.result()).status == "waiting-approval"
        assert waiting(await handle.state()) == [("ok", 2, "waiting-approval")]
    events = await events_of(db, run_id)
    assert [e.iteration for e in named(events, "ApprovalRequested")] == [0, 1, 1, 2]


async def test_replay_from_a_frame_of_pass_1_waits_again_for_that_pass(
    tmp_path: Path, db: Path
) -> None:
    wf, run_id = await parked_review(tmp_path, db, 1)
    async with smithers.connect(db) as client:
        handle = await client.get_run(run_id)
        await handle.approve(iteration=1)
        assert (await handle.result()).status == "finished"
        frames = (await handle.state()).frames
        frame = -1
        for f in frames:
            at = (await handle.state(frame=f.frame_no)).nodes.get(("ok", 1))
            if at is not None and at.approval is not None and not at.approval.decision:
                frame = f.frame_no
        assert frame >= 0
        replayed = await handle.replay(frame, workflow=wf)
        assert replayed.status == "waiting-approval"
        fork = await client.get_run(replayed.run_id)
        state = await fork.state()
        assert waiting(state) == [("ok", 1, "waiting-approval")]
        assert state.nodes[("ok", 0)].state == "finished"  # pass 0 is not asked again
        await fork.deny(iteration=1)
        assert (await fork.result()).status == "waiting-approval"
        assert waiting(await fork.state()) == [("ok", 2, "waiting-approval")]
    # The parent is untouched.
    assert (await load_run(run_id, db=db)).status == "finished"
