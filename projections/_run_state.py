"""`RunState`: the read model of one run, folded from its events.

The fold is pure: it reads only the events (their timestamps included), never a clock,
the disk or randomness, so any moment of a run is rebuilt by folding a prefix of its log.

Node records and attempts are frozen Structs replaced on change; the containers
(`nodes`, `frames`) are updated in place so one event costs O(1) whatever the run's
size (a fully persistent copy per event would make a 10,000-task run quadratic). Use
`RunState.copy()` for an independent snapshot.

`apply_event` is the per-event step. It is exact for every event but `RunRewound`,
whose meaning ("the state is now the state at `to_seq`") needs the history: fold a
log with `fold`/`fold_stored` (`_fold.py`), and continue a live state across a rewind
with `apply_rewind`. A forked run starts from `fork_state` (DESIGN §5, §7).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeGuard, get_args

import msgspec
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
    ReplayStarted,
    RetryTaskStarted,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunForked,
    RunRewound,
    RunStarted,
    RunStatusChanged,
    TaskHeartbeat,
)

from .errors import ForkBaseMismatchError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = (
    "DONE_NODE_STATES",
    "AttemptRecord",
    "FrameRecord",
    "NodeKey",
    "NodeRecord",
    "NodeStateName",
    "RunState",
    "RunStatus",
    "apply_event",
    "fork_state",
    "is_run_status",
)

RunStatus = Literal[
    "pending",
    "running",
    "waiting-approval",
    "waiting-event",
    "waiting-timer",
    "finished",
    "continued",
    "failed",
    "cancelled",
]
"""Status of a run: Smithers' `RunStatus` (`smithers.eventstore.events.RunStatus`), plus
``"pending"``, the status of a state before the run's first `RunStarted`."""

_RUN_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))


def is_run_status(value: str) -> TypeGuard[RunStatus]:
    """Return whether `value` is a `RunStatus` this version knows. Does no I/O.

    The checked conversion for statuses read from outside the fold's own literals (a
    `RunStatusChanged` from the log, a runs-index row): ``if is_run_status(s): ...``
    narrows `s` to `RunStatus` for the type checker.
    """
    return value in _RUN_STATUSES


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
    heartbeat_at_ms: int | None = None
    """Unix epoch ms of the latest recorded TaskHeartbeat, any attempt."""
    heartbeat_data: msgspec.Raw = NULL_RAW
    """Payload of the latest TaskHeartbeat that carried one, JSON null if none (handed to
    the next attempt as ``TaskContext.last_heartbeat``)."""
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

    After a `RunRewound`, the state is that of the *effective* history (see
    `effective_events`): events a rewind discarded no longer count. Only two fields
    describe the whole log instead: `seq` (the log position) and `next_frame_no`
    (frame numbers are never reused, so discarded frames still count).
    """

    run_id: str
    seq: int = 0
    """Seq of the last event of the log folded in, rewinds included (0: nothing yet)."""
    status: RunStatus = "pending"
    """Smithers' `RunStatus`, or ``"pending"`` before the first RunStarted.

    A `RunStatusChanged` whose status this version does not know (written by a later
    one) leaves it unchanged: like an event type the fold does not handle, the value
    is skipped, so an older reader shows the last status it understands instead of
    failing on the log."""
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
    activated_at_ms: int | None = None
    """Unix epoch ms of the latest RunStarted (when the current owner claimed the run)."""
    updated_at_ms: int | None = None
    finished_at_ms: int | None = None
    error: ErrorInfo | None = None
    """Why the run failed, for failed runs."""
    nodes: dict[NodeKey, NodeRecord] = msgspec.field(default_factory=dict)
    """Nodes by ``(node_id, iteration)``, in mount order."""
    frames: list[FrameRecord] = msgspec.field(default_factory=list)
    """Committed frames of the effective history, in log order.

    Frame numbers strictly increase but are not always the list index: frames a rewind
    discarded leave gaps (they are never reused), and a fork's first frame is
    ``parent_frame_no + 1``. For a run never rewound nor forked, ``frames[i].frame_no
    == i``.
    """
    next_frame_no: int = 0
    """Number the engine gives its next frame: one more than the highest frame number
    anywhere in the log (frames a rewind discarded included), at least
    ``parent_frame_no + 1`` for a fork; 0 for a new run."""
    rewinds: int = 0
    """Number of `RunRewound` events in the effective history (a rewind that a later
    rewind discarded no longer counts)."""
    parent_run_id: str | None = None
    """Run this one was forked from (`RunForked`), None otherwise."""
    parent_frame_no: int | None = None
    """Frame of the parent this run was forked at, None otherwise."""
    replay_of: tuple[str, int] | None = None
    """``(parent_run_id, parent_frame_no)`` of the last `ReplayStarted`, None otherwise."""

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


def _rec(state: RunState, node_id: str, iteration: int) -> NodeRecord:
    """The node's record, or a fresh pending one for a node not seen yet."""
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
    s.activated_at_ms = e.timestamp_ms
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
    # A status from a later version is skipped, as an unknown event type would be.
    if is_run_status(e.status):
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
    # The parent's nodes come from `fork_state` (the fold's base): here only what the
    # event itself says, so a fork folded without its parent still knows its ancestry.
    s.parent_run_id = e.parent_run_id
    s.parent_frame_no = e.parent_frame_no
    if e.input != NULL_RAW:
        s.input = e.input  # the fork runs with its own input
    s.next_frame_no = max(s.next_frame_no, e.parent_frame_no + 1)
    if s.created_at_ms is None:
        s.created_at_ms = e.timestamp_ms


