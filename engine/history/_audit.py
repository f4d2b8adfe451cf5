"""The audit trail: who took which operation on which run, when, from where, and why.

An *operation* is any stored event whose decoded ``actor`` is not None (`is_operation`):
a decision taken from outside the run (start, resume, cancel request, rewind, fork,
replay, retry-task, approval, signal, the supervisor's resumes, ...). Which event types
can be operations is read from the event catalogue (every type with an ``actor``
field, `OPERATION_TYPES`), so an event given an ``actor`` later is listed with no
change here; its parameters are then its own fields (`operation_params`).

Reads go through the store's `EventStore.read_types`: only events of those types are
read and decoded, never every event of every run.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgspec
from smithers.eventstore import EVENT_TYPES, decode_event
from smithers.eventstore.events import (
    Actor,
    ApprovalDenied,
    ApprovalGranted,
    ContinuationLoaded,
    Event,
    ReplayStarted,
    RetryTaskStarted,
    RunAutoResumed,
    RunAutoResumeSkipped,
    RunCancelRequested,
    RunContinuedAsNew,
    RunForked,
    RunRewound,
    RunStarted,
    SignalReceived,
    SupervisorStarted,
)

from .._stores import existing_store
from ..errors import InvalidInputError, RunNotFoundError
from ._state import SUPERVISOR_STREAM_ID

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    from smithers.eventstore import EventStore, StoredEvent

__all__ = (
    "OPERATION_TYPES",
    "Operation",
    "audit",
    "is_operation",
    "operation_params",
    "related_runs",
)

OPERATION_TYPES: frozenset[str] = frozenset(
    name
    for name, cls in EVENT_TYPES.items()
    if any(f.name == "actor" for f in msgspec.structs.fields(cls))
)
"""Type tags of the events that can record an operation: every event with an ``actor``."""

_COMMON = frozenset({"type", "runId", "timestampMs", "actor"})
"""Fields every operation has, kept out of its `params`."""
_MAX_RELATED = 1_000
"""Most forks and continuations followed from one run (a guard against cycles)."""


def is_operation(event: Event | None) -> bool:
    """Whether `event` records an operation: it carries an ``actor`` (not None). Pure."""
    return getattr(event, "actor", None) is not None


class Operation(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One operation of the audit trail, as ``smithers audit --json`` prints it."""

    run_id: str
    """The run it was taken on (a supervisor's start names its own stream)."""
    seq: int
    """Seq of the event in the stream it is recorded in (`stream`)."""
    stream: str
    """That stream: the run itself, or ``"supervisor"`` for the supervisor's acts."""
    type: str
    """The event's type, e.g. ``"RunRewound"``."""
    timestamp_ms: int
    """When, Unix epoch ms."""
    actor: Actor
    """Who, from which host and process, through what interface, and why."""
    what: str
    """A one-line description, e.g. ``"rewound to frame 4 (seq 17)"``."""
    params: dict[str, Any]
    """The operation's parameters: the event's own fields (camelCase), with inputs and
    payloads given by hash (``inputHash``, ``dataHash``) rather than in full."""


def _sha256(raw: msgspec.Raw) -> str | None:
    data = bytes(raw)
    return None if data == b"null" else hashlib.sha256(data).hexdigest()


def operation_params(event: Event) -> dict[str, Any]:
    """Return the parameters of an operation event: its fields, camelCase. Pure.

    Every field but ``type``, ``runId``, ``timestampMs`` and ``actor``, as the event's
    JSON has them (defaults left out, as on disk); a run's input, a fork's input and a
    signal's payload are given as their SHA-256 (``inputHash``, ``dataHash``), and a
    start's config and file list are left out. Works for any event type.
    """
    body = msgspec.json.decode(msgspec.json.encode(event))
    params = {k: v for k, v in body.items() if k not in _COMMON}
    if isinstance(event, RunStarted):
        for key in ("input", "config", "workflowFiles", "ownerId", "pid", "host"):
            params.pop(key, None)
        params.setdefault("activation", event.activation)
        if event.input_hash is None:
            digest = _sha256(event.input)
            if digest is not None:
                params["inputHash"] = digest
    elif isinstance(event, RunForked):
        params.pop("input", None)
        digest = _sha256(event.input)
        if digest is not None:
            params["inputHash"] = digest
    elif isinstance(event, SignalReceived):
        params.pop("data", None)
        digest = _sha256(event.data)
        if digest is not None:
            params["dataHash"] = digest
            params["dataSizeBytes"] = len(bytes(event.data))
    return params


