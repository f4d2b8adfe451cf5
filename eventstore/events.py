"""The event catalogue: every fact a run can record, as msgspec Structs.

Names, fields and casing follow Smithers' event reference (`SmithersEvent`): the class
name is the ``type`` tag on disk, fields are snake_case in Python and camelCase on the
wire (``runId``, ``nodeId``, ``timestampMs``). A shipped event is never renamed or
retyped; new fields get defaults so older logs still decode.

User data (input, outputs, heartbeat payloads) is kept as `msgspec.Raw` JSON: immutable,
stored without re-encoding, and decoded against the reader's schema when needed.

This module defines the run, frame, node and time-travel events smithers-py writes
and `AnyEvent`, the union of every known event. The rest live in rooms of their own:
the base classes in `_event_base`; waits (approvals, signals, timers) in
`_wait_events`; loops in `_loop_events`; tool calls and agents in `_tool_events`;
hijack and deletion in `_operation_events`; the reference's events for features not
built yet in `_planned_events` and `_planned_extension_events` (sandboxes, voice,
RAG, alerts, …). All are re-exported here, so ``from smithers.eventstore.events import
X`` works for every event, and every event in the union decodes.
"""

from __future__ import annotations

from typing import Literal

import msgspec  # noqa: TC002 (msgspec resolves Struct annotations at run time)

from ._event_base import NULL_RAW as NULL_RAW
from ._event_base import Actor as Actor
from ._event_base import AttemptEvent as AttemptEvent
from ._event_base import ErrorInfo as ErrorInfo
from ._event_base import Event as Event
from ._event_base import NodeEvent as NodeEvent
from ._loop_events import ContinuationLoaded as ContinuationLoaded
from ._loop_events import LoopFinished as LoopFinished
from ._loop_events import LoopIterationStarted as LoopIterationStarted
from ._loop_events import LoopRewound as LoopRewound
from ._operation_events import RunHijacked as RunHijacked
from ._operation_events import RunHijackRequested as RunHijackRequested
from ._operation_events import RunsDeleted as RunsDeleted
from ._planned_events import BudgetExceeded as BudgetExceeded
from ._planned_events import ProviderDisconnected as ProviderDisconnected
from ._planned_events import ProviderReconnected as ProviderReconnected
from ._planned_events import RevertFinished as RevertFinished
from ._planned_events import RevertStarted as RevertStarted
from ._planned_events import SnapshotCaptured as SnapshotCaptured
from ._planned_events import TimeTravelFinished as TimeTravelFinished
from ._planned_events import TimeTravelStarted as TimeTravelStarted
from ._planned_extension_events import AlertAcknowledged as AlertAcknowledged
from ._planned_extension_events import AlertEscalated as AlertEscalated
from ._planned_extension_events import AlertFired as AlertFired
from ._planned_extension_events import AlertReopened as AlertReopened
from ._planned_extension_events import AlertResolved as AlertResolved
from ._planned_extension_events import AlertSilenced as AlertSilenced
from ._planned_extension_events import MemoryFactSet as MemoryFactSet
from ._planned_extension_events import MemoryMessageSaved as MemoryMessageSaved
from ._planned_extension_events import MemoryRecalled as MemoryRecalled
from ._planned_extension_events import OpenApiToolCalled as OpenApiToolCalled
from ._planned_extension_events import RagIngested as RagIngested
from ._planned_extension_events import RagRetrieved as RagRetrieved
from ._planned_extension_events import SandboxBundleReceived as SandboxBundleReceived
from ._planned_extension_events import SandboxCompleted as SandboxCompleted
from ._planned_extension_events import SandboxCreated as SandboxCreated
from ._planned_extension_events import SandboxDiffAccepted as SandboxDiffAccepted
from ._planned_extension_events import SandboxDiffRejected as SandboxDiffRejected
from ._planned_extension_events import SandboxDiffReviewRequested as SandboxDiffReviewRequested
from ._planned_extension_events import SandboxFailed as SandboxFailed
from ._planned_extension_events import SandboxHeartbeat as SandboxHeartbeat
from ._planned_extension_events import SandboxShipped as SandboxShipped
from ._planned_extension_events import ScorerFailed as ScorerFailed
from ._planned_extension_events import ScorerFinished as ScorerFinished
from ._planned_extension_events import ScorerStarted as ScorerStarted
from ._planned_extension_events import VoiceError as VoiceError
from ._planned_extension_events import VoiceFinished as VoiceFinished
from ._planned_extension_events import VoiceOperation as VoiceOperation
from ._planned_extension_events import VoiceStarted as VoiceStarted
from ._planned_extension_events import WorkflowReloadDetected as WorkflowReloadDetected
from ._planned_extension_events import WorkflowReloaded as WorkflowReloaded
from ._planned_extension_events import WorkflowReloadFailed as WorkflowReloadFailed
from ._planned_extension_events import WorkflowReloadUnsafe as WorkflowReloadUnsafe
from ._queue_events import DEFAULT_QUEUE as DEFAULT_QUEUE
from ._queue_events import RunQueued as RunQueued
from ._tool_events import AgentEvent as AgentEvent
from ._tool_events import NodeOutput as NodeOutput
from ._tool_events import TokenUsageReported as TokenUsageReported
from ._tool_events import ToolCallFinished as ToolCallFinished
from ._tool_events import ToolCallStarted as ToolCallStarted
from ._wait_events import ApprovalAutoApproved as ApprovalAutoApproved
from ._wait_events import ApprovalDenied as ApprovalDenied
from ._wait_events import ApprovalGranted as ApprovalGranted
from ._wait_events import ApprovalMode as ApprovalMode
from ._wait_events import ApprovalRequested as ApprovalRequested
from ._wait_events import ChildRunEnded as ChildRunEnded
from ._wait_events import NodeWaitingEvent as NodeWaitingEvent
from ._wait_events import SignalReceived as SignalReceived
from ._wait_events import TimerCancelled as TimerCancelled
from ._wait_events import TimerCreated as TimerCreated
from ._wait_events import TimerFired as TimerFired
from ._wait_events import TimerType as TimerType

