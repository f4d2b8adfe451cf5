"""`ctx`, what a workflow builder reads, and `TaskContext`, what a task callable gets.

`WorkflowContext` records which outputs each render reads: a completion whose output
no render read cannot change the tree, so the engine skips the re-render (DESIGN §11).
The builder must be a pure function of `ctx` for that to be sound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from smithers.eventstore import decode_json, encode_json

from ..errors import (
    HeartbeatPayloadNotJsonSerializableError,
    HeartbeatPayloadTooLargeError,
    MissingOutputError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from smithers.projections import RunState

__all__ = ("MAX_HEARTBEAT_BYTES", "TaskContext", "WorkflowContext")

MAX_HEARTBEAT_BYTES = 1_000_000
"""Largest heartbeat payload, in bytes of JSON (Smithers' persisted checkpoint limit)."""

T = TypeVar("T")


class WorkflowContext:
    """The builder's view of a run: input, run id and recorded outputs (DESIGN §12).

    Attributes:
        run_id: The run's id.
        input: The run's input: an instance of the workflow's input type if it declares
            one, else a dict.
        iteration: Current loop iteration (0 outside loops).
        reads: Node ids whose outputs this context was asked for.
    """

    __slots__ = ("_cache", "_state", "input", "iteration", "reads", "run_id")

    def __init__(self, *, run_id: str, input: Any, state: RunState, iteration: int = 0) -> None:
        self.run_id = run_id
        self.input = input
        self.iteration = iteration
        self.reads: set[str] = set()
        self._state = state
        self._cache: dict[tuple[str, int, Any], Any] = {}

    def _get(self, schema: type[T] | Any, node_id: str, iteration: int) -> T | None:
        self.reads.add(node_id)
        key = (node_id, iteration, schema)
        if key in self._cache:
            return self._cache[key]  # type: ignore[no-any-return]
        rec = self._state.nodes.get((node_id, iteration))
        if rec is None or not rec.has_output:
            return None
        value = decode_json(rec.output, schema)
        self._cache[key] = value
        return value  # type: ignore[no-any-return]

    def output_maybe(
        self, schema: type[T] | Any, node_id: str, *, iteration: int | None = None
    ) -> T | None:
        """Return the output of `node_id` decoded as `schema`, or None if there is none yet."""
        return self._get(schema, node_id, self.iteration if iteration is None else iteration)

    def output(self, schema: type[T] | Any, node_id: str, *, iteration: int | None = None) -> T:
        """Return the output of `node_id` decoded as `schema`.

        Raises:
            MissingOutputError: if the node has no output (yet) in that iteration.
        """
        it = self.iteration if iteration is None else iteration
        value = self._get(schema, node_id, it)
        if value is None:
            rec = self._state.nodes.get((node_id, it))
            if rec is None or not rec.has_output:
                raise MissingOutputError(node_id, it)
        return value  # type: ignore[return-value]

    def latest(self, schema: type[T] | Any, node_id: str) -> T | None:
        """Return the output of `node_id` in its highest finished iteration, or None."""
        self.reads.add(node_id)
        best = -1
        for (nid, it), rec in self._state.nodes.items():
            if nid == node_id and rec.has_output and it > best:
                best = it
        return None if best < 0 else self._get(schema, node_id, best)

    def iteration_count(self, schema: type[T] | Any, node_id: str) -> int:
        """Return how many iterations of `node_id` have an output."""
        self.reads.add(node_id)
        return sum(
            1 for (nid, _), rec in self._state.nodes.items() if nid == node_id and rec.has_output
        )


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
    """

    __slots__ = (
        "_beat",
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
    ) -> None:
        self.run_id = run_id
        self.node_id = node_id
        self.iteration = iteration
        self.attempt = attempt
        self.idempotency_key = f"{run_id}:{node_id}:{iteration}"
        self.input = input
        self.last_heartbeat = last_heartbeat
        self._beat = beat

    def heartbeat(self, data: Any = None) -> None:
        """Signal the task is alive, optionally with a checkpoint payload (JSON-able).

        Safe to call from a sync task (worker thread) or an async one; cheap to call
        often: the engine records at most a couple of ``TaskHeartbeat`` events a second.

        Raises:
            HeartbeatPayloadNotJsonSerializableError: if `data` cannot be JSON-encoded.
            HeartbeatPayloadTooLargeError: if the JSON is over 1 MB.
        """
        raw: msgspec.Raw | None = None
        if data is not None:
            try:
                encoded = encode_json(data)
            except (TypeError, msgspec.EncodeError) as e:
                raise HeartbeatPayloadNotJsonSerializableError(str(e), type(data).__name__) from e
            if len(encoded) > MAX_HEARTBEAT_BYTES:
                raise HeartbeatPayloadTooLargeError(len(encoded), MAX_HEARTBEAT_BYTES)
            raw = msgspec.Raw(encoded)
            self.last_heartbeat = decode_json(encoded)
        if self._beat is not None:
            self._beat(raw)