def _node(node_id: str, iteration: int) -> str:
    return node_id if not iteration else f"{node_id} (iteration {iteration})"


def _what(event: Event, params: dict[str, Any]) -> str:
    """A one-line description of an operation. Pure."""
    if isinstance(event, RunStarted):
        if event.activation > 1:
            return f"resumed (activation {event.activation})"
        return f"started {event.workflow_name or 'the run'}".rstrip()
    if isinstance(event, RunRewound):
        return f"rewound to frame {event.to_frame_no} (seq {event.to_seq})"
    if isinstance(event, RunForked):
        resets = f"; reset {', '.join(event.reset_nodes)}" if event.reset_nodes else ""
        given = "; new input" if "inputHash" in params else ""
        label = f" as {event.branch_label!r}" if event.branch_label else ""
        return f"forked from {event.parent_run_id} at frame {event.parent_frame_no}{label}" + (
            resets + given
        )
    if isinstance(event, ReplayStarted):
        return f"replay of {event.parent_run_id} from frame {event.parent_frame_no}"
    if isinstance(event, RetryTaskStarted):
        return f"retry-task {_node(event.node_id, event.iteration)}; reset " + ", ".join(
            event.reset_nodes
        )
    if isinstance(event, ApprovalGranted | ApprovalDenied):
        verb = "approved" if isinstance(event, ApprovalGranted) else "denied"
        extra = ""
        if isinstance(event, ApprovalGranted) and event.selected is not None:
            extra = f"; selected {event.selected!r}"
        elif isinstance(event, ApprovalGranted) and event.ranked:
            extra = f"; ranked {', '.join(event.ranked)}"
        note = f"; note {event.note!r}" if event.note else ""
        return f"{verb} {_node(event.node_id, event.iteration)}{extra}{note}"
    if isinstance(event, SignalReceived):
        corr = f" (correlation {event.correlation_id})" if event.correlation_id else ""
        return f"signal {event.signal_name!r}{corr}"
    if isinstance(event, RunCancelRequested):
        return f"cancel requested ({event.source})"
    if isinstance(event, RunAutoResumed):
        if event.wake is not None:
            return f"supervisor woke the run ({event.wake} due)"
        return f"supervisor resumed the run (owner silent {event.stale_duration_ms} ms)"
    if isinstance(event, RunAutoResumeSkipped):
        return f"supervisor skipped the run ({event.reason})"
    if isinstance(event, SupervisorStarted):
        return f"supervisor started (poll every {event.poll_interval_ms} ms)"
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if not isinstance(v, dict | list))
    return f"{type(event).__name__}" + (f" {shown}" if shown else "")


def _operation(row: StoredEvent, event: Event) -> Operation:
    actor = getattr(event, "actor", None)
    assert isinstance(actor, Actor)
    params = operation_params(event)
    return Operation(
        run_id=event.run_id,
        seq=row.seq,
        stream=row.run_id,
        type=row.type,
        timestamp_ms=event.timestamp_ms,
        actor=actor,
        what=_what(event, params),
        params=params,
    )


