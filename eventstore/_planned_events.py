"""Events of engine features not built yet, from the reference's catalogue.

Smithers' event reference defines these for features DESIGN plans but smithers-py
does not have yet: agents (streamed output,
token usage, budgets, provider connection), VCS reverts
and VCS time travel, frame snapshots. Nothing in smithers-py emits or folds them yet.

They are defined now, with the reference's names and fields, so they are in
`AnyEvent`: logs written by later versions (or by Smithers) decode instead of having
these types skipped, and the names are taken before the features ship. When a feature
is built, move its events to `events` (the events the code writes); the tag on disk is
the class name, so moving a class changes nothing in the log. Import them from
`smithers.eventstore.events`, which re-exports every event.
"""

from __future__ import annotations

from ._event_base import AttemptEvent, ErrorInfo, Event, NodeEvent

__all__ = (
    "BudgetExceeded",
    "ProviderDisconnected",
    "ProviderReconnected",
    "RevertStarted",
    "RevertFinished",
    "TimeTravelStarted",
    "TimeTravelFinished",
    "SnapshotCaptured",
)


# --------------------------------------------------------------------------- agent output


# --------------------------------------------------------------------------- budgets and providers


class BudgetExceeded(NodeEvent, frozen=True, kw_only=True):
    """A node went over one of its budgets."""

    budget_type: str
    """Which budget, e.g. tokens or cost."""
    limit: float
    """The configured limit, in the budget's unit."""
    actual: float
    """The amount used, in the budget's unit."""


class ProviderDisconnected(AttemptEvent, frozen=True, kw_only=True):
    """An agent attempt lost its connection to the model provider."""

    engine: str
    """Agent engine of the attempt."""


class ProviderReconnected(AttemptEvent, frozen=True, kw_only=True):
    """An agent attempt regained its connection to the model provider."""

    engine: str
    """Agent engine of the attempt."""


# --------------------------------------------------------------------------- reverts


class RevertStarted(AttemptEvent, frozen=True, kw_only=True):
    """Reverting the workspace to an attempt's VCS state began."""

    jj_pointer: str
    """VCS change identifier to restore."""


class RevertFinished(AttemptEvent, frozen=True, kw_only=True):
    """Reverting the workspace to an attempt's VCS state ended."""

    jj_pointer: str
    """VCS change identifier that was restored."""
    success: bool
    """Whether the revert succeeded."""
    error: ErrorInfo | None = None
    """The failure, when the revert failed."""


# --------------------------------------------------------------------------- VCS time travel


class TimeTravelStarted(AttemptEvent, frozen=True, kw_only=True):
    """A time-travel operation began, rewinding the run to a prior state."""

    jj_pointer: str | None = None
    """VCS change identifier to restore, if VCS state is rewound."""


class TimeTravelFinished(AttemptEvent, frozen=True, kw_only=True):
    """A time-travel operation completed."""

    jj_pointer: str | None = None
    """VCS change identifier restored, if VCS state was rewound."""
    success: bool
    """Whether the time travel succeeded."""
    vcs_restored: bool
    """Whether VCS state was rewound."""
    reset_nodes: tuple[str, ...]
    """Node ids cleared as part of the rewind."""
    error: ErrorInfo | None = None
    """The failure, when time travel failed."""


# --------------------------------------------------------------------------- snapshots


class SnapshotCaptured(Event, frozen=True, kw_only=True):
    """A point-in-time snapshot of the workflow frame was captured."""

    frame_no: int
    content_hash: str
