"""Errors raised by the engine, one class per Smithers code.

The ownership/resume errors (`_ownership_errors`) and the approval errors
(`_approval_errors`) live in modules of their own; import every engine error from here.
"""

from __future__ import annotations

from typing import Any

from ._approval_errors import AmbiguousApprovalError as AmbiguousApprovalError
from ._approval_errors import ApprovalAlreadyDecidedError as ApprovalAlreadyDecidedError
from ._approval_errors import NoPendingApprovalsError as NoPendingApprovalsError
from ._error_base import EngineError as EngineError
from ._ownership_errors import OwnershipLostError as OwnershipLostError
from ._ownership_errors import ResumeClaimFailedError as ResumeClaimFailedError
from ._ownership_errors import ResumeFrameMismatchError as ResumeFrameMismatchError
from ._ownership_errors import ResumeMetadataMismatchError as ResumeMetadataMismatchError
from ._ownership_errors import RunNotResumableError as RunNotResumableError
from ._ownership_errors import RunOwnerAliveError as RunOwnerAliveError
from ._ownership_errors import RunStillRunningError as RunStillRunningError
from ._shell import shell_command

__all__ = (
    "EngineError",
    "InvalidInputError",
    "InvalidOutputError",
    "TaskOutputTooLargeError",
    "TaskTimeoutError",
    "TaskAbortedError",
    "RunNotFoundError",
    "NodeNotFoundError",
    "DuplicateIdError",
    "TaskIdRequiredError",
    "TaskMissingOutputError",
    "MissingOutputError",
    "WorkflowMissingDefaultError",
    "SchedulerError",
    "UnsupportedFeatureError",
    "OwnershipLostError",
    "ResumeClaimFailedError",
    "RunOwnerAliveError",
    "RunStillRunningError",
    "RunNotResumableError",
    "ResumeMetadataMismatchError",
    "ResumeFrameMismatchError",
    "SnapshotNotFoundError",
    "TaskHeartbeatTimeoutError",
    "HeartbeatPayloadTooLargeError",
    "HeartbeatPayloadNotJsonSerializableError",
    "NoPendingApprovalsError",
    "AmbiguousApprovalError",
    "ApprovalAlreadyDecidedError",
    "WorkflowExecutionFailedError",
    "NestedLoopError",
    "TreeTooDeepError",
    "RalphMaxReachedError",
    "ContinuationStateTooLargeError",
    "InvalidContinuationStateError",
    "TaskHijackUnsupportedError",
)


class InvalidInputError(EngineError, ValueError):
    """The run's input is not a JSON object or fails the workflow's input schema.

    Raised by `run_workflow` before anything is recorded. Details: `errors`.
    """

    default_code = "INVALID_INPUT"


class InvalidOutputError(EngineError, ValueError):
    """A task's output does not validate against its output schema (retryable).

    Details: `nodeId`, `schema`, `errors`.
    """

    default_code = "INVALID_OUTPUT"

    def __init__(self, node_id: str, schema: str, reason: str) -> None:
        super().__init__(
            f"Output of task {node_id!r} does not match its schema {schema}: {reason}.",
            details={"nodeId": node_id, "schema": schema, "errors": reason},
            hint="Return a value shaped like the task's `output` schema.",
        )


class TaskOutputTooLargeError(EngineError, ValueError):
    """A task's output, as JSON, is over the run's ``max_task_output_bytes`` (not retryable).

    Raised before the output is recorded: the attempt fails, the node ends ``failed``.
    Details: `nodeId`, `iteration`, `attempt`, `sizeBytes`, `maxBytes`.
    """

    default_code = "TASK_OUTPUT_TOO_LARGE"

    def __init__(
        self, node_id: str, iteration: int, attempt: int, size_bytes: int, max_bytes: int
    ) -> None:
        super().__init__(
            f"Output of task {node_id!r} is {size_bytes:,} bytes of JSON; the run's limit "
            f"is {max_bytes:,} (max_task_output_bytes).",
            details={
                "nodeId": node_id,
                "iteration": iteration,
                "attempt": attempt,
                "sizeBytes": size_bytes,
                "maxBytes": max_bytes,
            },
            hint="Write large results to a file and return its path, or raise the limit "
            "(--max-task-output-bytes).",
        )