RunStatus = Literal[
    "queued",
    "running",
    "waiting-approval",
    "waiting-event",
    "waiting-timer",
    "waiting-resume",
    "finished",
    "continued",
    "failed",
    "cancelled",
]
"""The statuses this version writes in `RunStatusChanged`: Smithers' `RunStatus`
vocabulary, plus ``"waiting-resume"``.

``"waiting-resume"`` is ours: a run rewound (`RunRewound`) without being resumed. Its
state is back at a frame where it was running, but no process drives it and none will
until a person resumes it (``smithers up --resume``). None of the reference's statuses
says that: ``"running"`` makes the supervisor restart it (it looks like a run whose
owner died), and the other ``waiting-*`` statuses name something else that wakes the
run (a decision, an event, a timer). It follows their ``waiting-<what wakes it>``
pattern, so every reader that treats ``waiting*`` as parked (exit code 3,
`RunHandle.result`, ``down``) treats it so. A version that does not know it skips the
`RunStatusChanged` (the fold ignores unknown statuses) and shows the status before it.

``"queued"`` is ours too: a run submitted (`RunQueued`, ``smithers submit``) that no
worker has started yet. It has no owner and no process; ``ps`` lists it, ``down`` and
``cancel`` cancel it (`RunCancelled`), ``supervise`` leaves it alone (only
``smithers worker`` starts it). It is set by `RunQueued` itself, never written in a
`RunStatusChanged`.
"""

TERMINAL_RUN_STATUSES: frozenset[str] = frozenset({"finished", "failed", "cancelled", "continued"})
"""Statuses after which a run does nothing more unless rewound or retried."""


# --------------------------------------------------------------------------- supervisor


class SupervisorStarted(Event, frozen=True, kw_only=True):
    """The supervisor process started polling for stale runs."""

    poll_interval_ms: int
    stale_threshold_ms: int
    actor: Actor | None = None
    """Who took this operation, and why (the audit trail); None in older logs."""


class SupervisorPollCompleted(Event, frozen=True, kw_only=True):
    """One supervisor poll cycle ended."""

    stale_count: int
    resumed_count: int
    skipped_count: int
    duration_ms: int
    woken_count: int = 0
    """Parked runs (``waiting-*``) woken in this poll because a timer was due or a
    wait's timeout passed (each also a `RunAutoResumed` with `wake` set). Not in
    Smithers' catalogue; 0 in logs written before it existed."""


# --------------------------------------------------------------------------- run lifecycle


