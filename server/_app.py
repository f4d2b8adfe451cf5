"""The ASGI application: lifespan (database, client, background runs), guard, errors.

`create_app(config)` builds a Starlette app. Its lifespan opens one `Client` on the
database for every request, a task group for the runs the server resumes, and, with
`ServerConfig.resume_on_start`, resumes the runs a previous server process drove
over HTTP whose process is gone (a crash, a kill, a restart with
`ServerConfig.keep_runs_on_exit`).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from smithers.engine import Client, connect, resolve_actor
from smithers.eventstore import SmithersError, SQLiteEventStore
from smithers.eventstore.errors import get_error_definition
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse

from ._background import Background
from ._metrics import METRICS_ROUTES, start_telemetry
from ._routes import ROUTES
from ._tail import Tails
from ._ui import UI_ROUTES, is_public_path
from .errors import PayloadTooLargeError, RouteNotFoundError, ServerError, UnauthorizedError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from starlette.requests import Request
    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ._config import ServerConfig

__all__ = ("ServerState", "create_app", "error_response")

log = logging.getLogger("smithers.server")

ENGINE_HTTP_STATUS: dict[str, int] = {
    "INVALID_INPUT": 400,
    "INVALID_EVENTS_OPTIONS": 400,
    "TASK_ID_REQUIRED": 400,
    "WORKFLOW_MISSING_DEFAULT": 400,
    "NODE_NOT_FOUND": 404,
    "SNAPSHOT_NOT_FOUND": 404,
    "MISSING_OUTPUT": 404,
    "CLI_DB_NOT_FOUND": 404,
    "RUN_OWNER_ALIVE": 409,
    "RUN_STILL_RUNNING": 409,
    "RUN_NOT_RESUMABLE": 409,
    "NO_PENDING_APPROVALS": 409,
    "AMBIGUOUS_APPROVAL": 409,
    "APPROVAL_ALREADY_DECIDED": 409,
    "RESUME_METADATA_MISMATCH": 409,
    "RESUME_FRAME_MISMATCH": 409,
    "SEQ_CONFLICT": 409,
    "TASK_HIJACK_UNSUPPORTED": 409,
}
"""HTTP status of engine codes the catalogue gives none (the rest answer 500)."""


@dataclass
class ServerState:
    """What every handler uses: the settings, the one client, the background runs."""

    config: ServerConfig
    client: Client
    background: Background
    tails: Tails


def http_status(code: str) -> int:
    """Return the HTTP status of an error code: the catalogue's, else the engine map, else 500."""
    definition = get_error_definition(code)
    if definition is not None and definition.http_status is not None:
        return definition.http_status
    return ENGINE_HTTP_STATUS.get(code, 500)


def error_response(error: SmithersError, *, status: int | None = None) -> JSONResponse:
    """Return ``{"error": {"code", "message", "details"?}}`` with the code's HTTP status."""
    message = error.summary + (f" {error.hint}" if error.hint else "")
    body: dict[str, Any] = {"code": error.code, "message": message}
    if error.details:
        body["details"] = error.details
    return JSONResponse({"error": body}, status_code=status or http_status(error.code))


async def _on_smithers_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SmithersError)
    return error_response(exc)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error = RouteNotFoundError(request.url.path, method=request.method)
        return error_response(error, status=405)
    return error_response(RouteNotFoundError(request.url.path))


def _unexpected(exc: Exception) -> JSONResponse:
    log.error("unexpected error in a request", exc_info=exc)
    details = {"type": type(exc).__name__} if os.environ.get("SMITHERS_DEBUG") == "1" else None
    return error_response(ServerError(details))


