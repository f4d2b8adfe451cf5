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


# Subclasses repeat `kw_only=True` (msgspec does not inherit it) and `frozen=True` (msgspec
# inherits it, but mypy's dataclass_transform does not and rejects a "non-frozen" subclass).


class Event(
    msgspec.Struct, frozen=True, kw_only=True, tag=True, rename="camel", omit_defaults=True
):
    """Base of every event. The JSON ``type`` field is the class name."""

    run_id: str
    """Run this event belongs to."""
    timestamp_ms: int
    """Unix epoch milliseconds when the engine recorded the fact."""


class NodeEvent(Event, frozen=True, kw_only=True, omit_defaults=False):
    """Base of events about one node in one loop iteration.

    Node events always carry every field (``iteration`` included, even 0), as Smithers'
    NDJSON does, so tools matching on ``iteration`` see it.
    """

    node_id: str
    """Task node id."""
    iteration: int = 0
    """Loop iteration number (0 outside loops)."""


class AttemptEvent(NodeEvent, frozen=True, kw_only=True):
    """Base of events about one attempt of a node."""

    attempt: int
    """Attempt number, starting at 1."""


# --------------------------------------------------------------------------- supervisor


class SupervisorStarted(Event, frozen=True, kw_only=True):
    """The supervisor process started polling for stale runs."""

    poll_interval_ms: int
    stale_threshold_ms: int


class SupervisorPollCompleted(Event, frozen=True, kw_only=True):
    """One supervisor poll cycle ended."""

    stale_count: int
    resumed_count: int
    skipped_count: int
    duration_ms: int


# --------------------------------------------------------------------------- run lifecycle


class RunStarted(Event, frozen=True, kw_only=True):
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
    workflow_files: tuple[tuple[str, str], ...] = ()
    """``(relative path, SHA-256)`` of each file in `workflow_hash`, to name what changed."""
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


class RunStatusChanged(Event, frozen=True, kw_only=True):
    """The run moved to another status."""

    status: RunStatus


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


class ReplayStarted(Event, frozen=True, kw_only=True):
    """The run begins replaying from a parent run's frame."""

    parent_run_id: str
    parent_frame_no: int
    restore_vcs: bool = False


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


class SnapshotCaptured(Event, frozen=True, kw_only=True):
    """A point-in-time snapshot of the workflow frame was captured."""

    frame_no: int
    content_hash: str


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


class RunHijackRequested(Event, frozen=True, kw_only=True):
    """A user asked to take over the run's agent session interactively."""

    target: str | None = None
    """Node or agent to hijack; None for the run's current agent session."""


class RunHijacked(AttemptEvent, frozen=True, kw_only=True):
    """An agent attempt was handed over to a user's interactive session."""

    engine: str
    """Agent engine of the hijacked attempt, e.g. ``"claude-code"``."""
    mode: str
    """How the session was handed over."""
    resume: str | None = None
    """Agent session id the hijack resumes, if any."""
    cwd: str
    """Working directory of the hijacked session."""


# --------------------------------------------------------------------------- approvals


class ApprovalRequested(NodeEvent, frozen=True, kw_only=True):
    """A node asked for an approval decision."""


class ApprovalGranted(NodeEvent, frozen=True, kw_only=True):
    """A node's approval was granted."""


class ApprovalAutoApproved(NodeEvent, frozen=True, kw_only=True):
    """An approval was granted by a configured policy without human intervention."""


class ApprovalDenied(NodeEvent, frozen=True, kw_only=True):
    """A node's approval was denied."""


# --------------------------------------------------------------------------- tools


class ToolCallStarted(AttemptEvent, frozen=True, kw_only=True):
    """An agent attempt began a tool call."""

    tool_name: str
    """Name of the called tool."""
    seq: int
    """Sequential counter of tool calls within the attempt."""


