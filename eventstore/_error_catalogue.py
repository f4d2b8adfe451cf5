"""The error catalogue: every code of Smithers' error reference, with its documentation.

As Smithers' `knownSmithersErrorCodes` / `getSmithersErrorDefinition`: each code has its
category (the reference's section), when it is raised, the keys of its `details`, whether
a task failing with it may be retried, and for the HTTP API's codes the response status.
Codes of features smithers-py does not build yet are defined too (``planned=True``), so
`is_known_error_code` and `get_error_definition` answer for the whole reference.
``docs/errors.md`` is generated from these definitions (`render_errors_markdown`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._error_definition import CATEGORIES as CATEGORIES
from ._error_definition import ErrorDefinition, _d
from ._planned_errors import PLANNED_DEFINITIONS

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = (
    "CATEGORIES",
    "ERROR_DEFINITIONS",
    "ERROR_REFERENCE_URL",
    "ErrorDefinition",
    "get_error_definition",
    "get_error_docs_url",
    "is_known_error_code",
    "known_error_codes",
)

ERROR_REFERENCE_URL = "https://smithers.sh/reference/errors"


_DEFINITIONS: tuple[ErrorDefinition, ...] = (
    # Engine
    _d("engine", "INVALID_INPUT", "Workflow input fails validation or is not a JSON object."),
    _d(
        "engine",
        "MISSING_INPUT",
        "A resume references an input that is missing from the log.",
        planned=True,
    ),
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
        reference=False,
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
        reference=False,
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
    _d(
        "engine",
        "RUN_NOT_FOUND",
        "A command references a run id that does not exist.",
        ("runId",),
        http_status=404,
    ),
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
        http_status=409,
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
        reference=False,
    ),
    _d(
        "engine",
        "NO_PENDING_APPROVALS",
        "approve/deny names a run (or node) with no approval waiting for a decision.",
        ("runId",),
        reference=False,
    ),
    _d(
        "engine",
        "AMBIGUOUS_APPROVAL",
        "approve/deny without a node, while several approvals wait.",
        ("runId", "pending"),
        reference=False,
    ),
    _d(
        "engine",
        "APPROVAL_ALREADY_DECIDED",
        "An approval that was already granted or denied is decided again.",
        ("runId", "nodeId", "iteration", "decision"),
        reference=False,
    ),
    _d(
        "engine",
        "WAIT_FOR_EVENT_TIMEOUT",
        "A WaitForEvent node's timeout passed before its signal arrived.",
        ("nodeId", "iteration", "eventName", "timeoutMs"),
        reference=False,
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
        reference=False,
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
        planned=True,
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
        reference=False,
    ),
    _d(
        "agents",
        "AGENT_PROVIDER_ERROR",
        "An agent provider fails transiently: a 5xx, an overloaded service, a request "
        "timeout or a dropped connection.",
        ("status", "providerCode", "retryAfterMs"),
        retryable=True,
        reference=False,
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
        reference=False,
    ),
    # HTTP API (`smithers serve`)
    _d(
        "http",
        "INVALID_REQUEST",
        "Invalid request body or query params.",
        ("field", "reason"),
        http_status=400,
    ),
    _d(
        "http",
        "PAYLOAD_TOO_LARGE",
        "Body exceeds maxBodyBytes.",
        ("maxBodyBytes",),
        http_status=413,
    ),
    _d("http", "INVALID_JSON", "Body not valid JSON.", ("reason",), http_status=400),
    _d("http", "SERVER_ERROR", "Unexpected server error.", http_status=500),
    _d("http", "UNAUTHORIZED", "Missing or invalid auth token.", http_status=401),
    _d(
        "http",
        "WORKFLOW_PATH_OUTSIDE_ROOT",
        "Workflow path outside server root.",
        ("workflowPath", "root"),
        http_status=400,
    ),
    _d("http", "RUN_ID_REQUIRED", "runId required when resume: true.", http_status=400),
    _d(
        "http",
        "RUN_NOT_ACTIVE",
        "Run not active (cannot cancel).",
        ("runId", "status"),
        http_status=409,
    ),
    _d("http", "NOT_FOUND", "Route or resource not found.", ("path",), http_status=404),
    _d(
        "database",
        "SMITHERS_MIGRATION_REQUIRED",
        "The PostgreSQL store's tables (`_smithers_meta` version) are of an older schema "
        "than this smithers writes; they are left unchanged until you run smithers migrate.",
        ("dbPath", "runCount", "schemaVersion", "resolvedBackend"),
    ),
    # CLI
    _d("cli", "INVALID_EVENTS_OPTIONS", "The events command receives invalid filter options."),
    _d("cli", "CLI_DB_NOT_FOUND", "A CLI command cannot find a smithers database."),
    *PLANNED_DEFINITIONS,
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
