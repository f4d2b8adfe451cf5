"""The base class of the engine's errors (`errors` re-exports it)."""

from __future__ import annotations

from smithers.eventstore.errors import SmithersError

__all__ = ("EngineError",)


class EngineError(SmithersError):
    """Base class of errors raised by the engine."""

    default_code = "INTERNAL_ERROR"
