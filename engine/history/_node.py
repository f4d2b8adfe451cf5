"""One node's whole story: its attempts, errors, heartbeats, outputs and events.

What ``smithers node RUN NODE`` and `RunHandle.node` show. The attempts and outputs
are the folded state's (a rewind's abandoned attempts no longer count); the events are
the log's, all of them (a rewind keeps its later history for audit, and a fork's story
starts in its parent's log, up to the fork point).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec
from smithers.eventstore.events import (
    NULL_RAW,
    ErrorInfo,
    Event,
    TaskHeartbeat,
)

from .._stores import existing_store
from ..errors import NodeNotFoundError
from ._queries import load_run, read_events

if TYPE_CHECKING:
    from smithers.eventstore import EventStore, StoredEvent
    from smithers.projections import AttemptRecord, NodeRecord, RunState

__all__ = ("AttemptDetail", "HeartbeatDetail", "IterationDetail", "NodeDetail", "node_detail")

DbPath = str | os.PathLike[str] | None


class HeartbeatDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One `TaskHeartbeat` of an attempt."""

    seq: int
    """Seq of the heartbeat event in its run's log."""
    timestamp_ms: int
    """Unix epoch milliseconds when it was recorded."""
    data_size_bytes: int = 0
    """Size of the heartbeat's data in bytes (0 without data)."""
    data: msgspec.Raw = NULL_RAW
    """The heartbeat's data as JSON (``null`` without data)."""


class AttemptDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt of a node in one iteration."""

    attempt: int
    """Attempt number, from 1."""
    state: str
    """``running``, ``finished``, ``failed`` or ``cancelled``."""
    started_at_ms: int
    """Unix epoch milliseconds when it started."""
    finished_at_ms: int | None = None
    """Unix epoch milliseconds when it ended; None while running."""
    duration_ms: int | None = None
    """Milliseconds from start to end; None while running."""
    error: ErrorInfo | None = None
    """Why it failed (with its traceback and file:line in user code), or None."""
    cancel_reason: str | None = None
    """Why it was cancelled (``abandoned``, ``unmounted``, ...), or None."""
    heartbeats: tuple[HeartbeatDetail, ...] = ()
    """Its heartbeats, oldest first."""


class IterationDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A node in one loop iteration (0 outside loops): its state, attempts and output."""

    iteration: int
    """Loop iteration number (0 outside loops)."""
    state: str
    """The node's state: ``pending``, ``running``, ``finished``, ``failed``, ..."""
    label: str | None = None
    """The task's label, or None."""
    skip_reason: str | None = None
    """Why it was skipped, or None."""
    attempts: tuple[AttemptDetail, ...] = ()
    """Every attempt that counts, oldest first."""
    duration_ms: int | None = None
    """Milliseconds spent in its attempts (the sum of the ended ones), None if none ended."""
    has_output: bool = False
    """Whether it has an output."""
    output: msgspec.Raw = NULL_RAW
    """Its output as JSON (``null`` without one)."""


class NodeDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A node's whole story in a run, as `node_detail` returns it."""

    run_id: str
    """The run."""
    node_id: str
    """The node."""
    iterations: tuple[IterationDetail, ...] = ()
    """The node in each iteration the state knows (or the one asked for), in order."""
    events: tuple[tuple[StoredEvent, Event], ...] = ()
    """Every event about the node (or that iteration), in log order: ``(stored
    envelope, decoded event)``; for a fork, its ancestors' events up to the fork point
    come first (their envelopes carry the ancestor's run id)."""

    @property
    def last_error(self) -> ErrorInfo | None:
        """The error of the latest failed attempt of the latest iteration, or None."""
        for it in reversed(self.iterations):
            for attempt in reversed(it.attempts):
                if attempt.error is not None:
                    return attempt.error
        return None


def _heartbeats_of(
    attempt: AttemptRecord, iteration: int, beats: list[tuple[StoredEvent, TaskHeartbeat]]
) -> tuple[HeartbeatDetail, ...]:
    # An attempt number can repeat after a rewind: its own beats are those in its window.
    end = attempt.finished_at_ms
    return tuple(
        HeartbeatDetail(
            seq=stored.seq,
            timestamp_ms=beat.timestamp_ms,
            data_size_bytes=beat.data_size_bytes,
            data=beat.data,
        )
        for stored, beat in beats
        if beat.iteration == iteration
        and beat.attempt == attempt.attempt
        and beat.timestamp_ms >= attempt.started_at_ms
        and (end is None or beat.timestamp_ms <= end)
    )


