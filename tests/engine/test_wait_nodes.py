"""Approval, WaitForEvent and Timer nodes in the engine: park, hold, resolve, resume.

Decisions and signals are appended here the way another process does (a request at the
run's last seq), then the run is resumed; the approve/signal commands have their own tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from smithers.engine import frame_view
from smithers.engine.authoring import ApprovalOptionsRequiredError, parse_duration_ms
from smithers.engine.errors import InvalidInputError, RunNotFoundError, UnsupportedFeatureError
from smithers.eventstore import SQLiteEventStore
from smithers.eventstore.events import (
    ApprovalDenied,
    ApprovalGranted,
    Event,
    SignalReceived,
)

import smithers
from smithers import (
    Approval,
    Parallel,
    Sequence,
    Task,
    Timer,
    WaitForEvent,
    run_workflow,
    workflow,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

pytestmark = pytest.mark.anyio


class N(msgspec.Struct):
    n: int


async def request(db: Path, run_id: str, event: Event) -> None:
    """Append `event` as another process does: a request at the run's last seq."""
    store = await SQLiteEventStore.open(db)
    try:
        await store.append(run_id, [event], expected_seq=await store.last_seq(run_id))
    finally:
        await store.close()


def granted(run_id: str, node_id: str, **kw: Any) -> ApprovalGranted:
    return ApprovalGranted(run_id=run_id, timestamp_ms=1_000, node_id=node_id, **kw)


def signal(run_id: str, name: str, data: bytes, **kw: Any) -> SignalReceived:
    return SignalReceived(
        run_id=run_id, timestamp_ms=1_000, signal_name=name, data=msgspec.Raw(data), **kw
    )


# --------------------------------------------------------------------------- authoring


@pytest.mark.parametrize(
    ("text", "ms"),
    [("30s", 30_000), ("2h", 7_200_000), ("7d", 604_800_000), ("1h30m", 5_400_000),
     ("250ms", 250), ("1.5h", 5_400_000), (1234, 1234), ("1w", 604_800_000)],
)  # fmt: skip
def test_durations_parse_to_milliseconds(text: str | int, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "soon", "30", "5x", "-1s", "1h junk", -5])
def test_a_malformed_duration_is_invalid_input(text: str | int) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_duration_ms(text)
    assert info.value.code == "INVALID_INPUT"


def test_select_and_rank_need_options() -> None:
    for mode in ("select", "rank"):
        with pytest.raises(ApprovalOptionsRequiredError) as info:
            Approval("pick", mode=mode)  # type: ignore[arg-type]
        assert info.value.code == "APPROVAL_OPTIONS_REQUIRED"
    with pytest.raises(UnsupportedFeatureError):
        Approval("x", on_deny="explode")  # type: ignore[arg-type]


def test_a_timer_needs_exactly_one_of_duration_and_until() -> None:
    with pytest.raises(InvalidInputError):
        Timer("t")
    with pytest.raises(InvalidInputError):
        Timer("t", duration="1s", until="2026-01-01T00:00:00Z")
    assert Timer("t", until="2026-01-01T00:00:00Z").until_ms == 1_767_225_600_000


# --------------------------------------------------------------------------- approvals


@workflow("gated")
def gated(ctx: Any) -> Any:
    return Sequence(
        Task("build", output=N, value={"n": 1}),
        Approval("ok", request={"title": "Ship?", "summary": "all green", "metadata": {"b": 1}}),
        Task("deploy", output=N, run=lambda: {"n": 2}),
    )


async def test_an_approval_parks_the_run_and_a_grant_resumes_it(
    db: Path, read_log: Callable[..., Awaitable[Any]]
) -> None:
    parked = await run_workflow(gated, db=db, run_id="g1")
    assert parked.status == "waiting-approval"
    assert "deploy" not in parked.outputs
    state = await load_state_at(db, "g1")
    (pending,) = state.pending_approvals()
    assert pending.node_id == "ok"
    assert pending.approval is not None
    assert pending.approval.title == "Ship?"
    assert state.owner_id == ""  # parked: nobody owns it, anyone may resume it
    log = await read_log("g1")
    assert log.types[-1] == "RunStatusChanged"
    assert log.find("RunStatusChanged")[-1].status == "waiting-approval"
    assert len(log.find("ApprovalRequested", "ok")) == 1

    # Resuming without a decision parks again, without asking twice.
    again = await run_workflow(gated, db=db, run_id="g1", resume=True)
    assert again.status == "waiting-approval"
    await request(db, "g1", granted("g1", "ok", note="go", decided_by="ana"))
    done = await run_workflow(gated, db=db, run_id="g1", resume=True)
    assert done.status == "finished"
    assert done.outputs["ok"] == {
        "approved": True,
        "note": "go",
        "decidedBy": "ana",
        "decidedAt": 1_000,
    }
    assert done.outputs["deploy"] == {"n": 2}
    log = await read_log("g1")
    assert len(log.find("ApprovalRequested", "ok")) == 1
    assert len(log.find("NodeStarted", "deploy")) == 1


