"""Smithers errors: one root class, typed codes, JSON serialisation.

As Smithers' `SmithersErrorInstance`: every error carries a SCREAMING_SNAKE `code`,
a `summary` (the message without the docs suffix), a `docs_url` and a `details`
mapping. Codes and their "when"/"details" come from Smithers' error reference; the
catalogue in `ERROR_DEFINITIONS` is designed to hold all of it (later issues complete it).

The root lives in the lowest layer (`eventstore`) so every layer can raise and catch it.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from ._codec import to_raw
from ._error_catalogue import CATEGORIES as CATEGORIES
from ._error_catalogue import ERROR_DEFINITIONS as ERROR_DEFINITIONS
from ._error_catalogue import ERROR_REFERENCE_URL as ERROR_REFERENCE_URL
from ._error_catalogue import ErrorDefinition as ErrorDefinition
from ._error_catalogue import get_error_definition as get_error_definition
from ._error_catalogue import get_error_docs_url as get_error_docs_url
from ._error_catalogue import is_known_error_code as is_known_error_code
from ._error_catalogue import known_error_codes as known_error_codes
from ._error_docs import render_errors_markdown as render_errors_markdown
from ._event_base import NULL_RAW, ErrorInfo

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = (
    "CATEGORIES",
    "ERROR_REFERENCE_URL",
    "ErrorDefinition",
    "ERROR_DEFINITIONS",
    "SmithersError",
    "EventStoreError",
    "SeqConflictError",
    "RunAlreadyExistsError",
    "DatabaseWriteError",
    "DatabaseQueryError",
    "ForeignDatabaseError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "NotOpenError",
    "error_to_json",
    "error_info_of",
    "error_info_to_json",
    "is_smithers_error",
    "is_known_error_code",
    "known_error_codes",
    "render_errors_markdown",
    "get_error_definition",
    "get_error_docs_url",
)


class SmithersError(Exception):
    """Root of every error Smithers raises on purpose.

    Args:
        summary: Human-readable description without the docs suffix.
        code: Overrides the class's `default_code` (for custom, user-defined codes).
        details: Structured context; keys are listed by the code's definition.
        hint: The next step to take, appended to the message.

    Attributes:
        code: SCREAMING_SNAKE string, e.g. ``"RUN_NOT_FOUND"``.
        summary: The message without the docs URL.
        details: Mapping of structured context (camelCase keys, as in Smithers).
        hint: What to do next, or None.
        docs_url: Reference URL for the code.
    """

    default_code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(
        self,
        summary: str,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        hint: str | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.summary = summary
        self.details: dict[str, Any] = dict(details or {})
        self.hint = hint
        self.docs_url = get_error_docs_url(self.code)
        super().__init__(summary)

    @property
    def retryable(self) -> bool:
        """Whether a task failing with this error may be retried (from the code's definition)."""
        definition = get_error_definition(self.code)
        return definition.retryable if definition else True

    @property
    def message(self) -> str:
        """The summary followed by the docs URL, as Smithers' `message`."""
        return f"{self.summary} See {self.docs_url}"


class EventStoreError(SmithersError):
    """Base class of errors raised by the event log."""

    default_code = "STORAGE_ERROR"


class SeqConflictError(EventStoreError):
    """An append found the run's last seq different from its `expected_seq`.

    Raised by `EventStore.append(run_id, events, expected_seq=...)` when the run's
    last seq (`actual_seq`, 0 for a run with no events) is not `expected_seq`: another
    writer appended first. Nothing of the batch was written; re-read the run and decide
    again. Attributes `run_id`, `expected_seq`, `actual_seq`; details: `runId`,
    `expectedSeq`, `actualSeq`.
    """

    default_code = "RUN_RESUME_CLAIM_LOST"

    def __init__(self, run_id: str, *, expected_seq: int, actual_seq: int) -> None:
        super().__init__(
            f"Run {run_id!r} is at seq {actual_seq}, not {expected_seq}: another writer "
            "appended to it. Re-read the run and decide again.",
            details={"runId": run_id, "expectedSeq": expected_seq, "actualSeq": actual_seq},
        )
        self.run_id = run_id
        self.expected_seq = expected_seq
        self.actual_seq = actual_seq


class RunAlreadyExistsError(SeqConflictError):
    """A new run was started (expected_seq 0) with a run id already in the log."""

    default_code = "RUN_ALREADY_EXISTS"

    def __init__(self, run_id: str, *, actual_seq: int) -> None:
        super().__init__(run_id, expected_seq=0, actual_seq=actual_seq)
        self.summary = (
            f"Run {run_id!r} already exists; run ids are unique. Pick another --run-id "
            "(or leave it out for a fresh one)."
        )
        self.args = (self.summary,)


class DatabaseWriteError(EventStoreError, OSError):
    """A write to the database failed (locked past the retry budget, disk full, read-only).

    Nothing of the failed transaction was kept. Details: `dbPath`, `reason`.
    """

    default_code = "DB_WRITE_FAILED"


class DatabaseQueryError(EventStoreError, OSError):
    """A read from the database failed (corrupt or non-SQLite file, unreadable file).

    Details: `dbPath`, `reason`.
    """

    default_code = "DB_QUERY_FAILED"


class InvalidArgumentError(SmithersError, ValueError):
    """A function of the Python API was called with arguments it refuses.

    A mistake in the calling code, not in a run: code ``INVALID_INPUT``. Still a
    `ValueError`, so code catching that keeps working.
    """

    default_code = "INVALID_INPUT"


class InvalidArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument of the Python API has the wrong type (also a `TypeError`)."""


class NotOpenError(SmithersError, RuntimeError):
    """A store, client or context is used outside the time it is open or built for.

    Code ``INVALID_INPUT``: the calling code uses it after `close` (or outside
    ``async with connect(...)``). Still a `RuntimeError`.
    """

    default_code = "INVALID_INPUT"


class ForeignDatabaseError(DatabaseQueryError):
    """The file is a SQLite database of another application: tables, no smithers schema.

    Raised when a store is opened on it (by any command, reading or writing); the file
    is left unchanged (no table created, journal mode kept). Details: `dbPath`,
    `tables` (a few of its table names).
    """

    default_code = "DB_NOT_SMITHERS"

    def __init__(self, path: str, tables: list[str]) -> None:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        super().__init__(
            f"{path} is not a smithers database: it holds other tables ({shown}) and no "
            "smithers schema. It was left unchanged.",
            details={"dbPath": path, "tables": tables[:20]},
            hint="Pass --db with a new file name (or a smithers database) instead.",
        )


def is_smithers_error(err: object) -> bool:
    """Return True for values carrying a Smithers-style string `code` (Smithers' type guard)."""
    return isinstance(err, SmithersError) or isinstance(getattr(err, "code", None), str)


def error_to_json(err: BaseException, *, include_stack: bool = False) -> dict[str, Any]:
    """Serialise an exception as Smithers' `errorToJson` does.

    Args:
        err: Any exception; non-Smithers exceptions get `code` None.
        include_stack: Add the formatted traceback under ``"stack"``.

    Returns:
        A JSON-ready dict with `name`, `message`, `summary`, `code`, `docsUrl`,
        `details` and, when present, `cause` (recursively) and `stack`.
    """
    out: dict[str, Any] = {"name": type(err).__name__}
    if isinstance(err, SmithersError):
        out.update(
            message=err.message,
            summary=err.summary,
            code=err.code,
            docsUrl=err.docs_url,
            details=err.details,
        )
        if err.hint:
            out["hint"] = err.hint
    else:
        out.update(message=str(err), summary=str(err), code=getattr(err, "code", None))
    cause = err.__cause__
    if cause is not None:
        out["cause"] = error_to_json(cause)
    if include_stack:
        out["stack"] = "".join(traceback.format_exception(err))
    return out


ERROR_JSON_KEYS: tuple[str, ...] = (
    "name",
    "message",
    "code",
    "details",
    "cause",
    "stack",
    "retryable",
    "file",
    "line",
    "function",
)
"""The keys of a recorded error in every ``--json`` output, in this order."""


def error_info_of(err: BaseException) -> ErrorInfo:
    """Return `err` as data: name, message, code, retryable and details. Pure.

    A `SmithersError` gives its summary, code, retryability and details (values JSON
    cannot hold are recorded as their ``repr``); any other exception its ``str`` (or its
    class name), the ``code`` attribute it may carry, and ``retryable`` True. No
    traceback, location or cause: the engine's `error_info` adds those for a task's
    failure; a tool call's failure records this much.
    """
    if isinstance(err, SmithersError):
        details: msgspec.Raw = NULL_RAW
        if err.details:
            try:
                details = to_raw(err.details)
            except (TypeError, msgspec.EncodeError):
                details = to_raw({k: repr(v) for k, v in err.details.items()})
        return ErrorInfo(
            name=type(err).__name__,
            message=err.summary,
            code=err.code,
            retryable=err.retryable,
            details=details,
        )
    code = getattr(err, "code", None)
    return ErrorInfo(
        name=type(err).__name__,
        message=str(err) or type(err).__name__,
        code=code if isinstance(code, str) else None,
        retryable=True,
    )


def error_info_to_json(info: ErrorInfo | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return a recorded error in the one JSON shape every ``--json`` output uses.

    The shape is the seed's `errorToJson` one (``name``, ``message``, ``code``,
    ``details``, ``cause``, ``stack``) plus ``retryable`` and the source location
    (``file``, ``line``, ``function``). Every key is present (None when unknown);
    ``cause`` is the same shape, recursively. A mapping (an `ErrorInfo` decoded from an
    event's JSON) is filled in the same way, and keys written by a newer version are
    kept after the known ones. No I/O.

    Args:
        info: An `ErrorInfo`, its camelCase JSON as a mapping, or None.

    Returns:
        A JSON-ready dict with the keys of `ERROR_JSON_KEYS` (and any unknown ones of
        a mapping), or None for None.
    """
    if info is None:
        return None
    if isinstance(info, ErrorInfo):
        details: Any = msgspec.json.decode(info.details)
        return {
            "name": info.name,
            "message": info.message,
            "code": info.code,
            "details": details,
            "cause": error_info_to_json(info.cause),
            "stack": info.stack,
            "retryable": info.retryable,
            "file": info.file,
            "line": info.line,
            "function": info.function,
        }
    cause = info.get("cause")
    out: dict[str, Any] = {
        "name": info.get("name"),
        "message": info.get("message"),
        "code": info.get("code"),
        "details": info.get("details"),
        "cause": error_info_to_json(cause) if isinstance(cause, dict) else None,
        "stack": info.get("stack"),
        "retryable": info.get("retryable", True),
        "file": info.get("file"),
        "line": info.get("line"),
        "function": info.get("function"),
    }
    out.update((k, v) for k, v in info.items() if k not in out)
    return out