class TaskTimeoutError(EngineError, TimeoutError):
    """An attempt ran longer than its `timeout_ms` (retryable).

    Details: `nodeId`, `attempt`, `timeoutMs`.
    """

    default_code = "TASK_TIMEOUT"

    def __init__(self, node_id: str, attempt: int, timeout_ms: int) -> None:
        super().__init__(
            f"Task {node_id!r} attempt {attempt} timed out after {timeout_ms} ms.",
            details={"nodeId": node_id, "attempt": attempt, "timeoutMs": timeout_ms},
        )


class TaskAbortedError(EngineError):
    """A running task was aborted by cancellation or shutdown."""

    default_code = "TASK_ABORTED"


class RunNotFoundError(EngineError, LookupError):
    """No run with this id exists in the database. Details: `runId`."""

    default_code = "RUN_NOT_FOUND"

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"No run {run_id!r} in this database.",
            details={"runId": run_id},
            hint="List runs with `smithers ps`, or pass the right database with --db.",
        )


class NodeNotFoundError(EngineError, LookupError):
    """The run has no node with this id. Details: `runId`, `nodeId`."""

    default_code = "NODE_NOT_FOUND"

    def __init__(self, run_id: str, node_id: str, known: list[str] | None = None) -> None:
        hint = "See the run's nodes with `smithers inspect RUN`."
        if known:
            shown = ", ".join(known[:10]) + (", …" if len(known) > 10 else "")
            hint = f"Nodes of this run: {shown}."
        super().__init__(
            f"Run {run_id!r} has no node {node_id!r}.",
            details={"runId": run_id, "nodeId": node_id},
            hint=hint,
        )


class DuplicateIdError(EngineError, ValueError):
    """Two nodes with the same id are mounted in one render. Details: `kind`, `id`."""

    default_code = "DUPLICATE_ID"

    def __init__(self, kind: str, node_id: str) -> None:
        super().__init__(
            f"Two {kind} nodes have the id {node_id!r}; ids must be unique in a workflow.",
            details={"kind": kind, "id": node_id},
        )


class TaskIdRequiredError(EngineError, ValueError):
    """A Task was given no id, or an id that is not a non-empty string."""

    default_code = "TASK_ID_REQUIRED"

    def __init__(self, got: Any) -> None:
        super().__init__(
            f"Task needs a non-empty string id, got {got!r}.",
            details={"got": repr(got)},
        )


class TaskMissingOutputError(EngineError, ValueError):
    """A Task was given no `output` schema. Details: `nodeId`."""

    default_code = "TASK_MISSING_OUTPUT"

    def __init__(self, node_id: str) -> None:
        super().__init__(
            f"Task {node_id!r} has no output schema; pass output=SomeStruct (or output=dict).",
            details={"nodeId": node_id},
        )


class MissingOutputError(EngineError, LookupError):
    """`ctx.output` was asked for an output that does not exist (yet).

    Details: `nodeId`, `iteration`.
    """

    default_code = "MISSING_OUTPUT"

    def __init__(self, node_id: str, iteration: int) -> None:
        super().__init__(
            f"No output for node {node_id!r} (iteration {iteration}) yet.",
            details={"nodeId": node_id, "iteration": iteration},
            hint="Use ctx.output_maybe(...) and mount dependants only once it is not None.",
        )


class WorkflowMissingDefaultError(EngineError, LookupError):
    """A workflow file defines no `@workflow` (or not the one named). Details: `path`."""

    default_code = "WORKFLOW_MISSING_DEFAULT"


class SchedulerError(EngineError):
    """The scheduler cannot make progress (e.g. a dependency that is never mounted)."""

    default_code = "SCHEDULER_ERROR"


class UnsupportedFeatureError(EngineError, NotImplementedError):
    """A documented option that this version does not implement yet was used."""

    default_code = "INVALID_INPUT"