async def load_state_at(db: Path, run_id: str) -> Any:
    async with smithers.connect(db) as client:
        return await (await client.get_run(run_id)).state()


@pytest.mark.parametrize(
    ("on_deny", "status", "ok_state"),
    [("fail", "failed", "failed"), ("continue", "finished", "finished"),
     ("skip", "finished", "skipped")],
)  # fmt: skip
async def test_a_denial_does_what_on_deny_says(
    db: Path, on_deny: str, status: str, ok_state: str
) -> None:
    @workflow("deny")
    def wf(ctx: Any) -> Any:
        return [Approval("ok", on_deny=on_deny), Task("after", output=N, value={"n": 1})]  # type: ignore[arg-type]

    assert (await run_workflow(wf, db=db, run_id="d1")).status == "waiting-approval"
    await request(
        db,
        "d1",
        ApprovalDenied(run_id="d1", timestamp_ms=5, node_id="ok", note="no", decided_by="bo"),
    )
    result = await run_workflow(wf, db=db, run_id="d1", resume=True)
    assert result.status == status
    state = await load_state_at(db, "d1")
    assert state.node("ok").state == ok_state
    if on_deny == "fail":
        assert result.error is not None
        assert result.error["code"] == "APPROVAL_DENIED"
        assert "bo" in result.error["message"]
        assert "no" in result.error["message"]
    if on_deny == "continue":
        assert result.outputs["ok"]["approved"] is False
        assert result.outputs["after"] == {"n": 1}


async def test_needs_approval_gates_a_task_before_its_first_attempt(db: Path) -> None:
    ran: list[int] = []

    @workflow("gate")
    def wf(ctx: Any) -> Any:
        return [Task("risky", output=N, run=lambda: ran.append(1) or {"n": 7}, needs_approval=True)]

    assert (await run_workflow(wf, db=db, run_id="n1")).status == "waiting-approval"
    assert ran == []
    await request(db, "n1", granted("n1", "risky"))
    result = await run_workflow(wf, db=db, run_id="n1", resume=True)
    assert (result.status, result.outputs["risky"], ran) == ("finished", {"n": 7}, [1])


async def test_select_and_rank_outputs(db: Path) -> None:
    @workflow("choose")
    def wf(ctx: Any) -> Any:
        return Parallel(
            Approval("pick", mode="select", options=["a", "b"]),
            Approval("order", mode="rank", options=["x", "y", "z"]),
        )

    assert (await run_workflow(wf, db=db, run_id="s1")).status == "waiting-approval"
    await request(db, "s1", granted("s1", "pick", selected="b", note="b is cheaper"))
    await request(db, "s1", granted("s1", "order", ranked=("z", "x", "y")))
    result = await run_workflow(wf, db=db, run_id="s1", resume=True)
    assert result.outputs["pick"] == {"selected": "b", "notes": "b is cheaper"}
    assert result.outputs["order"] == {"ranked": ["z", "x", "y"], "notes": None}


async def test_a_decision_reaches_a_live_run_that_is_still_busy(db: Path) -> None:
    # The run is not parked (a slow task runs beside the approval): the owner picks the
    # decision up from the log and goes on without a resume.
    release = anyio.Event()

    async def slow() -> dict[str, int]:
        await release.wait()
        return {"n": 1}

    @workflow("busy")
    def wf(ctx: Any) -> Any:
        return Parallel(Task("slow", output=N, run=slow), Approval("ok"))

    async with anyio.create_task_group() as tg:
        results: list[Any] = []

        async def drive() -> None:
            results.append(await run_workflow(wf, db=db, run_id="b1"))

        tg.start_soon(drive)
        for _ in range(200):
            await anyio.sleep(0.02)
            try:
                if db.exists() and (await load_state_at(db, "b1")).pending_approvals():
                    break
            except RunNotFoundError:
                continue  # the database exists, the run's first event not yet
        await request(db, "b1", granted("b1", "ok"))
        await anyio.sleep(1.5)  # the owner's heartbeat (1 s) sees the request
        release.set()
    (result,) = results
    assert result.status == "finished"
    assert result.outputs["ok"]["approved"] is True


