"""Smithers errors: one root class, typed codes, JSON serialisation.

As Smithers' `SmithersErrorInstance`: every error carries a SCREAMING_SNAKE `code`,
a `summary` (the message without the docs suffix), a `docs_url` and a `details`
mapping. Codes and their "when"/"details" come from Smithers' error reference; the
catalogue in `ERROR_DEFINITIONS` is designed to hold all of it (later issues complete it).

The root lives in the lowest layer (`eventstore`) so every layer can raise and catch it.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from ._codec import to_raw
from ._event_base import NULL_RAW, ErrorInfo

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = (
    "ERROR_REFERENCE_URL",
    "ErrorDefinition",
    "ERROR_DEFINITIONS",
    "SmithersError",
    "EventStoreError",
    "SeqConflictError",
    "RunAlreadyExistsError",
    "DatabaseWriteError",
    "DatabaseQueryError",
    "ForeignDatabaseError",
    "error_to_json",
    "error_info_of",
    "error_info_to_json",
    "is_smithers_error",
    "is_known_error_code",
    "known_error_codes",
    "get_error_definition",
    "get_error_docs_url",
)

ERROR_REFERENCE_URL = "https://smithers.sh/reference/errors"


class ErrorDefinition(msgspec.Struct, frozen=True, kw_only=True):
    """Documentation metadata of one known error code.

    Attributes are Smithers' error-reference columns.
    """

    code: str
    """The SCREAMING_SNAKE code, e.g. ``"INVALID_INPUT"``."""
    category: str
    """Reference section: engine, components, tools, agents, database, runtime, cli, http."""
    when: str
    """When the error is raised."""
    details: tuple[str, ...] = ()
    """Keys of the `details` mapping the error carries."""
    retryable: bool = False
    """Whether a task failing with this code may be retried by its retry policy."""


def _d(
    category: str, code: str, when: str, details: tuple[str, ...] = (), *, retryable: bool = False
) -> ErrorDefinition:
    return ErrorDefinition(
        code=code, category=category, when=when, details=details, retryable=retryable
    )


_DEFINITIONS: tuple[ErrorDefinition, ...] = (
    # Engine
    _d("engine", "INVALID_INPUT", "Workflow input fails validation or is not a JSON object."),
    _d("engine", "MISSING_INPUT", "A resume references an input that is missing from the log."),
    _d(
        "engine",
        "RESUME_METADATA_MISMATCH",
        "Stored run metadata no longer matches the workflow being resumed.",
        ("mismatches", "existing", "current"),
    ),
    _d(
        "engine",
        "RESUME_FRAME_MISMATCH",
        "A resume or replay re-renders a recorded frame and gets another tree: the "
        "builder reads something besides ctx (clock, randomness, files) or its code changed.",
        ("runId", "frameRunId", "frameNo", "nodes", "recordedHash", "renderedHash"),
    ),
    _d(
        "engine",
        "INVALID_OUTPUT",
        "Task output cannot be parsed or validated against the declared output schema.",
        ("nodeId", "schema", "errors", "schemaRetryAttempts"),
        retryable=True,
    ),
    _d(
        "engine",
        "TASK_OUTPUT_TOO_LARGE",
        "A task's output, encoded as JSON, exceeds the run's max_task_output_bytes; "
        "nothing is recorded but the failure, and the attempt is not retried.",
        ("nodeId", "iteration", "attempt", "sizeBytes", "maxBytes"),
    ),
    _d(
        "engine",
        "SNAPSHOT_NOT_FOUND",
        "A requested time-travel frame does not exist.",
        ("runId", "frameNo"),
    ),
    _d(
        "engine",
        "TASK_TIMEOUT",
        "A task callback exceeds its configured timeout.",
        ("nodeId", "attempt", "timeoutMs"),
        retryable=True,
    ),
    _d("engine", "TASK_ABORTED", "A running task is aborted through cancellation or shutdown."),
    _d("engine", "RUN_NOT_FOUND", "A command references a run id that does not exist.", ("runId",)),
    _d(
        "engine",
        "NODE_NOT_FOUND",
        "A command references a node id that does not exist for the run.",
        ("runId", "nodeId"),
    ),
    _d(
        "engine",
        "WORKFLOW_EXECUTION_FAILED",
        "A workflow exits unsuccessfully without a typed error payload.",
        ("status",),
    ),
    _d(
        "engine",
        "TASK_HEARTBEAT_TIMEOUT",
        "A task heartbeat timeout is exceeded while the task is still in progress.",
        ("nodeId", "iteration", "attempt", "timeoutMs", "staleForMs", "lastHeartbeatAtMs"),
        retryable=True,
    ),
    _d(
        "engine",
        "HEARTBEAT_PAYLOAD_TOO_LARGE",
        "A task heartbeat payload exceeds the maximum persisted checkpoint size.",
        ("dataSizeBytes", "maxBytes"),
    ),
    _d(
        "engine",
        "HEARTBEAT_PAYLOAD_NOT_JSON_SERIALIZABLE",
        "A task heartbeat payload contains values that cannot be serialized to JSON.",
        ("path", "valueType"),
    ),
    _d("engine", "RUN_CANCELLED", "A run is cancelled while runtime work is active.", ("runId",)),
    _d(
        "engine",
        "TASK_HIJACK_UNSUPPORTED",
        "A hijack targets a task whose agent has no resumable session or conversation "
        "(not an agent task, or its agent never reported a session id).",
        ("nodeId", "agentId"),
    ),
    _d(
        "engine",
        "RUN_NOT_RESUMABLE",
        "A resume request targets a run state that cannot be resumed.",
        ("runId", "status"),
    ),
    _d(
        "engine",
        "RUN_OWNER_ALIVE",
        "A resume is refused because the process that owns the run is still alive.",
        ("runId", "runtimeOwnerId"),
    ),
    _d(
        "engine",
        "RUN_STILL_RUNNING",
        "A recovery or resume operation finds a run that is still active.",
        ("runId",),
    ),
    _d(
        "engine",
        "RUN_RESUME_CLAIM_LOST",
        "A runtime loses the resume claim before it can update the run.",
        ("runId", "runtimeOwnerId"),
    ),
    _d(
        "engine",
        "RUN_RESUME_CLAIM_FAILED",
        "A runtime cannot claim a stale run for resume.",
        ("runId", "runtimeOwnerId"),
    ),
    _d(
        "engine",
        "RUN_ALREADY_EXISTS",
        "A new run is started with a run id that is already in the log.",
        ("runId",),
    ),
    _d(
        "engine",
        "RALPH_MAX_REACHED",
        "A loop reaches max_iterations with fail-on-max behaviour.",
        ("ralphId", "maxIterations"),
    ),
    _d(
        "engine",
        "CONTINUATION_STATE_TOO_LARGE",
        "Continue-as-new state exceeds the configured serialized size limit.",
        ("runId", "sizeBytes", "maxBytes"),
    ),
    _d(
        "engine",
        "INVALID_CONTINUATION_STATE",
        "Continue-as-new state cannot be parsed or applied.",
    ),
    _d("engine", "SCHEDULER_ERROR", "The scheduler cannot produce a valid execution decision."),
    _d(
        "engine",
        "APPROVAL_DENIED",
        'A node\'s approval was denied and its on_deny is "fail".',
        ("nodeId", "iteration", "note", "decidedBy"),
    ),
    _d(
        "engine",
        "NO_PENDING_APPROVALS",
        "approve/deny names a run (or node) with no approval waiting for a decision.",
        ("runId",),
    ),
    _d(
        "engine",
        "AMBIGUOUS_APPROVAL",
        "approve/deny without a node, while several approvals wait.",
        ("runId", "pending"),
    ),
    _d(
        "engine",
        "APPROVAL_ALREADY_DECIDED",
        "An approval that was already granted or denied is decided again.",
        ("runId", "nodeId", "iteration", "decision"),
    ),
    _d(
        "engine",
        "WAIT_FOR_EVENT_TIMEOUT",
        "A WaitForEvent node's timeout passed before its signal arrived.",
        ("nodeId", "iteration", "eventName", "timeoutMs"),
    ),
    # Components
    _d("components", "TASK_ID_REQUIRED", "A Task is missing a valid string id."),
    _d("components", "TASK_MISSING_OUTPUT", "A Task is missing its output schema.", ("nodeId",)),
    _d(
        "components",
        "DUPLICATE_ID",
        "Two nodes with the same id are mounted in one workflow graph.",
        ("kind", "id"),
    ),
    _d(
        "components",
        "TREE_TOO_DEEP",
        "A workflow returns components nested deeper than the engine supports "
        "(MAX_TREE_DEPTH groups, e.g. a Sequence in a Sequence in ...).",
        ("maxDepth",),
    ),
    _d("components", "NESTED_LOOP", "A Loop is nested inside another loop."),
    _d(
        "components",
        "APPROVAL_OPTIONS_REQUIRED",
        "An approval mode that requires explicit options is missing them.",
    ),
    _d(
        "components",
        "CONTEXT_OUTSIDE_WORKFLOW",
        "Workflow context access happens outside an active workflow render.",
    ),
    _d(
        "components",
        "MISSING_OUTPUT",
        "Code calls ctx.output() for a node result that does not exist.",
        ("nodeId", "iteration"),
    ),
    _d(
        "components",
        "WORKFLOW_MISSING_DEFAULT",
        "A workflow file does not define a workflow.",
        ("path",),
    ),
    # Tools
    _d("tools", "TOOL_PATH_INVALID", "A filesystem tool receives a non-string path.", ("path",)),
    _d(
        "tools",
        "TOOL_PATH_ESCAPE",
        "A filesystem tool resolves a path outside the sandbox root, including through symlinks.",
        ("path", "resolved", "rootDir"),
    ),
    _d(
        "tools",
        "TOOL_FILE_TOO_LARGE",
        "A read or edit operation exceeds the configured file size limit.",
        ("path", "sizeBytes", "maxBytes"),
    ),
    _d(
        "tools",
        "TOOL_CONTENT_TOO_LARGE",
        "A write operation exceeds the configured content size limit.",
        ("path", "sizeBytes", "maxBytes"),
    ),
    _d(
        "tools",
        "TOOL_PATCH_TOO_LARGE",
        "An edit patch exceeds the configured patch size limit.",
        ("path", "sizeBytes", "maxBytes"),
    ),
    _d(
        "tools",
        "TOOL_PATCH_FAILED",
        "A unified diff patch cannot be applied to the target file.",
        ("path", "hunk", "reason"),
    ),
    _d(
        "tools",
        "TOOL_NETWORK_DISABLED",
        "The bash tool tries to access the network while network access is disabled.",
        ("command",),
    ),
    _d(
        "tools",
        "TOOL_GIT_REMOTE_DISABLED",
        "The bash tool attempts a remote git operation while network access is disabled.",
        ("command",),
    ),
    _d(
        "tools",
        "TOOL_COMMAND_FAILED",
        "A bash tool command exits with a non-zero status.",
        ("command", "exitCode", "timedOut", "stdout", "stderr"),
        retryable=True,
    ),
    _d(
        "tools",
        "TOOL_GREP_FAILED",
        "The grep tool fails with an rg execution error.",
        ("pattern", "reason"),
        retryable=True,
    ),
    # Agents
    _d(
        "agents",
        "AGENT_CLI_ERROR",
        "A CLI-backed agent exits unsuccessfully, streams an explicit error, or its RPC "
        "transport fails.",
        ("agentId", "exitCode", "stderr"),
        retryable=True,
    ),
    _d(
        "agents",
        "AGENT_QUOTA_EXCEEDED",
        "An agent provider returns a usage-limit or quota error. The failure is transient; "
        "retries are preserved and the run pauses until the reset time.",
        ("agentId", "agentEngine", "agentModel", "quotaResetAtMs", "resetHint"),
        retryable=True,
    ),
    _d(
        "agents",
        "AGENT_CONFIG_INVALID",
        "An agent fails with a non-retryable configuration error such as bad credentials, "
        "an unknown model, a missing LLM, or an unsupported model.",
        ("agentId", "agentModel", "status", "providerCode"),
    ),
    _d(
        "agents",
        "AGENT_RPC_FILE_ARGS",
        "Pi RPC mode is used with file arguments that the transport does not support.",
    ),
    _d(
        "agents",
        "AGENT_BUILD_COMMAND",
        "An agent implementation forbids building a command because it uses a custom "
        "generate() transport.",
    ),
    _d(
        "agents",
        "AGENT_DIAGNOSTIC_TIMEOUT",
        "An internal agent diagnostic check exceeds the per-check timeout budget.",
        ("check", "timeoutMs"),
        retryable=True,
    ),
    # Agents, beyond Smithers' catalogue: its API agents pass the SDK's error through.
    _d(
        "agents",
        "AGENT_RATE_LIMITED",
        "An agent provider rate-limits the request (HTTP 429 without a quota cause); the "
        "next try waits for its retry-after.",
        ("status", "retryAfterMs", "agentId", "agentModel"),
        retryable=True,
    ),
    _d(
        "agents",
        "AGENT_PROVIDER_ERROR",
        "An agent provider fails transiently: a 5xx, an overloaded service, a request "
        "timeout or a dropped connection.",
        ("status", "providerCode", "retryAfterMs"),
        retryable=True,
    ),
    # Runtime
    _d("runtime", "INTERNAL_ERROR", "An unexpected internal exception without a specific code."),
    _d(
        "runtime",
        "PROCESS_ABORTED",
        "A spawned child process is aborted by signal or shutdown.",
        ("command", "args", "cwd"),
        retryable=True,
    ),
    _d(
        "runtime",
        "PROCESS_TIMEOUT",
        "A spawned child process exceeds its total timeout.",
        ("command", "args", "cwd", "timeoutMs"),
        retryable=True,
    ),
    _d(
        "runtime",
        "PROCESS_IDLE_TIMEOUT",
        "A spawned child process stops producing output longer than its idle timeout.",
        ("command", "args", "cwd", "idleTimeoutMs"),
        retryable=True,
    ),
    _d(
        "runtime",
        "PROCESS_SPAWN_FAILED",
        "The runtime cannot spawn the requested child process.",
        ("command", "args", "cwd"),
    ),
    # Database
    _d(
        "database",
        "DB_QUERY_FAILED",
        "A database read fails (corrupt, locked or non-SQLite file).",
        ("dbPath",),
    ),
    _d(
        "database",
        "DB_WRITE_FAILED",
        "A database write fails, including after SQLite lock-retry exhaustion.",
        ("dbPath",),
    ),
    _d("database", "STORAGE_ERROR", "A storage operation fails without a more specific code."),
    _d(
        "database",
        "DB_NOT_SMITHERS",
        "A database file holds tables but no smithers schema (another application's "
        "database); it is refused and left unchanged.",
        ("dbPath", "tables"),
    ),
    # CLI
    _d("cli", "INVALID_EVENTS_OPTIONS", "The events command receives invalid filter options."),
    _d("cli", "CLI_DB_NOT_FOUND", "A CLI command cannot find a smithers database."),
)

ERROR_DEFINITIONS: Mapping[str, ErrorDefinition] = {d.code: d for d in _DEFINITIONS}
"""Every known error code mapped to its definition (Smithers' `getSmithersErrorDefinition`)."""


def known_error_codes() -> tuple[str, ...]:
    """Return every built-in error code, as Smithers' `knownSmithersErrorCodes`."""
    return tuple(ERROR_DEFINITIONS)


def is_known_error_code(code: object) -> bool:
    """Return True if `code` is one of the built-in error codes."""
    return isinstance(code, str) and code in ERROR_DEFINITIONS


def get_error_definition(code: str) -> ErrorDefinition | None:
    """Return the documentation metadata of `code`, or None for an unknown or custom code."""
    return ERROR_DEFINITIONS.get(code)


def get_error_docs_url(code: str) -> str:
    """Return the reference URL appended to built-in error messages."""
    return f"{ERROR_REFERENCE_URL}#{code.lower().replace('_', '-')}"


class SmithersError(Exception):
    """Root of every error Smithers raises on purpose.

    Args:
        summary: Human-readable description without the docs suffix.
        code: Overrides the class's `default_code` (for custom, user-defined codes).
        details: Structured context; keys are listed by the code's definition.
        hint: The next step to take, appended to the message.

    Attributes:
        code: SCREAMING_SNAKE string, e.g. ``"RUN_NOT_FOUND"``.
        summary: The message without the docs URL.
        details: Mapping of structured context (camelCase keys, as in Smithers).
        hint: What to do next, or None.
        docs_url: Reference URL for the code.
    """

    default_code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(
        self,
        summary: str,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        hint: str | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.summary = summary
        self.details: dict[str, Any] = dict(details or {})
        self.hint = hint
        self.docs_url = get_error_docs_url(self.code)
        super().__init__(summary)

    @property
    def retryable(self) -> bool:
        """Whether a task failing with this error may be retried (from the code's definition)."""
        definition = get_error_definition(self.code)
        return definition.retryable if definition else True

    @property
    def message(self) -> str:
        """The summary followed by the docs URL, as Smithers' `message`."""
        return f"{self.summary} See {self.docs_url}"


class EventStoreError(SmithersError):
    """Base class of errors raised by the event log."""

    default_code = "STORAGE_ERROR"


class SeqConflictError(EventStoreError):
    """An append found the run's last seq different from its `expected_seq`.

    Raised by `EventStore.append(run_id, events, expected_seq=...)` when the run's
    last seq (`actual_seq`, 0 for a run with no events) is not `expected_seq`: another
    writer appended first. Nothing of the batch was written; re-read the run and decide
    again. Attributes `run_id`, `expected_seq`, `actual_seq`; details: `runId`,
    `expectedSeq`, `actualSeq`.
    """

    default_code = "RUN_RESUME_CLAIM_LOST"

    def __init__(self, run_id: str, *, expected_seq: int, actual_seq: int) -> None:
        super().__init__(
            f"Run {run_id!r} is at seq {actual_seq}, not {expected_seq}: another writer "
            "appended to it. Re-read the run and decide again.",
            details={"runId": run_id, "expectedSeq": expected_seq, "actualSeq": actual_seq},
        )
        self.run_id = run_id
        self.expected_seq = expected_seq
        self.actual_seq = actual_seq


class RunAlreadyExistsError(SeqConflictError):
    """A new run was started (expected_seq 0) with a run id already in the log."""

    default_code = "RUN_ALREADY_EXISTS"

    def __init__(self, run_id: str, *, actual_seq: int) -> None:
        super().__init__(run_id, expected_seq=0, actual_seq=actual_seq)
        self.summary = (
            f"Run {run_id!r} already exists; run ids are unique. Pick another --run-id "
            "(or leave it out for a fresh one)."
        )
        self.args = (self.summary,)


class DatabaseWriteError(EventStoreError, OSError):
    """A write to the database failed (locked past the retry budget, disk full, read-only).

    Nothing of the failed transaction was kept. Details: `dbPath`, `reason`.
    """

    default_code = "DB_WRITE_FAILED"


class DatabaseQueryError(EventStoreError, OSError):
    """A read from the database failed (corrupt or non-SQLite file, unreadable file).

    Details: `dbPath`, `reason`.
    """

    default_code = "DB_QUERY_FAILED"


class ForeignDatabaseError(DatabaseQueryError):
    """The file is a SQLite database of another application: tables, no smithers schema.

    Raised when a store is opened on it (by any command, reading or writing); the file
    is left unchanged (no table created, journal mode kept). Details: `dbPath`,
    `tables` (a few of its table names).
    """

    default_code = "DB_NOT_SMITHERS"

    def __init__(self, path: str, tables: list[str]) -> None:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        super().__init__(
            f"{path} is not a smithers database: it holds other tables ({shown}) and no "
            "smithers schema. It was left unchanged.",
            details={"dbPath": path, "tables": tables[:20]},
            hint="Pass --db with a new file name (or a smithers database) instead.",
        )


def is_smithers_error(err: object) -> bool:
    """Return True for values carrying a Smithers-style string `code` (Smithers' type guard)."""
    return isinstance(err, SmithersError) or isinstance(getattr(err, "code", None), str)


def error_to_json(err: BaseException, *, include_stack: bool = False) -> dict[str, Any]:
    """Serialise an exception as Smithers' `errorToJson` does.

    Args:
        err: Any exception; non-Smithers exceptions get `code` None.
        include_stack: Add the formatted traceback under ``"stack"``.

    Returns:
        A JSON-ready dict with `name`, `message`, `summary`, `code`, `docsUrl`,
        `details` and, when present, `cause` (recursively) and `stack`.
    """
    out: dict[str, Any] = {"name": type(err).__name__}
    if isinstance(err, SmithersError):
        out.update(
            message=err.message,
            summary=err.summary,
            code=err.code,
            docsUrl=err.docs_url,
            details=err.details,
        )
        if err.hint:
            out["hint"] = err.hint
    else:
        out.update(message=str(err), summary=str(err), code=getattr(err, "code", None))
    cause = err.__cause__
    if cause is not None:
        out["cause"] = error_to_json(cause)
    if include_stack:
        out["stack"] = "".join(traceback.format_exception(err))
    return out


ERROR_JSON_KEYS: tuple[str, ...] = (
    "name",
    "message",
    "code",
    "details",
    "cause",
    "stack",
    "retryable",
    "file",
    "line",
    "function",
)
"""The keys of a recorded error in every ``--json`` output, in this order."""


def error_info_of(err: BaseException) -> ErrorInfo:
    """Return `err` as data: name, message, code, retryable and details. Pure.

    A `SmithersError` gives its summary, code, retryability and details (values JSON
    cannot hold are recorded as their ``repr``); any other exception its ``str`` (or its
    class name), the ``code`` attribute it may carry, and ``retryable`` True. No
    traceback, location or cause: the engine's `error_info` adds those for a task's
    failure; a tool call's failure records this much.
    """
    if isinstance(err, SmithersError):
        details: msgspec.Raw = NULL_RAW
        if err.details:
            try:
                details = to_raw(err.details)
            except (TypeError, msgspec.EncodeError):
                details = to_raw({k: repr(v) for k, v in err.details.items()})
        return ErrorInfo(
            name=type(err).__name__,
            message=err.summary,
            code=err.code,
            retryable=err.retryable,
            details=details,
        )
    code = getattr(err, "code", None)
    return ErrorInfo(
        name=type(err).__name__,
        message=str(err) or type(err).__name__,
        code=code if isinstance(code, str) else None,
        retryable=True,
    )


def error_info_to_json(info: ErrorInfo | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return a recorded error in the one JSON shape every ``--json`` output uses.

    The shape is the seed's `errorToJson` one (``name``, ``message``, ``code``,
    ``details``, ``cause``, ``stack``) plus ``retryable`` and the source location
    (``file``, ``line``, ``function``). Every key is present (None when unknown);
    ``cause`` is the same shape, recursively. A mapping (an `ErrorInfo` decoded from an
    event's JSON) is filled in the same way, and keys written by a newer version are
    kept after the known ones. No I/O.

    Args:
        info: An `ErrorInfo`, its camelCase JSON as a mapping, or None.

    Returns:
        A JSON-ready dict with the keys of `ERROR_JSON_KEYS` (and any unknown ones of
        a mapping), or None for None.
    """
    if info is None:
        return None
    if isinstance(info, ErrorInfo):
        details: Any = msgspec.json.decode(info.details)
        return {
            "name": info.name,
            "message": info.message,
            "code": info.code,
            "details": details,
            "cause": error_info_to_json(info.cause),
            "stack": info.stack,
            "retryable": info.retryable,
            "file": info.file,
            "line": info.line,
            "function": info.function,
        }
    cause = info.get("cause")
    out: dict[str, Any] = {
        "name": info.get("name"),
        "message": info.get("message"),
        "code": info.get("code"),
        "details": info.get("details"),
        "cause": error_info_to_json(cause) if isinstance(cause, dict) else None,
        "stack": info.get("stack"),
        "retryable": info.get("retryable", True),
        "file": info.get("file"),
        "line": info.get("line"),
        "function": info.get("function"),
    }
    out.update((k, v) for k, v in info.items() if k not in out)
    return out