def _replay_started(s: RunState, e: ReplayStarted, seq: int) -> None:
    s.replay_of = (e.parent_run_id, e.parent_frame_no)


def _release_owner(s: RunState) -> None:
    """No process drives the run until its next `RunStarted`."""
    s.owner_id, s.pid, s.host, s.activated_at_ms = "", None, None, None


def _run_rewound(s: RunState, e: RunRewound, seq: int) -> None:
    # The count, and the owner: the rewind itself (back to the state at `to_seq`) is
    # done by the fold, or live by `apply_rewind`, which apply this step on top of that
    # state. The activation that was running at `to_seq` is not driving the run now
    # (rewinds are appended from outside it), whatever became of its process.
    s.rewinds += 1
    _release_owner(s)


def _frame(s: RunState, e: FrameCommitted, seq: int) -> None:
    s.frames.append(
        FrameRecord(frame_no=e.frame_no, seq=seq, xml_hash=e.xml_hash, timestamp_ms=e.timestamp_ms)
    )
    s.next_frame_no = max(s.next_frame_no, e.frame_no + 1)


def _reset_nodes(s: RunState, node_ids: Iterable[str]) -> None:
    """Put every iteration of `node_ids` back to pending, without output; keep attempts."""
    wanted = frozenset(node_ids)
    if not wanted:
        return
    reset = {
        key: msgspec.structs.replace(
            rec,
            state="pending",
            output=NULL_RAW,
            has_output=False,
            skip_reason=None,
            next_attempt_delay_ms=None,
        )
        for key, rec in s.nodes.items()
        if key[0] in wanted
    }
    s.nodes.update(reset)  # existing keys: the mount order is kept


def _retry_task_started(s: RunState, e: RetryTaskStarted, seq: int) -> None:
    # The run's status moves only with RunStatusChanged/RunStarted. A retry is appended
    # from outside any activation: the previous owner no longer drives the run.
    _reset_nodes(s, e.reset_nodes)
    _release_owner(s)


def _pending(s: RunState, e: NodePending, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
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
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        state="cancelled",
        attempts=_end_attempt(
            rec, e.attempt, state="cancelled", at_ms=e.timestamp_ms, cancel_reason=e.reason
        ),
    )


