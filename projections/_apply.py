"""The fold's per-event step: `apply_event`, and `fork_state`, a fork's first state.

The fold is deterministic: it reads only the events (their timestamps included), never
a clock, the disk or randomness, so any moment of a run is rebuilt by folding a prefix
of its log. It updates the state in place and returns it: the state's fields and
containers (`nodes`, `frames`) change, and the records in them (`NodeRecord`,
`AttemptRecord`, `FrameRecord`) are frozen Structs, replaced with
`msgspec.structs.replace`, never mutated. So one event costs O(1) whatever the run's
size (a fully persistent copy per event would make a 10,000-task run quadratic), and
a record or a `RunState.copy()` taken earlier keeps its value.

Dispatch is one dict lookup on the event's exact type (the fold runs about a million
events a second; a chain of isinstance tests would cost one test per handled type).
Each handler is registered with ``@_on(EventType)``, whose signature ties the type to
the handler's event parameter, so mypy checks every handler against its own type.

`apply_event` is exact for every event but `RunRewound`, whose meaning ("the state is
now the state at `to_seq`") needs the history: fold a log with `fold`/`fold_stored`
(`_fold.py`), and continue a live state across a rewind with `apply_rewind`. A forked
run starts from `fork_state` (DESIGN §5, §7).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from smithers.eventstore.events import (
    NULL_RAW,
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
    RetryTaskFinished,
    RetryTaskStarted,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunForked,
    RunQueued,
    RunRewound,
    RunStarted,
    RunStatusChanged,
)

from . import _apply_loops as _apply_loops  # registers the loop events' handlers
from . import _apply_waits as _apply_waits  # registers the waits' and agents' handlers
from ._run_state import (
    AttemptRecord,
    FrameRecord,
    OpenRetry,
    RunState,
    SubflowParent,
    is_run_status,
)
from .errors import ForkBaseMismatchError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ("apply_event", "fork_state")

from ._handlers import _HANDLERS, _end_attempt, _on, _rec


@_on(RunStarted)
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
        if e.input_ref is None:  # else unchanged: the input this state already holds
            s.input = e.input
        s.config = e.config
        s.smithers_version = e.smithers_version
    if s.created_at_ms is None:
        s.created_at_ms = e.timestamp_ms
    if e.parent_run_id is not None and e.parent_node_id is not None:
        s.subflow_of = SubflowParent(
            run_id=e.parent_run_id, node_id=e.parent_node_id, iteration=e.parent_iteration or 0
        )


@_on(RunQueued)
def _run_queued(s: RunState, e: RunQueued, seq: int) -> None:
    # Submitted, not started: what the run is (the first `RunStarted` refers to this
    # input); no owner, activation 0 until a worker's `RunStarted`.
    s.status = "queued"
    s.queue = e.queue
    s.workflow_name = e.workflow_name
    s.workflow_path = e.workflow_path
    s.workflow_hash = e.workflow_hash
    s.input = e.input
    s.config = e.config
    if s.created_at_ms is None:
        s.created_at_ms = e.timestamp_ms


@_on(RunStatusChanged)
def _status_changed(s: RunState, e: RunStatusChanged, seq: int) -> None:
    # A status from a later version is skipped, as an unknown event type would be.
    if is_run_status(e.status):
        s.status = e.status
        if e.status.startswith("waiting-"):
            # Parked: the activation that parked it ends; a decision, a signal, a due
            # timer or a person's resume starts the next one.
            _release_owner(s)


@_on(RunFinished)
def _run_finished(s: RunState, e: RunFinished, seq: int) -> None:
    s.status = "finished"
    s.finished_at_ms = e.timestamp_ms
    s.error = None


@_on(RunFailed)
def _run_failed(s: RunState, e: RunFailed, seq: int) -> None:
    s.status = "failed"
    s.finished_at_ms = e.timestamp_ms
    s.error = e.error


@_on(RunCancelled)
def _run_cancelled(s: RunState, e: RunCancelled, seq: int) -> None:
    s.status = "cancelled"
    s.finished_at_ms = e.timestamp_ms


@_on(RunForked)
def _run_forked(s: RunState, e: RunForked, seq: int) -> None:
    # The parent's nodes come from `fork_state` (the fold's base): here only what the
    # event itself says, so a fork folded without its parent still knows its ancestry.
    s.parent_run_id = e.parent_run_id
    s.parent_frame_no = e.parent_frame_no
    s.branch_label = e.branch_label
    if e.input != NULL_RAW:
        s.input = e.input  # the fork runs with its own input
    s.next_frame_no = max(s.next_frame_no, e.parent_frame_no + 1)
    if s.created_at_ms is None:
        s.created_at_ms = e.timestamp_ms


@_on(ReplayStarted)
def _replay_started(s: RunState, e: ReplayStarted, seq: int) -> None:
    s.replay_of = (e.parent_run_id, e.parent_frame_no)


def _release_owner(s: RunState) -> None:
    """No process drives the run until its next `RunStarted`."""
    s.owner_id, s.pid, s.host, s.activated_at_ms = "", None, None, None


@_on(RunRewound)
def _run_rewound(s: RunState, e: RunRewound, seq: int) -> None:
    # The count, and the owner: the rewind itself (back to the state at `to_seq`) is
    # done by the fold, or live by `apply_rewind`, which apply this step on top of that
    # state. The activation that was running at `to_seq` is not driving the run now
    # (rewinds are appended from outside it), whatever became of its process.
    s.rewinds += 1
    _release_owner(s)


@_on(FrameCommitted)
def _frame(s: RunState, e: FrameCommitted, seq: int) -> None:
    s.frames.append(
        FrameRecord(frame_no=e.frame_no, seq=seq, xml_hash=e.xml_hash, timestamp_ms=e.timestamp_ms)
    )
    s.next_frame_no = max(s.next_frame_no, e.frame_no + 1)


def _reset_nodes(s: RunState, node_ids: Iterable[str], *, from_iteration: int = 0) -> None:
    """Put iterations of `node_ids` back to pending, without output; keep attempts.

    Each node id's iterations from ``min(from_iteration, its highest iteration)`` on:
    every iteration for 0 (and for a node outside the loop of a retried pass, e.g. a
    task after the loop), that pass and later ones for a node of the loop.
    """
    wanted = frozenset(node_ids)
    if not wanted:
        return
    start: dict[str, int] = {}
    if from_iteration > 0:
        for node_id, iteration in s.nodes:
            if node_id in wanted:
                start[node_id] = min(from_iteration, max(start.get(node_id, 0), iteration))
    reset = {
        key: msgspec.structs.replace(
            rec,
            state="pending",
            output=NULL_RAW,
            has_output=False,
            skip_reason=None,
            next_attempt_delay_ms=None,
            next_attempt_at_ms=None,
            approval=None,
            wait=None,
            timer=None,
            agent_replay=None,
        )
        for key, rec in s.nodes.items()
        if key[0] in wanted and key[1] >= start.get(key[0], 0)
    }
    s.nodes.update(reset)  # existing keys: the mount order is kept


@_on(RetryTaskStarted)
def _retry_task_started(s: RunState, e: RetryTaskStarted, seq: int) -> None:
    # The run's status moves only with RunStatusChanged/RunStarted. A retry is appended
    # from outside any activation: the previous owner no longer drives the run.
    # Iterations from the retried one on (0: every iteration; loops: that pass and later).
    _reset_nodes(s, e.reset_nodes, from_iteration=e.iteration)
    _release_owner(s)
    s.open_retry = OpenRetry(
        node_id=e.node_id, iteration=e.iteration, reset_nodes=tuple(e.reset_nodes)
    )


@_on(RetryTaskFinished)
def _retry_task_finished(s: RunState, e: RetryTaskFinished, seq: int) -> None:
    s.open_retry = None


@_on(NodePending)
def _pending(s: RunState, e: NodePending, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec, state="pending", label=e.label if e.label is not None else rec.label
    )


@_on(NodeStarted)
def _started(s: RunState, e: NodeStarted, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    attempt = AttemptRecord(attempt=e.attempt, state="running", started_at_ms=e.timestamp_ms)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        state="running",
        attempts=(*rec.attempts, attempt),
        next_attempt_delay_ms=None,
        next_attempt_at_ms=None,
    )


@_on(NodeFinished)
def _finished(s: RunState, e: NodeFinished, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        state="finished",
        attempts=_end_attempt(rec, e.attempt, state="finished", at_ms=e.timestamp_ms),
        output=e.output,
        has_output=True,
        agent_replay=None,
    )


_TRANSIENT_AGENT_CODES = frozenset({"AGENT_RATE_LIMITED", "AGENT_PROVIDER_ERROR"})
"""Failures after which the next attempt continues the conversation (replaying what was
recorded) instead of starting over: the provider failed, not the conversation."""


@_on(NodeFailed)
def _failed(s: RunState, e: NodeFailed, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        state="failed",
        attempts=_end_attempt(rec, e.attempt, state="failed", at_ms=e.timestamp_ms, error=e.error),
        agent_replay=rec.agent_replay if e.error.code in _TRANSIENT_AGENT_CODES else None,
    )


@_on(NodeCancelled)
def _cancelled(s: RunState, e: NodeCancelled, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        state="cancelled",
        attempts=_end_attempt(
            rec, e.attempt, state="cancelled", at_ms=e.timestamp_ms, cancel_reason=e.reason
        ),
    )


@_on(NodeSkipped)
def _skipped(s: RunState, e: NodeSkipped, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec, state="skipped", skip_reason=e.reason, agent_replay=None
    )


@_on(NodeRetrying)
def _retrying(s: RunState, e: NodeRetrying, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        state="pending",
        next_attempt_delay_ms=e.delay_ms,
        next_attempt_at_ms=e.timestamp_ms + e.delay_ms,
    )


@_on(NodeWaitingApproval)
def _waiting_approval(s: RunState, e: NodeWaitingApproval, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(rec, state="waiting-approval")


@_on(NodeWaitingTimer)
def _waiting_timer(s: RunState, e: NodeWaitingTimer, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(rec, state="waiting-timer")


def apply_event(state: RunState, event: Event, *, seq: int) -> RunState:
    """Fold one event into `state`, in place, and return it. Does no I/O.

    `state` itself is updated (its fields, and its `nodes`/`frames` containers); the
    node, attempt and frame records it holds are frozen and replaced by new ones, never
    mutated. One dict lookup on the event's exact type finds the handler: O(1) per
    event. Take `state.copy()` first to keep the state before the event.

    The engine folds each event it appends with this; readers use `fold`/`fold_stored`.
    It is exact for every event type but `RunRewound`: for that one it only counts the
    rewind (`rewinds`), clears the owner and advances `seq`, because going back to the
    state at `to_seq` needs the history. Do not fold across a `RunRewound` with this
    function: use `apply_rewind` (live) or `fold`/`fold_stored` (from the log).

    `RetryTaskStarted` puts every iteration of its `reset_nodes` back to pending with no
    output (attempts are kept, so numbering continues) and opens `RunState.open_retry`;
    `RetryTaskFinished` changes no node and closes it; neither changes the run's status.
    `RunRewound` and `RetryTaskStarted` clear
    the owner (`owner_id`, `pid`, `host`, `activated_at_ms`): they are appended from
    outside any activation, and the run has no owner until its next `RunStarted`.
    `RunForked` records the parent and branch label, sets `next_frame_no` and, when it
    carries one, the fork's own input; the parent's nodes come from `fork_state`. A
    `RunStatusChanged` whose status is not a `RunStatus` (written by a later version)
    leaves `status` as it was.

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
    `activation`, `rewinds` 0; no owner, error, replay, branch label, `subflow_of` or
    timestamps. Workflow metadata, input and config are the parent's (folding `event` then sets the
    fork's own input, if it carries one).

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
        signals=list(parent.signals),
        loops=dict(parent.loops),
        carried=dict(parent.carried),
        continued_as_run_id=None,
        next_frame_no=event.parent_frame_no + 1,
        rewinds=0,
        parent_run_id=event.parent_run_id,
        parent_frame_no=event.parent_frame_no,
        replay_of=None,
        branch_label=None,
        subflow_of=None,
    )
    _reset_nodes(s, event.reset_nodes)
    return s
