"""The reference's error codes of features smithers-py does not build yet.

Defined (``planned=True``) so `is_known_error_code` and `get_error_definition` answer for
the whole of Smithers' error reference; "when" is the reference's own wording. A code
moves to `_error_catalogue` (and loses ``planned``) when the feature that raises it lands.
"""

from __future__ import annotations

from ._error_definition import ErrorDefinition, _d

__all__ = ("PLANNED_DEFINITIONS",)

PLANNED_DEFINITIONS: tuple[ErrorDefinition, ...] = (
    # engine
    _d(
        "engine",
        "MISSING_INPUT_TABLE",
        "The workflow schema does not expose the expected input table during resume or hydration.",
        planned=True,
    ),
    _d(
        "engine",
        "UNKNOWN_OUTPUT_SCHEMA",
        "A task references an output table that is not present in the schema registry.",
        planned=True,
    ),
    _d(
        "engine",
        "WORKTREE_CREATE_FAILED",
        "Smithers fails to create or hydrate a git or jj worktree for a task.",
        ("worktreePath", "vcsType", "branch"),
        planned=True,
    ),
    _d(
        "engine",
        "VCS_NOT_FOUND",
        "No supported git or jj repository root can be found for the workflow.",
        ("rootDir",),
        planned=True,
    ),
    _d(
        "engine",
        "VCS_WORKSPACE_CREATE_FAILED",
        "Smithers fails to materialize a jj workspace for time-travel or replay.",
        ("runId", "frameNo", "vcsPointer", "workspacePath"),
        planned=True,
    ),
    _d(
        "engine",
        "TASK_FORK_SOURCE_NOT_COMPLETE",
        "A forked task began executing but its fork source has not completed, so no session "
        "snapshot exists yet.",
        ("nodeId", "forkSource"),
        planned=True,
    ),
    _d(
        "engine",
        "TASK_FORK_SESSION_UNAVAILABLE",
        "A <Task fork> cannot obtain a usable agent session snapshot, either because the forking "
        "task is not an agent task or because the source completed without producing a forkable "
        "conversation (e.g. a compute/static, skipped, or cancelled source).",
        ("nodeId", "forkSource"),
        planned=True,
    ),
    _d(
        "engine",
        "SANDBOX_BUNDLE_INVALID",
        "A sandbox bundle fails validation (missing README, invalid manifest, etc.).",
        ("bundlePath",),
        planned=True,
    ),
    _d(
        "engine",
        "SANDBOX_BUNDLE_TOO_LARGE",
        "A sandbox bundle exceeds the maximum allowed size.",
        ("bundlePath", "maxBytes"),
        planned=True,
    ),
    _d(
        "engine",
        "SANDBOX_EXECUTION_FAILED",
        "Sandbox setup or execution fails before a more specific sandbox error can be emitted.",
        ("sandboxId", "runId", "maxConcurrent", "activeSandboxCount"),
        planned=True,
    ),
    _d(
        "engine",
        "RUN_RESUME_ACTIVATION_FAILED",
        "A claimed run cannot be moved back into active execution.",
        ("runId", "runtimeOwnerId"),
        planned=True,
    ),
    _d(
        "engine",
        "RUN_HIJACKED",
        "A run is interrupted because another runtime hijacked execution.",
        ("runId", "hijackTarget"),
        planned=True,
    ),
    _d(
        "engine",
        "SESSION_ERROR",
        "The workflow session state machine reaches an invalid or failed state.",
        planned=True,
    ),
    # components
    _d(
        "components",
        "TASK_FORK_SOURCE_NOT_FOUND",
        "A <Task fork> references a source task id that is not present in the workflow graph, "
        "including a source that exists only in an unselected branch.",
        ("nodeId", "forkSource"),
        planned=True,
    ),
    _d(
        "components",
        "TASK_FORK_CYCLE",
        "A <Task fork> introduces a dependency cycle, directly or indirectly.",
        ("nodeId", "forkSource"),
        planned=True,
    ),
    _d(
        "components",
        "WORKTREE_EMPTY_PATH",
        "<Worktree> is mounted with an empty path.",
        planned=True,
    ),
    _d(
        "components",
        "MDX_PRELOAD_INACTIVE",
        "A prompt object is rendered without the MDX preload layer being active.",
        planned=True,
    ),
    _d(
        "components",
        "DEP_NOT_SATISFIED",
        "A typed dep on <Task> references an upstream output that has not been produced yet.",
        ("taskId", "depKey", "resolvedNodeId"),
        planned=True,
    ),
    _d(
        "components",
        "ASPECT_BUDGET_EXCEEDED",
        "An Aspects budget (tokens or latency) has been exceeded.",
        ("kind", "limit", "current"),
        planned=True,
    ),
    _d(
        "components",
        "APPROVAL_OUTSIDE_TASK",
        "<Approval> is resolved outside the active task runtime.",
        planned=True,
    ),
    # database
    _d(
        "database",
        "DB_MISSING_COLUMNS",
        "A table used by Smithers does not expose required columns such as runId or nodeId.",
        planned=True,
    ),
    _d(
        "database",
        "DB_REQUIRES_BUN_SQLITE",
        "The database adapter is not backed by a Bun SQLite client with exec().",
        planned=True,
    ),
    # runtime
    _d(
        "runtime",
        "TASK_RUNTIME_UNAVAILABLE",
        "Builder task runtime APIs are accessed outside an executing step.",
        planned=True,
    ),
    # hot-reload
    _d(
        "hot-reload",
        "SCHEMA_CHANGE_HOT",
        "Hot reload detects a schema change that requires a full restart.",
        planned=True,
    ),
    _d(
        "hot-reload",
        "HOT_OVERLAY_FAILED",
        "Building or cleaning the generated hot-reload overlay fails.",
        planned=True,
    ),
    _d(
        "hot-reload",
        "HOT_RELOAD_INVALID_MODULE",
        "A hot-reloaded workflow module does not export a valid default workflow build.",
        planned=True,
    ),
    # scorers
    _d(
        "scorers",
        "SCORER_FAILED",
        "A scorer throws or rejects while Smithers is evaluating a result.",
        planned=True,
    ),
    # cli
    _d(
        "cli",
        "WORKFLOW_EXISTS",
        "The workflow creation CLI refuses to overwrite an existing workflow file.",
        planned=True,
    ),
    _d(
        "cli",
        "CLI_AGENT_UNSUPPORTED",
        "The ask command selects an agent integration that Smithers does not support in that mode.",
        planned=True,
    ),
    # integrations
    _d(
        "integrations",
        "PI_HTTP_ERROR",
        "The Pi or server integration receives a non-success HTTP response from Smithers.",
        planned=True,
    ),
    _d(
        "integrations",
        "EXTERNAL_BUILD_FAILED",
        "An external workflow host fails to build a Smithers HostNode payload.",
        ("scriptPath", "error", "exitCode", "stderr", "stdout"),
        planned=True,
    ),
    _d(
        "integrations",
        "SCHEMA_DISCOVERY_FAILED",
        "External workflow schema discovery fails or returns invalid output.",
        ("scriptPath", "error", "exitCode", "stderr"),
        planned=True,
    ),
    _d(
        "integrations",
        "OPENAPI_SPEC_LOAD_FAILED",
        "An OpenAPI spec cannot be loaded or parsed.",
        planned=True,
    ),
    _d(
        "integrations",
        "OPENAPI_OPERATION_NOT_FOUND",
        "The requested operationId does not exist in the OpenAPI spec.",
        planned=True,
    ),
    _d(
        "integrations",
        "OPENAPI_TOOL_EXECUTION_FAILED",
        "An OpenAPI tool call fails during HTTP execution.",
        planned=True,
    ),
    _d(
        "integrations",
        "ACCOUNT_INVALID",
        "An account entry, label, provider, or provider-specific configuration is invalid.",
        planned=True,
    ),
    _d(
        "integrations",
        "ACCOUNT_NOT_FOUND",
        "An account operation references a label that is not registered.",
        planned=True,
    ),
    _d(
        "integrations",
        "ACCOUNT_DUPLICATE_LABEL",
        "An account add operation would create a duplicate label without replace enabled.",
        planned=True,
    ),
    _d(
        "integrations",
        "ACCOUNTS_FILE_INVALID",
        "The accounts.json file is not valid JSON or does not match the expected account registry "
        "schema after tolerant entry filtering.",
        planned=True,
    ),
    # http (the rest are built: `_error_catalogue`)
    _d(
        "http",
        "DB_NOT_CONFIGURED",
        "Server database not configured.",
        planned=True,
        http_status=400,
    ),
)
