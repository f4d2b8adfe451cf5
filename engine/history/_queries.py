"""The read API over a run database: what ``ps``, ``inspect``, ``events`` and ``logs`` show.

Each call opens the SQLite store found by `resolve_db_path` (which must exist), reads,
and closes it, unless it is given an open `store` (the `Client`'s). States are folded
from the log by `load_state` (a fork's starts from its parent's state at the fork point).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import msgspec
from smithers.eventstore import (
    EVENT_TYPES,
    RunRecord,
    StoredEvent,
    decode_event,
    decode_json,
    wait_for_append,
)
from smithers.eventstore.errors import SmithersError, error_info_to_json
from smithers.eventstore.events import (
    TERMINAL_RUN_STATUSES,
    ContinuationLoaded,
    Event,
    RunForked,
)

from .._shell import shell_command
from .._stores import existing_store
from ..errors import MissingOutputError, NodeNotFoundError, RunNotFoundError
from ._state import AUDIT_STREAM_ID, SUPERVISOR_STREAM_ID, load_state

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterable

    from smithers.eventstore import EventStore
    from smithers.projections import RunState

__all__ = (
    "event_to_json",
    "follow_events",
    "get_output",
    "list_runs",
    "load_run",
    "read_events",
)

DbPath = str | os.PathLike[str] | None


async def list_runs(
    db: DbPath = None,
    *,
    limit: int | None = None,
    status: str | None = None,
    store: EventStore | None = None,
) -> list[RunRecord]:
    """Return the database's runs, newest first. Awaits I/O.

    The supervisor's own log (stream ``"supervisor"``) and the audit stream
    (``"_audit"``) are not runs and are left out.

    Args:
        db: Database path (default: ``SMITHERS_DB``, else the nearest
            ``.smithers/smithers.db``; see `resolve_db_path`).
        limit: At most this many runs (after the `status` filter); None for all.
        status: Only runs whose last recorded status is this (e.g. ``"failed"``).
        store: An open `EventStore` to use instead of `db` (not closed here).

    Returns:
        `RunRecord`s (run id, workflow name, status, created/updated Unix epoch ms,
        last seq).

    Raises:
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        DatabaseQueryError: if the database cannot be read.
    """
    async with existing_store(db, store) as store:
        # Two extra rows: the supervisor's and audit streams may be among the first `limit`.
        runs = await store.list_runs(
            limit=None if status is not None or limit is None else limit + 2
        )
    runs = [r for r in runs if r.run_id not in (SUPERVISOR_STREAM_ID, AUDIT_STREAM_ID)]
    if status is not None:
        runs = [r for r in runs if r.status == status]
    return runs if limit is None else runs[:limit]


async def load_run(
    run_id: str,
    *,
    db: DbPath = None,
    upto_seq: int | None = None,
    store: EventStore | None = None,
) -> RunState:
    """Fold a run's events into its `RunState`. Awaits I/O.

    Args:
        run_id: The run's id.
        db: Database path (see `list_runs`).
        upto_seq: Fold only events with ``seq <= upto_seq`` (the run as it was then);
            None for the whole log.
        store: An open `EventStore` to use instead of `db` (not closed here).

    Returns:
        The run's state at `upto_seq` (or now).

    Raises:
        RunNotFoundError: if the run has no events.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        DatabaseQueryError: if the database cannot be read.
    """
    async with existing_store(db, store) as store:
        # A fork's state starts from its parent's at the fork point (`load_state`).
        return await load_state(store, run_id, upto_seq=upto_seq)


def _check_types(types: Iterable[str] | None) -> frozenset[str] | None:
    if types is None:
        return None
    wanted = frozenset(types)
    unknown = sorted(wanted - EVENT_TYPES.keys())
    if unknown:
        raise SmithersError(
            f"Unknown event type(s): {', '.join(unknown)}.",
            code="INVALID_EVENTS_OPTIONS",
            details={"types": unknown},
            hint="Event types are class names such as NodeFinished, NodeFailed, "
            "RunStarted; see `smithers events RUN` for the types of a run.",
        )
    return wanted


def _matches(
    stored: StoredEvent,
    event: Event,
    *,
    node_id: str | None,
    types: frozenset[str] | None,
    since_ms: int | None,
) -> bool:
    if types is not None and stored.type not in types:
        return False
    if since_ms is not None and stored.timestamp_ms < since_ms:
        return False
    return node_id is None or getattr(event, "node_id", None) == node_id


_MAX_ANCESTRY = 1_000
"""Deepest ancestry followed (a guard against a corrupt, cyclic ancestry)."""


async def _ancestor_rows(store: EventStore, run_id: str) -> list[StoredEvent]:
    """The ancestors' events, the oldest ancestor's first.

    A fork's parent counts up to the fork point (`RunForked` first in the fork's log); a
    continue-as-new run's predecessor counts whole (`ContinuationLoaded` right after
    the run's first `RunStarted`), so the history reads as one across a chain.
    """
    chain: list[list[StoredEvent]] = []
    current = run_id
    for _ in range(_MAX_ANCESTRY):
        head = await store.read(current, upto_seq=2)
        events = [decode_event(row.type, row.data) for row in head]
        if events and isinstance(events[0], RunForked):
            forked = events[0]
            chain.append(await store.read(forked.parent_run_id, upto_seq=forked.parent_seq))
            current = forked.parent_run_id
            continue
        loaded = next((e for e in events if isinstance(e, ContinuationLoaded)), None)
        if loaded is None:
            break
        chain.append(await store.read(loaded.from_run_id))
        current = loaded.from_run_id
    return [row for rows in reversed(chain) for row in rows]


async def read_events(
    run_id: str,
    *,
    db: DbPath = None,
    node_id: str | None = None,
    types: Iterable[str] | None = None,
    after_seq: int = 0,
    since_ms: int | None = None,
    limit: int | None = None,
    follow_ancestry: bool = False,
    store: EventStore | None = None,
) -> list[tuple[StoredEvent, Event]]:
    """Return a run's events, decoded, in seq order. Awaits I/O.

    Events of types this version does not know are skipped. With `follow_ancestry`, a
    fork's events are preceded by its parent's up to the fork point (`RunForked`'s
    `parent_seq`), a continue-as-new run's by its predecessor's whole log, and so on up
    its ancestry: the history the run's state is built from. Each envelope keeps its own
    `run_id` and `seq`.

    Args:
        run_id: The run's id.
        db: Database path (see `list_runs`).
        node_id: Only events about this node.
        types: Only events of these types (class names, e.g. ``"NodeFinished"``).
        after_seq: Only events with ``seq > after_seq``.
        since_ms: Only events recorded at or after this Unix epoch millisecond.
        limit: At most this many events (the first ones matching); None for all.
        follow_ancestry: Include the ancestors' events first (`after_seq` applies to
            the run's own events only; the other filters to all).
        store: An open `EventStore` to use instead of `db` (not closed here).

    Returns:
        ``(stored envelope, decoded event)`` pairs.

    Raises:
        RunNotFoundError: if the run has no events.
        NodeNotFoundError: if `node_id` is given, nothing matched, and the run has no
            node `node_id` (the hint lists its nodes).
        SmithersError: code ``INVALID_EVENTS_OPTIONS`` for an unknown event type in
            `types` or a negative `after_seq`/`limit`; ``CLI_DB_NOT_FOUND`` if there is
            no database file.
        DatabaseQueryError: if the database cannot be read.
    """
    wanted = _check_types(types)
    if after_seq < 0 or (limit is not None and limit < 0):
        raise SmithersError(
            f"after_seq and limit must be >= 0, got {after_seq} and {limit}.",
            code="INVALID_EVENTS_OPTIONS",
        )
    async with existing_store(db, store) as store:
        if await store.last_seq(run_id) == 0:
            raise RunNotFoundError(run_id)
        stored = await store.read(run_id, after_seq=after_seq)
        if follow_ancestry:
            stored = [*await _ancestor_rows(store, run_id), *stored]
        out: list[tuple[StoredEvent, Event]] = []
        for row in stored:
            if limit is not None and len(out) >= limit:
                break
            event = decode_event(row.type, row.data)
            if event is None:
                continue
            if _matches(row, event, node_id=node_id, types=wanted, since_ms=since_ms):
                out.append((row, event))
        if node_id is not None and not out and run_id != SUPERVISOR_STREAM_ID:
            # Nothing matched: a filter left nothing out, or there is no such node.
            state = await load_state(store, run_id)
            if not any(nid == node_id for nid, _ in state.nodes):
                raise NodeNotFoundError(run_id, node_id, state.node_ids())
    return out


async def follow_events(
    run_id: str,
    *,
    db: DbPath = None,
    after_seq: int = 0,
    poll_interval_s: float = 0.5,
    follow_ancestry: bool = False,
    store: EventStore | None = None,
) -> AsyncGenerator[tuple[StoredEvent, Event], None]:
    """Yield a run's events as they are recorded, until the run reaches a terminal status.

    Polls the database every `poll_interval_s` seconds over one connection (on
    PostgreSQL, wakes as soon as an append is notified, `wait_for_append`); stops once
    every event up to the run's terminal status (finished, failed, cancelled,
    continued) has been yielded. Use it with `contextlib.aclosing` so the connection
    is closed when the consumer stops early. Awaits I/O.

    Args:
        run_id: The run's id.
        db: Database path (see `list_runs`).
        after_seq: Start after this seq (0: from the first event).
        poll_interval_s: Seconds between polls when nothing new was found.
        follow_ancestry: First yield a fork's ancestors' events up to the fork point
            (as `read_events`).
        store: An open `EventStore` to use instead of `db` (not closed here).

    Yields:
        ``(stored envelope, decoded event)`` pairs in seq order; unknown types skipped.

    Raises:
        RunNotFoundError: if the run has no events.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        DatabaseQueryError: if the database cannot be read.
    """
    async with existing_store(db, store) as store:
        if await store.last_seq(run_id) == 0:
            raise RunNotFoundError(run_id)
        if follow_ancestry:
            for row in await _ancestor_rows(store, run_id):
                event = decode_event(row.type, row.data)
                if event is not None:
                    yield row, event
        seq = after_seq
        while True:
            # Status first: everything up to its last_seq is then surely in the log.
            record = await store.get_run(run_id)
            done_at = (
                record.last_seq
                if record is not None and record.status in TERMINAL_RUN_STATUSES
                else None
            )
            for row in await store.read(run_id, after_seq=seq):
                seq = row.seq
                event = decode_event(row.type, row.data)
                if event is not None:
                    yield row, event
            if done_at is not None and seq >= done_at:
                return
            # PostgreSQL: woken by the append's NOTIFY; SQLite: a sleep (the poll).
            await wait_for_append(store, run_id, timeout_s=poll_interval_s)


async def get_output(
    run_id: str,
    node_id: str,
    *,
    db: DbPath = None,
    iteration: int | None = None,
    store: EventStore | None = None,
) -> Any:
    """Return a node's latest output as plain JSON values (dicts, lists, …). Awaits I/O.

    Args:
        run_id: The run's id.
        node_id: The node's id.
        db: Database path (see `list_runs`).
        iteration: Loop iteration; None for the latest iteration that has an output.
        store: An open `EventStore` to use instead of `db` (not closed here).

    Returns:
        The decoded output of the node's last finished attempt.

    Raises:
        RunNotFoundError: if the run has no events.
        NodeNotFoundError: if the run has no node `node_id` (the hint lists its nodes).
        MissingOutputError: code ``MISSING_OUTPUT`` if the node (or that iteration) has
            no output (it has not finished, failed, or was skipped).
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        DatabaseQueryError: if the database cannot be read.
    """
    state = await load_run(run_id, db=db, store=store)
    records = [rec for (nid, _), rec in state.nodes.items() if nid == node_id]
    if not records:
        raise NodeNotFoundError(run_id, node_id, state.node_ids())
    if iteration is None:
        with_output = [rec for rec in records if rec.has_output]
        rec = max(with_output or records, key=lambda r: r.iteration)
    else:
        found = state.node(node_id, iteration)
        if found is None:
            err = MissingOutputError(node_id, iteration)
            iterations = ", ".join(str(r.iteration) for r in records)
            err.summary = f"Node {node_id!r} of run {run_id!r} has no iteration {iteration}."
            err.args = (err.summary,)
            err.hint = f"Its iterations: {iterations}."
            raise err
        rec = found
    if not rec.has_output:
        err = MissingOutputError(node_id, rec.iteration)
        err.summary = f"Node {node_id!r} of run {run_id!r} has no output: it is {rec.state}" + (
            f" (iteration {rec.iteration})." if rec.iteration else "."
        )
        err.args = (err.summary,)
        err.details["runId"] = run_id
        err.details["state"] = rec.state
        err.hint = (
            f"See why with `{shell_command('inspect', args=[run_id])}` or "
            f"`{shell_command('events', args=[run_id], options=[('--node', node_id)])}`."
        )
        raise err
    return decode_json(rec.output)


def event_to_json(stored: StoredEvent, event: Event | None = None) -> dict[str, Any]:
    """Return an event as Smithers' NDJSON object: its camelCase JSON plus ``seq``.

    The shape is ``{"seq", "type", "runId", "timestampMs", ...fields}``, the same as
    the lines of ``stream.ndjson``. It is decoded from the stored bytes, so fields
    written by a newer version are kept. ``seq`` is the log's: a tool call's own
    counter (``ToolCallStarted``/``ToolCallFinished.seq``) is shown as ``callSeq``.
    An ``error`` field is given the one error shape of every ``--json`` output
    (`error_info_to_json`: every key present).

    Args:
        stored: The stored envelope (its `data` and `seq` are used).
        event: The decoded event; accepted for symmetry with `read_events` pairs and
            not needed for the shape.

    Returns:
        A JSON-ready dict.

    Raises:
        msgspec.DecodeError: if `stored.data` is not valid JSON.
    """
    del event
    body = msgspec.json.decode(stored.data)
    if not isinstance(body, dict):
        body = {"type": stored.type, "value": body}
    error = body.get("error")
    if isinstance(error, dict):  # the one error shape of every --json output
        body["error"] = error_info_to_json(error)
    if "seq" in body:  # a tool call's own counter: `seq` is the log's (as stream.ndjson)
        body = {("callSeq" if k == "seq" else k): v for k, v in body.items()}
    return {"seq": stored.seq, **body}