class RunStarted(Event, frozen=True, kw_only=True):
    """An activation of the run began: the first start or a resume.

    The first RunStarted of a run records what the run is (workflow, input, config);
    later ones (resumes) repeat it with `activation` > 1 and the new owner. The input
    is stored once per run: a later RunStarted, and a fork's first one when the fork
    keeps its parent's input, carry `input` JSON null with `input_ref` and
    `input_hash` instead (logs written before that repeat the input every time).
    """

    workflow_name: str = ""
    """Name given to ``@workflow``."""
    workflow_path: str | None = None
    """Absolute path of the workflow file, when started from a file."""
    workflow_hash: str | None = None
    """SHA-256 over the workflow file and its locally imported modules, when known."""
    workflow_files: tuple[tuple[str, str], ...] = ()
    """``(relative path, SHA-256)`` of each file in `workflow_hash`, to name what changed."""
    input: msgspec.Raw = NULL_RAW
    """The run's input as JSON; JSON null when `input_ref` is set."""
    config: msgspec.Raw = NULL_RAW
    """Run options that affect execution (e.g. ``maxConcurrency``) as JSON."""
    input_ref: str | None = None
    """Set when `input` is left out because it is unchanged: the id of the run whose
    state holds it (this run, from its first `RunStarted` or its `RunForked`; or, for
    a fork keeping its parent's input, the parent, whose state the fork copies). The
    run-state fold then keeps the input it has. None: `input` is the input."""
    input_hash: str | None = None
    """SHA-256 hex digest of the input's JSON bytes (whether stored here or referred
    to), so a reader can check a referred input is the one meant. None in older logs."""
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
    parent_run_id: str | None = None
    """For the child run of a `Subflow` node: the parent run's id (every activation
    records it). None for a top-level run. Not a fork's parent (`RunForked` says that)."""
    parent_node_id: str | None = None
    """For a child run: the id of the parent's `Subflow` node that runs it."""
    parent_iteration: int | None = None
    """For a child run: the loop iteration of that node in the parent."""
    actor: Actor | None = None
    """Who started or resumed the run, and why (the audit trail); None in older logs
    and on activations the engine begins itself (a `Subflow`'s child run, the next run
    of a continue-as-new chain, an activation taking back the run it parked)."""


class RunStatusChanged(Event, frozen=True, kw_only=True):
    """The run moved to another status."""

    status: str
    """The new status, a `RunStatus` value when written by this version.

    Decoded as any string, not as the `RunStatus` literal: a log written by a later
    version, with a status this one does not know, still decodes (the JSON is a
    string either way). The run-state fold narrows it and ignores a status it does not
    know (`smithers.projections.is_run_status`).
    """


class RunFinished(Event, frozen=True, kw_only=True):
    """The run finished successfully."""


class RunFailed(Event, frozen=True, kw_only=True):
    """The run failed."""

    error: ErrorInfo


class RunCancelled(Event, frozen=True, kw_only=True):
    """The run was cancelled."""

    reason: str | None = None
    """Why, e.g. ``"cancel-requested"``."""
    source: str | None = None
    """Who asked: ``"api"``, ``"cli"``, ``"signal"``."""


class RunAutoResumed(Event, frozen=True, kw_only=True):
    """The supervisor restarted a stale run.

    Recorded in the supervisor's stream (``run_id`` column ``"supervisor"``); `run_id`
    is the resumed run.
    """

    last_heartbeat_at_ms: int | None = None
    stale_duration_ms: int
    pid: int | None = None
    """Process id of the resumer the supervisor started (``smithers up --resume``)."""
    host: str | None = None
    """Host name of the machine the resumer runs on."""
    from_seq: int | None = None
    """The run's last seq when the resume was started: if the run is found stale again
    with no node outcome after it, the resume made no progress and is backed off."""
    wake: Literal["timer", "timeout", "retry"] | None = None
    """Set when the run was not stale but parked (``waiting-*``) and woken: its timer
    was due (``"timer"``), a `WaitForEvent`'s timeout passed (``"timeout"``) or a
    retry deferred past the process's sleep (a quota reset, say) came due
    (``"retry"``). None: a stale run whose owner was gone. Not in Smithers' catalogue."""
    due_at_ms: int | None = None
    """With `wake`: the deadline that was due (Unix epoch ms; a timer's `firesAtMs`,
    a wait's `timeoutAtMs`)."""
    actor: Actor | None = None
    """Who took this operation, and why (the audit trail); None in older logs."""


