"""`ErrorDefinition`: the documentation metadata of one error code (the catalogue's row)."""

from __future__ import annotations

import msgspec

__all__ = ("CATEGORIES", "ErrorDefinition")

CATEGORIES: dict[str, str] = {
    "engine": "Engine",
    "components": "Components",
    "tools": "Tools",
    "agents": "Agents",
    "database": "Database",
    "runtime": "Runtime",
    "hot-reload": "Hot Reload",
    "scorers": "Scorers",
    "cli": "CLI",
    "integrations": "Integrations",
    "http": "HTTP API Errors",
}
"""Each category of the catalogue and its section title, in the reference's order."""


class ErrorDefinition(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Documentation metadata of one known error code.

    Attributes are Smithers' error-reference columns.
    """

    code: str
    """The SCREAMING_SNAKE code, e.g. ``"INVALID_INPUT"``."""
    category: str
    """Reference section, a key of `CATEGORIES`: ``engine``, ``components``, ``tools``,
    ``agents``, ``database``, ``runtime``, ``hot-reload``, ``scorers``, ``cli``,
    ``integrations`` or ``http``."""
    when: str
    """When the error is raised."""
    details: tuple[str, ...] = ()
    """Keys of the `details` mapping the error carries."""
    retryable: bool = False
    """Whether a task failing with this code may be retried by its retry policy."""
    http_status: int | None = None
    """The HTTP status of the HTTP API's JSON error response with this code, or None."""
    planned: bool = False
    """True for a code of a feature smithers-py does not build yet: defined, never raised."""
    reference: bool = True
    """False for a code smithers-py adds to Smithers' error reference."""


def _d(
    category: str,
    code: str,
    when: str,
    details: tuple[str, ...] = (),
    *,
    retryable: bool = False,
    http_status: int | None = None,
    planned: bool = False,
    reference: bool = True,
) -> ErrorDefinition:
    return ErrorDefinition(
        code=code,
        category=category,
        when=when,
        details=details,
        retryable=retryable,
        http_status=http_status,
        planned=planned,
        reference=reference,
    )
