"""`ctx`, what a workflow builder reads, and `TaskContext`, what a task callable gets.

`WorkflowContext` records which outputs each render reads: a completion whose output
no render read cannot change the tree, so the engine skips the re-render (DESIGN §11).
The builder must be a pure function of `ctx` for that to be sound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from smithers.eventstore import JsonValueError, decode_json, encode_json_strict
from smithers.eventstore.errors import NotOpenError
from smithers.eventstore.events import NULL_RAW

from ..errors import (
    HeartbeatPayloadNotJsonSerializableError,
    HeartbeatPayloadTooLargeError,
    MissingOutputError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from smithers.projections import RunState

__all__ = (
    "MAX_HEARTBEAT_BYTES",
    "TaskContext",
    "WorkflowContext",
    "active_iteration",
    "output_index",
)

MAX_HEARTBEAT_BYTES = 1_000_000
"""Largest heartbeat payload, in bytes of JSON (Smithers' persisted checkpoint limit)."""

T = TypeVar("T")


class WorkflowContext:
    """The builder's view of a run: input, run id and recorded outputs (DESIGN §12).

    Attributes:
        run_id: The run's id.
        input: The run's input: an instance of the workflow's input type if it declares
            one, else a dict.
        iteration: The pass of the loop running now: the unfinished Loop whose pass
            started last (0 outside loops, and once every loop is done). With loops
            running side by side, use `loop_iteration`.
        reads: Node ids whose outputs this context was asked for.
    """

    __slots__ = ("_cache", "_index", "_state", "input", "iteration", "reads", "run_id")

    def __init__(
        self, *, run_id: str, input: Any, state: RunState, iteration: int | None = None
    ) -> None:
        self.run_id = run_id
        self.input = input
        self.iteration = active_iteration(state) if iteration is None else iteration
        self.reads: set[str] = set()
        self._state = state
        self._cache: dict[tuple[str, int, Any], Any] = {}
        self._index: dict[str, tuple[int, int]] | None = None

    @property
    def continuation(self) -> Any:
        """The state carried by continue-as-new into this run (decoded JSON), or None."""
        raw = self._state.continuation
        return None if raw == NULL_RAW else decode_json(raw)

    def loop_iteration(self, loop_id: str) -> int:
        """Return the current (or, once done, the last) pass of loop `loop_id`, from 0.

        `loop_id` is the scoped id for a scoped loop (``"<id>@<outer iteration>"``).
        A loop not started yet is at pass 0.
        """
        rec = self._state.loops.get(loop_id)
        return rec.iteration if rec is not None else 0

    def _get(self, schema: type[T] | Any, node_id: str, iteration: int) -> T | None:
        self.reads.add(node_id)
        key = (node_id, iteration, schema)
        if key in self._cache:
            return self._cache[key]  # type: ignore[no-any-return]
        rec = self._state.nodes.get((node_id, iteration))
        if rec is not None and rec.has_output:
            raw = rec.output
        else:
            carried = self._state.carried.get(node_id)
            if carried is None or carried.iteration != iteration:
                return None
            raw = carried.output
        value = decode_json(raw, schema)
        self._cache[key] = value
        return value  # type: ignore[no-any-return]

    def _has(self, node_id: str, iteration: int) -> bool:
        rec = self._state.nodes.get((node_id, iteration))
        if rec is not None and rec.has_output:
            return True
        carried = self._state.carried.get(node_id)
        return carried is not None and carried.iteration == iteration

    def output_maybe(
        self, schema: type[T] | Any, node_id: str, *, iteration: int | None = None
    ) -> T | None:
        """Return the output of `node_id` decoded as `schema`, or None if there is none yet.

        `iteration` defaults to `iteration` (the running loop's pass).
        """
        return self._get(schema, node_id, self.iteration if iteration is None else iteration)

    def output(self, schema: type[T] | Any, node_id: str, *, iteration: int | None = None) -> T:
        """Return the output of `node_id` decoded as `schema`.

        `iteration` defaults to `iteration` (the running loop's pass).

        Raises:
            MissingOutputError: if the node has no output (yet) in that iteration.
        """
        it = self.iteration if iteration is None else iteration
        value = self._get(schema, node_id, it)
        if value is None and not self._has(node_id, it):
            raise MissingOutputError(node_id, it)
        return value  # type: ignore[return-value]

    def _outputs_index(self) -> dict[str, tuple[int, int]]:
        """`output_index` of the state, built once per render (one pass over the nodes)."""
        if self._index is None:
            self._index = output_index(self._state)
        return self._index

    def latest(self, schema: type[T] | Any, node_id: str) -> T | None:
        """Return the output of `node_id` in its highest iteration with one, or None.

        Outputs carried from earlier runs of a continue-as-new chain count.
        """
        self.reads.add(node_id)
        best = self._outputs_index().get(node_id, (-1, 0))[0]
        return None if best < 0 else self._get(schema, node_id, best)

    def iteration_count(self, schema: type[T] | Any, node_id: str) -> int:
        """Return how many iterations of `node_id` have an output.

        Iterations of earlier runs of a continue-as-new chain count.
        """
        self.reads.add(node_id)
        return self._outputs_index().get(node_id, (-1, 0))[1]


def output_index(state: RunState) -> dict[str, tuple[int, int]]:
    """``node_id -> (highest iteration with an output, iterations with one)``. No I/O.

    Counts the outputs carried from earlier runs of a continue-as-new chain
    (`RunState.carried`); O(nodes).
    """
    index: dict[str, tuple[int, int]] = {}
    for (nid, it), rec in state.nodes.items():
        if rec.has_output:
            best, count = index.get(nid, (-1, 0))
            index[nid] = (max(best, it), count + 1)
    for nid, carried in state.carried.items():
        best, count = index.get(nid, (-1, 0))
        own = state.nodes.get((nid, carried.iteration))
        # The carried output may also be a node of this run: count it once.
        counted = carried.as_node and own is not None and own.has_output
        extra = carried.count - (1 if counted else 0)
        index[nid] = (max(best, carried.iteration), count + extra)
    return index


def active_iteration(state: RunState) -> int:
    """The pass of the unfinished loop whose pass started last in `state`, else 0. No I/O."""
    for rec in reversed(state.loops.values()):
        if not rec.finished:
            return rec.iteration
    return 0


class TaskContext:
    """What a task's `run` callable receives when it takes one argument.

    Attributes:
        run_id: The run's id.
        node_id: The task's id.
        iteration: Loop iteration (0 outside loops).
        attempt: Attempt number, from 1.
        idempotency_key: ``"<run_id>:<node_id>:<iteration>"``, the same for every attempt
            of this node: pass it to external systems to make side effects at-most-once.
        input: The run's input (as `ctx.input`).
        last_heartbeat: The payload of the latest heartbeat recorded for this node by an
            earlier attempt (or earlier in this one), decoded JSON; None if none. Resume
            long work from it.
        tools: The attempt's tool sandbox and journal, a
            `smithers.engine.tools.ToolContext` (see `tools`).
    """

    __slots__ = (
        "_beat",
        "_make_tools",
        "_tools",
        "attempt",
        "idempotency_key",
        "input",
        "iteration",
        "last_heartbeat",
        "node_id",
        "run_id",
    )

    def __init__(
        self,
        *,
        run_id: str,
        node_id: str,
        iteration: int,
        attempt: int,
        input: Any,
        last_heartbeat: Any = None,
        beat: Callable[[msgspec.Raw | None], None] | None = None,
        make_tools: Callable[[TaskContext], Any] | None = None,
    ) -> None:
        self.run_id = run_id
        self.node_id = node_id
        self.iteration = iteration
        self.attempt = attempt
        self.idempotency_key = f"{run_id}:{node_id}:{iteration}"
        self.input = input
        self.last_heartbeat = last_heartbeat
        self._beat = beat
        self._make_tools = make_tools
        self._tools: Any = None

    @property
    def tools(self) -> Any:
        """The `ToolContext` of this attempt: the run's sandbox, journaled into its log.

        Built on first use (no filesystem work for tasks that use no tool), then the
        same object for the whole attempt. Its root, network switch and limits are the
        run's (``run_workflow(root_dir=…, allow_network=…, max_output_bytes=…,
        tool_timeout_ms=…)``, ``smithers up --root …``); every call made with it is
        recorded as ``ToolCallStarted``/``ToolCallFinished`` of this attempt. Call the
        tools with `smithers.tools` (``await smithers.tools.read(ctx, path=…)``).

        Raises:
            RuntimeError: if the context was built outside a run (no sandbox given).
            ToolPathInvalidError: if the run's root is no longer an existing folder.
        """
        if self._tools is None:
            if self._make_tools is None:
                raise NotOpenError("This TaskContext has no tool sandbox (not built by a run)")
            self._tools = self._make_tools(self)
        return self._tools

    def heartbeat(self, data: Any = None) -> None:
        """Signal the task is alive, optionally with a checkpoint payload (JSON-able).

        Safe to call from a sync task (worker thread) or an async one; cheap to call
        often: the engine records at most a couple of ``TaskHeartbeat`` events a second.

        Raises:
            HeartbeatPayloadNotJsonSerializableError: if `data` cannot be JSON-encoded
                (a lone surrogate, NaN or infinity, a tree deeper than 200 included).
            HeartbeatPayloadTooLargeError: if the JSON is over 1 MB.
        """
        raw: msgspec.Raw | None = None
        if data is not None:
            try:
                encoded = encode_json_strict(data)
            except JsonValueError as e:
                raise HeartbeatPayloadNotJsonSerializableError(e.reason, type(data).__name__) from e
            except (TypeError, msgspec.EncodeError) as e:
                raise HeartbeatPayloadNotJsonSerializableError(str(e), type(data).__name__) from e
            if len(encoded) > MAX_HEARTBEAT_BYTES:
                raise HeartbeatPayloadTooLargeError(len(encoded), MAX_HEARTBEAT_BYTES)
            raw = msgspec.Raw(encoded)
            self.last_heartbeat = decode_json(encoded)
        if self._beat is not None:
            self._beat(raw)