# --------------------------------------------------------------------------- signals


@workflow("signals")
def signalled(ctx: Any) -> Any:
    return Sequence(
        WaitForEvent("first", event="ci.done", output=N),
        WaitForEvent("second", event="ci.done", output=N, correlation_id="sha-2"),
    )


async def test_a_signal_resolves_the_oldest_waiter_and_earlier_signals_do_not_count(
    db: Path,
) -> None:
    # Sent before any wait began: recorded, resolves nothing.
    early = await run_workflow(
        workflow("noop")(lambda ctx: [Task("x", output=N, value={"n": 0})]), db=db, run_id="e0"
    )
    assert early.status == "finished"
    assert (await run_workflow(signalled, db=db, run_id="e1")).status == "waiting-event"
    await request(db, "e1", signal("e1", "ci.done", b'{"n": 1}', correlation_id="sha-1"))
    second_pass = await run_workflow(signalled, db=db, run_id="e1", resume=True)
    assert second_pass.status == "waiting-event"
    assert second_pass.outputs["first"] == {"n": 1}
    # The second waiter wants sha-2: a signal for sha-1 does not resolve it.
    await request(db, "e1", signal("e1", "ci.done", b'{"n": 9}', correlation_id="sha-1"))
    assert (await run_workflow(signalled, db=db, run_id="e1", resume=True)).status == (
        "waiting-event"
    )
    await request(db, "e1", signal("e1", "ci.done", b'{"n": 2}', correlation_id="sha-2"))
    done = await run_workflow(signalled, db=db, run_id="e1", resume=True)
    assert (done.status, done.outputs["second"]) == ("finished", {"n": 2})
    state = await load_state_at(db, "e1")
    assert [s.delivered_to for s in state.signals] == [("first", 0), None, ("second", 0)]


async def test_a_signal_before_the_wait_began_is_kept_but_ignored(db: Path) -> None:
    @workflow("late-wait")
    def wf(ctx: Any) -> Any:
        return [Approval("ok"), WaitForEvent("w", event="go")]

    assert (await run_workflow(wf, db=db, run_id="l1")).status == "waiting-approval"
    await request(db, "l1", signal("l1", "go", b"{}"))  # nobody waits for "go" yet
    await request(db, "l1", granted("l1", "ok"))
    result = await run_workflow(wf, db=db, run_id="l1", resume=True)
    assert result.status == "waiting-event"


@pytest.mark.parametrize(
    ("on_timeout", "status", "w_state"),
    [("fail", "failed", "failed"), ("skip", "finished", "skipped"),
     ("continue", "finished", "finished")],
)  # fmt: skip
async def test_a_wait_times_out_in_process(
    db: Path, on_timeout: str, status: str, w_state: str
) -> None:
    @workflow("timeout")
    def wf(ctx: Any) -> Any:
        return [WaitForEvent("w", event="never", timeout_ms=200, on_timeout=on_timeout)]  # type: ignore[arg-type]

    result = await run_workflow(wf, db=db, run_id="t1")
    assert result.status == status
    assert (await load_state_at(db, "t1")).node("w").state == w_state
    if on_timeout == "fail":
        assert result.error is not None
        assert result.error["code"] == "WAIT_FOR_EVENT_TIMEOUT"


# --------------------------------------------------------------------------- timers


async def test_a_short_timer_holds_the_process_and_fires(
    db: Path, read_log: Callable[..., Awaitable[Any]]
) -> None:
    @workflow("soak")
    def wf(ctx: Any) -> Any:
        return [Timer("soak", duration="200ms"), Task("after", output=N, value={"n": 1})]

    result = await run_workflow(wf, db=db, run_id="h1")
    assert result.status == "finished"
    fired = result.outputs["soak"]
    assert fired["firedAtMs"] >= fired["firesAtMs"]
    log = await read_log("h1")
    (created,) = log.find("TimerCreated")
    assert created.timer_id == "soak:0"
    assert created.timer_type == "duration"
    assert log.find("TimerFired")[0].fires_at_ms == created.fires_at_ms
    assert log.find("RunStatusChanged")[-1].status == "finished"
    assert all(e.status != "waiting-timer" for e in log.find("RunStatusChanged"))


