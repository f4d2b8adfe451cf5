"""Hypothesis: runs that wait rebuild exactly from their log at every frame (issue 9, "Tests").

Random scripts of compute tasks, approvals (granted or denied, each ``on_deny``), gated
tasks (``needs_approval=True``), `WaitForEvent` nodes (some with a correlation id, some
sent a signal before the wait began, which must not count, or one with the wrong
correlation id) and timers (zero, short, or long enough to park), in sequences and
parallels, are driven to their end: at each park the script decides, signals or moves
a virtual clock past the timers, then resumes. For every frame any activation
committed, the state the engine held live then equals `state_at(frame)` (checkpoint
plus tail, checkpoints every few events) and a plain fold of the log up to that
frame; the final state is the fold of the whole log; and each wait resolved as the
script says.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smithers.engine import _checkpoints, state_at
from smithers.engine.activation import _loop
from smithers.eventstore import MemoryEventStore, decode_json
from smithers.projections import RunState, fold_stored

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
    from collections.abc import Iterator

FULL = bool(os.environ.get("CI")) or os.environ.get("SMITHERS_SLOW") == "1"
"""In CI (or with SMITHERS_SLOW=1) 200 examples; 30 in a quick run."""

SETTINGS = settings(
    max_examples=200 if FULL else 30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)

T0 = 1_800_000_000_000
RUN = "w"
MAX_RESUMES = 40


class VirtualClock:
    """Virtual time: a sleep of `ms` yields briefly, then moves the clock `ms` on.

    Timers and holds resolve at once in real time; the driver also moves `t` forward
    past a parked run's timers.
    """

    def __init__(self) -> None:
        self.t = T0

    def now_ms(self) -> int:
        return self.t

    async def sleep_ms(self, ms: int) -> None:
        target = self.t + ms
        await anyio.sleep(0.001)
        self.t = max(self.t, target)


# --------------------------------------------------------------------------- scripts

Step = tuple[Any, ...]
"""``("task", id)``, ``("approval", id, on_deny, grant)``, ``("gated", id, grant)``,
``("event", id, correlation_id | None, early)``, ``("timer", id, duration_ms)``."""


@st.composite
def steps(draw: st.DrawFn, node_id: str) -> Step:
    kind = draw(st.sampled_from(["task", "approval", "gated", "event", "timer"]))
    if kind == "task":
        return ("task", node_id)
    if kind == "approval":
        on_deny = draw(st.sampled_from(["fail", "continue", "skip"]))
        return ("approval", node_id, on_deny, draw(st.booleans()))
    if kind == "gated":
        return ("gated", node_id, draw(st.booleans()))
    if kind == "event":
        corr = draw(st.none() | st.just(f"c-{node_id}"))
        early = draw(st.sampled_from(["none", "early", "wrong-correlation"]))
        if early == "wrong-correlation" and corr is None:
            early = "early"
        return ("event", node_id, corr, early)
    return ("timer", node_id, draw(st.sampled_from([0, 5, 120_000, 3_600_000])))


@st.composite
def scripts(draw: st.DrawFn) -> list[list[Step]]:
    """A sequence of 1-4 stages, each one step or a parallel of two."""
    ids = iter(f"n{i}" for i in range(100))
    stages = []
    for _ in range(draw(st.integers(1, 4))):
        width = draw(st.sampled_from([1, 1, 2]))
        stages.append([draw(steps(next(ids))) for _ in range(width)])
    return stages


def leaf(step: Step) -> Task:
    kind, node_id = step[0], step[1]
    if kind == "task":
        return Task(node_id, output=dict, run=lambda: {"id": node_id})
    if kind == "approval":
        return Approval(node_id, request={"title": node_id}, on_deny=step[2])
    if kind == "gated":
        return Task(node_id, output=dict, run=lambda: {"id": node_id}, needs_approval=True)
    if kind == "event":
        return WaitForEvent(node_id, event=f"ev-{node_id}", output=dict, correlation_id=step[2])
    return Timer(node_id, duration=step[2])


def build(script: list[list[Step]]) -> Any:
    @workflow("waits-script")
    def wf(ctx: Any) -> Any:
        return Sequence(
            *(
                leaf(stage[0]) if len(stage) == 1 else Parallel(*map(leaf, stage))
                for stage in script
            )
        )

    return wf


# --------------------------------------------------------------------------- harness


@contextlib.contextmanager
def live_frames() -> Iterator[list[tuple[int, RunState]]]:
    """Checkpoints every 4 events; the state the engine held at each committed frame."""
    seen: list[tuple[int, RunState]] = []
    original = _loop.RunLoop._commit_frame

    def commit(self: _loop.RunLoop, plan: Any) -> None:
        frame_no = self.frame_no
        original(self, plan)
        seen.append((frame_no, self.state.copy()))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_loop.RunLoop, "_commit_frame", commit)
        mp.setattr(_checkpoints, "CHECKPOINT_INTERVAL", 4)
        mp.setattr(_checkpoints, "_STATE_PER_SPACING", 10**9)
        yield seen


async def drive(script: list[list[Step]], hold_ms: int, decisions: Any) -> None:
    wf = build(script)
    by_id = {step[1]: step for stage in script for step in stage}
    store = MemoryEventStore()
    clock = VirtualClock()
    early_sent: set[str] = set()
    with live_frames() as live:
        result = await run_workflow(wf, store=store, run_id=RUN, clock=clock, hold_ms=hold_ms)
        for _ in range(MAX_RESUMES):
            if not result.status.startswith("waiting-"):
                break
            state = fold_stored(RUN, await store.read(RUN))
            assert state.status == result.status
            at = clock.now_ms
            # Signals for waits that have not begun yet: they must not count.
            for node_id, step in by_id.items():
                if step[0] != "event" or step[3] == "none" or node_id in early_sent:
                    continue
                if (node_id, 0) in state.nodes and state.nodes[(node_id, 0)].wait is None:
                    early_sent.add(node_id)
                    corr = "not-it" if step[3] == "wrong-correlation" else step[2]
                    await decisions.signal(
                        RUN,
                        f"ev-{node_id}",
                        {"early": True},
                        correlation_id=corr,
                        at_ms=at(),
                        store=store,
                    )
            for rec in state.waiting():
                step = by_id[rec.node_id]
                if rec.state == "waiting-approval":
                    grant = step[-1]
                    decide = decisions.approve if grant else decisions.deny
                    await decide(RUN, rec.node_id, note=rec.node_id, at_ms=at(), store=store)
                elif rec.state == "waiting-event":
                    await decisions.signal(
                        RUN,
                        f"ev-{rec.node_id}",
                        {"from": rec.node_id},
                        correlation_id=step[2],
                        at_ms=at(),
                        store=store,
                    )
                elif rec.state == "waiting-timer":
                    assert rec.timer is not None
                    clock.t = max(clock.t, rec.timer.fires_at_ms)
            result = await run_workflow(
                wf, store=store, run_id=RUN, resume=True, clock=clock, hold_ms=hold_ms
            )
        assert result.status in ("finished", "failed"), result.status

    rows = await store.read(RUN)
    final = fold_stored(RUN, rows)
    assert final.status == result.status
    # Every frame: live state == state_at (checkpoint + tail) == fold of the prefix.
    assert [n for n, _ in live] == sorted({n for n, _ in live}), "a frame number reused"
    assert live, "no frame committed"
    for frame_no, held in live:
        assert await state_at(store, RUN, frame=frame_no) == held, f"frame {frame_no}"
        assert fold_stored(RUN, rows[: held.seq]) == held, f"frame {frame_no}"
    await store.delete_checkpoints()
    for frame_no, held in live[:: max(1, len(live) // 4)]:
        assert await state_at(store, RUN, frame=frame_no) == held, f"frame {frame_no}"

    check_outcome(script, final, result)


def check_outcome(script: list[list[Step]], final: RunState, result: Any) -> None:
    """Each node resolved as the script decided, up to the first denial that fails the run."""
    denied_fail = [
        s[1]
        for stage in script
        for s in stage
        if (s[0] == "approval" and s[2] == "fail" and not s[3]) or (s[0] == "gated" and not s[2])
    ]
    if result.status == "failed":
        assert denied_fail, result.error
        assert result.error["code"] == "APPROVAL_DENIED"
    else:
        assert not denied_fail
    for stage in script:
        for step in stage:
            rec = final.nodes.get((step[1], 0))
            if rec is None or rec.state != "finished":
                continue
            out = decode_json(rec.output)
            if step[0] == "approval":
                assert out["approved"] is step[3]
                assert out["note"] == step[1]
            elif step[0] == "event":
                assert out == {"from": step[1]}  # never the early or mismatched signal
                assert rec.wait is not None
                assert rec.wait.received
            elif step[0] == "timer":
                assert rec.timer is not None
                assert rec.timer.state == "fired"
                assert out["firedAtMs"] >= out["firesAtMs"]
            if step[0] == "approval" and step[2] == "skip":
                assert step[3], "a denied skip-approval finished"
    signals = {s.seq: s for s in final.signals}
    for sig in signals.values():
        if sig.delivered_to is not None:
            assert sig.signal_name == f"ev-{sig.delivered_to[0]}"
    # A signal resolves at most one wait, and a wait takes one signal.
    delivered = [s.delivered_to for s in signals.values() if s.delivered_to is not None]
    assert len(delivered) == len(set(delivered))
    # A TimerCreated per timer node reached, once.
    for rec in final.nodes.values():
        if rec.timer is not None:
            assert rec.timer.timer_id == f"{rec.node_id}:0"


@SETTINGS
@given(script=scripts(), hold_ms=st.sampled_from([0, 60_000]))
def test_every_frame_of_a_waiting_run_rebuilds_from_the_log(
    script: list[list[Step]], hold_ms: int, decisions: Any
) -> None:
    anyio.run(drive, script, hold_ms, decisions, backend="asyncio")
