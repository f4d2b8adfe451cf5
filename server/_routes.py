"""Every route of the API, in one list (the OpenAPI document describes the same)."""

from __future__ import annotations

from ._openapi import OPENAPI_ROUTES
from ._routes_runs import RUN_ROUTES
from ._routes_travel import TRAVEL_ROUTES
from ._sse import SSE_ROUTES

__all__ = ("ROUTES",)

ROUTES = [*RUN_ROUTES, *SSE_ROUTES, *TRAVEL_ROUTES, *OPENAPI_ROUTES]
