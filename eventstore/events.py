"""The event catalogue: every fact a run can record, as msgspec Structs.

Names, fields and casing follow Smithers' event reference (`SmithersEvent`): the class
name is the ``type`` tag on disk, fields are snake_case in Python and camelCase on the
wire (``runId``, ``nodeId``, ``timestampMs``). A shipped event is never renamed or
retyped; new fields get defaults so older logs still decode.

User data (input, outputs, heartbeat payloads) is kept as `msgspec.Raw` JSON: immutable,
stored without re-encoding, and decoded against the reader's schema when needed.

This module defines the events smithers-py writes or folds today and `AnyEvent`, the
union of every known event. The base classes live in `_event_base`; the reference's
events for features not built yet in `_planned_events` (agents, …)
and `_planned_extension_events` (sandboxes, voice, RAG, alerts, …). All are
re-exported here, so ``from smithers.eventstore.events import X`` works for every
event, and every event in the union decodes.
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

RunStatus = Literal[
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


# --------------------------------------------------------------------------- hijack


class RunHijackRequested(Event, frozen=True, kw_only=True):
    """A person asked to take over one of the run's agent sessions interactively.

    Appended by ``smithers hijack`` (`smithers.engine.hijack_run`); the run's live
    owner stops its tasks, records `RunHijacked` and parks the run ``"waiting-resume"``.
    With no live owner the requester records those itself, in the same append.
    """

    target: str | None = None
    """Node id whose agent session to hijack; None for the run's latest agent session."""
    actor: Actor | None = None
    """Who asked, and why (None in logs written before the audit trail)."""


class RunHijacked(AttemptEvent, frozen=True, kw_only=True):
    """An agent attempt was stopped and its session handed over to a person.

    The attempt itself ends ``NodeCancelled`` (reason ``"hijacked"``); the run parks
    ``"waiting-resume"`` until ``smithers up --resume``, whose next attempt continues
    the same session (`resume`).
    """

    engine: str
    """Agent engine of the hijacked attempt, e.g. ``"claude-code"``."""
    mode: str
    """How the session is handed over: ``"native-cli"`` (the agent's own CLI resumes
    it interactively)."""
    resume: str | None = None
    """Agent session id the person resumes, if any."""
    cwd: str
    """Working directory of the hijacked session (where to run the CLI)."""


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


# --------------------------------------------------------------------------- loops
# Loop passes and continue-as-new (issue 9). Loop ids are *scoped* ids: a Loop inside
# another Loop's pass (separated by a Sequence/Parallel/Branch) has the outer pass in
# its id, ``"<id>@<outer iteration>"`` (see `smithers.engine.Loop`).


class LoopIterationStarted(Event, frozen=True, kw_only=True):
    """A pass of a Loop began (as Smithers' ``<Ralph>`` iteration).

    Recorded when a render first mounts the loop (iteration 0) and each time a pass
    ends and the loop goes on (``until`` false, fewer than ``max_iterations`` passes).
    The run's state then mounts the loop's tasks keyed ``(node_id, iteration)``.
    """

    loop_id: str
    """The loop's scoped id."""
    iteration: int
    """The pass that began, from 0."""


class LoopFinished(Event, frozen=True, kw_only=True):
    """A Loop is done: its last pass ended and it does not go on."""

    loop_id: str
    """The loop's scoped id."""
    iteration: int
    """The last pass that ran, from 0."""
    reason: Literal["until", "max-iterations"]
    """``"until"``: the loop's ``until`` was true when the pass ended;
    ``"max-iterations"``: ``max_iterations`` passes ran (``on_max_reached="return-last"``;
    with ``"fail"`` the run fails with ``RALPH_MAX_REACHED`` instead)."""


class LoopRewound(Event, frozen=True, kw_only=True):
    """A Loop went back to an earlier pass (a retry-task of a node in that pass).

    The loop is at `iteration` again and not finished; every iteration above
    `iteration` of `node_ids` is put back to pending with no output (attempts kept), so
    later passes run again.
    """

    loop_id: str
    """The loop's scoped id."""
    iteration: int
    """The pass the loop is back at."""
    node_ids: tuple[str, ...] = ()
    """The loop's node ids whose later passes are reset."""


