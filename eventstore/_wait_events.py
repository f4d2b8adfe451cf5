"""Events of runs that wait: approvals, signals, child runs and durable timers.

Part of the event catalogue; import these from `smithers.eventstore.events`, which
re-exports every event (the tag on disk is the class name, not the module).
"""

from __future__ import annotations

from typing import Literal

import msgspec  # noqa: TC002 (msgspec resolves Struct annotations at run time)

from ._event_base import NULL_RAW, Actor, Event, NodeEvent

__all__ = (
    "ApprovalAutoApproved",
    "ApprovalDenied",
    "ApprovalGranted",
    "ApprovalMode",
    "ApprovalRequested",
    "ChildRunEnded",
    "NodeWaitingEvent",
    "SignalReceived",
    "TimerCancelled",
    "TimerCreated",
    "TimerFired",
    "TimerType",
)


# --------------------------------------------------------------------------- waits
# Runs that wait (approvals, signals, durable timers). A decision or a signal is a
# cross-process request: appended by whoever decides or signals, consumed by the run's
# owner (or by the activation the deciding command starts).


class NodeWaitingEvent(NodeEvent, frozen=True, kw_only=True):
    """A node waits for a signal (`WaitForEvent`); the run may park as ``waiting-event``.

    Not in Smithers' catalogue (its `NodeWaitingApproval`/`NodeWaitingTimer` have no
    signal twin); named and shaped like them.
    """

    event_name: str
    """Name of the signal the node waits for."""
    correlation_id: str | None = None
    """Only a signal with this correlation id resolves the wait; None: any."""
    timeout_at_ms: int | None = None
    """Unix epoch ms after which the wait times out; None: never."""


ApprovalMode = Literal["approve", "select", "rank"]
"""``"approve"``: yes or no; ``"select"``: pick one of the options; ``"rank"``: order them."""


class ApprovalRequested(NodeEvent, frozen=True, kw_only=True):
    """A node asked for an approval decision (`Approval`, or ``needs_approval=True``)."""

    title: str | None = None
    """What to decide, for the person asked."""
    summary: str | None = None
    """More context for the decision."""
    metadata: msgspec.Raw = NULL_RAW
    """Anything else the workflow attached to the request, as JSON."""
    mode: ApprovalMode = "approve"
    """What kind of decision is asked."""
    options: tuple[str, ...] = ()
    """The choices, for ``"select"`` and ``"rank"``."""


class ApprovalGranted(NodeEvent, frozen=True, kw_only=True):
    """A node's approval was granted (a person's decision, a cross-process request)."""

    note: str | None = None
    """The decider's note."""
    decided_by: str | None = None
    """Who decided."""
    selected: str | None = None
    """The option picked, for a ``"select"`` approval."""
    ranked: tuple[str, ...] = ()
    """The options in the decider's order, for a ``"rank"`` approval."""
    actor: Actor | None = None
    """Who took this operation, and why (the audit trail); None in older logs."""


class ApprovalAutoApproved(NodeEvent, frozen=True, kw_only=True):
    """An approval was granted by a configured policy without human intervention."""


class ApprovalDenied(NodeEvent, frozen=True, kw_only=True):
    """A node's approval was denied (a person's decision, a cross-process request)."""

    note: str | None = None
    """The decider's note."""
    decided_by: str | None = None
    """Who decided."""
    actor: Actor | None = None
    """Who took this operation, and why (the audit trail); None in older logs."""


class SignalReceived(Event, frozen=True, kw_only=True):
    """A signal was sent to the run (``smithers signal``, `RunHandle.signal`).

    Not in Smithers' catalogue. The fold hands it to the oldest `WaitForEvent` node
    that was already waiting for `signal_name` (and `correlation_id`, when the waiter
    names one); a signal no waiter was waiting for is kept for audit and resolves
    nothing, later waits included.
    """

    signal_name: str
    """The signal's name (the `event` a `WaitForEvent` waits for)."""
    data: msgspec.Raw = NULL_RAW
    """The payload, validated against the waiter's `output` schema before recording."""
    correlation_id: str | None = None
    """The sender's correlation id, if any."""
    sent_by: str | None = None
    """Who sent it."""
    actor: Actor | None = None
    """Who took this operation, and why (the audit trail); None in older logs."""


class ChildRunEnded(NodeEvent, frozen=True, kw_only=True):
    """A `Subflow`'s child run ended while its parent was live: look at the node again.

    A cross-process request, appended by the process that drove the child; the
    parent's owner then reads the child's result. A parent that is parked is resumed
    instead. Not in Smithers' catalogue.
    """

    child_run_id: str
    """The child run that ended."""
    status: str
    """Its final status."""


TimerType = Literal["duration", "absolute"]
"""``"duration"``: created from a relative delay; ``"absolute"``: from a wall-clock time."""


class TimerCreated(Event, frozen=True, kw_only=True):
    """A durable timer was registered with the engine (a `Timer` node was reached)."""

    timer_id: str
    """Stable identifier of the timer: ``"<nodeId>:<iteration>"``."""
    fires_at_ms: int
    """Unix epoch milliseconds when the timer will fire."""
    timer_type: TimerType
    """How the fire time was given."""
    node_id: str | None = None
    """The `Timer` node that waits on it."""
    iteration: int = 0
    """Loop iteration of that node."""


class TimerFired(Event, frozen=True, kw_only=True):
    """A timer fired and resumed its waiting node."""

    timer_id: str
    """Stable identifier of the timer."""
    fires_at_ms: int
    """Scheduled fire time, Unix epoch milliseconds."""
    fired_at_ms: int
    """Actual fire time, Unix epoch milliseconds."""
    delay_ms: int
    """Actual minus scheduled fire time; non-zero means scheduler lag."""


class TimerCancelled(Event, frozen=True, kw_only=True):
    """A timer was cancelled before it fired (its run ended, or its node unmounted)."""

    timer_id: str
    """Stable identifier of the timer."""
