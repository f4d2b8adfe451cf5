"""Durable timers through the Python API: park, resume, fire at the original time, cancel."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from smithers.engine import cancel_run, load_run, wake_deadline

from smithers import Approval, Parallel, Sequence, Task, Timer, WaitForEvent, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def boom() -> None:
    raise RuntimeError("boom")


def soak_flow(duration: str = "800ms") -> Any:
    @workflow("soak")
    def soak(ctx: Any) -> Any:
        return Sequence(
            Task("build", output=dict, value={"n": 1}),
            Timer("soak", duration=duration),
            Task("deploy", output=dict, value={"n": 2}),
        )

    return soak


async def test_a_parked_timer_fires_at_its_original_time_and_a_resume_never_resets_it(
    db: Path, read_log: Any
) -> None:
    wf = soak_flow("800ms")
    parked = await run_workflow(wf, db=db, run_id="t1", hold_ms=0)
    assert parked.status == "waiting-timer"
    log = await read_log("t1")
    [created] = log.find("TimerCreated")
    assert created.timer_id == "soak:0"
    assert created.timer_type == "duration"
    assert log.find("RunStatusChanged")[-1].status == "waiting-timer"

    # Resumed before it is due: it parks again, with the same timer (no new TimerCreated).
    again = await run_workflow(wf, db=db, run_id="t1", resume=True, hold_ms=0)
    assert again.status == "waiting-timer"
    log = await read_log("t1")
    assert len(log.find("TimerCreated")) == 1
    assert len(log.find("NodeWaitingTimer")) == 1
    assert log.find("TimerFired") == []
    state = await load_run("t1", db=db)
    assert wake_deadline(state) == (created.fires_at_ms, "timer")

    await anyio.sleep(max(created.fires_at_ms - now_ms(), 0) / 1000 + 0.05)
    done = await run_workflow(wf, db=db, run_id="t1", resume=True, hold_ms=0)
    assert done.status == "finished"
    assert done.outputs["deploy"] == {"n": 2}
    log = await read_log("t1")
    [fired] = log.find("TimerFired")
    assert fired.fires_at_ms == created.fires_at_ms
    assert fired.fired_at_ms >= created.fires_at_ms
    assert fired.delay_ms == fired.fired_at_ms - fired.fires_at_ms
    assert done.outputs["soak"]["firesAtMs"] == created.fires_at_ms
    assert log.find("TimerCancelled") == []


async def test_a_near_timer_is_slept_on_in_process_instead_of_parking(
    db: Path, read_log: Any
) -> None:
    result = await run_workflow(soak_flow("300ms"), db=db, run_id="t2")  # hold_ms: 60 s
    assert result.status == "finished"
    log = await read_log("t2")
    statuses = [e.status for e in log.find("RunStatusChanged")]
    assert statuses == ["running", "finished"]
    [created] = log.find("TimerCreated")
    [fired] = log.find("TimerFired")
    assert fired.fired_at_ms >= created.fires_at_ms


async def test_a_timer_until_a_past_time_fires_at_once(db: Path, read_log: Any) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)

    @workflow("late")
    def late(ctx: Any) -> Any:
        return [Timer("t", until=past), Task("after", output=dict, value={"ok": True})]

    result = await run_workflow(late, db=db, run_id="t3", hold_ms=0)
    assert result.status == "finished"
    log = await read_log("t3")
    [created] = log.find("TimerCreated")
    assert created.timer_type == "absolute"
    assert created.fires_at_ms == int(past.timestamp() * 1000)
    [fired] = log.find("TimerFired")
    assert fired.delay_ms >= 3_600_000 - 1000
    assert log.find("NodeWaitingTimer") == []


async def test_cancelling_a_parked_timer_run_cancels_its_timer(db: Path, read_log: Any) -> None:
    parked = await run_workflow(soak_flow("1h"), db=db, run_id="t4", hold_ms=0)
    assert parked.status == "waiting-timer"
    state = await cancel_run("t4", db=db)
    assert state.status == "cancelled"
    log = await read_log("t4")
    assert [e.timer_id for e in log.find("TimerCancelled")] == ["soak:0"]
    tail = log.types[-4:]
    # The timer and the node waiting on it are closed: nothing waits on an ended run.
    assert tail == ["TimerCancelled", "NodeCancelled", "RunStatusChanged", "RunCancelled"]
    assert state.node("soak").state == "cancelled"
    assert wake_deadline(state) is None


async def test_a_run_that_fails_cancels_its_pending_timers(db: Path, read_log: Any) -> None:
    @workflow("fails")
    def fails(ctx: Any) -> Any:
        return Parallel(Timer("long", duration="1h"), Task("bad", output=dict, run=boom))

    result = await run_workflow(fails, db=db, run_id="t5", hold_ms=0)
    assert result.status == "failed"
    log = await read_log("t5")
    assert [e.timer_id for e in log.find("TimerCancelled")] == ["long:0"]
    assert log.seq_of("TimerCancelled") < log.seq_of("RunFailed")


async def test_wake_deadline_is_the_earliest_timer_or_wait_timeout(db: Path) -> None:
    @workflow("both")
    def both(ctx: Any) -> Any:
        return Parallel(
            Timer("later", duration="1h"),
            WaitForEvent("ci", event="ci.done", timeout_ms=600_000),
            Approval("ok", request={"title": "Go?"}),
        )

    result = await run_workflow(both, db=db, run_id="t6", hold_ms=0)
    assert result.status == "waiting-approval"  # approvals first, then events, then timers
    state = await load_run("t6", db=db)
    wait = state.node("ci")
    assert wait is not None
    assert wait.wait is not None
    assert wake_deadline(state) == (wait.wait.timeout_at_ms, "timeout")

    @workflow("asks")
    def asks(ctx: Any) -> Any:
        return [Approval("ok"), WaitForEvent("ci", event="ci.done")]

    await run_workflow(asks, db=db, run_id="t7", hold_ms=0)
    assert wake_deadline(await load_run("t7", db=db)) is None  # only a person wakes it
