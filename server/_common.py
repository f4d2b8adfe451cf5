"""What every route does: find the server's state, read the body, check ids, answer JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from smithers.engine import EXISTING_RUN_HINT, resolve_actor, validate_run_id
from starlette.responses import Response

from ._config import check_node_id
from ._json import optional_str, parse_body, to_json

if TYPE_CHECKING:
    from smithers.eventstore.events import Actor
    from starlette.requests import Request

    from ._app import ServerState

__all__ = ("actor_of", "json_response", "node_param", "read_body", "run_param", "server")


def server(request: Request) -> ServerState:
    """Return the app's `ServerState` (set by its lifespan)."""
    state: ServerState = request.app.state.smithers
    return state


async def read_body(request: Request) -> dict[str, Any]:
    """Return the request's JSON object body (``{}`` when empty).

    Raises:
        PayloadTooLargeError: if the body streams past the limit.
        InvalidJsonError: if it is not a JSON object or nests too deep.
    """
    body = await request.body()
    return parse_body(body, max_depth=server(request).config.max_json_depth)


def actor_of(body: dict[str, Any]) -> Actor:
    """Return the audit `Actor` of an operation over HTTP (``by``/``reason`` of the body).

    Raises:
        InvalidRequestError: if ``by`` or ``reason`` is not a string.
        InvalidInputError: if they are empty, too long or have control characters.
    """
    by = optional_str(body, "by")
    reason = optional_str(body, "reason")
    return resolve_actor("http", by=by, reason=reason)


def run_param(request: Request) -> str:
    """Return the ``{id}`` path parameter, checked with `validate_run_id`.

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if it cannot be a run id.
    """
    run_id: str = request.path_params["id"]
    validate_run_id(run_id, hint=EXISTING_RUN_HINT)
    return run_id


def node_param(request: Request) -> str:
    """Return the ``{node}`` path parameter, checked with `check_node_id`."""
    return check_node_id(request.path_params["node"])


def json_response(value: Any, status: int = 200) -> Response:
    """Return `value` (rendered with `to_json`) as an ``application/json`` response."""
    return Response(
        msgspec.json.encode(to_json(value)), status_code=status, media_type="application/json"
    )
