"""The lifecycle side of `Subflow`: start, resume or read a child run; wake its parent.

`child_runner` builds the `ChildRunner` that `run_workflow` hands to its run loop
(the activation room cannot import this one). For each `Subflow` attempt it looks
at the child run's log:

- no child yet: start it, with its parent recorded (``RunStarted.parentRunId``, ...);
- finished, failed or cancelled: reuse how it ended (a finished child is never run
  again, a failed one is not resumed: its failure is the node's);
- continued as new: follow the chain (`last_of_chain`) and treat its last run as the
  child (its output is the node's; parked or crashed, that run is the one resumed);
- running with a dead owner (a crash), or parked: resume it (never a second child);
- running with a live owner in another process (e.g. the background resume that
  ``smithers approve CHILD`` started): wait until it ends or parks, then go on.

`wake_parent` is the other direction: a child resumed on its own (by a decision, a
signal, the supervisor) that ends resumes its parent if the parent parked on it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from smithers.eventstore import decode_json
from smithers.eventstore.errors import SeqConflictError, SmithersError
from smithers.eventstore.events import ChildRunEnded
from smithers.projections import SubflowParent

from ..activation import ChildOutcome, append_to_run
from ..errors import (
    ResumeClaimFailedError,
    RunNotFoundError,
    RunOwnerAliveError,
    RunStillRunningError,
)
from ..history import load_state

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from smithers.eventstore import EventStore
    from smithers.projections import RunState

    from .._clock import Clock
    from ..activation import ChildRunner, SubflowRequest
    from ._run import RunResult

__all__ = ("ENDED_STATUSES", "child_outcome", "child_runner", "last_of_chain", "next_wake_ms")

log = logging.getLogger("smithers.engine")

ENDED_STATUSES = frozenset({"finished", "failed", "cancelled", "continued"})
"""Statuses of a child run that has ended: its result is reused, it is not resumed."""
_BUSY_POLL_MS = 500
"""How often a parent looks again at a child that another live process drives (ms)."""


def next_wake_ms(state: RunState) -> int | None:
    """The earliest Unix epoch ms a parked run must be looked at again, or None. Pure.

    Its pending timers' fire times and its open event waits' timeouts.
    """
    wakes: list[int] = []
    for rec in state.nodes.values():
        if rec.timer is not None and rec.timer.state == "pending":
            wakes.append(rec.timer.fires_at_ms)
        wait = rec.wait
        if (
            rec.state == "waiting-event"
            and wait is not None
            and not wait.received
            and wait.timeout_at_ms is not None
        ):
            wakes.append(wait.timeout_at_ms)
    return min(wakes) if wakes else None


def child_outcome(state: RunState, *, output: Any = None) -> ChildOutcome:
    """How the child run `state` stands: status, output (for a finished one), error.

    `state` is the last run of the child's continue-as-new chain (`last_of_chain`);
    its id is the outcome's ``run_id``.
    """
    if state.status == "finished" and output is None:
        raw = state.outputs().get("output")
        output = decode_json(raw) if raw is not None else None
    return ChildOutcome(
        status=state.status,
        output=output if state.status == "finished" else None,
        error=state.error,
        wake_at_ms=next_wake_ms(state) if state.status.startswith("waiting-") else None,
        run_id=state.run_id,
    )


async def _state_or_none(store: EventStore, run_id: str) -> RunState | None:
    try:
        return await load_state(store, run_id)
    except RunNotFoundError:
        return None


async def last_of_chain(store: EventStore, state: RunState) -> RunState:
    """The last run of the continue-as-new chain that `state` starts. Awaits reads.

    `state` itself if it did not continue; a continued run whose next run was never
    recorded (a crash between the two) is the last one (it stays ``continued``).
    """
    seen = {state.run_id}
    while state.status == "continued" and state.continued_as_run_id:
        nxt = await _state_or_none(store, state.continued_as_run_id)
        if nxt is None or nxt.run_id in seen:
            break
        seen.add(nxt.run_id)
        state = nxt
    return state


def child_runner(
    run: Callable[..., Awaitable[RunResult]],
    *,
    store: EventStore,
    clock: Clock,
    force: bool,
    options: dict[str, Any],
) -> ChildRunner:
    """Return the `ChildRunner` of one parent activation (see the module docstring).

    Args:
        run: `run_workflow` (passed in: this module is imported by its own module).
        store: The parent's open store; the child runs in the same database.
        clock: The parent's time source.
        force: The parent's `force` (a resume taking over a child that looks alive).
        options: Keyword arguments for every child `run_workflow` call (database path,
            log dir, concurrency, hold time, tool settings, ...).
    """

    async def run_child(request: SubflowRequest) -> ChildOutcome:
        child_id = request.child_run_id
        parent = SubflowParent(
            run_id=request.parent_run_id, node_id=request.node_id, iteration=request.iteration
        )
        while True:
            state = await _state_or_none(store, child_id)
            if state is not None:
                # A child that continued as new goes on in the last run of its chain.
                state = await last_of_chain(store, state)
                if state.status in ENDED_STATUSES:
                    return child_outcome(state)
            try:
                if state is None:
                    result = await run(
                        request.workflow,
                        input=request.input,
                        run_id=child_id,
                        store=store,
                        clock=clock,
                        cancel=request.cancel,
                        subflow_of=parent,
                        **options,
                    )
                else:
                    result = await run(
                        request.workflow,
                        run_id=state.run_id,
                        resume=True,
                        force=force,
                        store=store,
                        clock=clock,
                        cancel=request.cancel,
                        subflow_of=parent,
                        **options,
                    )
            except (RunOwnerAliveError, RunStillRunningError, ResumeClaimFailedError):
                # Another live process drives the child: wait for it to end or park.
                if request.cancel.is_set():
                    raise
                await clock.sleep_ms(_BUSY_POLL_MS)
                continue
            # `result` is of the chain's last run when the child continued as new.
            state = await load_state(store, result.run_id)
            if result.status.startswith("waiting-"):
                return child_outcome(state)
            return child_outcome(state, output=result.output)

    return run_child


_WAKE_TRIES = 5
"""Reads of a busy parent's log before `wake_parent` gives up appending its request."""


