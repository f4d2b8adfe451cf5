"""The HTTP API (DESIGN §2, issue 13): ``smithers serve``, over the engine's `Client`.

An optional extra (``pip install 'smithers-py[server]'``: Starlette, uvicorn,
sse-starlette); nothing else in smithers imports this package. `create_app` builds the
ASGI app, `serve` runs it with uvicorn. The layer only parses requests, calls the
engine and renders its results (JSON, camelCase; errors ``{"error": {"code",
"message", "details"?}}``); the routes are listed by ``GET /openapi.json``.
"""

from __future__ import annotations

from ._app import ServerState as ServerState
from ._app import create_app as create_app
from ._app import error_response as error_response
from ._config import DEFAULT_HOST as DEFAULT_HOST
from ._config import DEFAULT_PORT as DEFAULT_PORT
from ._config import MAX_BODY_BYTES as MAX_BODY_BYTES
from ._config import ServerConfig as ServerConfig
from ._config import is_loopback as is_loopback
from ._metrics import Telemetry as Telemetry
from ._openapi import openapi_document as openapi_document
from ._serve import check_bind as check_bind
from ._serve import serve as serve
from ._sse import SSE_EVENT as SSE_EVENT
from ._traces import SpanExport as SpanExport
from ._traces import otlp_span_export as otlp_span_export
from .errors import HttpApiError as HttpApiError
from .errors import InvalidJsonError as InvalidJsonError
from .errors import InvalidRequestError as InvalidRequestError
from .errors import PayloadTooLargeError as PayloadTooLargeError
from .errors import RouteNotFoundError as RouteNotFoundError
from .errors import RunIdRequiredError as RunIdRequiredError
from .errors import RunNotActiveError as RunNotActiveError
from .errors import ServerError as ServerError
from .errors import UnauthorizedError as UnauthorizedError
from .errors import WorkflowPathOutsideRootError as WorkflowPathOutsideRootError

__all__ = (
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MAX_BODY_BYTES",
    "SSE_EVENT",
    "HttpApiError",
    "InvalidJsonError",
    "InvalidRequestError",
    "PayloadTooLargeError",
    "RouteNotFoundError",
    "RunIdRequiredError",
    "RunNotActiveError",
    "ServerConfig",
    "ServerError",
    "ServerState",
    "SpanExport",
    "Telemetry",
    "UnauthorizedError",
    "WorkflowPathOutsideRootError",
    "check_bind",
    "create_app",
    "error_response",
    "is_loopback",
    "openapi_document",
    "otlp_span_export",
    "serve",
)
