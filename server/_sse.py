"""``GET /v1/runs/{id}/events``: a run's events as server-sent events, live until it ends.

Each event is one SSE message: ``event: smithers``, ``id: <seq>``, ``data:`` the event's
NDJSON object (`event_to_json`). A client that reconnects with ``Last-Event-ID: <seq>``
(or ``?afterSeq=<seq>``) gets the events after it, so none is lost or repeated.
Keep-alive comments go out every `ServerConfig.sse_ping_s` seconds; the stream closes
after the run's terminal event. The run's log is read once for all its streams
(`RunTail`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.routing import Route

from ._common import run_param, server
from ._json import optional_int

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ("SSE_EVENT", "SSE_ROUTES")

SSE_EVENT = "smithers"
"""The SSE event name of every message."""


async def events(request: Request) -> Response:
    """Stream the run's events after ``Last-Event-ID`` (else ``afterSeq``, else 0).

    Errors (bad id, unknown run) are answered as JSON before the stream starts.
    """
    st = server(request)
    handle = await st.client.get_run(run_param(request))
    after = optional_int({"afterSeq": request.query_params.get("afterSeq")}, "afterSeq") or 0
    last = optional_int({"Last-Event-ID": request.headers.get("last-event-id")}, "Last-Event-ID")
    if last is not None:
        after = last

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async with st.tails.subscribe(handle) as tail:
            async for seq, data in tail.events(after):
                yield ServerSentEvent(data=data, event=SSE_EVENT, id=str(seq))

    return EventSourceResponse(stream(), ping=st.config.sse_ping_s)


SSE_ROUTES = [Route("/v1/runs/{id}/events", events, methods=["GET"])]