async def wake_parent(
    state: RunState,
    resume: Callable[[str], Awaitable[RunResult]],
    *,
    store: EventStore,
) -> RunResult | None:
    """Wake the parent of child run `state` once the child has ended.

    For a child that a decision, a signal or the supervisor resumed on its own: its
    parent waits on it and nothing else would wake it. A parked parent is resumed; a
    live one (busy with other nodes) gets a `ChildRunEnded` request in its log, which
    its owner picks up. Either way the parent's `Subflow` node then reads the child's
    result. Errors (the parent's file is gone, another process resumed it first) are
    logged, not raised: the child's own run went well.

    Args:
        state: The child's state after its activation.
        resume: `resume_run` for a run id (with the caller's database and options).
        store: The open store.

    Returns:
        The parent's `RunResult`, or None if there was nothing to do or it failed.
    """
    parent = state.subflow_of
    if parent is None or state.status not in ENDED_STATUSES:
        return None
    for _ in range(_WAKE_TRIES):
        parent_state = await _state_or_none(store, parent.run_id)
        if parent_state is None:
            return None
        rec = parent_state.node(parent.node_id, parent.iteration)
        if rec is None or not rec.state.startswith("waiting-"):
            return None
        if parent_state.status.startswith("waiting-"):
            break  # parked: resume it
        if parent_state.status != "running":
            return None
        request = ChildRunEnded(
            run_id=parent.run_id,
            timestamp_ms=state.updated_at_ms or 0,
            node_id=parent.node_id,
            iteration=parent.iteration,
            child_run_id=state.run_id,
            status=state.status,
        )
        try:
            await append_to_run(store, parent.run_id, [request], expected_seq=parent_state.seq)
        except SeqConflictError:
            continue  # the parent moved on (maybe parked): look again
        return None
    else:
        return None
    try:
        return await resume(parent.run_id)
    except SmithersError as e:
        log.warning(
            "could not resume run %s after its child %s: %s", parent.run_id, state.run_id, e
        )
        return None