class ToolCallFinished(AttemptEvent, frozen=True, kw_only=True):
    """A tool call of an agent attempt ended."""

    tool_name: str
    """Name of the called tool."""
    seq: int
    """Sequential counter of tool calls within the attempt (as in ToolCallStarted)."""
    status: str
    """Outcome of the call, e.g. ``"success"`` or ``"error"``."""


# --------------------------------------------------------------------------- output


class NodeOutput(AttemptEvent, frozen=True, kw_only=True):
    """Streaming text from an agent (coalesced, at most a few events per second per task)."""

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


# --------------------------------------------------------------------------- timers


TimerType = Literal["duration", "absolute"]
"""``"duration"``: created from a relative delay; ``"absolute"``: from a wall-clock time."""


class TimerCreated(Event, frozen=True, kw_only=True):
    """A durable timer was registered with the engine."""

    timer_id: str
    """Stable identifier of the timer."""
    fires_at_ms: int
    """Unix epoch milliseconds when the timer will fire."""
    timer_type: TimerType
    """How the fire time was given."""


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
    """A timer was cancelled before it fired."""

    timer_id: str
    """Stable identifier of the timer."""


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


# --------------------------------------------------------------------------- sandboxes


class SandboxCreated(Event, frozen=True, kw_only=True):
    """A sandboxed execution environment was provisioned."""

    sandbox_id: str
    """Unique identifier of the sandbox instance."""
    runtime: str
    """Isolation backend used, e.g. ``"docker"``."""
    config_json: str
    """The sandbox configuration, JSON-serialised."""


class SandboxShipped(Event, frozen=True, kw_only=True):
    """The initial code bundle was uploaded to the sandbox."""

    sandbox_id: str
    """Unique identifier of the sandbox instance."""
    runtime: str
    """Isolation backend used."""
    bundle_size_bytes: int
    """Size of the uploaded bundle in bytes."""


class SandboxHeartbeat(Event, frozen=True, kw_only=True):
    """A sandbox is still executing."""

    sandbox_id: str
    """Unique identifier of the sandbox instance."""
    remote_run_id: str | None = None
    """Run id assigned by the remote sandbox environment, if available."""
    progress: float | None = None
    """Progress fraction from 0 to 1 reported by the sandbox, if any."""


class SandboxBundleReceived(Event, frozen=True, kw_only=True):
    """The sandbox returned an output bundle to the orchestrator."""

    sandbox_id: str
    """Unique identifier of the sandbox instance."""
    bundle_size_bytes: int
    """Size of the received bundle in bytes."""
    patch_count: int
    """Number of file patches in the bundle."""
    has_outputs: bool
    """Whether structured task outputs were included."""


class SandboxCompleted(Event, frozen=True, kw_only=True):
    """A sandbox execution finished, whatever its outcome."""

    sandbox_id: str
    """Unique identifier of the sandbox instance."""
    remote_run_id: str | None = None
    """Run id assigned by the remote sandbox environment, if available."""
    runtime: str
    """Isolation backend used."""
    status: str
    """Final execution status."""
    duration_ms: int
    """Total sandbox execution time."""


class SandboxFailed(Event, frozen=True, kw_only=True):
    """A sandbox hit an unrecoverable error."""

    sandbox_id: str
    """Unique identifier of the sandbox instance."""
    runtime: str
    """Isolation backend used."""
    error: ErrorInfo
    """The failure."""


class SandboxDiffReviewRequested(Event, frozen=True, kw_only=True):
    """A sandbox produced patches that need human review before being applied."""

    sandbox_id: str
    """Unique identifier of the sandbox instance."""
    patch_count: int
    """Number of patches awaiting review."""
    total_diff_lines: int
    """Total lines across all diffs."""


class SandboxDiffAccepted(Event, frozen=True, kw_only=True):
    """A human reviewer accepted the sandbox's proposed patches."""

    sandbox_id: str
    """Unique identifier of the sandbox instance."""
    patch_count: int
    """Number of accepted patches."""


