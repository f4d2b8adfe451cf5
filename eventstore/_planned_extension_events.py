"""Events of Smithers' add-on subsystems not built yet, from the reference's catalogue.

Sandboxes, voice, RAG, memory, OpenAPI tools, workflow hot reload, scorers and
alerts: Smithers' event reference defines events for them; smithers-py has none of
these subsystems yet, and nothing in it emits or folds these events.

As with `_planned_events`, they are defined so they are in `AnyEvent` and logs
written by later versions (or by Smithers) decode; when a subsystem is built, move its
events to `events`. Import them from `smithers.eventstore.events`, which re-exports
every event.
"""

from __future__ import annotations

from typing import Literal

from ._event_base import ErrorInfo, Event, NodeEvent

__all__ = (
    "VoiceOperation",
    "SandboxCreated",
    "SandboxShipped",
    "SandboxHeartbeat",
    "SandboxBundleReceived",
    "SandboxCompleted",
    "SandboxFailed",
    "SandboxDiffReviewRequested",
    "SandboxDiffAccepted",
    "SandboxDiffRejected",
    "VoiceStarted",
    "VoiceFinished",
    "VoiceError",
    "RagIngested",
    "RagRetrieved",
    "MemoryFactSet",
    "MemoryRecalled",
    "MemoryMessageSaved",
    "OpenApiToolCalled",
    "WorkflowReloadDetected",
    "WorkflowReloaded",
    "WorkflowReloadFailed",
    "WorkflowReloadUnsafe",
    "ScorerStarted",
    "ScorerFinished",
    "ScorerFailed",
    "AlertFired",
    "AlertAcknowledged",
    "AlertSilenced",
    "AlertResolved",
    "AlertReopened",
    "AlertEscalated",
)


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
