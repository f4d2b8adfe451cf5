"""The event catalogue: every fact a run can record, as msgspec Structs.

Names, fields and casing follow Smithers' event reference (`SmithersEvent`): the class
name is the ``type`` tag on disk, fields are snake_case in Python and camelCase on the
wire (``runId``, ``nodeId``, ``timestampMs``). A shipped event is never renamed or
retyped; new fields get defaults so older logs still decode.

User data (input, outputs, heartbeat payloads) is kept as `msgspec.Raw` JSON: immutable,
stored without re-encoding, and decoded against the reader's schema when needed.
"""

from __future__ import annotations

from typing import Literal

import msgspec

RunStatus = Literal[
    "running",
    "waiting-approval",
    "waiting-event",
    "waiting-timer",
    "finished",
    "continued",
    "failed",
    "cancelled",
]
"""Smithers' `RunStatus` vocabulary."""

NULL_RAW = msgspec.Raw(b"null")
"""Default of `msgspec.Raw` fields: JSON ``null`` (msgspec cannot decode ``Raw | None``)."""

TERMINAL_RUN_STATUSES: frozenset[str] = frozenset({"finished", "failed", "cancelled", "continued"})
"""Statuses after which a run does nothing more unless rewound or retried."""


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A failure stored as data (never a pickled exception), as Smithers' serialised error."""

    name: str
    """Exception class name, e.g. ``"ValueError"`` or ``"SmithersError"``."""
    message: str
    """Human-readable message."""
    code: str | None = None
    """Smithers error code, or None for a plain exception raised by user code."""
    retryable: bool = True
    """Whether the retry policy may run another attempt after this error."""
    details: msgspec.Raw = NULL_RAW
    """The error's `details` mapping as JSON, or None."""


class Event(
    msgspec.Struct, frozen=True, kw_only=True, tag=True, rename="camel", omit_defaults=True
):
    """Base of every event. The JSON ``type`` field is the class name."""

    run_id: str
    """Run this event belongs to."""
    timestamp_ms: int
    """Unix epoch milliseconds when the engine recorded the fact."""


class NodeEvent(Event, kw_only=True):
    """Base of events about one node in one loop iteration."""

    node_id: str
    """Task node id."""
    iteration: int = 0
    """Loop iteration number (0 outside loops)."""


class AttemptEvent(NodeEvent, kw_only=True):
    """Base of events about one attempt of a node."""

    attempt: int
    """Attempt number, starting at 1."""


# --------------------------------------------------------------------------- supervisor


class SupervisorStarted(Event, kw_only=True):
    """The supervisor process started polling for stale runs."""

    poll_interval_ms: int
    stale_threshold_ms: int


class SupervisorPollCompleted(Event, kw_only=True):
    """One supervisor poll cycle ended."""

    stale_count: int
    resumed_count: int
    skipped_count: int
    duration_ms: int


# --------------------------------------------------------------------------- run lifecycle


class RunStarted(Event, kw_only=True):
    """An activation of the run began: the first start or a resume.

    The first RunStarted of a run records what the run is (workflow, input, config);
    later ones (resumes) repeat it with `activation` > 1 and the new owner.
    """

    workflow_name: str = ""
    """Name given to ``@workflow``."""
    workflow_path: str | None = None
    """Absolute path of the workflow file, when started from a file."""
    workflow_hash: str | None = None
    """SHA-256 over the workflow file and its locally imported modules, when known."""
    input: msgspec.Raw = NULL_RAW
    """The run's input as JSON."""
    config: msgspec.Raw = NULL_RAW
    """Run options that affect execution (e.g. ``maxConcurrency``) as JSON."""
    smithers_version: str = ""
    """Version of smithers-py that wrote the event."""
    vcs_revision: str | None = None
    """VCS revision of the workflow's directory, when it is in a git checkout."""
    activation: int = 1
    """1 for the first start, n for the (n-1)th resume."""
    owner_id: str = ""
    """Id of the process that owns this activation."""
    pid: int | None = None
    """Owner's process id."""
    host: str | None = None
    """Owner's host name."""


class RunStatusChanged(Event, kw_only=True):
    """The run moved to another status."""

    status: RunStatus


class RunFinished(Event, kw_only=True):
    """The run finished successfully."""


