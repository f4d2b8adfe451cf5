"""Events of loop passes and continue-as-new.

Part of the event catalogue; import these from `smithers.eventstore.events`, which
re-exports every event (the tag on disk is the class name, not the module).
"""

from __future__ import annotations

from typing import Literal

import msgspec  # noqa: TC002 (msgspec resolves Struct annotations at run time)

from ._event_base import NULL_RAW, Event

__all__ = ("ContinuationLoaded", "LoopFinished", "LoopIterationStarted", "LoopRewound")


# --------------------------------------------------------------------------- loops
# Loop passes and continue-as-new (issue 9). Loop ids are *scoped* ids: a Loop inside
# another Loop's pass (separated by a Sequence/Parallel/Branch) has the outer pass in
# its id, ``"<id>@<outer iteration>"`` (see `smithers.engine.Loop`).


class LoopIterationStarted(Event, frozen=True, kw_only=True):
    """A pass of a Loop began (as Smithers' ``<Ralph>`` iteration).

    Recorded when a render first mounts the loop (iteration 0) and each time a pass
    ends and the loop goes on (``until`` false, fewer than ``max_iterations`` passes).
    The run's state then mounts the loop's tasks keyed ``(node_id, iteration)``.
    """

    loop_id: str
    """The loop's scoped id."""
    iteration: int
    """The pass that began, from 0."""


class LoopFinished(Event, frozen=True, kw_only=True):
    """A Loop is done: its last pass ended and it does not go on."""

    loop_id: str
    """The loop's scoped id."""
    iteration: int
    """The last pass that ran, from 0."""
    reason: Literal["until", "max-iterations"]
    """``"until"``: the loop's ``until`` was true when the pass ended;
    ``"max-iterations"``: ``max_iterations`` passes ran (``on_max_reached="return-last"``;
    with ``"fail"`` the run fails with ``RALPH_MAX_REACHED`` instead)."""


class LoopRewound(Event, frozen=True, kw_only=True):
    """A Loop went back to an earlier pass (a retry-task of a node in that pass).

    The loop is at `iteration` again and not finished; every iteration above
    `iteration` of `node_ids` is put back to pending with no output (attempts kept), so
    later passes run again.
    """

    loop_id: str
    """The loop's scoped id."""
    iteration: int
    """The pass the loop is back at."""
    node_ids: tuple[str, ...] = ()
    """The loop's node ids whose later passes are reset."""


class ContinuationLoaded(Event, frozen=True, kw_only=True):
    """A run continued from another run (continue-as-new): what it carries over.

    Recorded right after the new run's first `RunStarted`. The previous run ended
    ``continued`` with `RunContinuedAsNew` naming this run.
    """

    from_run_id: str
    """The run this one continues."""
    ancestry_depth: int
    """How many continuations lead to this run (1 for the first continuation)."""
    iteration: int = 0
    """The pass the continuing loop resumes at (0 for ``ContinueAsNew`` outside loops)."""
    state: msgspec.Raw = NULL_RAW
    """The carried state as JSON (``ctx.continuation``), JSON null if none."""
    loops: msgspec.Raw = NULL_RAW
    """The loops carried over, JSON ``{scopedLoopId: [iteration, finished]}``."""
    outputs: msgspec.Raw = NULL_RAW
    """The latest output of each node, JSON ``[[nodeId, iteration, output, count]]``
    (`count`: iterations with an output so far in the chain)."""
    carry_nodes: bool = False
    """True when a Loop's ``continue_as_new_every`` continued the run: the carried
    outputs are also finished nodes of this run, so the run goes on where it was (tasks
    done before are not run again). False for ``ContinueAsNew``: the run starts afresh
    and only ``ctx.latest``/``ctx.iteration_count`` see them."""