class RunAutoResumeSkipped(Event, frozen=True, kw_only=True):
    """The supervisor decided not to resume a stale run.

    Recorded in the supervisor's stream (``run_id`` column ``"supervisor"``); `run_id`
    is the skipped run.
    """

    reason: Literal["pid-alive", "missing-workflow", "rate-limited"]
    error: ErrorInfo | None = None
    """With ``rate-limited`` after a failed resume: why the last resume failed."""
    retry_at_ms: int | None = None
    """With ``rate-limited``: Unix epoch ms before which the run is not resumed again."""
    actor: Actor | None = None
    """Who took this operation, and why (the audit trail); None in older logs."""


class RunContinuedAsNew(Event, frozen=True, kw_only=True):
    """The workflow continues as a fresh run carrying state forward."""

    new_run_id: str
    iteration: int
    carried_state_size: int
    ancestry_depth: int | None = None


class RunForked(Event, frozen=True, kw_only=True):
    """First event of a run forked from a parent run's state at a frame."""

    parent_run_id: str
    parent_frame_no: int
    parent_seq: int = 0
    """Seq of the parent's log at the fork point."""
    reset_nodes: tuple[str, ...] = ()
    """Node ids put back to pending in the fork."""
    branch_label: str | None = None
    input: msgspec.Raw = NULL_RAW
    """The fork's own input (a JSON object) when it was given one; JSON null (the
    default) keeps the parent's input. The fork's first `RunStarted` records it again."""
    actor: Actor | None = None
    """Who took this operation, and why (the audit trail); None in older logs."""


class ReplayStarted(Event, frozen=True, kw_only=True):
    """The run begins replaying from a parent run's frame."""

    parent_run_id: str
    parent_frame_no: int
    restore_vcs: bool = False
    actor: Actor | None = None
    """Who took this operation, and why (the audit trail); None in older logs."""


# --------------------------------------------------------------------------- frames


class FrameCommitted(Event, frozen=True, kw_only=True):
    """The engine committed a render of the workflow tree."""

    frame_no: int
    """Frame number, from 0, contiguous per run."""
    xml_hash: str
    """SHA-256 hex digest of the canonical rendered tree."""
    keyframe: msgspec.Raw = NULL_RAW
    """The whole rendered tree as canonical JSON (keys sorted; its SHA-256 is
    `xml_hash`) on keyframes; JSON null otherwise."""
    delta: msgspec.Raw = NULL_RAW
    """On other frames, the JSON list of operations (``set``/``insert``/``remove`` at a
    JSON path) turning the previous frame's tree into this one; ``[]`` for an unchanged
    tree. JSON null on keyframes, and on frames written before trees were recorded."""


# --------------------------------------------------------------------------- nodes


class NodePending(NodeEvent, frozen=True, kw_only=True):
    """A task was mounted and waits to be scheduled."""

    label: str | None = None
    """The task's human-readable label, if any."""


class NodeStarted(AttemptEvent, frozen=True, kw_only=True):
    """An attempt of a task began (recorded before any side effect)."""


class NodeFinished(AttemptEvent, frozen=True, kw_only=True):
    """An attempt of a task succeeded; `output` is the validated output."""

    output: msgspec.Raw = NULL_RAW
    """Validated output as JSON."""


class NodeFailed(AttemptEvent, frozen=True, kw_only=True):
    """An attempt of a task failed."""

    error: ErrorInfo


class NodeCancelled(NodeEvent, frozen=True, kw_only=True):
    """A task attempt was cancelled; `reason` e.g. ``"cancelled"``, ``"unmounted"``."""

    attempt: int | None = None
    reason: str | None = None


class NodeSkipped(NodeEvent, frozen=True, kw_only=True):
    """A task was skipped (``skip_if`` was true when it was mounted)."""

    reason: str | None = None


class NodeRetrying(AttemptEvent, frozen=True, kw_only=True):
    """Fires before the next attempt starts; `attempt` is the upcoming attempt number."""

    delay_ms: int = 0
    """Backoff before the upcoming attempt, in milliseconds."""


class NodeWaitingApproval(NodeEvent, frozen=True, kw_only=True):
    """A node waits for an approval decision."""


class NodeWaitingTimer(NodeEvent, frozen=True, kw_only=True):
    """A node is suspended until a timer fires."""

    fires_at_ms: int


# --------------------------------------------------------------------------- run requests