class SnapshotNotFoundError(EngineError, LookupError):
    """A time-travel frame does not exist in the run's log.

    Raised by `state_at`, `rewind`, `fork` and `replay` for a frame number the run never
    committed. The message gives the valid range. Details: `runId`, `frameNo`.
    """

    default_code = "SNAPSHOT_NOT_FOUND"

    def __init__(
        self, run_id: str, frame_no: int, frame_range: tuple[int, int] | None = None
    ) -> None:
        if frame_range is None:
            where = "it has no frames yet"
        elif frame_range[0] == frame_range[1]:
            where = f"its only frame is {frame_range[0]}"
        else:
            where = f"its frames are {frame_range[0]} to {frame_range[1]}"
        super().__init__(
            f"Run {run_id!r} has no frame {frame_no}: {where}.",
            details={"runId": run_id, "frameNo": frame_no},
            hint=f"See the run's frames with `{shell_command('timeline', args=[run_id])}`.",
        )


class TaskHeartbeatTimeoutError(EngineError, TimeoutError):
    """A task sent no heartbeat for `heartbeat_timeout_ms` (retryable).

    Details: `nodeId`, `iteration`, `attempt`, `timeoutMs`, `staleForMs`, `lastHeartbeatAtMs`.
    """

    default_code = "TASK_HEARTBEAT_TIMEOUT"

    def __init__(
        self,
        node_id: str,
        iteration: int,
        attempt: int,
        timeout_ms: int,
        stale_ms: int,
        last_ms: int,
    ) -> None:
        super().__init__(
            f"Task {node_id!r} attempt {attempt} sent no heartbeat for {stale_ms} ms "
            f"(heartbeat_timeout_ms={timeout_ms}).",
            details={
                "nodeId": node_id,
                "iteration": iteration,
                "attempt": attempt,
                "timeoutMs": timeout_ms,
                "staleForMs": stale_ms,
                "lastHeartbeatAtMs": last_ms,
            },
            hint="Call ctx.heartbeat() more often than heartbeat_timeout_ms, or raise it.",
        )


class HeartbeatPayloadTooLargeError(EngineError, ValueError):
    """A heartbeat payload is over the limit (not retryable).

    Details: `dataSizeBytes`, `maxBytes`.
    """

    default_code = "HEARTBEAT_PAYLOAD_TOO_LARGE"

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(
            f"Heartbeat payload is {size} bytes; the limit is {max_bytes}.",
            details={"dataSizeBytes": size, "maxBytes": max_bytes},
            hint="Keep heartbeat data to a small checkpoint (ids, offsets), not results.",
        )


class HeartbeatPayloadNotJsonSerializableError(EngineError, TypeError):
    """A heartbeat payload cannot be encoded as JSON (not retryable).

    Details: `path`, `valueType`.
    """

    default_code = "HEARTBEAT_PAYLOAD_NOT_JSON_SERIALIZABLE"

    def __init__(self, reason: str, value_type: str | None) -> None:
        super().__init__(
            f"Heartbeat payload is not JSON-serialisable: {reason}.",
            details={"path": "$", "valueType": value_type},
            hint="Pass dicts, lists, strings, numbers, booleans or msgspec Structs.",
        )


class WorkflowExecutionFailedError(EngineError):
    """A `Subflow`'s child run did not finish: it failed, was cancelled or continued.

    The `Subflow` node fails with it; the child's own error is recorded as its cause.
    Details: `status` (the child's), `childRunId`, `nodeId`.
    """

    default_code = "WORKFLOW_EXECUTION_FAILED"

    def __init__(self, node_id: str, child_run_id: str, status: str, reason: str | None) -> None:
        super().__init__(
            f"Subflow {node_id!r}: child run {child_run_id!r} ended {status}"
            + (f": {reason}" if reason else "")
            + ".",
            details={"status": status, "childRunId": child_run_id, "nodeId": node_id},
            hint=f"See the child with `{shell_command('inspect', args=[child_run_id])}`.",
        )


# ---- loops (issue 9: Loop and continue-as-new)


