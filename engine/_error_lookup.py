"""Look up a catalogue code as a user typed it (``smithers errors CODE``)."""

from __future__ import annotations

import difflib

from smithers.eventstore.errors import ERROR_DEFINITIONS, ErrorDefinition

from .errors import InvalidInputError

__all__ = ("lookup_error_code",)


def lookup_error_code(text: str) -> ErrorDefinition:
    """Return the catalogue entry of `text`, a code in any case with ``-`` or ``_``.

    ``"run-not-found"``, ``"Run_Not_Found"`` and ``"RUN_NOT_FOUND"`` all name
    ``RUN_NOT_FOUND``.

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if no code matches; the hint names the
            closest codes, or how to list them all.
    """
    code = text.strip().upper().replace("-", "_")
    definition = ERROR_DEFINITIONS.get(code)
    if definition is not None:
        return definition
    close = difflib.get_close_matches(code, list(ERROR_DEFINITIONS), n=3, cutoff=0.6)
    hint = (
        "Did you mean " + " or ".join(close) + "?"
        if close
        else "Run `smithers errors` to list every code."
    )
    raise InvalidInputError(
        f"Unknown error code {text[:80]!r}.",
        details={"field": "code", "reason": "unknown"},
        hint=hint,
    )
