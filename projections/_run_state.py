"""`RunState`: the read model of one run, folded from its events.

The fold is pure: it reads only the events (their timestamps included), never a clock,
the disk or randomness, so any moment of a run is rebuilt by folding a prefix of its log.

Node records and attempts are frozen Structs replaced on change; the containers
(`nodes`, `frames`) are updated in place so one event costs O(1) whatever the run's
size (a fully persistent copy per event would make a 10,000-task run quadratic). Use
`RunState.copy()` for an independent snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec
from smithers.eventstore import decode_event
from smithers.eventstore.events import (
    NULL_RAW,
    ErrorInfo,
    Event,
    FrameCommitted,
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodePending,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeWaitingApproval,
    NodeWaitingTimer,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunForked,
    RunStarted,
    RunStatusChanged,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from smithers.eventstore import StoredEvent

__all__ = (
    "DONE_NODE_STATES",
    "AttemptRecord",
    "FrameRecord",
    "NodeKey",
    "NodeRecord",
    "NodeStateName",
    "RunState",
    "apply_event",
    "fold",
    "fold_stored",
)

NodeStateName = Literal[
    "pending",
    "running",
    "finished",
    "failed",
    "cancelled",
    "skipped",
    "waiting-approval",
    "waiting-timer",
]
"""States of a node, as Smithers' node states."""

NodeKey = tuple[str, int]
"""``(node_id, iteration)``."""

DONE_NODE_STATES: frozenset[str] = frozenset({"finished", "skipped"})


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One attempt of a node."""

    attempt: int
    """Attempt number, from 1."""
    state: Literal["running", "finished", "failed", "cancelled"]
    started_at_ms: int
    """Unix epoch ms of NodeStarted."""
    finished_at_ms: int | None = None
    """Unix epoch ms of the attempt's end, None while running."""
    error: ErrorInfo | None = None
    """The failure, for failed attempts."""
    cancel_reason: str | None = None
    """Why the attempt was cancelled (``"cancelled"``, ``"abandoned"``, ``"unmounted"``)."""

    @property
    def duration_ms(self) -> int | None:
        """Milliseconds from start to end, None while running."""
        if self.finished_at_ms is None:
            return None
        return self.finished_at_ms - self.started_at_ms


class NodeRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One node in one iteration."""

    node_id: str
    iteration: int = 0
    state: NodeStateName = "pending"
    attempts: tuple[AttemptRecord, ...] = ()
    output: msgspec.Raw = NULL_RAW
    """Validated output JSON of the last finished attempt (JSON null if none)."""
    has_output: bool = False
    """True once an attempt finished (outputs may legitimately be JSON null)."""
    label: str | None = None
    skip_reason: str | None = None
    next_attempt_delay_ms: int | None = None
    """Backoff announced by NodeRetrying before the next attempt, None otherwise."""

    @property
    def attempt_count(self) -> int:
        """Number of attempts started so far."""
        return len(self.attempts)

    @property
    def last_error(self) -> ErrorInfo | None:
        """The error of the last failed attempt, if any."""
        for a in reversed(self.attempts):
            if a.error is not None:
                return a.error
        return None


class FrameRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A committed render."""

    frame_no: int
    seq: int
    """Seq of the FrameCommitted event."""
    xml_hash: str
    timestamp_ms: int


