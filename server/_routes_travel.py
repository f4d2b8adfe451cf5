"""Routes that change a run's course: time travel, approvals, signals; and the audit trail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smithers.engine import new_run_id, validate_run_id
from starlette.routing import Route

from ._common import actor_of, json_response, node_param, read_body, run_param, server
from ._json import optional_bool, optional_int, optional_str, to_json
from .errors import InvalidRequestError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ("TRAVEL_ROUTES",)


def _frame(body: dict[str, Any]) -> int:
    frame = optional_int(body, "frame")
    if frame is None:
        raise InvalidRequestError("frame", "is required (a frame number from the timeline)")
    return frame


def _strings(body: dict[str, Any], field: str) -> list[str]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequestError(field, "must be a list of strings")
    return value


def _input(body: dict[str, Any]) -> Any:
    value = body.get("input")
    if value is not None and not isinstance(value, dict):
        raise InvalidRequestError("input", "must be a JSON object")
    return value


async def rewind(request: Request) -> Response:
    """``POST /v1/runs/{id}/rewind`` ``{frame, force?, by?, reason?}``: rewind the run."""
    body = await read_body(request)
    handle = await server(request).client.get_run(run_param(request))
    frame, force, actor = _frame(body), optional_bool(body, "force"), actor_of(body)
    state = await handle.rewind(frame, force=force, actor=actor)
    return json_response({"runId": handle.run_id, "status": state.status, "frame": frame})


async def fork(request: Request) -> Response:
    """``POST /v1/runs/{id}/fork`` ``{frame, resetNodes?, input?, label?, runId?}``: fork it.

    The fork is recorded, not started: resume it with ``POST /v1/runs/{fork}/resume``.
    """
    body = await read_body(request)
    handle = await server(request).client.get_run(run_param(request))
    frame, actor = _frame(body), actor_of(body)
    new_id = optional_str(body, "runId")
    if new_id is not None:
        validate_run_id(new_id)
    child = await handle.fork(
        frame,
        reset_nodes=_strings(body, "resetNodes"),
        input=_input(body),
        label=optional_str(body, "label"),
        run_id_new=new_id,
        actor=actor,
    )
    return json_response({"runId": child.run_id, "parentRunId": handle.run_id}, status=201)


async def replay(request: Request) -> Response:
    """``POST /v1/runs/{id}/replay`` ``{frame, resetNodes?, input?, label?, runId?}``.

    Forks the run at the frame and runs the fork in the server process; answers 202
    with the fork's id once it is claimed.
    """
    body = await read_body(request)
    st = server(request)
    handle = await st.client.get_run(run_param(request))
    frame, actor = _frame(body), actor_of(body)
    new_id = optional_str(body, "runId") or new_run_id()
    validate_run_id(new_id)
    reset, input_value, label = _strings(body, "resetNodes"), _input(body), body.get("label")
    if label is not None and not isinstance(label, str):
        raise InvalidRequestError("label", "must be a string")

    async def call(progress: Any) -> Any:
        return await handle.replay(
            frame,
            input=input_value,
            reset_nodes=reset,
            label=label,
            run_id_new=new_id,
            actor=actor,
            on_progress=progress,
        )

    await st.background.launch(new_id, call)
    return json_response({"runId": new_id, "parentRunId": handle.run_id}, status=202)


async def retry_task(request: Request) -> Response:
    """``POST /v1/runs/{id}/retry-task`` ``{nodeId, iteration?, deps?, force?}`` (202)."""
    body = await read_body(request)
    st = server(request)
    handle = await st.client.get_run(run_param(request))
    node_id = optional_str(body, "nodeId")
    if not node_id:
        raise InvalidRequestError("nodeId", "is required")
    iteration = optional_int(body, "iteration")
    deps, force, actor = (
        optional_bool(body, "deps", True),
        optional_bool(body, "force"),
        actor_of(body),
    )

    async def call(progress: Any) -> Any:
        return await handle.retry_task(
            node_id,
            iteration=iteration,
            deps=deps,
            force=force,
            actor=actor,
            on_progress=progress,
        )

    await st.background.launch(handle.run_id, call)
    return json_response({"runId": handle.run_id, "nodeId": node_id}, status=202)


async def _decide(request: Request, decision: str) -> Response:
    body = await read_body(request)
    handle = await server(request).client.get_run(run_param(request))
    node_id = node_param(request)
    actor = actor_of(body)
    common: dict[str, Any] = {
        "iteration": optional_int(body, "iteration"),
        "note": optional_str(body, "note"),
        "by": optional_str(body, "by"),
        "actor": actor,
    }
    if decision == "approve":
        ranked = body.get("ranked")
        result = await handle.approve(
            node_id,
            selected=optional_str(body, "selected"),
            ranked=None if ranked is None else _strings(body, "ranked"),
            **common,
        )
    else:
        result = await handle.deny(node_id, **common)
    return json_response(result)


async def approve(request: Request) -> Response:
    """``POST /v1/runs/{id}/nodes/{node}/approve``: grant it; a parked run is resumed.

    In the server process, unless the run was submitted to a queue (``queue`` in the
    reply): a worker of that queue resumes it.
    """
    return await _decide(request, "approve")


async def deny(request: Request) -> Response:
    """``POST /v1/runs/{id}/nodes/{node}/deny``: deny it; a parked run is resumed."""
    return await _decide(request, "deny")


async def send_signal(request: Request) -> Response:
    """``POST /v1/runs/{id}/signals/{name}`` ``{data?, correlationId?, by?, reason?}``."""
    body = await read_body(request)
    handle = await server(request).client.get_run(run_param(request))
    result = await handle.signal(
        request.path_params["name"],
        body.get("data"),
        correlation_id=optional_str(body, "correlationId"),
        by=optional_str(body, "by"),
        actor=actor_of(body),
    )
    return json_response(result)


async def approvals(request: Request) -> Response:
    """``GET /v1/approvals?runId=``: approvals waiting for a decision."""
    run_id = optional_str(dict(request.query_params), "runId")
    pending = await server(request).client.pending_approvals(run_id=run_id)
    return json_response({"approvals": pending})


async def audit(request: Request) -> Response:
    """``GET /v1/audit?runId=&sinceMs=&actor=&type=&limit=``: operations, newest first."""
    query = request.query_params
    params = dict(query)
    types = query.getlist("type") or None
    ops = await server(request).client.audit(
        optional_str(params, "runId"),
        since_ms=optional_int(params, "sinceMs"),
        actor=optional_str(params, "actor"),
        types=types,
        limit=optional_int(params, "limit", minimum=1),
    )
    return json_response({"operations": [to_json(op) for op in ops]})


TRAVEL_ROUTES = [
    Route("/v1/runs/{id}/rewind", rewind, methods=["POST"]),
    Route("/v1/runs/{id}/fork", fork, methods=["POST"]),
    Route("/v1/runs/{id}/replay", replay, methods=["POST"]),
    Route("/v1/runs/{id}/retry-task", retry_task, methods=["POST"]),
    Route("/v1/runs/{id}/nodes/{node}/approve", approve, methods=["POST"]),
    Route("/v1/runs/{id}/nodes/{node}/deny", deny, methods=["POST"]),
    Route("/v1/runs/{id}/signals/{name}", send_signal, methods=["POST"]),
    Route("/v1/approvals", approvals, methods=["GET"]),
    Route("/v1/audit", audit, methods=["GET"]),
]