class RunCancelRequested(Event, frozen=True, kw_only=True):
    """Another process asked the run's owner to cancel the run (a cross-process request)."""

    source: str
    """Who asked: ``"api"``, ``"cli"``, ``"signal"``."""
    reason: str | None = None
    """Why, as given by the requester."""
    actor: Actor | None = None
    """Who asked, and why (the audit trail); None in older logs. A parent's cancel
    that cancels its child runs records the parent's actor on theirs."""


# --------------------------------------------------------------------------- task heartbeats


class TaskHeartbeat(AttemptEvent, frozen=True, kw_only=True):
    """A long-running task signalled it is still alive (coalesced)."""

    has_data: bool
    """Whether the heartbeat carries a checkpoint payload."""
    data_size_bytes: int
    """Size of the checkpoint payload in bytes (0 without one)."""
    interval_ms: int | None = None
    """Configured heartbeat interval, if set."""
    data: msgspec.Raw = NULL_RAW
    """The checkpoint payload as JSON (null without one); handed to the next attempt."""


class TaskHeartbeatTimeout(AttemptEvent, frozen=True, kw_only=True):
    """A task sent no heartbeat within its configured timeout window."""

    last_heartbeat_at_ms: int
    """Unix epoch milliseconds of the last heartbeat received before the timeout."""
    timeout_ms: int
    """The configured heartbeat timeout."""


# --------------------------------------------------------------------------- retry and time travel


class RetryTaskStarted(NodeEvent, frozen=True, kw_only=True):
    """A manual or programmatic retry of a task node began."""

    reset_dependents: bool
    """Whether nodes that depend on this task are reset too."""
    reset_nodes: tuple[str, ...]
    """Every node id being cleared by this retry."""
    actor: Actor | None = None
    """Who took this operation, and why (the audit trail); None in older logs."""


class RetryTaskFinished(NodeEvent, frozen=True, kw_only=True):
    """A retry of a task node completed."""

    reset_nodes: tuple[str, ...]
    """Node ids that were actually reset."""
    success: bool
    """Whether the retry operation succeeded."""
    error: ErrorInfo | None = None
    """Set if the retry operation itself failed (not the retried task)."""


class RunRewound(Event, frozen=True, kw_only=True):
    """The run was rewound: events after `to_seq` no longer count for its state."""

    to_frame_no: int
    """Frame the run was rewound to."""
    to_seq: int
    """Last seq of the run's log that still counts after the rewind."""
    actor: Actor | None = None
    """Who took this operation, and why (the audit trail); None in older logs."""


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
    | RunQueued
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
    | NodeWaitingEvent
    | SignalReceived
    | ChildRunEnded
    | RunCancelRequested
    | RunHijackRequested
    | RunHijacked
    | ApprovalRequested
    | ApprovalGranted
    | ApprovalAutoApproved
    | ApprovalDenied
    | ToolCallStarted
    | ToolCallFinished
    | NodeOutput
    | AgentEvent
    | TokenUsageReported
    | TimerCreated
    | TimerFired
    | TimerCancelled
    | TaskHeartbeat
    | TaskHeartbeatTimeout
    | SandboxCreated
    | SandboxShipped
    | SandboxHeartbeat
    | SandboxBundleReceived
    | SandboxCompleted
    | SandboxFailed
    | SandboxDiffReviewRequested
    | SandboxDiffAccepted
    | SandboxDiffRejected
    | RevertStarted
    | RevertFinished
    | RetryTaskStarted
    | RetryTaskFinished
    | TimeTravelStarted
    | TimeTravelFinished
    | RunRewound
    | VoiceStarted
    | VoiceFinished
    | VoiceError
    | RagIngested
    | RagRetrieved
    | MemoryFactSet
    | MemoryRecalled
    | MemoryMessageSaved
    | OpenApiToolCalled
    | WorkflowReloadDetected
    | WorkflowReloaded
    | WorkflowReloadFailed
    | WorkflowReloadUnsafe
    | ScorerStarted
    | ScorerFinished
    | ScorerFailed
    | AlertFired
    | AlertAcknowledged
    | AlertSilenced
    | AlertResolved
    | AlertReopened
    | AlertEscalated
    | BudgetExceeded
    | ProviderDisconnected
    | ProviderReconnected
    | LoopIterationStarted
    | LoopFinished
    | LoopRewound
    | ContinuationLoaded
    | RunsDeleted
)