class RunState(msgspec.Struct, kw_only=True):
    """Everything known about a run up to `seq` (DESIGN §5).

    Built by `fold`; the engine keeps one and folds every event it appends.
    """

    run_id: str
    seq: int = 0
    """Seq of the last event folded in (0: nothing yet)."""
    status: str = "pending"
    """Smithers `RunStatus`, or ``"pending"`` before the first RunStarted."""
    workflow_name: str = ""
    workflow_path: str | None = None
    workflow_hash: str | None = None
    input: msgspec.Raw = NULL_RAW
    config: msgspec.Raw = NULL_RAW
    smithers_version: str = ""
    activation: int = 0
    """Number of RunStarted events (starts and resumes)."""
    owner_id: str = ""
    pid: int | None = None
    host: str | None = None
    created_at_ms: int | None = None
    updated_at_ms: int | None = None
    finished_at_ms: int | None = None
    error: ErrorInfo | None = None
    """Why the run failed, for failed runs."""
    nodes: dict[NodeKey, NodeRecord] = msgspec.field(default_factory=dict)
    """Nodes by ``(node_id, iteration)``, in mount order."""
    frames: list[FrameRecord] = msgspec.field(default_factory=list)
    """Committed frames in order (``frames[i].frame_no == i``)."""
    parent_run_id: str | None = None
    parent_frame_no: int | None = None

    def copy(self) -> RunState:
        """Return an independent snapshot (containers copied, records shared: they are frozen)."""
        return msgspec.structs.replace(self, nodes=dict(self.nodes), frames=list(self.frames))

    def node(self, node_id: str, iteration: int = 0) -> NodeRecord | None:
        """Return the node record or None."""
        return self.nodes.get((node_id, iteration))

    def outputs(self) -> dict[str, msgspec.Raw]:
        """Return each node's latest output JSON (highest finished iteration), by node id."""
        out: dict[str, msgspec.Raw] = {}
        best: dict[str, int] = {}
        for (node_id, iteration), rec in self.nodes.items():
            if rec.has_output and iteration >= best.get(node_id, -1):
                best[node_id] = iteration
                out[node_id] = rec.output
        return out

    def counts(self) -> dict[str, int]:
        """Return the number of nodes in each state."""
        counts: dict[str, int] = {}
        for rec in self.nodes.values():
            counts[rec.state] = counts.get(rec.state, 0) + 1
        return counts


# ---------------------------------------------------------------------- the fold


def _node(state: RunState, event: NodeCancelled | NodeSkipped | NodePending) -> NodeRecord:
    key = (event.node_id, event.iteration)
    rec = state.nodes.get(key)
    if rec is None:
        rec = NodeRecord(node_id=event.node_id, iteration=event.iteration)
    return rec


def _rec(state: RunState, node_id: str, iteration: int) -> NodeRecord:
    rec = state.nodes.get((node_id, iteration))
    return rec if rec is not None else NodeRecord(node_id=node_id, iteration=iteration)


def _end_attempt(
    rec: NodeRecord,
    attempt: int | None,
    *,
    state: Literal["finished", "failed", "cancelled"],
    at_ms: int,
    error: ErrorInfo | None = None,
    cancel_reason: str | None = None,
) -> tuple[AttemptRecord, ...]:
    attempts = rec.attempts
    for i in range(len(attempts) - 1, -1, -1):
        a = attempts[i]
        if (attempt is None and a.state == "running") or a.attempt == attempt:
            ended = msgspec.structs.replace(
                a, state=state, finished_at_ms=at_ms, error=error, cancel_reason=cancel_reason
            )
            return (*attempts[:i], ended, *attempts[i + 1 :])
    return attempts


def _run_started(s: RunState, e: RunStarted, seq: int) -> None:
    s.activation += 1
    s.status = "running"
    s.owner_id, s.pid, s.host = e.owner_id, e.pid, e.host
    s.finished_at_ms = None
    s.error = None
    if s.activation == 1 or not s.workflow_name:
        s.workflow_name = e.workflow_name
        s.workflow_path = e.workflow_path
        s.workflow_hash = e.workflow_hash
        s.input = e.input
        s.config = e.config
        s.smithers_version = e.smithers_version
    if s.created_at_ms is None:
        s.created_at_ms = e.timestamp_ms


def _status_changed(s: RunState, e: RunStatusChanged, seq: int) -> None:
    s.status = e.status


def _run_finished(s: RunState, e: RunFinished, seq: int) -> None:
    s.status = "finished"
    s.finished_at_ms = e.timestamp_ms
    s.error = None


def _run_failed(s: RunState, e: RunFailed, seq: int) -> None:
    s.status = "failed"
    s.finished_at_ms = e.timestamp_ms
    s.error = e.error


def _run_cancelled(s: RunState, e: RunCancelled, seq: int) -> None:
    s.status = "cancelled"
    s.finished_at_ms = e.timestamp_ms


def _run_forked(s: RunState, e: RunForked, seq: int) -> None:
    s.parent_run_id = e.parent_run_id
    s.parent_frame_no = e.parent_frame_no


def _frame(s: RunState, e: FrameCommitted, seq: int) -> None:
    s.frames.append(
        FrameRecord(frame_no=e.frame_no, seq=seq, xml_hash=e.xml_hash, timestamp_ms=e.timestamp_ms)
    )


