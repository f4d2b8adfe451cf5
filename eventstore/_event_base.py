"""The base classes of every event, and the `ErrorInfo` record events carry.

Kept apart so both `events` (the events smithers-py writes today, and the `AnyEvent`
union) and the planned-event modules (the reference's events for features to come)
subclass them without importing each other. Import them from
`smithers.eventstore.events`.
"""

from __future__ import annotations

import msgspec

__all__ = ("NULL_RAW", "Actor", "AttemptEvent", "ErrorInfo", "Event", "NodeEvent")

NULL_RAW = msgspec.Raw(b"null")
"""Default of `msgspec.Raw` fields: JSON ``null`` (msgspec cannot decode ``Raw | None``)."""


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A failure stored as data (never a pickled exception), as Smithers' serialised error."""

    name: str
    """Exception class name, e.g. ``"ValueError"`` or ``"SmithersError"``."""
    message: str
    """Human-readable message."""
    code: str | None = None
    """Smithers error code, or None for a plain exception raised by user code."""
    retryable: bool = True
    """Whether the retry policy may run another attempt after this error."""
    details: msgspec.Raw = NULL_RAW
    """The error's `details` mapping as JSON, or None."""
    stack: str | None = None
    """The traceback as Python prints it, with the engine's own frames (smithers, anyio,
    asyncio, worker threads) trimmed; None when no frame of user code was involved (an
    error the engine raised itself, such as a timeout) or for errors recorded before
    tracebacks were kept."""
    file: str | None = None
    """Absolute path of the source file where the error was raised: the innermost frame
    of user code (outside the standard library and installed packages when there is
    one), or None."""
    line: int | None = None
    """1-based line number in `file`, or None."""
    function: str | None = None
    """Name of the function (or ``<module>``) at `file`:`line`, or None."""
    cause: ErrorInfo | None = None
    """The exception's explicit cause (``raise ... from err``) as data, or None."""


class Actor(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Who took an operation on a run from outside it, and why: the audit trail's "who".

    Carried (as ``actor``, default None) by every event that records a decision taken
    from outside the run: starting or resuming it, a cancel request, rewind, fork,
    replay, retry-task, approvals and denials, signals, supervisor and worker actions,
    deletions. None on events written before the audit trail existed, and on the
    engine's own facts (a node finishing is not an operation). Built by
    `smithers.engine.resolve_actor`.
    """

    name: str
    """Who: ``--by NAME``, else the ``SMITHERS_ACTOR`` environment variable, else the OS
    user (``"unknown"`` when none can be found)."""
    host: str
    """Host name of the machine the operation was taken on."""
    pid: int
    """Process id of the process that recorded it."""
    interface: str
    """Through what: ``"cli"``, ``"api"`` (the Python API), ``"http"``, ``"supervisor"``
    or ``"worker"``."""
    reason: str | None = None
    """Why, in the operator's words (``--reason TEXT``), or None."""


# Subclasses repeat `kw_only=True` (msgspec does not inherit it) and `frozen=True` (msgspec
# inherits it, but mypy's dataclass_transform does not and rejects a "non-frozen" subclass).


class Event(
    msgspec.Struct, frozen=True, kw_only=True, tag=True, rename="camel", omit_defaults=True
):
    """Base of every event. The JSON ``type`` field is the class name."""

    run_id: str
    """Run this event belongs to."""
    timestamp_ms: int
    """Unix epoch milliseconds when the engine recorded the fact."""


class NodeEvent(Event, frozen=True, kw_only=True, omit_defaults=False):
    """Base of events about one node in one loop iteration.

    Node events always carry every field (``iteration`` included, even 0), as Smithers'
    NDJSON does, so tools matching on ``iteration`` see it.
    """

    node_id: str
    """Task node id."""
    iteration: int = 0
    """Loop iteration number (0 outside loops)."""


class AttemptEvent(NodeEvent, frozen=True, kw_only=True):
    """Base of events about one attempt of a node."""

    attempt: int
    """Attempt number, starting at 1."""
