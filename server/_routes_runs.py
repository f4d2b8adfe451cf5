"""Routes on runs: start, list, get, resume, cancel, and the read views of one run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smithers.engine import event_to_json, load_workflow
from smithers.eventstore.events import TERMINAL_RUN_STATUSES
from starlette.responses import JSONResponse
from starlette.routing import Route

from ._common import actor_of, json_response, node_param, read_body, run_param, server
from ._config import resolve_workflow_spec
from ._json import optional_bool, optional_int, optional_str, to_json
from .errors import InvalidRequestError, RunIdRequiredError, RunNotActiveError

if TYPE_CHECKING:
    from smithers.engine import RunHandle
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ("RUN_ROUTES",)

MAX_PAGE = 1000
"""Largest ``limit`` of ``GET /v1/runs``."""


async def health(_request: Request) -> Response:
    """``GET /health``: ``{"ok": true}`` (no auth)."""
    return JSONResponse({"ok": True})


async def _resume(request: Request, handle: RunHandle, body: dict[str, Any]) -> Response:
    """Resume `handle`'s run in the server process; 202 once it is claimed."""
    actor = actor_of(body)
    force = optional_bool(body, "force")
    st = server(request)
    if (await handle.describe()).status == "finished":
        return json_response({"runId": handle.run_id, "status": "finished"})

    async def call(progress: Any) -> Any:
        return await handle.resume(force=force, on_progress=progress, actor=actor)

    await st.background.launch(handle.run_id, call)
    record = await handle.describe()
    return json_response({"runId": handle.run_id, "status": record.status}, status=202)


_CONFIG_FIELDS = {
    "maxConcurrency": ("max_concurrency", 1, 256),
    "toolTimeoutMs": ("tool_timeout_ms", 1, 3_600_000),
    "maxOutputBytes": ("max_output_bytes", 1, 100_000_000),
}
"""The run options a client may set: JSON name -> (`run_workflow` keyword, min, max).
Network access for tools (``allowNetwork``) is the server operator's, not a client's."""


def _run_config(config: Any) -> dict[str, Any]:
    """Return `run_workflow` options from the body's ``config`` object (None: none)."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidRequestError("config", "must be a JSON object")
    options: dict[str, Any] = {}
    for key in config:
        if key not in _CONFIG_FIELDS:
            known = ", ".join(_CONFIG_FIELDS)
            raise InvalidRequestError(f"config.{key}", f"is not a run option (known: {known})")
        name, low, high = _CONFIG_FIELDS[key]
        number = optional_int(config, key, minimum=low)
        if number is None or number > high:
            raise InvalidRequestError(f"config.{key}", f"must be an integer {low} to {high}")
        options[name] = number
    return options


async def start_run(request: Request) -> Response:
    """``POST /v1/runs``: start a workflow file under the root, or resume a run by id."""
    body = await read_body(request)
    st = server(request)
    run_id = optional_str(body, "runId")
    if optional_bool(body, "resume"):
        if not run_id:
            raise RunIdRequiredError()
        return await _resume(request, await st.client.get_run(run_id), body)
    spec = optional_str(body, "workflowPath")
    if not spec:
        raise InvalidRequestError("workflowPath", "is required (a workflow file under the root)")
    options = _run_config(body.get("config"))
    input_value = body.get("input")
    if input_value is not None and not isinstance(input_value, dict):
        raise InvalidRequestError("input", "must be a JSON object")
    actor = actor_of(body)
    wf, path = load_workflow(resolve_workflow_spec(spec, st.config.root))
    handle = await st.client.start(
        wf,
        input=input_value,
        run_id=run_id,
        workflow_path=path,
        root_dir=st.config.root,
        actor=actor,
        **options,
    )
    record = await handle.describe()
    return json_response({"runId": handle.run_id, "status": record.status}, status=201)


async def list_runs(request: Request) -> Response:
    """``GET /v1/runs?status=&limit=&offset=&children=``: runs, newest first, paged."""
    query = dict(request.query_params)
    status = optional_str(query, "status")
    limit = optional_int(query, "limit", minimum=1) or 50
    if limit > MAX_PAGE:
        raise InvalidRequestError("limit", f"must be at most {MAX_PAGE}")
    offset = optional_int(query, "offset") or 0
    children = optional_bool(query, "children", default=True)
    runs = await server(request).client.runs(
        status=status, limit=offset + limit + 1, children=children
    )
    page = runs[offset : offset + limit]
    more = len(runs) > offset + limit
    return json_response({"runs": page, "nextOffset": offset + limit if more else None})


async def get_run(request: Request) -> Response:
    """``GET /v1/runs/{id}``: the run's record and its state now (nodes, frames, error)."""
    handle = await server(request).client.get_run(run_param(request))
    record = await handle.describe()
    state = await handle.state()
    return json_response({**to_json(state), "lastSeq": record.last_seq})


