"""Fold steps of loop passes and continue-as-new (issue 9).

Registered with `_on` on import (`_apply` imports this module); see `apply_event`.
"""

from __future__ import annotations

import msgspec
from smithers.eventstore.events import (
    NULL_RAW,
    ContinuationLoaded,
    LoopFinished,
    LoopIterationStarted,
    LoopRewound,
    RunContinuedAsNew,
)

from ._handlers import _on
from ._run_state import (
    CarriedOutput,
    LoopRecord,
    NodeRecord,
    RunState,
)

__all__ = ()


# ---- loops (issue 9: Loop passes and continue-as-new)


@_on(LoopIterationStarted)
def _loop_iteration_started(s: RunState, e: LoopIterationStarted, seq: int) -> None:
    # Re-inserted so the loop whose pass started last is last (`ctx.iteration`'s loop).
    s.loops.pop(e.loop_id, None)
    s.loops[e.loop_id] = LoopRecord(loop_id=e.loop_id, iteration=e.iteration)


@_on(LoopFinished)
def _loop_finished(s: RunState, e: LoopFinished, seq: int) -> None:
    s.loops[e.loop_id] = LoopRecord(
        loop_id=e.loop_id, iteration=e.iteration, finished=True, reason=e.reason
    )


@_on(LoopRewound)
def _loop_rewound(s: RunState, e: LoopRewound, seq: int) -> None:
    s.loops.pop(e.loop_id, None)
    s.loops[e.loop_id] = LoopRecord(loop_id=e.loop_id, iteration=e.iteration)
    wanted = frozenset(e.node_ids)
    later = [key for key in s.nodes if key[0] in wanted and key[1] > e.iteration]
    for key in later:
        s.nodes[key] = msgspec.structs.replace(
            s.nodes[key], state="pending", output=NULL_RAW, has_output=False, skip_reason=None
        )


@_on(RunContinuedAsNew)
def _run_continued_as_new(s: RunState, e: RunContinuedAsNew, seq: int) -> None:
    # The status comes with the RunStatusChanged("continued") recorded beside it.
    s.continued_as_run_id = e.new_run_id
    s.finished_at_ms = e.timestamp_ms


_CarriedLoops = dict[str, tuple[int, bool]]
_CarriedOutputs = list[tuple[str, int, msgspec.Raw, int]]


@_on(ContinuationLoaded)
def _continuation_loaded(s: RunState, e: ContinuationLoaded, seq: int) -> None:
    s.continued_from_run_id = e.from_run_id
    s.ancestry_depth = e.ancestry_depth
    s.continuation = e.state
    if e.loops != NULL_RAW:
        for loop_id, (iteration, done) in msgspec.json.decode(e.loops, type=_CarriedLoops).items():
            s.loops[loop_id] = LoopRecord(loop_id=loop_id, iteration=iteration, finished=done)
    if e.outputs == NULL_RAW:
        return
    for node_id, iteration, output, count in msgspec.json.decode(e.outputs, type=_CarriedOutputs):
        s.carried[node_id] = CarriedOutput(
            iteration=iteration, output=output, count=count, as_node=e.carry_nodes
        )
        if e.carry_nodes:
            # A finished record with no attempt: done in an earlier run of the chain.
            s.nodes[(node_id, iteration)] = NodeRecord(
                node_id=node_id,
                iteration=iteration,
                state="finished",
                output=output,
                has_output=True,
            )
