"""``GET /openapi.json``: the OpenAPI 3.1 document of the API, built from one table.

Each operation lists its path and query parameters and its JSON body's fields, so a
client generator (or a fuzzer such as schemathesis) can call every route. Error
responses share one schema, ``{"error": {"code", "message", "details"?}}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ("OPENAPI_ROUTES", "openapi_document")

_STR = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
_BOOL = {"type": "boolean"}
_OBJ = {"type": "object"}
_STRS = {"type": "array", "items": _STR}
_ACTOR = {"by": _STR, "reason": _STR}
_JSON = {"type": ["object", "array", "string", "number", "boolean", "null"]}

# (method, path, summary, query params, body fields, required body fields, success status)
_OPS: tuple[tuple[str, str, str, dict[str, Any], dict[str, Any] | None, tuple[str, ...], int], ...]
_OPS = (
    ("get", "/health", "Liveness (no auth).", {}, None, (), 200),
    ("get", "/metrics", "Metrics of every run, in Prometheus text format.", {}, None, (), 200),
    (
        "post",
        "/v1/runs",
        "Start a workflow file under the root, or resume a run (resume: true, runId).",
        {},
        {
            "workflowPath": _STR,
            "input": _OBJ,
            "runId": _STR,
            "resume": _BOOL,
            "config": {
                "type": "object",
                "properties": {
                    "maxConcurrency": _INT,
                    "toolTimeoutMs": _INT,
                    "maxOutputBytes": _INT,
                },
            },
            **_ACTOR,
        },
        (),
        201,
    ),
    (
        "get",
        "/v1/runs",
        "List runs, newest first (paged with limit/offset).",
        {
            "status": _STR,
            "limit": {"type": "integer", "minimum": 1},
            "offset": _INT,
            "children": _BOOL,
        },
        None,
        (),
        200,
    ),
    ("get", "/v1/runs/{id}", "A run's state now.", {}, None, (), 200),
    (
        "post",
        "/v1/runs/{id}/resume",
        "Resume a run in the server.",
        {},
        {"force": _BOOL, **_ACTOR},
        (),
        202,
    ),
    ("post", "/v1/runs/{id}/cancel", "Cancel an active run.", {}, dict(_ACTOR), (), 200),
    (
        "get",
        "/v1/runs/{id}/events",
        "The run's events as server-sent events (event `smithers`, id = seq).",
        {"afterSeq": _INT},
        None,
        (),
        200,
    ),
    ("get", "/v1/runs/{id}/frames", "The run's frames.", {}, None, (), 200),
    ("get", "/v1/runs/{id}/state", "The run at a frame (or now).", {"frame": _INT}, None, (), 200),
    (
        "get",
        "/v1/runs/{id}/timeline",
        "Frames, rewinds, forks and replays.",
        {"followAncestry": _BOOL},
        None,
        (),
        200,
    ),
    (
        "get",
        "/v1/runs/{id}/nodes/{node}",
        "A node's attempts, outputs and events.",
        {"iteration": _INT},
        None,
        (),
        200,
    ),
    (
        "get",
        "/v1/runs/{id}/diff",
        "What changed between two runs or two frames.",
        {"other": _STR, "fromFrame": _INT, "toFrame": _INT, "frame": _INT},
        None,
        (),
        200,
    ),
    (
        "post",
        "/v1/runs/{id}/rewind",
        "Rewind the run to a frame.",
        {},
        {"frame": _INT, "force": _BOOL, **_ACTOR},
        ("frame",),
        200,
    ),
    (
        "post",
        "/v1/runs/{id}/fork",
        "Fork the run at a frame (not started).",
        {},
        {"frame": _INT, "resetNodes": _STRS, "input": _OBJ, "label": _STR, "runId": _STR, **_ACTOR},
        ("frame",),
        201,
    ),
    (
        "post",
        "/v1/runs/{id}/replay",
        "Fork at a frame and run the fork in the server.",
        {},
        {"frame": _INT, "resetNodes": _STRS, "input": _OBJ, "label": _STR, "runId": _STR, **_ACTOR},
        ("frame",),
        202,
    ),
    (
        "post",
        "/v1/runs/{id}/retry-task",
        "Run a task again with its dependents.",
        {},
        {"nodeId": _STR, "iteration": _INT, "deps": _BOOL, "force": _BOOL, **_ACTOR},
        ("nodeId",),
        202,
    ),
    (
        "post",
        "/v1/runs/{id}/nodes/{node}/approve",
        "Grant a pending approval.",
        {},
        {"iteration": _INT, "note": _STR, "selected": _STR, "ranked": _STRS, **_ACTOR},
        (),
        200,
    ),
    (
        "post",
        "/v1/runs/{id}/nodes/{node}/deny",
        "Deny a pending approval.",
        {},
        {"iteration": _INT, "note": _STR, **_ACTOR},
        (),
        200,
    ),
    (
        "post",
        "/v1/runs/{id}/signals/{name}",
        "Send a signal to the run.",
        {},
        {"data": _JSON, "correlationId": _STR, **_ACTOR},
        (),
        200,
    ),
    ("get", "/v1/approvals", "Approvals waiting for a decision.", {"runId": _STR}, None, (), 200),
    (
        "get",
        "/v1/audit",
        "The audit trail, newest first.",
        {
            "runId": _STR,
            "sinceMs": _INT,
            "actor": _STR,
            "type": _STR,
            "limit": {"type": "integer", "minimum": 1},
        },
        None,
        (),
        200,
    ),
    ("get", "/openapi.json", "This document.", {}, None, (), 200),
    ("get", "/", "The web page (HTML; no auth: it holds no run data).", {}, None, (), 200),
    ("get", "/ui/{name}", "A script or stylesheet of the web page (no auth).", {}, None, (), 200),
)

_PUBLIC = ("/health", "/", "/ui/{name}")
"""Paths served without the token."""

_MEDIA = {"/": "text/html", "/ui/{name}": "text/javascript", "/metrics": "text/plain"}
"""Media type of the success response where it is not JSON (default)."""

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": _STR, "message": _STR, "details": _OBJ},
        }
    },
}


def _operation(
    path: str,
    summary: str,
    query: dict[str, Any],
    body: dict[str, Any] | None,
    required: tuple[str, ...],
    status: int,
) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _STR}
        for name in ("id", "node", "name")
        if "{" + name + "}" in path
    ]
    params += [{"name": k, "in": "query", "required": False, "schema": v} for k, v in query.items()]
    media = (
        "text/event-stream" if path.endswith("/events") else _MEDIA.get(path, "application/json")
    )
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": params,
        "responses": {
            str(status): {"description": "OK", "content": {media: {"schema": {}}}},
            "default": {
                "description": "An error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if path not in _PUBLIC:
        op["security"] = [{"bearer": []}, {"key": []}]
    if body is not None:
        schema = {"type": "object", "properties": body, "required": list(required)}
        op["requestBody"] = {
            "required": bool(required),
            "content": {"application/json": {"schema": schema}},
        }
    return op


def openapi_document() -> dict[str, Any]:
    """Return the API's OpenAPI 3.1 document (a JSON-ready dict). Pure."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, query, body, required, status in _OPS:
        paths.setdefault(path, {})[method] = _operation(
            path, summary, query, body, required, status
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "smithers HTTP API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "key": {"type": "apiKey", "in": "header", "name": "x-smithers-key"},
            },
        },
    }


async def openapi(_request: Request) -> Response:
    """``GET /openapi.json``."""
    return JSONResponse(openapi_document())


OPENAPI_ROUTES = [Route("/openapi.json", openapi, methods=["GET"])]
