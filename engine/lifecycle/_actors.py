"""The actor an operation of the Python API records, when the caller built none.

The CLI builds its `Actor` where a command's options are parsed
(``resolve_actor("cli", by=..., reason=...)``) and hands it down as ``actor=``; a call
of the Python API gives ``by=``/``reason=`` (or nothing) and gets one with interface
``"api"`` here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._actor import resolve_actor

if TYPE_CHECKING:
    from smithers.eventstore.events import Actor

__all__ = ("api_actor",)


def api_actor(actor: Actor | None, *, by: str | None = None, reason: str | None = None) -> Actor:
    """Return `actor`, or the actor of an operation taken now through the Python API.

    Args:
        actor: An actor built by the caller (the CLI's, the supervisor's); returned
            as it is, and `by`/`reason` are then ignored.
        by: Who (`resolve_actor`'s `by`); None: ``$SMITHERS_ACTOR``, else the OS user.
        reason: Why, in the caller's words, or None.

    Returns:
        The `Actor` to record (interface ``"api"`` unless `actor` was given).

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if `by` or `reason` is empty, too
            long or has control characters (see `resolve_actor`); nothing is recorded.
    """
    if actor is not None:
        return actor
    return resolve_actor("api", by=by, reason=reason)
