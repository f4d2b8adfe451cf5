"""`Loop` and `ContinueAsNew`: repeated passes and runs that go on as new runs (issue 9).

As Smithers' ``<Ralph>``/``<Loop>`` and Temporal's continue-as-new. Components are plain
descriptions: passes are decided by the engine (`smithers.engine.activation`) and
recorded as ``LoopIterationStarted``/``LoopFinished`` events.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from smithers.eventstore import encode_json

from ..errors import InvalidContinuationStateError, UnsupportedFeatureError
from ._components import Component

__all__ = ("MAX_CONTINUATION_BYTES", "ContinueAsNew", "Loop")

MAX_CONTINUATION_BYTES = 10 * 1024 * 1024
"""Largest state a continue-as-new carries, in bytes of JSON (10 MB)."""


class Loop(Component):
    """Children run as a Sequence, pass after pass, as Smithers' ``<Ralph>``.

    Each pass is an iteration: the tasks inside are keyed ``(node_id, iteration)``, so
    every pass keeps its own attempts and outputs in the log. When every child of pass
    ``i`` is done the engine renders again and reads `until` from that render: true, the
    loop is done (``LoopFinished{reason: "until"}``); else, if ``i + 1 <
    max_iterations``, pass ``i + 1`` starts (``LoopIterationStarted``); else
    `on_max_reached` decides: ``"return-last"`` ends the loop
    (``LoopFinished{reason: "max-iterations"}``), ``"fail"`` fails the run with
    ``RALPH_MAX_REACHED``. Pass 0 always runs (`until` is read when a pass ends).

    In the builder, ``ctx.iteration`` is the pass of the loop running now (0 outside
    loops), ``ctx.loop_iteration(loop_id)`` the pass of a given loop, and
    ``ctx.output_maybe(schema, id)`` defaults to ``ctx.iteration``.

    Nesting: a Loop directly inside a Loop is ``NESTED_LOOP``. A Loop inside a
    Sequence/Parallel/Branch inside a Loop is *scoped*: it restarts on every outer pass,
    and its id and the ids of the tasks inside it get the outer pass as a suffix,
    ``"<id>@<outer iteration>"`` (e.g. task ``"fix"`` of an inner loop in outer pass 2 is
    node ``"fix@2"``), so outputs never collide. Read them with that id. While an inner
    loop runs, ``ctx.iteration`` is *its* pass: for the outer pass use
    ``ctx.loop_iteration(outer_id)`` (and pass ``iteration=`` to ``ctx.output_maybe``).

    Args:
        id: The loop's id (unique among loops; not a task id).
        *children: Components of one pass, run in sequence (None/False skipped).
        until: Whether the loop is done, computed by the builder from ``ctx``.
        max_iterations: Most passes (>= 1).
        on_max_reached: ``"return-last"`` (the loop ends, the run goes on) or ``"fail"``.
        continue_as_new_every: Every this many passes (counting from the loop's pass 0
            in the first run of the chain), the run ends ``continued`` and a new run goes
            on with the next pass (see `ContinueAsNew`). None: never.

    Raises:
        UnsupportedFeatureError: (``INVALID_INPUT``) if `id` is not a non-empty string,
            there are no children, `max_iterations` < 1, `on_max_reached` is unknown, or
            `continue_as_new_every` < 1.
    """

    __slots__ = (
        "children",
        "continue_as_new_every",
        "id",
        "max_iterations",
        "on_max_reached",
        "until",
    )

    def __init__(
        self,
        id: str,
        *children: Any,
        until: Any = False,
        max_iterations: int = 5,
        on_max_reached: Literal["return-last", "fail"] = "return-last",
        continue_as_new_every: int | None = None,
    ) -> None:
        if not isinstance(id, str) or not id:
            raise UnsupportedFeatureError(
                f"Loop needs a non-empty string id, got {id!r}.", details={"loopId": repr(id)}
            )
        if not children or all(c is None or c is False for c in children):
            raise UnsupportedFeatureError(
                f"Loop {id!r} has no children: give it the tasks of one pass.",
                details={"loopId": id},
            )
        if (
            isinstance(max_iterations, bool)
            or not isinstance(max_iterations, int)
            or (max_iterations < 1)
        ):
            raise UnsupportedFeatureError(
                f"Loop {id!r}: max_iterations must be an int >= 1, got {max_iterations!r}.",
                details={"loopId": id, "maxIterations": repr(max_iterations)},
            )
        if on_max_reached not in ("return-last", "fail"):
            raise UnsupportedFeatureError(
                f"Loop {id!r}: on_max_reached must be 'return-last' or 'fail', got "
                f"{on_max_reached!r}.",
                details={"loopId": id, "onMaxReached": repr(on_max_reached)},
            )
        every = continue_as_new_every
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every < 1
        ):
            raise UnsupportedFeatureError(
                f"Loop {id!r}: continue_as_new_every must be an int >= 1 or None, got {every!r}.",
                details={"loopId": id},
            )
        self.id = id
        self.children = tuple(children)
        self.until = bool(until)
        self.max_iterations = max_iterations
        self.on_max_reached: Literal["return-last", "fail"] = on_max_reached
        self.continue_as_new_every = every

    def __repr__(self) -> str:
        return f"Loop({self.id!r}, max_iterations={self.max_iterations})"


class ContinueAsNew(Component):
    """End the run ``continued`` and start it afresh as a new run carrying `state`.

    As Temporal's continue-as-new. When the scheduler reaches it (in sequence order),
    nothing new starts; once running tasks end, the run records
    ``RunContinuedAsNew{newRunId, iteration, carriedStateSize, ancestryDepth}`` and a
    new run (id ``<first run id>:cont:<depth>:<6 hex>``) starts at once in the same
    process with the same input. Its log starts fresh and its tasks run again; its
    builder sees `state` as ``ctx.continuation``, and ``ctx.latest``/
    ``ctx.iteration_count`` see the previous runs' outputs. The builder must stop
    returning ``ContinueAsNew`` at some point (e.g. from ``ctx.continuation``).
    ``run_workflow`` returns the last run of the chain.

    A Loop's ``continue_as_new_every`` continues differently: the new run goes on
    where the old one was (finished tasks stay finished, the loop resumes at its next
    pass), carrying the previous ``ctx.continuation``.

    Args:
        state: JSON-serialisable value carried to the next run (at most 10 MB of JSON
            with the carried outputs, else the run fails with
            ``CONTINUATION_STATE_TOO_LARGE``).

    Raises:
        InvalidContinuationStateError: if `state` is not JSON-serialisable.
    """

    __slots__ = ("state", "state_json")

    def __init__(self, state: Any = None) -> None:
        try:
            raw = encode_json(state)
        except (TypeError, msgspec.EncodeError, ValueError) as e:
            raise InvalidContinuationStateError(type(state).__name__, str(e)) from e
        self.state = state
        self.state_json: bytes = raw
        """The state as canonical JSON bytes."""

    def __repr__(self) -> str:
        return f"ContinueAsNew({len(self.state_json)} bytes)"
