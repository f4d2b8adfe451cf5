"""What an autopsy knows of a failed run: the facts the offline classifier reads.

`collect_evidence` is pure: the run's folded state and its events in, an `Evidence`
out (JSON-able, so the ``gather`` task of the ``post-failure`` workflow stores it as its
output and ``investigate`` classifies it without reading the database again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from smithers.eventstore.events import (
    NodeFailed,
    NodeFinished,
    NodeStarted,
    RunFailed,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from smithers.eventstore import StoredEvent
    from smithers.eventstore.events import ErrorInfo, Event
    from smithers.projections import RunState

__all__ = (
    "LAST_EVENTS",
    "MAX_SOURCE_CHARS",
    "AttemptFact",
    "ErrorFact",
    "EventLine",
    "Evidence",
    "FailedNode",
    "collect_evidence",
)

LAST_EVENTS = 80
"""How many of the run's last events an autopsy keeps."""
MAX_SOURCE_CHARS = 20_000
"""Longest workflow source an autopsy keeps, in characters (its start)."""


class ErrorFact(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An error as the autopsy keeps it: `ErrorInfo`'s fields, `details` as JSON text.

    (`ErrorInfo.details` is raw JSON, which a task output cannot hold.)
    """

    name: str
    message: str
    code: str | None = None
    retryable: bool = True
    details: str | None = None
    """The error's details as JSON text, or None."""
    stack: str | None = None
    file: str | None = None
    line: int | None = None
    function: str | None = None
    cause: ErrorFact | None = None

    @classmethod
    def of(cls, info: ErrorInfo) -> ErrorFact:
        """Return `info` as an `ErrorFact` (its cause chain too). Pure."""
        details = bytes(info.details).decode() if info.details else None
        return cls(
            name=info.name,
            message=info.message,
            code=info.code,
            retryable=info.retryable,
            details=None if details in (None, "null") else details,
            stack=info.stack,
            file=info.file,
            line=info.line,
            function=info.function,
            cause=cls.of(info.cause) if info.cause is not None else None,
        )


class AttemptFact(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """How one task attempt ended, from its ``NodeFinished``/``NodeFailed`` event."""

    seq: int
    """Seq of the event that ended the attempt."""
    node_id: str
    iteration: int
    attempt: int
    outcome: str
    """``"finished"`` or ``"failed"``."""
    error: ErrorFact | None = None


class FailedNode(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A node whose last attempt failed (the run's failure)."""

    node_id: str
    iteration: int
    attempts: int
    """How many attempts it made."""
    seq: int | None
    """Seq of its last ``NodeFailed`` event, or None when the log has none."""
    error: ErrorFact
    frame_before: int | None
    """The last frame before its first attempt started (where a replay runs it again)."""


class EventLine(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One of the run's last events, summarised."""

    seq: int
    type: str
    node_id: str | None = None
    summary: str = ""


class Evidence(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Everything the classifier reads about one run (see `collect_evidence`)."""

    target_run_id: str
    status: str
    workflow_name: str = ""
    workflow_path: str | None = None
    smithers_version: str = ""
    run_error: ErrorFact | None = None
    run_error_seq: int | None = None
    """Seq of the ``RunFailed`` event, or None."""
    failed: tuple[FailedNode, ...] = ()
    attempts: tuple[AttemptFact, ...] = ()
    """Every attempt that ended, in seq order."""
    last_events: tuple[EventLine, ...] = ()
    workflow_source: str = ""
    """The workflow file's text (its first `MAX_SOURCE_CHARS` characters), or ``""``."""
    db_path: str | None = None
    """The database the run is in (commands name it with ``--db``), or None."""
    agent: str | None = None
    """The investigating agent configured when the evidence was gathered
    (``SMITHERS_AUTOPSY_AGENT``), or None: the offline classifier alone."""


def _summary(event: Event) -> str:
    if isinstance(event, NodeFailed | RunFailed):
        err = event.error
        return f"{err.code or err.name}: {err.message}"[:300]
    if isinstance(event, NodeStarted | NodeFinished):
        return f"attempt {event.attempt}"
    return ""


def collect_evidence(
    state: RunState,
    events: Iterable[tuple[StoredEvent, Event]],
    *,
    workflow_source: str = "",
    db_path: str | None = None,
    agent: str | None = None,
) -> Evidence:
    """Return what the classifier needs of a run. Pure.

    Args:
        state: The run's folded state.
        events: All its events (``RunHandle.events()``), in seq order.
        workflow_source: The workflow file's text (cut to `MAX_SOURCE_CHARS`).
        db_path: The database path, for the suggested commands' ``--db``.
        agent: The investigating agent configured, if any (recorded as is).

    Returns:
        The `Evidence`: failed nodes with the seq of their last failure, every ended
        attempt, the last `LAST_EVENTS` events.
    """
    events = list(events)
    attempts: list[AttemptFact] = []
    first_start: dict[tuple[str, int], int] = {}
    last_failed: dict[tuple[str, int], int] = {}
    run_error_seq: int | None = None
    for stored, event in events:
        if isinstance(event, NodeStarted) and event.attempt == 1:
            first_start[(event.node_id, event.iteration)] = stored.seq
        elif isinstance(event, NodeFinished | NodeFailed):
            error = event.error if isinstance(event, NodeFailed) else None
            attempts.append(
                AttemptFact(
                    seq=stored.seq,
                    node_id=event.node_id,
                    iteration=event.iteration,
                    attempt=event.attempt,
                    outcome="failed" if error is not None else "finished",
                    error=ErrorFact.of(error) if error is not None else None,
                )
            )
            if error is not None:
                last_failed[(event.node_id, event.iteration)] = stored.seq
        elif isinstance(event, RunFailed):
            run_error_seq = stored.seq
    failed: list[FailedNode] = []
    for rec in state.nodes.values():
        if rec.state != "failed" or not rec.attempts or rec.attempts[-1].error is None:
            continue
        key = (rec.node_id, rec.iteration)
        start = first_start.get(key)
        before = [f.frame_no for f in state.frames if start is not None and f.seq < start]
        failed.append(
            FailedNode(
                node_id=rec.node_id,
                iteration=rec.iteration,
                attempts=len(rec.attempts),
                seq=last_failed.get(key),
                error=ErrorFact.of(rec.attempts[-1].error),
                frame_before=max(before) if before else None,
            )
        )
    failed.sort(key=lambda f: f.seq if f.seq is not None else 0)
    last = [
        EventLine(
            seq=stored.seq,
            type=type(event).__name__,
            node_id=getattr(event, "node_id", None),
            summary=_summary(event),
        )
        for stored, event in events[-LAST_EVENTS:]
    ]
    return Evidence(
        target_run_id=state.run_id,
        status=state.status,
        workflow_name=state.workflow_name,
        workflow_path=state.workflow_path,
        smithers_version=state.smithers_version,
        run_error=ErrorFact.of(state.error) if state.error is not None else None,
        run_error_seq=run_error_seq,
        failed=tuple(failed),
        attempts=tuple(attempts),
        last_events=tuple(last),
        workflow_source=workflow_source[:MAX_SOURCE_CHARS],
        db_path=db_path,
        agent=agent,
    )