class TreeTooDeepError(EngineError, ValueError):
    """A workflow's components nest deeper than `MAX_TREE_DEPTH` groups (not retryable).

    Raised when the tree is compiled; the run fails with it. Details: `maxDepth`.
    """

    default_code = "TREE_TOO_DEEP"

    def __init__(self, max_depth: int) -> None:
        super().__init__(
            f"The workflow's components are nested more than {max_depth} groups deep "
            "(Sequence, Parallel, Branch, Loop or list inside one another).",
            details={"maxDepth": max_depth},
            hint="Flatten the tree: put steps side by side in one Sequence instead of "
            "nesting each in the previous one.",
        )


class NestedLoopError(EngineError, ValueError):
    """A Loop is a direct child of another Loop (Smithers' ``NESTED_LOOP``).

    Raised when the tree is compiled; the run fails with it. A Loop inside a
    Sequence/Parallel/Branch inside a Loop is allowed (scoped). Details: `loopId`,
    `parentLoopId`.
    """

    default_code = "NESTED_LOOP"

    def __init__(self, loop_id: str, parent_id: str) -> None:
        super().__init__(
            f"Loop {loop_id!r} is directly inside loop {parent_id!r}; loops cannot nest directly.",
            details={"loopId": loop_id, "parentLoopId": parent_id},
            hint="Wrap the inner loop in a Sequence (it then restarts on each outer pass), "
            "or merge the two loops.",
        )


class RalphMaxReachedError(EngineError):
    """A Loop with ``on_max_reached="fail"`` ran `max_iterations` passes without `until`.

    The run fails with it. Details: `ralphId` (the scoped loop id), `maxIterations`.
    """

    default_code = "RALPH_MAX_REACHED"

    def __init__(self, loop_id: str, max_iterations: int) -> None:
        super().__init__(
            f"Loop {loop_id!r} reached max_iterations={max_iterations} before its until "
            "condition held.",
            details={"ralphId": loop_id, "maxIterations": max_iterations},
            hint="Raise max_iterations, or use on_max_reached='return-last'.",
        )


class ContinuationStateTooLargeError(EngineError, ValueError):
    """What a continue-as-new carries is over the limit (10 MB of JSON).

    The run fails with it instead of continuing. Details: `runId`, `sizeBytes`,
    `maxBytes`.
    """

    default_code = "CONTINUATION_STATE_TOO_LARGE"

    def __init__(self, run_id: str, size_bytes: int, max_bytes: int) -> None:
        super().__init__(
            f"Run {run_id!r} cannot continue as new: the carried state is {size_bytes} "
            f"bytes of JSON, over the {max_bytes}-byte limit.",
            details={"runId": run_id, "sizeBytes": size_bytes, "maxBytes": max_bytes},
            hint="Carry ids or paths instead of the data itself.",
        )


class InvalidContinuationStateError(EngineError, TypeError):
    """``ContinueAsNew(state=...)`` was given state that is not JSON-serialisable.

    Raised when the component is built (in the builder: the run fails with it).
    Details: `valueType`, `errors`.
    """

    default_code = "INVALID_CONTINUATION_STATE"

    def __init__(self, value_type: str, errors: str) -> None:
        super().__init__(
            f"ContinueAsNew state is not JSON-serialisable ({value_type}): {errors}.",
            details={"valueType": value_type, "errors": errors},
            hint="Carry plain JSON values: dicts, lists, strings, numbers, booleans, None.",
        )


class TaskHijackUnsupportedError(EngineError, LookupError):
    """A hijack targets a task with no resumable agent session (``smithers hijack``).

    The node is not an agent task, or its agent never reported a session id (it had
    not started talking yet). Details: `runId`, `nodeId`, `agentId` (when known).
    """

    default_code = "TASK_HIJACK_UNSUPPORTED"

    def __init__(self, run_id: str, node_id: str, hint: str | None = None) -> None:
        super().__init__(
            f"Node {node_id!r} of run {run_id!r} has no agent session to hijack.",
            details={"runId": run_id, "nodeId": node_id},
            hint=hint
            or "Only coding-agent tasks (Claude Code, Codex, Gemini CLI) that have started "
            "a session can be hijacked; see the run's nodes with `smithers inspect RUN`.",
        )
