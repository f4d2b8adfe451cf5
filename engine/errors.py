"""Errors raised by the engine, one class per Smithers code."""

from __future__ import annotations

from typing import Any

from smithers.eventstore.errors import SmithersError

__all__ = (
    "EngineError",
    "InvalidInputError",
    "InvalidOutputError",
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
)


class EngineError(SmithersError):
    """Base class of errors raised by the engine."""

    default_code = "INTERNAL_ERROR"


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
