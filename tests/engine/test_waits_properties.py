"""Hypothesis: runs that wait rebuild exactly from their log at every frame (issue 9, "Tests").

Random scripts of compute tasks, approvals (granted or denied, each ``on_deny``), gated
tasks (``needs_approval=True``), `WaitForEvent` nodes (some with a correlation id, some
sent a signal before the wait began, which must not count, or one with the wrong
correlation id) and timers (zero, short, or long enough to park), in sequences and
parallels, parts of them wrapped in a `Loop` (`until` read from outputs: a probe
task's output count or an approval's latest output; 1-4 passes; either
``on_max_reached``), so decisions differ per pass and signals arrive across passes,
are driven to their end: at each park the script decides, signals or moves
a virtual clock past the timers, then resumes. For every frame any activation
committed, the state the engine held live then equals `state_at(frame)` (checkpoint
plus tail, checkpoints every few events) and a plain fold of the log up to that
frame; the final state is the fold of the whole log; each wait resolved as the
script says for its pass; and each loop stopped at the pass its `until` says.
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
    Loop,
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
"""``("task", id)``, ``("approval", id, on_deny, grants)``, ``("gated", id, grants)``,
``("event", id, correlation_id | None, early)``, ``("timer", id, duration_ms)``.
`grants` holds one decision per pass, cycled: pass ``i`` is granted if
``grants[i % len(grants)]``."""

LoopSpec = tuple[str, str, int, int, str]
"""``(loop_id, until, k, max_iterations, on_max_reached)``: `until` is ``"count"`` (the
loop's probe task has `k` outputs) or ``"approved"`` (its first approval's latest
output is approved)."""

Block = tuple[LoopSpec | None, list[list[Step]]]
"""Stages in sequence, wrapped in a `Loop` when the spec is not None."""


def granted(step: Step, iteration: int) -> bool:
    """The script's decision for pass `iteration` of an approval or gated task."""
    grants: tuple[bool, ...] = step[-1]
    return grants[iteration % len(grants)]


@st.composite
def steps(draw: st.DrawFn, node_id: str) -> Step:
    kind = draw(st.sampled_from(["task", "approval", "gated", "event", "timer"]))
    grants = st.lists(st.booleans(), min_size=1, max_size=3).map(tuple)
    if kind == "task":
        return ("task", node_id)
    if kind == "approval":
        on_deny = draw(st.sampled_from(["fail", "continue", "skip"]))
        return ("approval", node_id, on_deny, draw(grants))
    if kind == "gated":
        return ("gated", node_id, draw(grants))
    if kind == "event":
        corr = draw(st.none() | st.just(f"c-{node_id}"))
        early = draw(st.sampled_from(["none", "early", "wrong-correlation"]))
        if early == "wrong-correlation" and corr is None:
            early = "early"
        return ("event", node_id, corr, early)
    return ("timer", node_id, draw(st.sampled_from([0, 5, 120_000, 3_600_000])))


@st.composite
def scripts(draw: st.DrawFn) -> list[Block]:
    """1-3 blocks of 1-3 stages, each stage one step or a parallel of two; a block may
    be a Loop (until from outputs, 1-4 passes, either on_max_reached)."""
    ids = iter(f"n{i}" for i in range(100))
    blocks: list[Block] = []
    for b in range(draw(st.integers(1, 3))):
        stages = []
        for _ in range(draw(st.integers(1, 3))):
            width = draw(st.sampled_from([1, 1, 2]))
            stages.append([draw(steps(next(ids))) for _ in range(width)])
        spec: LoopSpec | None = None
        if draw(st.booleans()):
            until = draw(st.sampled_from(["count", "approved"]))
            spec = (
                f"L{b}",
                until,
                draw(st.integers(1, 4)),
                draw(st.integers(1, 4)),
                draw(st.sampled_from(["return-last", "fail"])),
            )
        blocks.append((spec, stages))
    return blocks


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


def first_approval(stages: list[list[Step]]) -> str | None:
    """The id of a loop's first `Approval` step (its ``"approved"`` until reads it)."""
    return next((s[1] for stage in stages for s in stage if s[0] == "approval"), None)


def build(script: list[Block]) -> Any:
    def stage_of(stage: list[Step]) -> Any:
        return leaf(stage[0]) if len(stage) == 1 else Parallel(*map(leaf, stage))

    @workflow("waits-script")
    def wf(ctx: Any) -> Any:
        parts: list[Any] = []
        for spec, stages in script:
            if spec is None:
                parts.extend(stage_of(stage) for stage in stages)
                continue
            loop_id, until, k, max_iterations, on_max = spec
            probe = f"{loop_id}-probe"
            target = first_approval(stages)
            if until == "approved" and target is not None:
                last = ctx.latest(dict, target)
                done = last is not None and bool(last["approved"])
            else:
                done = ctx.iteration_count(dict, probe) >= k
            it = ctx.loop_iteration(loop_id)
            parts.append(
                Loop(
                    loop_id,
                    Task(probe, output=dict, run=lambda it=it: {"it": it}),
                    *(stage_of(stage) for stage in stages),
                    until=done,
                    max_iterations=max_iterations,
                    on_max_reached=on_max,
                )
            )
        return Sequence(*parts)

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