class SandboxDiffRejected(Event, frozen=True, kw_only=True):
    """A human reviewer rejected the sandbox's proposed patches."""

    sandbox_id: str
    """Unique identifier of the sandbox instance."""
    reason: str | None = None
    """Optional explanation of the rejection."""


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


# --------------------------------------------------------------------------- retry and time travel


class RetryTaskStarted(NodeEvent, frozen=True, kw_only=True):
    """A manual or programmatic retry of a task node began."""

    reset_dependents: bool
    """Whether nodes that depend on this task are reset too."""
    reset_nodes: tuple[str, ...]
    """Every node id being cleared by this retry."""


class RetryTaskFinished(NodeEvent, frozen=True, kw_only=True):
    """A retry of a task node completed."""

    reset_nodes: tuple[str, ...]
    """Node ids that were actually reset."""
    success: bool
    """Whether the retry operation succeeded."""
    error: ErrorInfo | None = None
    """Set if the retry operation itself failed (not the retried task)."""


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


class RunRewound(Event, frozen=True, kw_only=True):
    """The run was rewound: events after `to_seq` no longer count for its state."""

    to_frame_no: int
    """Frame the run was rewound to."""
    to_seq: int
    """Last seq of the run's log that still counts after the rewind."""


# --------------------------------------------------------------------------- voice


VoiceOperation = Literal["speak", "listen"]
"""``"speak"``: text to speech; ``"listen"``: speech to text."""


class VoiceStarted(NodeEvent, frozen=True, kw_only=True):
    """A voice operation began."""

    operation: VoiceOperation
    """Which way the voice operation goes."""
    provider: str
    """Voice provider, e.g. ``"openai"``, ``"elevenlabs"``."""


class VoiceFinished(NodeEvent, frozen=True, kw_only=True):
    """A voice operation completed successfully."""

    operation: VoiceOperation
    """Which way the voice operation went."""
    provider: str
    """Voice provider."""
    duration_ms: int
    """Wall time of the voice operation."""


class VoiceError(NodeEvent, frozen=True, kw_only=True):
    """A voice operation failed."""

    operation: VoiceOperation
    """Which way the voice operation went."""
    provider: str
    """Voice provider."""
    error: ErrorInfo
    """The failure."""


# --------------------------------------------------------------------------- RAG


class RagIngested(Event, frozen=True, kw_only=True):
    """Documents were chunked and embedded into a vector store namespace."""

    document_count: int
    """Number of source documents ingested."""
    chunk_count: int
    """Number of chunks stored after splitting."""
    namespace: str
    """Vector store namespace written to."""


class RagRetrieved(Event, frozen=True, kw_only=True):
    """A semantic search query completed."""

    query: str
    """The query string."""
    result_count: int
    """Number of chunks returned."""
    namespace: str
    """Vector store namespace searched."""
    top_score: float
    """Similarity score of the highest-ranked result."""


# --------------------------------------------------------------------------- memory


class MemoryFactSet(Event, frozen=True, kw_only=True):
    """A key-value fact was written to the memory store."""

    namespace: str
    """Memory namespace of the fact."""
    key: str
    """Key the fact was stored under."""


class MemoryRecalled(Event, frozen=True, kw_only=True):
    """The memory store was queried for relevant facts."""

    namespace: str
    """Memory namespace queried."""
    query: str
    """The recall query."""
    result_count: int
    """Number of facts returned."""


class MemoryMessageSaved(Event, frozen=True, kw_only=True):
    """A conversation message was persisted to memory."""

    thread_id: str
    """Conversation thread id."""
    role: str
    """Message role, e.g. ``"user"``, ``"assistant"``."""


# --------------------------------------------------------------------------- OpenAPI


class OpenApiToolCalled(Event, frozen=True, kw_only=True):
    """A generated OpenAPI tool executed an HTTP operation."""

    operation_id: str
    """The OpenAPI ``operationId`` of the called operation."""
    method: str
    """HTTP method, e.g. ``"GET"``."""
    path: str
    """URL path template."""
    duration_ms: int
    """Round-trip duration."""
    status: str
    """Whether the HTTP call succeeded or errored."""