def _iteration(rec: NodeRecord, beats: list[tuple[StoredEvent, TaskHeartbeat]]) -> IterationDetail:
    attempts = tuple(
        AttemptDetail(
            attempt=a.attempt,
            state=a.state,
            started_at_ms=a.started_at_ms,
            finished_at_ms=a.finished_at_ms,
            duration_ms=a.duration_ms,
            error=a.error,
            cancel_reason=a.cancel_reason,
            heartbeats=_heartbeats_of(a, rec.iteration, beats),
        )
        for a in rec.attempts
    )
    ended = [a.duration_ms for a in attempts if a.duration_ms is not None]
    return IterationDetail(
        iteration=rec.iteration,
        state=rec.state,
        label=rec.label,
        skip_reason=rec.skip_reason,
        attempts=attempts,
        duration_ms=sum(ended) if ended else None,
        has_output=rec.has_output,
        output=rec.output,
    )


def _iteration_not_found(
    run_id: str, node_id: str, iteration: int, known: list[int]
) -> NodeNotFoundError:
    err = NodeNotFoundError(run_id, node_id)
    err.summary = f"Node {node_id!r} of run {run_id!r} has no iteration {iteration}."
    err.args = (err.summary,)
    err.details["iteration"] = iteration
    err.hint = f"Its iterations: {', '.join(map(str, known))}." if known else err.hint
    return err


def build_node_detail(
    state: RunState,
    node_id: str,
    events: list[tuple[StoredEvent, Event]],
    *,
    iteration: int | None = None,
) -> NodeDetail:
    """Assemble a `NodeDetail` from a run's folded state and its events. No I/O.

    Args:
        state: The run's state now.
        node_id: The node.
        events: The run's events about `node_id` (any iteration), in log order.
        iteration: Only this loop iteration; None for all of them.

    Returns:
        The node's story.

    Raises:
        NodeNotFoundError: if neither the state nor the events know `node_id`, or the
            node has no iteration `iteration` (the hint lists its iterations).
    """
    records = sorted(
        (rec for (nid, _), rec in state.nodes.items() if nid == node_id),
        key=lambda r: r.iteration,
    )
    if not records and not events:
        known = state.node_ids()
        raise NodeNotFoundError(state.run_id, node_id, known)
    if iteration is not None:
        seen = sorted({r.iteration for r in records} | {_iteration_of(e) for _, e in events})
        if iteration not in seen:
            raise _iteration_not_found(state.run_id, node_id, iteration, seen)
        records = [r for r in records if r.iteration == iteration]
        events = [(s, e) for s, e in events if _iteration_of(e) == iteration]
    beats = [(s, e) for s, e in events if isinstance(e, TaskHeartbeat)]
    return NodeDetail(
        run_id=state.run_id,
        node_id=node_id,
        iterations=tuple(_iteration(rec, beats) for rec in records),
        events=tuple(events),
    )


def _iteration_of(event: Event) -> int:
    value = getattr(event, "iteration", 0)
    return value if isinstance(value, int) else 0


async def node_detail(
    run_id: str,
    node_id: str,
    *,
    iteration: int | None = None,
    db: DbPath = None,
    store: EventStore | None = None,
) -> NodeDetail:
    """Return a node's whole story in a run. Awaits I/O.

    Every attempt (start, end, duration in ms, error with its traceback and file:line,
    cancel reason, heartbeats), the output of each iteration, and every event about the
    node, a fork's ancestors' included (see `NodeDetail`).

    Args:
        run_id: The run's id.
        node_id: The node's id.
        iteration: Only this loop iteration; None for all of them.
        db: Database path (see `list_runs`).
        store: An open `EventStore` to use instead of `db` (not closed here).

    Returns:
        A `NodeDetail`.

    Raises:
        RunNotFoundError: if the run has no events.
        NodeNotFoundError: if the run has no node `node_id`, or not in iteration
            `iteration`.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        DatabaseQueryError: if the database cannot be read.
    """
    async with existing_store(db, store) as store:
        state = await load_run(run_id, store=store)
        events = await read_events(run_id, store=store, node_id=node_id, follow_ancestry=True)
    return build_node_detail(state, node_id, events, iteration=iteration)