async def resume_run(request: Request) -> Response:
    """``POST /v1/runs/{id}/resume``: resume a run in the server process (202)."""
    body = await read_body(request)
    handle = await server(request).client.get_run(run_param(request))
    return await _resume(request, handle, body)


async def cancel_run(request: Request) -> Response:
    """``POST /v1/runs/{id}/cancel``: cancel an active run (409 ``RUN_NOT_ACTIVE`` if ended)."""
    body = await read_body(request)
    handle = await server(request).client.get_run(run_param(request))
    record = await handle.describe()
    if record.status in TERMINAL_RUN_STATUSES:
        raise RunNotActiveError(handle.run_id, record.status)
    actor = actor_of(body)
    state = await handle.cancel(reason=optional_str(body, "reason"), source="http", actor=actor)
    return json_response({"runId": handle.run_id, "status": state.status})


async def frames(request: Request) -> Response:
    """``GET /v1/runs/{id}/frames``: the run's frames (number, seq, time, tasks)."""
    handle = await server(request).client.get_run(run_param(request))
    tl = await handle.timeline()
    return json_response({"runId": handle.run_id, "frames": tl.frames})


async def state(request: Request) -> Response:
    """``GET /v1/runs/{id}/state?frame=N``: the run at frame N (tree and state), or now."""
    handle = await server(request).client.get_run(run_param(request))
    frame = optional_int(dict(request.query_params), "frame")
    if frame is None:
        return json_response(await handle.state())
    return json_response(await handle.frame_view(frame))


async def timeline(request: Request) -> Response:
    """``GET /v1/runs/{id}/timeline``: frames, rewinds and descendants (forks, replays)."""
    handle = await server(request).client.get_run(run_param(request))
    follow = optional_bool(dict(request.query_params), "followAncestry")
    return json_response(await handle.timeline(follow_ancestry=follow))


async def node(request: Request) -> Response:
    """``GET /v1/runs/{id}/nodes/{node}?iteration=N``: a node's attempts, outputs, events."""
    handle = await server(request).client.get_run(run_param(request))
    iteration = optional_int(dict(request.query_params), "iteration")
    detail = await handle.node(node_param(request), iteration)
    return json_response(
        {
            "runId": detail.run_id,
            "nodeId": detail.node_id,
            "iterations": to_json(detail.iterations),
            "events": [_event(stored) for stored, _ in detail.events],
        }
    )


def _event(stored: Any) -> dict[str, Any]:
    return event_to_json(stored)


async def diff(request: Request) -> Response:
    """``GET /v1/runs/{id}/diff?other=&fromFrame=&toFrame=&frame=``: what changed."""
    handle = await server(request).client.get_run(run_param(request))
    query = dict(request.query_params)
    other = optional_str(query, "other")
    if other is not None:
        await server(request).client.get_run(other)  # validates the id, 404 if unknown
    result = await handle.diff(
        other,
        from_frame=optional_int(query, "fromFrame"),
        to_frame=optional_int(query, "toFrame"),
        frame=optional_int(query, "frame"),
    )
    return json_response(result)


RUN_ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/v1/runs", start_run, methods=["POST"]),
    Route("/v1/runs", list_runs, methods=["GET"]),
    Route("/v1/runs/{id}", get_run, methods=["GET"]),
    Route("/v1/runs/{id}/resume", resume_run, methods=["POST"]),
    Route("/v1/runs/{id}/cancel", cancel_run, methods=["POST"]),
    Route("/v1/runs/{id}/frames", frames, methods=["GET"]),
    Route("/v1/runs/{id}/state", state, methods=["GET"]),
    Route("/v1/runs/{id}/timeline", timeline, methods=["GET"]),
    Route("/v1/runs/{id}/nodes/{node}", node, methods=["GET"]),
    Route("/v1/runs/{id}/diff", diff, methods=["GET"]),
]