def _pending(s: RunState, e: NodePending, seq: int) -> None:
    rec = _node(s, e)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec, state="pending", label=e.label if e.label is not None else rec.label
    )


def _started(s: RunState, e: NodeStarted, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    attempt = AttemptRecord(attempt=e.attempt, state="running", started_at_ms=e.timestamp_ms)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec, state="running", attempts=(*rec.attempts, attempt), next_attempt_delay_ms=None
    )


def _finished(s: RunState, e: NodeFinished, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        state="finished",
        attempts=_end_attempt(rec, e.attempt, state="finished", at_ms=e.timestamp_ms),
        output=e.output,
        has_output=True,
    )


def _failed(s: RunState, e: NodeFailed, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        state="failed",
        attempts=_end_attempt(rec, e.attempt, state="failed", at_ms=e.timestamp_ms, error=e.error),
    )


def _cancelled(s: RunState, e: NodeCancelled, seq: int) -> None:
    rec = _node(s, e)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        state="cancelled",
        attempts=_end_attempt(
            rec, e.attempt, state="cancelled", at_ms=e.timestamp_ms, cancel_reason=e.reason
        ),
    )


def _skipped(s: RunState, e: NodeSkipped, seq: int) -> None:
    rec = _node(s, e)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec, state="skipped", skip_reason=e.reason
    )


def _retrying(s: RunState, e: NodeRetrying, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec, state="pending", next_attempt_delay_ms=e.delay_ms
    )


def _waiting_approval(s: RunState, e: NodeWaitingApproval, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(rec, state="waiting-approval")


def _waiting_timer(s: RunState, e: NodeWaitingTimer, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(rec, state="waiting-timer")


_HANDLERS: dict[type[Event], Callable[[RunState, object, int], None]] = {
    RunStarted: _run_started,  # type: ignore[dict-item]
    RunStatusChanged: _status_changed,  # type: ignore[dict-item]
    RunFinished: _run_finished,  # type: ignore[dict-item]
    RunFailed: _run_failed,  # type: ignore[dict-item]
    RunCancelled: _run_cancelled,  # type: ignore[dict-item]
    RunForked: _run_forked,  # type: ignore[dict-item]
    FrameCommitted: _frame,  # type: ignore[dict-item]
    NodePending: _pending,  # type: ignore[dict-item]
    NodeStarted: _started,  # type: ignore[dict-item]
    NodeFinished: _finished,  # type: ignore[dict-item]
    NodeFailed: _failed,  # type: ignore[dict-item]
    NodeCancelled: _cancelled,  # type: ignore[dict-item]
    NodeSkipped: _skipped,  # type: ignore[dict-item]
    NodeRetrying: _retrying,  # type: ignore[dict-item]
    NodeWaitingApproval: _waiting_approval,  # type: ignore[dict-item]
    NodeWaitingTimer: _waiting_timer,  # type: ignore[dict-item]
}


def apply_event(state: RunState, event: Event, *, seq: int) -> RunState:
    """Fold one event into `state` (in place) and return it.

    Args:
        state: The state after seq ``seq - 1``.
        event: The event recorded at `seq`. Types this projection does not handle only
            advance `state.seq` and `state.updated_at_ms`.
        seq: The event's per-run sequence number.

    Returns:
        `state`, now at `seq`.
    """
    handler = _HANDLERS.get(type(event))
    if handler is not None:
        handler(state, event, seq)
    state.seq = seq
    state.updated_at_ms = event.timestamp_ms
    return state


def fold(
    run_id: str, events: Iterable[tuple[int, Event]], *, state: RunState | None = None
) -> RunState:
    """Fold ``(seq, event)`` pairs into a `RunState` (a new one unless `state` is given)."""
    s = state if state is not None else RunState(run_id=run_id)
    for seq, event in events:
        apply_event(s, event, seq=seq)
    return s


def fold_stored(
    run_id: str, stored: Iterable[StoredEvent], *, state: RunState | None = None
) -> RunState:
    """Decode stored events and fold them; unknown event types are skipped (seq still advances).

    Raises:
        msgspec.DecodeError: if a stored event of a known type is malformed.
    """
    s = state if state is not None else RunState(run_id=run_id)
    for row in stored:
        event = decode_event(row.type, row.data)
        if event is None:
            s.seq = row.seq
            continue
        apply_event(s, event, seq=row.seq)
    return s
