"""The web page: ``GET /`` and its static files under ``/ui/`` (issue 13, deliverable 5).

The page is plain HTML, a few vanilla ES modules and one stylesheet, shipped as package
data in ``server/static/`` (no build step, no npm). It talks only to the ``/v1`` API,
with the token the user types once (kept in ``sessionStorage``, sent as
``Authorization: Bearer``); the event stream is read with ``fetch`` streaming, so the
token never goes in a URL.

The page and its files are public: they hold no run data, and a browser cannot send a
header when it opens a URL, so the guard lets `is_public_path` paths through without
the token. Every response carries a Content-Security-Policy that allows only this
origin's scripts, styles and requests (no inline script), so a string from the API
that slipped into the DOM still could not run.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.routing import Route

from .errors import RouteNotFoundError

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ("UI_ROUTES", "is_public_path")

UI_PREFIX = "/ui/"
"""Path prefix of the page's static files."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|png|svg)$")
"""A static file name the page may ask for: no slash, no dot-dot, a known type."""

_MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "png": "image/png",
    "svg": "image/svg+xml",
}

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
"""Headers of every page response (the policy keeps scripts to this origin's files)."""


def is_public_path(path: str) -> bool:
    """Return whether `path` is the page or one of its files (served without the token).

    Args:
        path: The request's URL path (``scope["path"]``).

    Returns:
        True for ``/`` and ``/ui/<name>``; nothing under them holds run data.
    """
    return path == "/" or (path.startswith(UI_PREFIX) and "/" not in path[len(UI_PREFIX) :])


def _static(name: str) -> bytes | None:
    """Return the bytes of ``server/static/<name>``, or None if there is no such file."""
    try:
        return (resources.files(__package__ or "smithers.server") / "static" / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


async def index(_request: Request) -> Response:
    """``GET /``: the page (the runs list; ``#/runs/<id>`` opens a run)."""
    body = _static("index.html")
    if body is None:  # a broken install: the package data is missing
        raise RouteNotFoundError("/")
    return Response(body, media_type=_MEDIA_TYPES["html"], headers=_HEADERS)


async def static_file(request: Request) -> Response:
    """``GET /ui/{name}``: one of the page's scripts, its stylesheet or an image.

    Raises:
        RouteNotFoundError: (404) if `name` is not a file the page ships.
    """
    name: str = request.path_params["name"]
    match = _NAME.match(name)
    body = _static(name) if match else None
    if match is None or body is None:
        raise RouteNotFoundError(request.url.path)
    return Response(body, media_type=_MEDIA_TYPES[match.group(1)], headers=_HEADERS)


UI_ROUTES = [
    Route("/", index, methods=["GET"]),
    Route(UI_PREFIX + "{name}", static_file, methods=["GET"]),
]