class Guard:
    """ASGI middleware: the auth token and the body limit, before any route runs.

    With a token, every request but ``GET /health`` and the web page's files
    (`is_public_path`: ``/``, ``/ui/<name>``, which hold no run data) must carry it
    (``Authorization: Bearer <t>`` or ``x-smithers-key: <t>``, compared in constant
    time), else 401 ``UNAUTHORIZED``. A body longer than the limit (by its
    Content-Length, or as it streams in) is refused with 413 ``PAYLOAD_TOO_LARGE``.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes

    def _authorized(self, scope: Scope) -> bool:
        if self.token is None or scope["path"] == "/health" or is_public_path(scope["path"]):
            return True
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-smithers-key", b"")
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        return hmac.compare_digest(given, self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            await error_response(UnauthorizedError())(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        limit = self.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            await error_response(PayloadTooLargeError(limit))(scope, receive, send)
            return
        seen = 0
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLargeError(limit)
            return message

        try:
            await self.app(scope, limited, sending)
        except Exception as e:  # a bug: answer SERVER_ERROR rather than drop the connection
            if started:
                raise
            await _unexpected(e)(scope, receive, send)


class _Shutdown(Exception):
    """Raised into `connect` at shutdown, so the client cancels its runs instead of waiting."""


async def _recover(state: ServerState) -> None:
    """Resume the runs a previous server drove over HTTP whose process is gone.

    A run qualifies if its status is ``running``, its owner is ``gone`` (a dead
    process on this host), and its newest activation (`RunStarted`) was taken over
    HTTP. Each is resumed in this process, recorded with actor interface ``http``.
    """
    client = state.client
    actor = resolve_actor("http", reason="resumed by smithers serve at start-up")
    # Top-level runs only: a Subflow's child run is resumed by its parent's activation.
    for record in await client.runs(status="running", children=False):
        try:
            handle = await client.get_run(record.run_id)
            verdict = await handle.owner()
            if verdict.kind != "gone" or not verdict.local:
                continue
            ops = await client.audit(record.run_id, types=["RunStarted"], limit=1, related=False)
            if not ops or ops[0].actor.interface != "http":
                continue

            async def call(progress: Any, handle: Any = handle) -> Any:
                return await handle.resume(on_progress=progress, actor=actor)

            await state.background.launch(record.run_id, call)
            log.info("resumed run %s (its server process is gone)", record.run_id)
        except SmithersError as e:
            log.warning("could not resume run %s at start-up: %s", record.run_id, e)


def create_app(config: ServerConfig, *, routes: Sequence[BaseRoute] = ()) -> Starlette:
    """Return the HTTP API as a Starlette (ASGI) application.

    Args:
        config: The database, root, token and limits (see `ServerConfig`).
        routes: More routes (e.g. ``/metrics``; the web page's are always there),
            served behind the same guard (auth token, body limit) and error handlers;
            their handlers find the `ServerState` at ``request.app.state.smithers``.

    Returns:
        The app; serve it with uvicorn (`smithers serve`) or drive it with an ASGI
        test client (its lifespan must run: ``with TestClient(app)``).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await SQLiteEventStore.open(config.db, create=True)
        await store.close()
        with contextlib.suppress(_Shutdown):
            async with connect(config.db) as client:
                async with anyio.create_task_group() as tg:
                    state = ServerState(
                        config=config,
                        client=client,
                        background=Background(tg),
                        tails=Tails(tg, config.sse_poll_interval_s),
                    )
                    app.state.smithers = state
                    start_telemetry(app, config.db, tg)
                    if config.resume_on_start:
                        await _recover(state)
                    try:
                        yield
                    finally:
                        if config.keep_runs_on_exit:
                            # Leave the runs as a crash would: status running, owner
                            # gone; the next start resumes them (a cancel would end them).
                            log.info("leaving the server's runs for the next start")
                            os._exit(0)
                        tg.cancel_scope.cancel()
                raise _Shutdown  # `connect` then cancels the runs it started

    return Starlette(
        routes=[*ROUTES, *UI_ROUTES, *routes, *METRICS_ROUTES],
        lifespan=lifespan,
        exception_handlers={
            SmithersError: _on_smithers_error,
            HTTPException: _on_http_exception,
        },
        middleware=[
            Middleware(Guard, token=config.auth_token, max_body_bytes=config.max_body_bytes)
        ],
    )