async def related_runs(store: EventStore, run_id: str) -> list[str]:
    """Return `run_id` and its descendants: its forks and continuations, recursively.

    A fork names its parent in its first event (`RunForked`); a continuation is named
    by the run it continues (`RunContinuedAsNew`) and names it back
    (`ContinuationLoaded`). Reads only events of those types (`read_types`). The
    order is breadth first from `run_id`.

    Raises:
        DatabaseQueryError: if the database cannot be read.
    """
    kids: dict[str, list[str]] = {}
    links = (RunForked.__name__, RunContinuedAsNew.__name__, ContinuationLoaded.__name__)
    for row in await store.read_types(links):
        event = decode_event(row.type, row.data)
        if isinstance(event, RunForked):
            kids.setdefault(event.parent_run_id, []).append(row.run_id)
        elif isinstance(event, RunContinuedAsNew):
            kids.setdefault(row.run_id, []).append(event.new_run_id)
        elif isinstance(event, ContinuationLoaded):
            kids.setdefault(event.from_run_id, []).append(row.run_id)
    out = [run_id]
    seen = {run_id}
    i = 0
    while i < len(out) and len(out) < _MAX_RELATED:
        for child in kids.get(out[i], []):
            if child not in seen:
                seen.add(child)
                out.append(child)
        i += 1
    return out


def _check_types(types: Iterable[str] | None) -> tuple[str, ...]:
    if types is None:
        return tuple(sorted(OPERATION_TYPES))
    wanted = tuple(dict.fromkeys(types))
    unknown = [t for t in wanted if t not in OPERATION_TYPES]
    if unknown:
        raise InvalidInputError(
            f"Not an operation type: {', '.join(map(repr, unknown))}.",
            details={"field": "type", "unknown": unknown},
            hint="Use one of: " + ", ".join(sorted(OPERATION_TYPES)) + ".",
        )
    return wanted


async def audit(
    run_id: str | None = None,
    *,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    since_ms: int | None = None,
    actor: str | None = None,
    types: Iterable[str] | None = None,
    limit: int | None = None,
    related: bool = True,
) -> list[Operation]:
    """Return the operations on a run (with its forks and continuations) or on every run.

    Newest first (in the order they were recorded). Reads only the events whose type
    can record an operation (`OPERATION_TYPES`), filtered by type in the store, and
    keeps those with an ``actor`` (`is_operation`). The supervisor's acts on a run
    (recorded in its own stream) count as the run's. Awaits reads; writes nothing.

    Args:
        run_id: The run; None: every run of the database (and the supervisor's starts).
        db: Database path (see `resolve_db_path`); must exist. Ignored with `store`.
        store: An open `EventStore` to use instead of `db` (not closed here).
        since_ms: Only operations recorded at or after this Unix epoch ms.
        actor: Only operations whose actor's name is this (exact match).
        types: Only these event types (each one of `OPERATION_TYPES`).
        limit: At most this many (the newest), >= 1; None: all.
        related: With `run_id`, include its forks and continuations (`related_runs`).

    Returns:
        The `Operation`s, newest first.

    Raises:
        InvalidInputError: ``INVALID_INPUT`` for a type that is not an operation type
            (the hint lists them) or a `limit` below 1.
        RunNotFoundError: if `run_id` has no events.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        DatabaseQueryError: if the database cannot be read.

    Example:
        >>> ops = await audit("run-lx2k3j-1a2b3c", types=["RunRewound"])  # doctest: +SKIP
        >>> ops[0].actor.name, ops[0].params["toFrameNo"]  # doctest: +SKIP
        ('alice', 4)
    """
    wanted = _check_types(types)
    if limit is not None and limit < 1:
        raise InvalidInputError(
            f"limit must be >= 1, got {limit}.", details={"field": "limit", "value": limit}
        )
    async with existing_store(db, store) as s:
        runs: set[str] | None = None
        streams: list[str] | None = None
        if run_id is not None:
            if await s.last_seq(run_id) == 0:
                raise RunNotFoundError(run_id)
            runs = set(await related_runs(s, run_id) if related else [run_id])
            streams = [*runs, SUPERVISOR_STREAM_ID]
        rows = await s.read_types(wanted, run_ids=streams, since_ms=since_ms)
        out: list[Operation] = []
        for row in reversed(rows):
            event = decode_event(row.type, row.data)
            if event is None or not is_operation(event):
                continue
            if runs is not None and event.run_id not in runs:
                continue
            op = _operation(row, event)
            if actor is not None and op.actor.name != actor:
                continue
            out.append(op)
            if limit is not None and len(out) >= limit:
                break
        return out
