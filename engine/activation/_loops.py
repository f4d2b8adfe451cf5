"""Loop passes and continue-as-new: what the engine decides when a pass ends (issue 9).

Pure decisions over the compiled plan and the run's state: each returns the events to
record (the `Decider` emits them). A pass's end is decided by the render that follows
it, so `until` is read from the outputs of the pass that just ended.
"""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, NamedTuple

import msgspec
from smithers.eventstore import encode_json
from smithers.eventstore.events import (
    NULL_RAW,
    ContinuationLoaded,
    LoopFinished,
    LoopIterationStarted,
    RunContinuedAsNew,
)

from ..authoring import MAX_CONTINUATION_BYTES, output_index
from ..errors import ContinuationStateTooLargeError, RalphMaxReachedError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from smithers.eventstore.events import Event
    from smithers.projections import RunState

    from ._render import Group, LoopSpec

__all__ = (
    "Continuing",
    "PassDecision",
    "continuation_events",
    "continuation_run_id",
    "decide_pass_end",
    "started_loop_events",
)

_CONT_SUFFIX = re.compile(r":cont:\d+:[0-9a-f]{6}$")


class Continuing(msgspec.Struct, kw_only=True):
    """A run that will end ``continued``.

    Set when a ``ContinueAsNew`` is reached or a loop's ``continue_as_new_every`` is due.
    """

    new_run_id: str
    """The run that goes on."""
    iteration: int
    """The pass the new run resumes at (``RunContinuedAsNew.iteration``)."""
    state: bytes
    """The carried state's JSON (``ctx.continuation`` of the new run)."""
    loop_id: str | None = None
    """The loop whose ``continue_as_new_every`` continued the run; None for
    ``ContinueAsNew`` (the new run starts afresh)."""


class PassDecision(NamedTuple):
    """What follows the end of a loop's pass."""

    events: list[Event]
    """``LoopIterationStarted`` (next pass) or ``LoopFinished``; empty otherwise."""
    error: RalphMaxReachedError | None
    """Set when the loop reached ``max_iterations`` with ``on_max_reached="fail"``."""
    continue_at: int | None
    """The next pass, when it is to run in a new run (continue-as-new)."""


def continuation_run_id(run_id: str, depth: int) -> str:
    """The id of the run that continues `run_id`: ``<first run id>:cont:<depth>:<6 hex>``.

    `depth` is the new run's ancestry depth (1 for the first continuation). Random
    suffix: a run rewound after it continued may continue again, under another id.
    """
    root = _CONT_SUFFIX.sub("", run_id)
    return f"{root}:cont:{depth}:{secrets.token_hex(3)}"


def started_loop_events(
    groups: Iterable[Group], state: RunState, *, run_id: str, now_ms: int
) -> list[LoopIterationStarted]:
    """``LoopIterationStarted`` for each loop whose first pass the scheduler activated."""
    out: list[LoopIterationStarted] = []
    for group in groups:
        spec = group.loop
        if spec is not None and spec.loop_id not in state.loops:
            out.append(
                LoopIterationStarted(
                    run_id=run_id,
                    timestamp_ms=now_ms,
                    loop_id=spec.loop_id,
                    iteration=spec.iteration,
                )
            )
    return out


def decide_pass_end(spec: LoopSpec, *, run_id: str, now_ms: int) -> PassDecision:
    """Decide what follows the end of pass ``spec.iteration`` of a loop.

    `until` true: the loop is done (``"until"``). Else the next pass, if under
    ``max_iterations``: in this run (``LoopIterationStarted``), or in a new run when
    ``continue_as_new_every`` divides its number. Else ``on_max_reached``:
    ``"return-last"`` ends the loop (``"max-iterations"``), ``"fail"`` is
    ``RALPH_MAX_REACHED``.
    """
    i = spec.iteration
    if spec.until:
        return PassDecision([_finished(spec, run_id, now_ms, "until")], None, None)
    nxt = i + 1
    if nxt < spec.max_iterations:
        every = spec.continue_as_new_every
        if every is not None and nxt % every == 0:
            return PassDecision([], None, nxt)
        started = LoopIterationStarted(
            run_id=run_id, timestamp_ms=now_ms, loop_id=spec.loop_id, iteration=nxt
        )
        return PassDecision([started], None, None)
    if spec.on_max_reached == "return-last":
        return PassDecision([_finished(spec, run_id, now_ms, "max-iterations")], None, None)
    return PassDecision([], RalphMaxReachedError(spec.loop_id, spec.max_iterations), None)


def _finished(spec: LoopSpec, run_id: str, now_ms: int, reason: str) -> LoopFinished:
    return LoopFinished(
        run_id=run_id,
        timestamp_ms=now_ms,
        loop_id=spec.loop_id,
        iteration=spec.iteration,
        reason="until" if reason == "until" else "max-iterations",
    )


def continuation_events(
    state: RunState, cont: Continuing, *, now_ms: int
) -> tuple[RunContinuedAsNew, ContinuationLoaded]:
    """The old run's ``RunContinuedAsNew`` and the new run's ``ContinuationLoaded``.

    The new run carries `cont.state`, the latest output of every node (with how many
    iterations had one in the whole chain) and, for a loop's continuation, every loop's
    pass (the continuing loop at its next pass). `carriedStateSize` is the JSON size of
    all of it, in bytes.

    Raises:
        ContinuationStateTooLargeError: if that is over `MAX_CONTINUATION_BYTES`.
    """
    outputs = []
    for node_id, (best, count) in output_index(state).items():
        rec = state.nodes.get((node_id, best))
        own = rec is not None and rec.has_output
        raw = rec.output if rec is not None and own else state.carried[node_id].output
        outputs.append((node_id, best, raw, count))
    outputs_json = encode_json(outputs)
    loops_json = b"null"
    if cont.loop_id is not None:
        loops = {lid: (rec.iteration, rec.finished) for lid, rec in state.loops.items()}
        loops[cont.loop_id] = (cont.iteration, False)
        loops_json = encode_json(loops)
    size = len(cont.state) + len(outputs_json) + len(loops_json)
    if size > MAX_CONTINUATION_BYTES:
        raise ContinuationStateTooLargeError(state.run_id, size, MAX_CONTINUATION_BYTES)
    depth = state.ancestry_depth + 1
    ended = RunContinuedAsNew(
        run_id=state.run_id,
        timestamp_ms=now_ms,
        new_run_id=cont.new_run_id,
        iteration=cont.iteration,
        carried_state_size=size,
        ancestry_depth=depth,
    )
    loaded = ContinuationLoaded(
        run_id=cont.new_run_id,
        timestamp_ms=now_ms,
        from_run_id=state.run_id,
        ancestry_depth=depth,
        iteration=cont.iteration,
        state=msgspec.Raw(cont.state),
        loops=msgspec.Raw(loops_json) if cont.loop_id is not None else NULL_RAW,
        outputs=msgspec.Raw(outputs_json),
        carry_nodes=cont.loop_id is not None,
    )
    return ended, loaded