# --------------------------------------------------------------------------- hot reload


class WorkflowReloadDetected(Event, frozen=True, kw_only=True):
    """Changes to the workflow's files were detected."""

    changed_files: tuple[str, ...]
    """Paths of the changed files."""


class WorkflowReloaded(Event, frozen=True, kw_only=True):
    """The workflow was reloaded from changed files."""

    generation: int
    """Monotonically increasing reload counter."""
    changed_files: tuple[str, ...]
    """Paths of the changed files."""


class WorkflowReloadFailed(Event, frozen=True, kw_only=True):
    """Reloading the workflow failed; the previous version keeps running."""

    error: ErrorInfo
    """The failure."""
    changed_files: tuple[str, ...]
    """Paths of the changed files."""


class WorkflowReloadUnsafe(Event, frozen=True, kw_only=True):
    """A detected change cannot be hot-reloaded safely."""

    reason: str
    """Why the reload is unsafe."""
    changed_files: tuple[str, ...]
    """Paths of the changed files."""


# --------------------------------------------------------------------------- scorers


class ScorerStarted(Event, frozen=True, kw_only=True):
    """A scorer began evaluating a task's output."""

    node_id: str
    """Task node id whose output is scored."""
    scorer_id: str
    """Unique identifier of the scorer."""
    scorer_name: str
    """Human-readable scorer name."""


class ScorerFinished(Event, frozen=True, kw_only=True):
    """A scorer completed successfully."""

    node_id: str
    """Task node id whose output was scored."""
    scorer_id: str
    """Unique identifier of the scorer."""
    scorer_name: str
    """Human-readable scorer name."""
    score: float
    """Normalised score from 0 to 1."""


class ScorerFailed(Event, frozen=True, kw_only=True):
    """A scorer raised an error; scorer failures never fail the task."""

    node_id: str
    """Task node id whose output was scored."""
    scorer_id: str
    """Unique identifier of the scorer."""
    scorer_name: str
    """Human-readable scorer name."""
    error: ErrorInfo
    """The error raised by the scorer."""


# --------------------------------------------------------------------------- alerts


class AlertFired(Event, frozen=True, kw_only=True):
    """An alert policy fired."""

    alert_id: str
    """Unique identifier of the alert."""
    policy_name: str
    """Name of the policy that fired."""
    severity: str
    """Alert severity."""
    fingerprint: str
    """Deduplication key of the alert."""
    node_id: str | None = None
    """Node the alert concerns, if any."""
    iteration: int | None = None
    """Loop iteration of that node, if any."""
    message: str
    """Human-readable alert message."""


class AlertAcknowledged(Event, frozen=True, kw_only=True):
    """An alert was acknowledged."""

    alert_id: str
    """Unique identifier of the alert."""
    acknowledged_by: str | None = None
    """Who acknowledged it."""


class AlertSilenced(Event, frozen=True, kw_only=True):
    """An alert was silenced."""

    alert_id: str
    """Unique identifier of the alert."""
    silenced_until_ms: int | None = None
    """Unix epoch milliseconds until which it is silenced; None for indefinitely."""


class AlertResolved(Event, frozen=True, kw_only=True):
    """An alert was resolved."""

    alert_id: str
    """Unique identifier of the alert."""
    resolved_by: str | None = None
    """Who resolved it."""


class AlertReopened(Event, frozen=True, kw_only=True):
    """A resolved alert fired again."""

    alert_id: str
    """Unique identifier of the alert."""
    fingerprint: str
    """Deduplication key of the alert."""
    occurrence_count: int
    """How many times the alert has occurred."""


class AlertEscalated(Event, frozen=True, kw_only=True):
    """An alert's severity was raised."""

    alert_id: str
    """Unique identifier of the alert."""
    from_severity: str
    """Previous severity."""
    to_severity: str
    """New severity."""


# --------------------------------------------------------------------------- normalized input


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
)