def _skipped(s: RunState, e: NodeSkipped, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
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


def _heartbeat(s: RunState, e: TaskHeartbeat, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        heartbeat_at_ms=e.timestamp_ms,
        heartbeat_data=e.data if e.has_data else rec.heartbeat_data,
    )


_HANDLERS: dict[type[Event], Callable[[RunState, object, int], None]] = {
    RunStarted: _run_started,  # type: ignore[dict-item]
    RunStatusChanged: _status_changed,  # type: ignore[dict-item]
    RunFinished: _run_finished,  # type: ignore[dict-item]
    RunFailed: _run_failed,  # type: ignore[dict-item]
    RunCancelled: _run_cancelled,  # type: ignore[dict-item]
    RunForked: _run_forked,  # type: ignore[dict-item]
    ReplayStarted: _replay_started,  # type: ignore[dict-item]
    RunRewound: _run_rewound,  # type: ignore[dict-item]
    RetryTaskStarted: _retry_task_started,  # type: ignore[dict-item]
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
    TaskHeartbeat: _heartbeat,  # type: ignore[dict-item]
}


def apply_event(state: RunState, event: Event, *, seq: int) -> RunState:
    """Fold one event into `state` (in place) and return it. Does no I/O.

    The engine folds each event it appends with this; readers use `fold`/`fold_stored`.
    It is exact for every event type but `RunRewound`: for that one it only counts the
    rewind (`rewinds`), clears the owner and advances `seq`, because going back to the
    state at `to_seq` needs the history. Do not fold across a `RunRewound` with this function: use
    `apply_rewind` (live) or `fold`/`fold_stored` (from the log).

    `RetryTaskStarted` puts every iteration of its `reset_nodes` back to pending with no
    output (attempts are kept, so numbering continues); `RetryTaskFinished` changes no
    node; neither changes the run's status. `RunRewound` and `RetryTaskStarted` clear
    the owner (`owner_id`, `pid`, `host`, `activated_at_ms`): they are appended from
    outside any activation, and the run has no owner until its next `RunStarted`.
    `RunForked` records the parent, sets `next_frame_no` and, when it carries one, the
    fork's own input; the parent's nodes come from `fork_state`.

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


def fork_state(parent: RunState, event: RunForked, *, run_id: str) -> RunState:
    """Return the state a forked run starts from, before its first event. Does no I/O.

    Fold the child's log (which starts with `event`) on top of it:
    ``fold_stored(run_id, rows, base=fork_state(parent, forked, run_id=run_id))``.

    The result is the parent's state with: `run_id` the child's; every iteration of
    `event.reset_nodes` back to pending with no output (as `RetryTaskStarted`; attempts
    kept); `parent_run_id`/`parent_frame_no` set; status ``"pending"`` until the child's
    own `RunStarted`; no frames, `next_frame_no` = ``parent_frame_no + 1``; `seq` 0;
    `activation`, `rewinds` 0; no owner, error, replay or timestamps. Workflow metadata,
    input and config are the parent's (folding `event` then sets the fork's own input,
    if it carries one).

    Args:
        parent: The parent's state at `event.parent_seq` (not modified).
        event: The child's `RunForked` (its first event).
        run_id: The child run's id.

    Returns:
        A new, independent `RunState` at seq 0.

    Raises:
        ForkBaseMismatchError: if `parent` is not run `event.parent_run_id` at seq
            `event.parent_seq`.
    """
    if parent.run_id != event.parent_run_id or parent.seq != event.parent_seq:
        raise ForkBaseMismatchError(
            run_id,
            parent_run_id=event.parent_run_id,
            parent_seq=event.parent_seq,
            given_run_id=parent.run_id,
            given_seq=parent.seq,
        )
    s = msgspec.structs.replace(
        parent,
        run_id=run_id,
        seq=0,
        status="pending",
        activation=0,
        owner_id="",
        pid=None,
        host=None,
        created_at_ms=None,
        activated_at_ms=None,
        updated_at_ms=None,
        finished_at_ms=None,
        error=None,
        nodes=dict(parent.nodes),
        frames=[],
        next_frame_no=event.parent_frame_no + 1,
        rewinds=0,
        parent_run_id=event.parent_run_id,
        parent_frame_no=event.parent_frame_no,
        replay_of=None,
    )
    _reset_nodes(s, event.reset_nodes)
    return s
