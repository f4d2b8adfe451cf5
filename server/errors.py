"""Errors the HTTP API raises itself (category ``http`` of the error catalogue).

Each is a `SmithersError` with one code; the API answers it as
``{"error": {"code", "message", "details"?}}`` with the code's HTTP status
(`smithers.eventstore.errors.get_error_definition(code).http_status`).
"""

from __future__ import annotations

from typing import Any

from smithers.eventstore import SmithersError

__all__ = (
    "HttpApiError",
    "InvalidJsonError",
    "InvalidRequestError",
    "PayloadTooLargeError",
    "RouteNotFoundError",
    "RunIdRequiredError",
    "RunNotActiveError",
    "ServerError",
    "UnauthorizedError",
    "WorkflowPathOutsideRootError",
)


class HttpApiError(SmithersError):
    """Base class of the errors the HTTP layer raises (not the engine's)."""

    default_code = "SERVER_ERROR"


class InvalidRequestError(HttpApiError):
    """A body field or query parameter is missing, of the wrong type or out of range.

    Details: ``field`` (the JSON name, e.g. ``frame``), ``reason``.
    """

    default_code = "INVALID_REQUEST"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(
            f"Invalid request: {field} {reason}.",
            details={"field": field, "reason": reason},
            hint="See GET /openapi.json for the request's fields.",
        )


class InvalidJsonError(HttpApiError):
    """The body is not JSON, is not a JSON object, or nests deeper than the limit.

    Details: ``reason``.
    """

    default_code = "INVALID_JSON"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"The request body is not acceptable JSON: {reason}.",
            details={"reason": reason},
            hint="Send a JSON object (Content-Type: application/json).",
        )


class PayloadTooLargeError(HttpApiError):
    """The body is larger than the server's limit. Details: ``maxBodyBytes``."""

    default_code = "PAYLOAD_TOO_LARGE"

    def __init__(self, max_body_bytes: int) -> None:
        super().__init__(
            f"The request body is larger than {max_body_bytes} bytes.",
            details={"maxBodyBytes": max_body_bytes},
            hint="Send a smaller body (large inputs belong in files under --root).",
        )


class UnauthorizedError(HttpApiError):
    """The server has an auth token and the request did not carry it."""

    default_code = "UNAUTHORIZED"

    def __init__(self) -> None:
        super().__init__(
            "Missing or invalid auth token.",
            hint="Send `Authorization: Bearer <token>` or `x-smithers-key: <token>`.",
        )


class WorkflowPathOutsideRootError(HttpApiError):
    """A ``workflowPath`` resolves (symlinks followed) outside the server's ``--root``.

    Details: ``workflowPath`` (as sent), ``root``.
    """

    default_code = "WORKFLOW_PATH_OUTSIDE_ROOT"

    def __init__(self, workflow_path: str, root: str) -> None:
        super().__init__(
            f"Workflow path {workflow_path!r} is outside the server root {root}.",
            details={"workflowPath": workflow_path, "root": root},
            hint="Give a path relative to the server root, with no `..` or link leaving it.",
        )


class RunIdRequiredError(HttpApiError):
    """``POST /v1/runs`` with ``resume: true`` and no ``runId``."""

    default_code = "RUN_ID_REQUIRED"

    def __init__(self) -> None:
        super().__init__(
            "runId is required when resume is true.",
            hint="Send the runId of the run to resume.",
        )


class RunNotActiveError(HttpApiError):
    """A cancel of a run that already ended. Details: ``runId``, ``status``."""

    default_code = "RUN_NOT_ACTIVE"

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(
            f"Run {run_id} is not active (status {status}): there is nothing to cancel.",
            details={"runId": run_id, "status": status},
            hint="See the run with GET /v1/runs/{id}.",
        )


class RouteNotFoundError(HttpApiError):
    """No route matches the request's path (or method). Details: ``path``."""

    default_code = "NOT_FOUND"

    def __init__(self, path: str, *, method: str | None = None) -> None:
        what = f"{method} {path}" if method else path
        super().__init__(
            f"No route {what}.",
            details={"path": path},
            hint="See GET /openapi.json for the routes.",
        )


class ServerError(HttpApiError):
    """An unexpected error inside the server (a bug); the details stay in its log."""

    default_code = "SERVER_ERROR"

    def __init__(self, details: dict[str, Any] | None = None) -> None:
        super().__init__(
            "Unexpected server error.",
            details=details,
            hint="See the server's log; set SMITHERS_DEBUG=1 for tracebacks.",
        )