async def test_a_long_timer_parks_and_resuming_early_never_resets_it(
    db: Path, read_log: Callable[..., Awaitable[Any]]
) -> None:
    @workflow("park-timer")
    def wf(ctx: Any) -> Any:
        return [Timer("soak", duration="600ms"), Task("after", output=N, value={"n": 1})]

    assert (await run_workflow(wf, db=db, run_id="p1", hold_ms=0)).status == "waiting-timer"
    again = await run_workflow(wf, db=db, run_id="p1", resume=True, hold_ms=0)
    assert again.status == "waiting-timer"
    await anyio.sleep(0.7)
    done = await run_workflow(wf, db=db, run_id="p1", resume=True, hold_ms=0)
    assert done.status == "finished"
    log = await read_log("p1")
    assert len(log.find("TimerCreated")) == 1
    assert len(log.find("TimerFired")) == 1


async def test_the_end_of_a_run_cancels_its_pending_timers(
    db: Path, read_log: Callable[..., Awaitable[Any]]
) -> None:
    @workflow("race")
    def wf(ctx: Any) -> Any:
        return Parallel(Timer("later", duration="2h"), Task("boom", output=N, run=_boom))

    result = await run_workflow(wf, db=db, run_id="c1")
    assert result.status == "failed"
    log = await read_log("c1")
    assert [e.timer_id for e in log.find("TimerCancelled")] == ["later:0"]
    state = await load_state_at(db, "c1")
    assert state.node("later").timer.state == "cancelled"


def _boom() -> dict[str, int]:
    raise RuntimeError("boom")


async def test_a_past_until_fires_at_once(db: Path) -> None:
    @workflow("past")
    def wf(ctx: Any) -> Any:
        return [Timer("t", until="2020-01-01T00:00:00Z")]

    result = await run_workflow(wf, db=db, run_id="u1")
    assert result.status == "finished"
    assert result.outputs["t"]["firesAtMs"] == 1_577_836_800_000


async def test_frames_record_what_a_node_waits_for(db: Path) -> None:
    result = await run_workflow(gated, db=db, run_id="f1")
    assert result.status == "waiting-approval"
    last = (await load_state_at(db, "f1")).frames[-1].frame_no
    view = await frame_view("f1", frame=last, db=db)
    (sequence,) = view.tree["children"]
    ok = next(c for c in sequence["children"] if c.get("id") == "ok")
    assert ok["kind"] == "approval"
    assert ok["mode"] == "approve"


async def test_a_decision_landing_while_the_run_parks_is_not_lost(
    db: Path, read_log: Callable[..., Awaitable[Any]]
) -> None:
    # The task appends the grant itself just before it returns, so the owner's next
    # batch (the task's end and the park) conflicts with it: the owner must take the
    # decision into account instead of parking on a run the decider saw running.
    async def decide_then_return() -> dict[str, int]:
        await request(db, "race", granted("race", "ok", decided_by="ana"))
        return {"n": 1}

    @workflow("race")
    def wf(ctx: Any) -> Any:
        return Parallel(Task("t", output=N, run=decide_then_return), Approval("ok"))

    result = await run_workflow(wf, db=db, run_id="race")
    assert result.status == "finished"
    assert result.outputs["ok"]["decidedBy"] == "ana"
    log = await read_log("race")
    assert [e.activation for e in log.find("RunStarted")] == [1, 2]
    assert log.find("RunStatusChanged")[-1].status == "finished"


async def test_a_run_that_ends_leaves_nothing_waiting(
    db: Path, read_log: Callable[..., Awaitable[Any]]
) -> None:
    # Cancelling a parked run (no owner: `cancel` ends it itself) closes its waiting
    # nodes and timers, so nothing shows as waiting on a run that will never go on.
    @workflow("parked-then-cancelled")
    def wf(ctx: Any) -> Any:
        return Parallel(Approval("ok"), Timer("later", duration="2h"))

    assert (await run_workflow(wf, db=db, run_id="x1")).status == "waiting-approval"
    async with smithers.connect(db) as client:
        await (await client.get_run("x1")).cancel()
    state = await load_state_at(db, "x1")
    assert state.status == "cancelled"
    assert state.waiting() == []
    assert state.pending_approvals() == []
    assert {k: r.state for k, r in state.nodes.items()} == {
        ("ok", 0): "cancelled",
        ("later", 0): "cancelled",
    }
    log = await read_log("x1")
    assert [e.timer_id for e in log.find("TimerCancelled")] == ["later:0"]

    # And a run that fails while a node waits closes it the same way.
    @workflow("fails-while-waiting")
    def wf2(ctx: Any) -> Any:
        return Parallel(Approval("ok"), Task("boom", output=N, run=_boom))

    assert (await run_workflow(wf2, db=db, run_id="x2")).status == "failed"
    state = await load_state_at(db, "x2")
    assert state.node("ok").state == "cancelled"
    assert state.waiting() == []
