"""Time travel of runs that wait (issue 9, item 7): rewind, fork, replay, retry-task.

- Rewinding to a frame before a decision or a signal undoes it: the node waits again,
  the decision's or signal's event stays in the log (``smithers events`` shows it), and
  a new decision or signal resumes the node with the new value.
- Rewinding to a frame before a timer fired waits for the same timer (same
  ``timerId``, same ``firesAtMs``, no second `TimerCreated`); rewinding to before the
  timer was created creates it again.
- A fork (and a replay) of a parked run parks at the same node and is decided apart
  from its parent.
- retry-task of an `Approval` (or a task with ``needs_approval=True``) asks again.

Decisions and signals are recorded with the suite's `decisions` fixture (as the
``approve``/``deny``/``signal`` commands will), then the run is resumed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from smithers.engine import load_run, read_events, retry_task
from smithers.engine.timetravel import fork, replay, rewind
from smithers.eventstore.events import FrameCommitted

from smithers import Approval, Sequence, Task, Timer, WaitForEvent, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.projections import RunState

T0 = 1_800_000_000_000


class N(msgspec.Struct):
    n: int


class ManualClock:
    """A clock that moves only when the test moves it (`t`, Unix epoch ms)."""

    def __init__(self, t: int = T0) -> None:
        self.t = t

    def now_ms(self) -> int:
        return self.t

    async def sleep_ms(self, ms: int) -> None:
        await anyio.sleep(ms / 1000)


@workflow("gate")
def gate(ctx: Any) -> Any:
    return Sequence(
        Task("build", output=N, value={"n": 1}),
        Approval("ok", request={"title": "Deploy?"}, on_deny="continue"),
        WaitForEvent("ci", event="ci.done", output=N),
        Task("deploy", output=N, run=lambda: {"n": ctx.output(N, "ci").n + 1}),
    )


@workflow("soak")
def soak(ctx: Any) -> Any:
    return Sequence(
        Task("build", output=N, value={"n": 1}),
        Timer("soak", duration="1h"),
        Task("deploy", output=N, value={"n": 2}),
    )


@workflow("gated-task")
def gated_task(ctx: Any) -> Any:
    return Sequence(
        Task("build", output=N, value={"n": 1}),
        Task("deploy", output=N, run=lambda: {"n": 2}, needs_approval=True),
    )


async def resume(wf: Any, db: Path, run_id: str, **kw: Any) -> Any:
    return await run_workflow(wf, db=db, run_id=run_id, resume=True, log_dir=None, **kw)


async def log_of(db: Path, run_id: str) -> list[tuple[int, Any]]:
    return [(row.seq, event) for row, event in await read_events(run_id, db=db)]


def types(log: list[tuple[int, Any]], name: str) -> list[tuple[int, Any]]:
    return [(seq, e) for seq, e in log if type(e).__name__ == name]


def frame_before(log: list[tuple[int, Any]], seq: int) -> int:
    """The number of the last frame committed before `seq`."""
    frames = [e.frame_no for s, e in log if isinstance(e, FrameCommitted) and s < seq]
    assert frames, f"no frame before seq {seq}"
    return frames[-1]


def cli_events(db: Path, run_id: str) -> list[dict[str, Any]]:
    """``smithers events RUN --json``, in a real subprocess: one JSON object per line."""
    proc = subprocess.run(
        [sys.executable, "-m", "smithers", "events", run_id, "--json", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


async def parked_at_ci(db: Path, decisions: Any) -> None:
    """Run `gate` as ``r``: park on ``ok``, approve it (note "first"), park on ``ci``."""
    first = await run_workflow(gate, db=db, run_id="r", log_dir=None)
    assert first.status == "waiting-approval"
    await decisions.approve("r", "ok", note="first", by="ana", db=db)
    second = await resume(gate, db, "r")
    assert second.status == "waiting-event"


# ---------------------------------------------------------------------- decisions


async def test_a_rewind_before_a_decision_undoes_it_and_a_new_decision_resumes(
    db: Path, decisions: Any
) -> None:
    await parked_at_ci(db, decisions)
    log = await log_of(db, "r")
    ((granted_seq, _),) = types(log, "ApprovalGranted")

    state = await rewind("r", frame=frame_before(log, granted_seq), db=db)

    ok = state.nodes[("ok", 0)]
    assert ok.state == "waiting-approval"
    assert ok.approval is not None
    assert ok.approval.decision is None
    assert [r.node_id for r in state.pending_approvals()] == ["ok"]
    assert "ok" not in state.outputs()
    # Kept for audit: the log still has the undone decision.
    assert [s for s, _ in types(await log_of(db, "r"), "ApprovalGranted")] == [granted_seq]
    shown = [e for e in cli_events(db, "r") if e["type"] == "ApprovalGranted"]
    assert [(e["seq"], e["note"], e["decidedBy"]) for e in shown] == [(granted_seq, "first", "ana")]

    again = await resume(gate, db, "r")
    assert again.status == "waiting-approval"
    log = await log_of(db, "r")
    assert len(types(log, "ApprovalRequested")) == 1  # the request stands; it is not asked twice

    await decisions.deny("r", "ok", note="second", by="bo", db=db)
    parked = await resume(gate, db, "r")
    assert parked.status == "waiting-event"
    assert parked.outputs["ok"]["approved"] is False
    assert (parked.outputs["ok"]["note"], parked.outputs["ok"]["decidedBy"]) == ("second", "bo")
    await decisions.signal("r", "ci.done", {"n": 4}, db=db)
    done = await resume(gate, db, "r")
    assert done.status == "finished"
    assert done.outputs["deploy"] == {"n": 5}


async def test_a_rewind_before_a_signal_undoes_it_and_a_new_signal_resumes(
    db: Path, decisions: Any
) -> None:
    await parked_at_ci(db, decisions)
    signal_seq = await decisions.signal("r", "ci.done", {"n": 10}, by="ci", db=db)
    finished = await resume(gate, db, "r")
    assert finished.status == "finished"
    assert finished.outputs["deploy"] == {"n": 11}
    log = await log_of(db, "r")

    state = await rewind("r", frame=frame_before(log, signal_seq), db=db)

    ci = state.nodes[("ci", 0)]
    assert ci.state == "waiting-event"
    assert ci.wait is not None
    assert not ci.wait.received
    assert ci.wait.signal_seq is None
    assert state.signals == []  # the undone signal no longer counts
    assert state.nodes[("ok", 0)].state == "finished"  # the decision before it stands
    assert not {"ci", "deploy"} & set(state.outputs())
    shown = [e for e in cli_events(db, "r") if e["type"] == "SignalReceived"]
    assert [(e["seq"], e["data"], e["sentBy"]) for e in shown] == [(signal_seq, {"n": 10}, "ci")]

    assert (await resume(gate, db, "r")).status == "waiting-event"
    await decisions.signal("r", "ci.done", {"n": 20}, db=db)
    done = await resume(gate, db, "r")
    assert done.status == "finished"
    assert done.outputs["ci"] == {"n": 20}
    assert done.outputs["deploy"] == {"n": 21}
    final = await load_run("r", db=db)
    assert [s.delivered_to for s in final.signals] == [("ci", 0)]
    assert len(types(await log_of(db, "r"), "SignalReceived")) == 2


# ---------------------------------------------------------------------- timers


async def test_a_rewind_before_a_timer_fired_waits_for_the_same_timer(db: Path) -> None:
    clock = ManualClock()
    first = await run_workflow(soak, db=db, run_id="t", log_dir=None, clock=clock, hold_ms=0)
    assert first.status == "waiting-timer"
    clock.t += 3_600_000
    assert (await resume(soak, db, "t", clock=clock, hold_ms=0)).status == "finished"
    log = await log_of(db, "t")
    ((created_seq, created),) = types(log, "TimerCreated")
    ((fired_seq, _),) = types(log, "TimerFired")
    assert created.fires_at_ms == T0 + 3_600_000

    clock.t += 5_000
    state = await rewind("t", frame=frame_before(log, fired_seq), db=db, clock=clock)
    timer = state.nodes[("soak", 0)].timer
    assert timer is not None
    assert (timer.timer_id, timer.fires_at_ms, timer.state) == (
        "soak:0",
        created.fires_at_ms,
        "pending",
    )
    assert state.nodes[("soak", 0)].state == "waiting-timer"

    done = await resume(soak, db, "t", clock=clock, hold_ms=0)
    assert done.status == "finished"
    log = await log_of(db, "t")
    assert [s for s, _ in types(log, "TimerCreated")] == [created_seq]  # not created again
    fired = [e for _, e in types(log, "TimerFired")]
    assert [(e.timer_id, e.fires_at_ms) for e in fired] == [("soak:0", created.fires_at_ms)] * 2
    assert fired[-1].fired_at_ms == clock.t
    assert fired[-1].delay_ms == 5_000
    assert done.outputs["soak"] == {"firesAtMs": created.fires_at_ms, "firedAtMs": clock.t}


async def test_a_rewind_before_a_parked_timer_fired_parks_on_it_again(db: Path) -> None:
    clock = ManualClock()
    await run_workflow(soak, db=db, run_id="t", log_dir=None, clock=clock, hold_ms=0)
    clock.t += 3_600_000
    await resume(soak, db, "t", clock=clock, hold_ms=0)
    log = await log_of(db, "t")
    ((fired_seq, _),) = types(log, "TimerFired")
    clock.t = T0 + 60_000  # the clock reads before the fire time again

    await rewind("t", frame=frame_before(log, fired_seq), db=db, clock=clock)
    parked = await resume(soak, db, "t", clock=clock, hold_ms=0)

    assert parked.status == "waiting-timer"
    log = await log_of(db, "t")
    assert len(types(log, "TimerCreated")) == 1
    assert len(types(log, "TimerFired")) == 1  # only the undone one
    state = await load_run("t", db=db)
    timer = state.nodes[("soak", 0)].timer
    assert timer is not None
    assert (timer.fires_at_ms, timer.state) == (T0 + 3_600_000, "pending")


async def test_a_rewind_before_the_timer_was_created_creates_it_again(db: Path) -> None:
    clock = ManualClock()
    await run_workflow(soak, db=db, run_id="t", log_dir=None, clock=clock, hold_ms=0)
    clock.t += 3_600_000
    await resume(soak, db, "t", clock=clock, hold_ms=0)
    log = await log_of(db, "t")
    ((created_seq, created),) = types(log, "TimerCreated")

    clock.t += 1_000
    await rewind("t", frame=frame_before(log, created_seq), db=db, clock=clock)
    parked = await resume(soak, db, "t", clock=clock, hold_ms=0)

    assert parked.status == "waiting-timer"
    created_events = [e for _, e in types(await log_of(db, "t"), "TimerCreated")]
    assert [e.fires_at_ms for e in created_events] == [
        created.fires_at_ms,
        clock.t + 3_600_000,
    ]


# ---------------------------------------------------------------------- fork, replay


def approval_of(state: RunState, node_id: str = "ok") -> Any:
    approval = state.nodes[(node_id, 0)].approval
    assert approval is not None
    return approval


async def test_a_fork_of_a_parked_run_parks_at_the_same_node_and_is_decided_apart(
    db: Path, decisions: Any
) -> None:
    assert (await run_workflow(gate, db=db, run_id="p", log_dir=None)).status == "waiting-approval"
    parent = await load_run("p", db=db)
    frame = parent.frames[-1].frame_no

    child = await fork("p", frame=frame, db=db, run_id_new="c")
    parked = await resume(gate, db, child)

    assert parked.status == "waiting-approval"
    state = await load_run(child, db=db)
    assert [r.node_id for r in state.pending_approvals()] == ["ok"]
    assert types(await log_of(db, child), "ApprovalRequested") == []  # inherited, not asked again

    await decisions.deny(child, "ok", note="not this one", db=db)
    assert (await resume(gate, db, child)).status == "waiting-event"
    assert approval_of(await load_run(child, db=db)).decision == "denied"
    assert approval_of(await load_run("p", db=db)).decision is None  # the parent still waits

    await decisions.approve("p", "ok", note="ship", db=db)
    assert (await resume(gate, db, "p")).status == "waiting-event"
    assert approval_of(await load_run("p", db=db)).decision == "granted"
    assert approval_of(await load_run(child, db=db)).decision == "denied"

    # A signal to one of them resolves only its own wait.
    await decisions.signal(child, "ci.done", {"n": 1}, db=db)
    assert (await resume(gate, db, child)).outputs["deploy"] == {"n": 2}
    assert (await load_run("p", db=db)).nodes[("ci", 0)].state == "waiting-event"


async def test_a_replay_of_a_parked_run_parks_and_finishes_once_decided(
    db: Path, decisions: Any
) -> None:
    await run_workflow(gate, db=db, run_id="p", log_dir=None)
    frame = (await load_run("p", db=db)).frames[-1].frame_no

    replayed = await replay("p", frame=frame, db=db, workflow=gate, run_id_new="rp", log_dir=None)

    assert replayed.status == "waiting-approval"
    await decisions.approve("rp", "ok", db=db)
    assert (await resume(gate, db, "rp")).status == "waiting-event"
    await decisions.signal("rp", "ci.done", {"n": 7}, db=db)
    done = await resume(gate, db, "rp")
    assert done.status == "finished"
    assert done.outputs["deploy"] == {"n": 8}
    assert (await load_run("p", db=db)).status == "waiting-approval"


# ---------------------------------------------------------------------- retry-task


@pytest.mark.parametrize("decide", ["approve", "deny"])
async def test_retry_task_of_an_approval_asks_again(db: Path, decisions: Any, decide: str) -> None:
    await parked_at_ci(db, decisions)
    await decisions.signal("r", "ci.done", {"n": 1}, db=db)
    assert (await resume(gate, db, "r")).status == "finished"

    again = await retry_task("r", node="ok", db=db, workflow=gate, log_dir=None)

    assert again.status == "waiting-approval"
    state = await load_run("r", db=db)
    assert [r.node_id for r in state.pending_approvals()] == ["ok"]
    assert approval_of(state).decision is None
    assert len(types(await log_of(db, "r"), "ApprovalRequested")) == 2
    # The first decision is not applied to the new request.
    await getattr(decisions, decide)("r", "ok", note="again", db=db)
    parked = await resume(gate, db, "r")
    assert parked.status == "waiting-event"  # ``ci`` depends on ``ok``: it waits again too
    assert parked.outputs["ok"]["approved"] is (decide == "approve")
    assert parked.outputs["ok"]["note"] == "again"


async def test_retry_task_of_a_gated_task_asks_again_before_it_runs(
    db: Path, decisions: Any
) -> None:
    assert (await run_workflow(gated_task, db=db, run_id="g", log_dir=None)).status == (
        "waiting-approval"
    )
    await decisions.approve("g", "deploy", db=db)
    assert (await resume(gated_task, db, "g")).status == "finished"

    again = await retry_task("g", node="deploy", db=db, workflow=gated_task, log_dir=None)

    assert again.status == "waiting-approval"
    log = await log_of(db, "g")
    assert len(types(log, "ApprovalRequested")) == 2
    assert len(types(log, "NodeStarted")) == 2  # build, and deploy once: not run again yet
    await decisions.approve("g", "deploy", db=db)
    assert (await resume(gated_task, db, "g")).status == "finished"
    assert len([e for _, e in types(await log_of(db, "g"), "NodeStarted")]) == 3