async def drive(script: list[Block], hold_ms: int, decisions: Any) -> None:
    wf = build(script)
    by_id = {step[1]: step for _, stages in script for stage in stages for step in stage}
    store = MemoryEventStore()
    clock = VirtualClock()
    early_sent: set[tuple[str, int]] = set()
    with live_frames() as live:
        result = await run_workflow(wf, store=store, run_id=RUN, clock=clock, hold_ms=hold_ms)
        for _ in range(MAX_RESUMES):
            if not result.status.startswith("waiting-"):
                break
            state = fold_stored(RUN, await store.read(RUN))
            assert state.status == result.status
            at = clock.now_ms
            # Signals for waits that have not begun yet (this pass's): they must not count.
            for (node_id, iteration), rec in list(state.nodes.items()):
                step = by_id.get(node_id)
                if step is None or step[0] != "event" or step[3] == "none":
                    continue
                if (node_id, iteration) in early_sent or rec.wait is not None:
                    continue
                early_sent.add((node_id, iteration))
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
                    decide = decisions.approve if granted(step, rec.iteration) else decisions.deny
                    await decide(
                        RUN,
                        rec.node_id,
                        iteration=rec.iteration,
                        note=f"{rec.node_id}#{rec.iteration}",
                        at_ms=at(),
                        store=store,
                    )
                elif rec.state == "waiting-event":
                    await decisions.signal(
                        RUN,
                        f"ev-{rec.node_id}",
                        {"from": rec.node_id, "it": rec.iteration},
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


def check_outcome(script: list[Block], final: RunState, result: Any) -> None:
    """Each node resolved as the script decided in each pass; loops ended as `until` said."""
    by_id = {step[1]: step for _, stages in script for stage in stages for step in stage}
    denied_fail = [
        key
        for key, rec in final.nodes.items()
        if rec.approval is not None
        and rec.approval.decision == "denied"
        and (by_id[key[0]][0] == "gated" or by_id[key[0]][2] == "fail")
    ]
    if result.status == "failed":
        code = result.error["code"]
        assert code in ("APPROVAL_DENIED", "RALPH_MAX_REACHED"), result.error
        if code == "APPROVAL_DENIED":
            assert denied_fail, result.error
        else:
            assert not denied_fail
            assert any(
                spec is not None
                and spec[4] == "fail"
                and final.loops[spec[0]].iteration == spec[3] - 1
                and not final.loops[spec[0]].finished
                for spec, _ in script
            ), result.error
    else:
        assert not denied_fail
    for (node_id, iteration), rec in final.nodes.items():
        step = by_id.get(node_id)
        if step is not None and step[0] in ("approval", "gated") and rec.approval is not None:
            decision = rec.approval.decision
            if decision is not None:
                assert (decision == "granted") is granted(step, iteration)
                assert rec.approval.note == f"{node_id}#{iteration}"
        if step is None or rec.state != "finished":
            continue
        out = decode_json(rec.output)
        if step[0] == "approval":
            assert out["approved"] is granted(step, iteration)
            if step[2] == "skip":
                assert out["approved"], "a denied skip-approval finished"
        elif step[0] == "event":
            # Never the early or mismatched signal, nor another pass's.
            assert out == {"from": node_id, "it": iteration}
            assert rec.wait is not None
            assert rec.wait.received
        elif step[0] == "timer":
            assert rec.timer is not None
            assert rec.timer.state == "fired"
            assert out["firedAtMs"] >= out["firesAtMs"]
    signals = {s.seq: s for s in final.signals}
    for sig in signals.values():
        if sig.delivered_to is not None:
            assert sig.signal_name == f"ev-{sig.delivered_to[0]}"
    # A signal resolves at most one wait, and a wait takes one signal.
    delivered = [s.delivered_to for s in signals.values() if s.delivered_to is not None]
    assert len(delivered) == len(set(delivered))
    # One timer per timer node and pass, with the id ``node:iteration``.
    for rec in final.nodes.values():
        if rec.timer is not None:
            assert rec.timer.timer_id == f"{rec.node_id}:{rec.iteration}"
    if result.status == "finished":
        for spec, stages in script:
            if spec is not None:
                check_loop(spec, stages, final)


def check_loop(spec: LoopSpec, stages: list[list[Step]], final: RunState) -> None:
    """A loop of a finished run stopped at the pass its `until` says (or its last)."""
    loop_id, until, k, max_iterations, _ = spec
    rec = final.loops[loop_id]
    assert rec.finished
    target = first_approval(stages)
    if until == "approved" and target is not None:
        step = next(s for stage in stages for s in stage if s[1] == target)
        want = next((i for i in range(max_iterations) if granted(step, i)), max_iterations - 1)
    else:
        want = min(k, max_iterations) - 1
    assert rec.iteration == want, (spec, rec)
    assert rec.reason == ("until" if want < max_iterations - 1 else rec.reason)
    passes = {i for (n, i) in final.nodes if n == f"{loop_id}-probe"}
    assert passes == set(range(want + 1))


@SETTINGS
@given(script=scripts(), hold_ms=st.sampled_from([0, 60_000]))
def test_every_frame_of_a_waiting_run_rebuilds_from_the_log(
    script: list[Block], hold_ms: int, decisions: Any
) -> None:
    anyio.run(drive, script, hold_ms, decisions, backend="asyncio")
