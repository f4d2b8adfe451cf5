"""What workers tell the run loop's coordinator: one small frozen Struct per kind.

Workers (attempts, their watchdogs, backoff timers, the lease heartbeat, the cancel
watcher, a task's ``beat``) never write events; they send one of these through the
loop's memory stream, and the coordinator decides and records (`RunLoop.tick`).
Messages are in-memory only, never encoded: `gc=False` (they hold no cycles) keeps
them as cheap to make as a tuple.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from smithers.eventstore.events import Event
    from smithers.projections import NodeKey

    from ._execute import Outcome
    from ._subflow import ChildParked

__all__ = (
    "AttemptCancelled",
    "AttemptEnded",
    "BackoffElapsed",
    "BeatTimedOut",
    "CancelRequested",
    "ForeignAppended",
    "Message",
    "SubflowWaiting",
    "TaskBeat",
    "ToolJournaled",
    "WaitDue",
)


class TaskBeat(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A running attempt called ``ctx.heartbeat(data)``."""

    key: NodeKey
    """``(node_id, iteration)`` of the task."""
    attempt: int
    """The attempt that sent it (1-based)."""
    data: msgspec.Raw | None
    """The payload as JSON, or None for a heartbeat without data."""


class ToolJournaled(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A running attempt's journal sent an event (a tool call, an agent's conversation).

    A tool call began or ended, or the attempt's agent recorded part of its
    conversation, its token usage or streamed text.
    """

    key: NodeKey
    """``(node_id, iteration)`` of the task."""
    attempt: int
    """The attempt that made the call (1-based)."""
    event: Event
    """The event to record (`ToolCallStarted`/`Finished`, `AgentEvent`, `NodeOutput`,
    `TokenUsageReported`)."""


class BeatTimedOut(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The watchdog stopped an attempt that sent no heartbeat for `timeout_ms`."""

    key: NodeKey
    """``(node_id, iteration)`` of the task."""
    attempt: int
    """The attempt stopped (1-based)."""
    last_heartbeat_at_ms: int
    """Unix epoch ms the attempt was last seen (its start, if it never beat)."""
    timeout_ms: int
    """The task's ``heartbeat_timeout_ms``."""


class AttemptEnded(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An attempt returned: an output, or an error (a timed-out heartbeat included)."""

    key: NodeKey
    """``(node_id, iteration)`` of the task."""
    attempt: int
    """The attempt (1-based)."""
    outcome: Outcome
    """What it produced."""


class AttemptCancelled(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An attempt was cancelled before it returned (run cancelled, or unmounted)."""

    key: NodeKey
    """``(node_id, iteration)`` of the task."""
    attempt: int
    """The attempt (1-based)."""
    reason: str
    """Why: ``"cancelled"``, ``"unmounted"``, …; recorded on `NodeCancelled`."""


class BackoffElapsed(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A retry's backoff delay is over: the task may be scheduled again."""

    key: NodeKey
    """``(node_id, iteration)`` of the task."""


class CancelRequested(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Cancel the run: from the caller's cancel object, or a `RunCancelRequested` event."""

    reason: str
    """Recorded on `RunCancelled`."""
    source: str
    """Who asked (``"api"``, ``"signal"``, ``"cli"``, …); recorded on `RunCancelled`."""


class HijackRequested(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Stop the run and park it for a person (a `RunHijackRequested` event)."""

    target: str | None
    """The node whose agent session is handed over; None: the latest one."""


class ForeignAppended(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The lease heartbeat saw events another process appended to the run's log."""


class WaitDue(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Look at waiting nodes again: `key`'s wake-up came, or (None) a decision arrived."""

    key: NodeKey | None


class SubflowWaiting(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A `Subflow` attempt's child run parked: the node waits as its child does."""

    key: NodeKey
    """``(node_id, iteration)`` of the `Subflow` node."""
    attempt: int
    """The attempt (1-based)."""
    parked: ChildParked
    """The child's status and next wake-up."""


Message = (
    TaskBeat
    | ToolJournaled
    | BeatTimedOut
    | AttemptEnded
    | AttemptCancelled
    | BackoffElapsed
    | CancelRequested
    | HijackRequested
    | ForeignAppended
    | WaitDue
    | SubflowWaiting
)
"""Everything the coordinator's stream carries."""