class ContinuationLoaded(Event, frozen=True, kw_only=True):
    """A run continued from another run (continue-as-new): what it carries over.

    Recorded right after the new run's first `RunStarted`. The previous run ended
    ``continued`` with `RunContinuedAsNew` naming this run.
    """

    from_run_id: str
    """The run this one continues."""
    ancestry_depth: int
    """How many continuations lead to this run (1 for the first continuation)."""
    iteration: int = 0
    """The pass the continuing loop resumes at (0 for ``ContinueAsNew`` outside loops)."""
    state: msgspec.Raw = NULL_RAW
    """The carried state as JSON (``ctx.continuation``), JSON null if none."""
    loops: msgspec.Raw = NULL_RAW
    """The loops carried over, JSON ``{scopedLoopId: [iteration, finished]}``."""
    outputs: msgspec.Raw = NULL_RAW
    """The latest output of each node, JSON ``[[nodeId, iteration, output, count]]``
    (`count`: iterations with an output so far in the chain)."""
    carry_nodes: bool = False
    """True when a Loop's ``continue_as_new_every`` continued the run: the carried
    outputs are also finished nodes of this run, so the run goes on where it was (tasks
    done before are not run again). False for ``ContinueAsNew``: the run starts afresh
    and only ``ctx.latest``/``ctx.iteration_count`` see them."""


# --------------------------------------------------------------------------- tools


class ToolCallStarted(AttemptEvent, frozen=True, kw_only=True):
    """A tool call of an attempt began, journaled before the tool does anything.

    Built-in tools (`read`, `write`, `edit`, `grep`, `bash`) and user tools alike.
    """

    tool_name: str
    """Name of the called tool."""
    seq: int
    """Sequential counter of tool calls within the attempt, from 1."""
    arguments: msgspec.Raw = NULL_RAW
    """The call's arguments as a JSON object (JSON null when not recorded)."""
    call_id: str | None = None
    """The model's id of the call (an agent's tool call), None for a direct call."""


class ToolCallFinished(AttemptEvent, frozen=True, kw_only=True):
    """A tool call of an attempt ended, with its outcome and cost."""

    tool_name: str
    """Name of the called tool."""
    seq: int
    """Sequential counter of tool calls within the attempt (as in ToolCallStarted)."""
    status: str
    """Outcome of the call: ``"success"`` or ``"error"``."""
    result_size_bytes: int = 0
    """Size of the result's JSON encoding, in bytes (0 on error)."""
    duration_ms: int = 0
    """Wall-clock time the call took, in milliseconds."""
    error: ErrorInfo | None = None
    """The failure, when `status` is ``"error"``."""
    result: msgspec.Raw = NULL_RAW
    """The result as JSON (already capped at the sandbox's ``max_output_bytes``), so a
    resumed attempt can replay a side-effecting call instead of running it again; JSON
    null on error."""
    call_id: str | None = None
    """The model's id of the call (as in ToolCallStarted), None for a direct call."""


class NodeOutput(AttemptEvent, frozen=True, kw_only=True):
    """Streaming text from an agent, coalesced (at most ~2 events per second per attempt)."""

    text: str
    """The text chunk."""
    stream: str
    """Which stream the text came from, e.g. ``"stdout"`` or ``"stderr"``."""


class AgentEvent(AttemptEvent, frozen=True, kw_only=True):
    """A structured event reported by an agent engine during an attempt."""

    engine: str
    """Agent engine that reported it, e.g. ``"claude-code"``."""
    event: msgspec.Raw = NULL_RAW
    """The engine's event as JSON."""


class TokenUsageReported(AttemptEvent, frozen=True, kw_only=True):
    """An agent attempt reported model token usage."""

    model: str
    """Model id."""
    agent: str
    """Agent that used the tokens."""
    input_tokens: int
    """Prompt tokens."""
    output_tokens: int
    """Completion tokens."""
    cache_read_tokens: int | None = None
    """Prompt tokens read from the provider's cache, when reported."""
    cache_write_tokens: int | None = None
    """Prompt tokens written to the provider's cache, when reported."""
    reasoning_tokens: int | None = None
    """Reasoning tokens, when reported."""


# --------------------------------------------------------------------------- retention


class RunsDeleted(Event, frozen=True, kw_only=True):
    """``smithers gc`` deleted whole finished runs: an operation with no run left to hold it.

    Recorded in the database's audit stream (`run_id` ``"_audit"``, see
    `smithers.engine.AUDIT_STREAM_ID`). Not in Smithers' catalogue.
    """

    run_ids: tuple[str, ...]
    """The runs deleted, whole or (with `keep_audit`) all but their audit rows."""
    finished_before_ms: int
    """The cutoff: runs whose last event is older than this (Unix epoch ms) went."""
    keep_audit: bool = False
    """True if each run kept its operation events and last row (status ``collected``)."""
    include_forked_from: bool = False
    """True if runs other runs fork from could be deleted too."""
    deleted_events: int = 0
    """How many event rows were deleted."""
    actor: Actor | None = None
    """Who deleted them (`resolve_actor`), or None."""


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