class RunFailed(Event, kw_only=True):
    """The run failed."""

    error: ErrorInfo


class RunCancelled(Event, kw_only=True):
    """The run was cancelled."""

    reason: str | None = None
    """Why, e.g. ``"cancel-requested"``."""
    source: str | None = None
    """Who asked: ``"api"``, ``"cli"``, ``"signal"``."""


class RunAutoResumed(Event, kw_only=True):
    """The supervisor restarted a stale run."""

    last_heartbeat_at_ms: int | None = None
    stale_duration_ms: int


class RunAutoResumeSkipped(Event, kw_only=True):
    """The supervisor decided not to resume a stale run."""

    reason: Literal["pid-alive", "missing-workflow", "rate-limited"]


class RunContinuedAsNew(Event, kw_only=True):
    """The workflow continues as a fresh run carrying state forward."""

    new_run_id: str
    iteration: int
    carried_state_size: int
    ancestry_depth: int | None = None


class RunForked(Event, kw_only=True):
    """First event of a run forked from a parent run's state at a frame."""

    parent_run_id: str
    parent_frame_no: int
    parent_seq: int = 0
    """Seq of the parent's log at the fork point."""
    reset_nodes: tuple[str, ...] = ()
    """Node ids put back to pending in the fork."""
    branch_label: str | None = None


class ReplayStarted(Event, kw_only=True):
    """The run begins replaying from a parent run's frame."""

    parent_run_id: str
    parent_frame_no: int
    restore_vcs: bool = False


# --------------------------------------------------------------------------- frames


class FrameCommitted(Event, kw_only=True):
    """The engine committed a render of the workflow tree."""

    frame_no: int
    """Frame number, from 0, contiguous per run."""
    xml_hash: str
    """SHA-256 hex digest of the canonical rendered tree."""


class SnapshotCaptured(Event, kw_only=True):
    """A point-in-time snapshot of the workflow frame was captured."""

    frame_no: int
    content_hash: str


# --------------------------------------------------------------------------- nodes


class NodePending(NodeEvent, kw_only=True):
    """A task was mounted and waits to be scheduled."""

    label: str | None = None
    """The task's human-readable label, if any."""


class NodeStarted(AttemptEvent, kw_only=True):
    """An attempt of a task began (recorded before any side effect)."""


class NodeFinished(AttemptEvent, kw_only=True):
    """An attempt of a task succeeded; `output` is the validated output."""

    output: msgspec.Raw = NULL_RAW
    """Validated output as JSON."""


class NodeFailed(AttemptEvent, kw_only=True):
    """An attempt of a task failed."""

    error: ErrorInfo


class NodeCancelled(NodeEvent, kw_only=True):
    """A task attempt was cancelled; `reason` e.g. ``"cancelled"``, ``"unmounted"``."""

    attempt: int | None = None
    reason: str | None = None


class NodeSkipped(NodeEvent, kw_only=True):
    """A task was skipped (``skip_if`` was true when it was mounted)."""

    reason: str | None = None


class NodeRetrying(AttemptEvent, kw_only=True):
    """Fires before the next attempt starts; `attempt` is the upcoming attempt number."""

    delay_ms: int = 0
    """Backoff before the upcoming attempt, in milliseconds."""


class NodeWaitingApproval(NodeEvent, kw_only=True):
    """A node waits for an approval decision."""


class NodeWaitingTimer(NodeEvent, kw_only=True):
    """A node is suspended until a timer fires."""

    fires_at_ms: int


# --------------------------------------------------------------------------- the union
# Every concrete event class must be listed here; tests check it.

AnyEvent = (
    SupervisorStarted
    | SupervisorPollCompleted
    | RunStarted
    | RunStatusChanged
    | RunFinished
    | RunFailed
    | RunCancelled
    | RunAutoResumed
    | RunAutoResumeSkipped
    | RunContinuedAsNew
    | RunForked
    | ReplayStarted
    | FrameCommitted
    | SnapshotCaptured
    | NodePending
    | NodeStarted
    | NodeFinished
    | NodeFailed
    | NodeCancelled
    | NodeSkipped
    | NodeRetrying
    | NodeWaitingApproval
    | NodeWaitingTimer
)
