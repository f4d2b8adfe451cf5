"""Controlling runs from outside their owner: resume by id, cancel, down (DESIGN §6, §10).

Cancel is a request appended to the run's log (`RunCancelRequested`, with its `source`)
that the live owner consumes at its next heartbeat: it aborts its tasks
(`NodeCancelled`), records `RunCancelled` and stops. When the owner is gone (dead pid,
stale lease) or does not stop in time, the canceller finalizes the run itself in one
append guarded by `expected_seq`, so a cancel always converges, even for a run whose
process was killed (the reference leaves such runs "running" forever).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
from smithers.eventstore import (
    EventStore,
    SeqConflictError,
    resolve_db_path,
)
from smithers.eventstore.events import (
    TERMINAL_RUN_STATUSES,
    Event,
    NodeCancelled,
    RunCancelled,
    RunCancelRequested,
    RunStatusChanged,
)

from .._clock import Clock, SystemClock
from .._run_ids import EXISTING_RUN_HINT, validate_run_id
from .._stores import open_existing_store
from ..activation import append_to_run, close_waits, default_log_dir
from ..errors import InvalidInputError
from ..history import SUPERVISOR_STREAM_ID, child_runs, load_state
from ._actors import api_actor
from ._ownership import DEFAULT_STALE_THRESHOLD_MS, OwnerVerdict, judge_owner

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    from smithers.eventstore.events import Actor
    from smithers.projections import RunState


__all__ = (
    "CancelStep",
    "cancel_run",
    "down",
)

CancelStep = Literal["requested", "finalizing"]
"""What `cancel_run` reports to `on_step`: ``"requested"`` once the request is in the
log and the live owner is being waited for; ``"finalizing"`` when the canceller records
the cancellation itself (owner gone, or not stopped within `wait_ms`)."""

_POLL_S = 0.15
"""How often a canceller looks at the log while it waits for the owner (seconds)."""
_ROUNDS = 25
"""Attempts of a cancel's append before it gives up on a run others keep appending to."""


def _listens(verdict: OwnerVerdict) -> bool:
    """Whether a cancel should ask the owner (and wait) rather than finalize at once.

    An owner alive by its heartbeat is asked; so is a live process on this host even if
    its heartbeat is stale (it may only be slow; `wait_ms` bounds the wait). A stale
    owner elsewhere, a dead one, or none, is finalized over.
    """
    return verdict.kind == "alive" or verdict.lives_here


def _check_run_id(run_id: str) -> None:
    """Refuse an invalid run id (`validate_run_id`) and the supervisor's stream."""
    validate_run_id(run_id, hint=EXISTING_RUN_HINT)
    if run_id == SUPERVISOR_STREAM_ID:
        raise InvalidInputError(
            f"{run_id!r} is the supervisor's log, not a run.",
            details={"runId": run_id},
            hint="List runs with `smithers ps`.",
        )


# ---------------------------------------------------------------------- cancel


async def cancel_run(
    run_id: str,
    *,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    source: str = "cli",
    reason: str | None = None,
    wait_ms: int = 10_000,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    on_step: Callable[[CancelStep], Any] | None = None,
    clock: Clock | None = None,
    by: str | None = None,
    actor: Actor | None = None,
) -> RunState:
    """Cancel a run, whether its owner is alive or dead; return its final state.

    A run that already ended (finished, failed, cancelled, continued) is returned
    unchanged: nothing is appended. If a live process owns the run, a
    `RunCancelRequested` is appended and the owner is waited for (it aborts its
    tasks, records `RunCancelled` and stops within about a second). If the owner is
    dead or stale, or has not stopped after `wait_ms`, this call records the end
    itself in one append: `RunCancelRequested` (unless already appended),
    `NodeCancelled` (reason ``"cancelled"``) for each running node, each retry
    waiting out its backoff and each waiting node, `TimerCancelled` for each pending
    timer (`close_waits`),
    `RunStatusChanged("cancelled")` and `RunCancelled`; then
    it deletes the run's lease (an owner that was only slow then stops too). Every
    append uses `expected_seq`: a racing write by the owner is detected, the log
    re-read and the decision taken again. A cancelled run's child runs (`Subflow`)
    still running or parked are cancelled the same way (source ``"parent"``, reason
    ``"parent-cancelled"``). Awaits I/O.

    Args:
        run_id: The run to cancel.
        db: Database path (see `resolve_db_path`; the file must exist). With `store`,
            it only locates the NDJSON mirrors (none when None).
        store: An open store to use instead of `db` (not closed here).
        source: Who asks, recorded in both events: ``"cli"``, ``"api"``, ``"signal"``.
        reason: Why, recorded in both events; None records ``"cancel-requested"``.
        wait_ms: How long to wait for a live owner to stop before finalizing (ms).
        stale_threshold_ms: How long (ms) an owner may be silent before it is stale
            (see `judge_owner`); a stale owner on another host is not waited for.
        on_step: Called with ``"requested"`` once the request is recorded and the
            owner is waited for, and with ``"finalizing"`` when this call records the
            cancellation itself. Not called for a run that had already ended.
        clock: Time source (tests pass a fake).
        by: Who cancels, recorded on the ``RunCancelRequested`` (its ``actor``, with
            `reason`); None: ``$SMITHERS_ACTOR``, else the OS user.
        actor: The `Actor` to record instead of one built from `by` and `reason`
            (interface ``"api"``): the CLI passes its own. Child runs cancelled with
            the run record it too.

    Returns:
        The run's state after the cancel: status ``"cancelled"``, or the status it
        ended with on its own (already, or while the request was in flight).

    Raises:
        RunNotFoundError: if the run has no events.
        InvalidInputError: if `run_id` is not a valid run id or is the supervisor's
            stream, or `by`/`reason` is not printable text of a sane length.
        SeqConflictError: if others kept appending to the run through
            every attempt (25) of the cancel's append.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        DatabaseWriteError, DatabaseQueryError: on storage failures.

    Example:
        >>> state = await cancel_run("run-lx2k3j-1a2b3c", db="runs.db")  # doctest: +SKIP
        >>> state.status  # doctest: +SKIP
        'cancelled'
    """
    _check_run_id(run_id)
    who = api_actor(actor, by=by, reason=reason)
    own = store is None
    path = _db_path(db, own)
    if store is None:
        store = await open_existing_store(path)
    try:
        state = await _cancel(
            store,
            run_id,
            source,
            reason,
            wait_ms,
            stale_threshold_ms,
            on_step,
            clock,
            log_dir=default_log_dir(path, run_id) if path is not None else None,
            actor=who,
        )
        if state.status == "cancelled":
            await _cancel_children(
                store,
                run_id,
                path=path,
                wait_ms=wait_ms,
                stale_threshold_ms=stale_threshold_ms,
                actor=who,
            )
        return state
    finally:
        if own:
            with anyio.CancelScope(shield=True):
                await store.close()


async def _cancel_children(
    store: EventStore, run_id: str, *, path: Path | None, **options: Any
) -> None:
    """Cancel the child runs (`Subflow`) of a cancelled run that are still active.

    A live parent cancels its running children itself; this converges the rest: the
    children of a parent that parked or died with it. Recursive (grandchildren too).
    """
    for child in await child_runs(store, run_id):
        if _is_active(child.status):
            await cancel_run(
                child.run_id,
                db=path,
                store=store,
                source="parent",
                reason="parent-cancelled",
                **options,
            )


def _db_path(db: str | os.PathLike[str] | None, own: bool) -> Path | None:
    """The database file: resolved (must exist) when we open it; else `db` as given.

    With an open store, `db` only locates the runs' NDJSON mirrors (None: none).
    """
    if own:
        return resolve_db_path(db, must_exist=True)
    return Path(db) if db is not None else None


async def _cancel(
    store: EventStore,
    run_id: str,
    source: str,
    reason: str | None,
    wait_ms: int,
    stale_ms: int,
    on_step: Callable[[CancelStep], Any] | None,
    clock: Clock | None,
    *,
    log_dir: Path | None = None,
    actor: Actor | None = None,
) -> RunState:
    """`cancel_run` on an open store; `log_dir` is the run's mirror folder (or None)."""
    clock = clock or SystemClock()
    asked: set[str] = set()  # owners already asked (and waited for)
    requested = False  # a RunCancelRequested of ours is in the log
    reported = False  # on_step("finalizing") was called
    conflict: SeqConflictError | None = None
    for _ in range(_ROUNDS):
        state = await load_state(store, run_id)
        if state.status in TERMINAL_RUN_STATUSES:
            return state
        lease = await store.get_lease(run_id)
        now = clock.now_ms()
        verdict = judge_owner(state, lease, now_ms=now, stale_threshold_ms=stale_ms)
        owner = verdict.owner_id or str(verdict.pid)
        if owner not in asked and _listens(verdict):
            request = RunCancelRequested(
                run_id=run_id, timestamp_ms=now, source=source, reason=reason, actor=actor
            )
            if not await _append_request(store, request, state.seq, log_dir):
                continue  # it ended meanwhile
            requested = True
            asked.add(owner)
            if on_step is not None:
                on_step("requested")
            if await _wait_for_owner(store, state, wait_ms, stale_ms, clock):
                return await load_state(store, run_id)
            continue  # owner gone or too slow: finalize on the next round
        if on_step is not None and not reported:
            reported = True
            on_step("finalizing")
        try:
            await append_to_run(
                store,
                run_id,
                _final_events(state, now, source, reason, requested=requested, actor=actor),
                expected_seq=state.seq,
                status="cancelled",
                log_dir=log_dir,
            )
        except SeqConflictError as e:
            conflict = e
            continue
        if lease is not None:
            # Only the lease we judged: a slow owner finds it gone and stops writing.
            await store.release_lease(run_id, lease.owner_id)
        return await load_state(store, run_id)
    assert conflict is not None
    raise conflict


async def _append_request(
    store: EventStore, request: Event, seq: int, log_dir: Path | None = None
) -> bool:
    """Append `request` after whatever the (busy) owner appends; False if the run ended.

    The request does not depend on the run's state, so a conflict needs only the new
    last seq, not a new fold.

    Raises:
        SeqConflictError: if the owner appended before every attempt.
    """
    run_id = request.run_id
    for attempt in range(_ROUNDS * 4):
        try:
            await append_to_run(store, run_id, [request], expected_seq=seq, log_dir=log_dir)
            return True
        except SeqConflictError:
            record = await store.get_run(run_id)
            if record is not None and record.status in TERMINAL_RUN_STATUSES:
                return False
            if attempt == _ROUNDS * 4 - 1:
                raise
            seq = await store.last_seq(run_id)
    raise AssertionError("unreachable")


def _ended(status: str) -> bool:
    return status in TERMINAL_RUN_STATUSES


async def _wait_for_owner(
    store: EventStore,
    state: RunState,
    wait_ms: int,
    stale_ms: int,
    clock: Clock,
    *,
    settled: Callable[[str], bool] = _ended,
) -> bool:
    """Poll until the run settles (True), or its owner dies or `wait_ms` pass (False).

    Settled is ``settled(status)`` of the runs index: by default, the run ended (a
    cancel waits for that); a hijack waits for the run to stop running.
    """
    run_id = state.run_id
    with anyio.move_on_after(max(wait_ms, 0) / 1000):
        while True:
            await anyio.sleep(_POLL_S)
            record = await store.get_run(run_id)
            if record is not None and settled(record.status):
                return True
            lease = await store.get_lease(run_id)
            now = clock.now_ms()
            if not _listens(judge_owner(state, lease, now_ms=now, stale_threshold_ms=stale_ms)):
                # Gone without settling the run (an owner that ends it writes the end
                # before releasing its lease): one last look, then finalize.
                record = await store.get_run(run_id)
                return record is not None and settled(record.status)
    return False


def _final_events(
    state: RunState,
    now: int,
    source: str,
    reason: str | None,
    *,
    requested: bool,
    actor: Actor | None = None,
) -> list[Event]:
    """The events that end `state`'s run as cancelled, as its owner would record them."""
    rid = state.run_id
    events: list[Event] = []
    if not requested:
        events.append(
            RunCancelRequested(
                run_id=rid, timestamp_ms=now, source=source, reason=reason, actor=actor
            )
        )
    for rec in state.nodes.values():
        if rec.state == "running":
            attempt = rec.attempts[-1].attempt if rec.attempts else None
        elif rec.state == "pending" and rec.next_attempt_delay_ms is not None:
            attempt = None  # a retry waiting out its backoff: it never starts
        else:
            continue
        events.append(
            NodeCancelled(
                run_id=rid,
                timestamp_ms=now,
                node_id=rec.node_id,
                iteration=rec.iteration,
                attempt=attempt,
                reason="cancelled",
            )
        )
    # What still waits is closed, as the owner's end does (a parked run has no owner:
    # this is its end).
    events.extend(close_waits(state, now_ms=now, reason="cancelled"))
    events.append(RunStatusChanged(run_id=rid, timestamp_ms=now, status="cancelled"))
    events.append(
        RunCancelled(
            run_id=rid, timestamp_ms=now, reason=reason or "cancel-requested", source=source
        )
    )
    return events


async def down(
    *,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    source: str = "cli",
    reason: str | None = None,
    wait_ms: int = 10_000,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    clock: Clock | None = None,
    by: str | None = None,
    actor: Actor | None = None,
) -> list[RunState]:
    """Cancel every active run: running or waiting (``smithers down``). Awaits I/O.

    Runs that ended, and forks that were made but never started (status
    ``"pending"``), are left alone.

    The runs are cancelled concurrently with `cancel_run`, so the whole call takes
    about as long as the slowest one (at most about `wait_ms` plus an append).

    Args:
        db: Database path (see `resolve_db_path`; the file must exist). With `store`,
            it only locates the NDJSON mirrors (none when None).
        store: An open store to use instead of `db` (not closed here).
        source: Who asks, recorded in the events (see `cancel_run`).
        reason: Why, recorded in the events.
        wait_ms: How long to wait for each live owner (ms).
        stale_threshold_ms: As `cancel_run`'s.
        clock: Time source (tests pass a fake).
        by: Who, recorded on each ``RunCancelRequested`` (see `cancel_run`).
        actor: The `Actor` to record instead of one built from `by` and `reason`.

    Returns:
        The final state of each run that was active, newest run first (empty if none).

    Raises:
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        SeqConflictError, DatabaseWriteError, DatabaseQueryError: as
            `cancel_run`, for the first run that failed.
    """
    who = api_actor(actor, by=by, reason=reason)
    own = store is None
    path = _db_path(db, own)
    if store is None:
        store = await open_existing_store(path)
    try:
        active = [
            r.run_id
            for r in await store.list_runs()
            if r.run_id != SUPERVISOR_STREAM_ID and _is_active(r.status)
        ]
        done: dict[str, RunState] = {}

        async def one(run_id: str) -> None:
            done[run_id] = await _cancel(
                store,
                run_id,
                source,
                reason,
                wait_ms,
                stale_threshold_ms,
                None,
                clock,
                log_dir=default_log_dir(path, run_id) if path is not None else None,
                actor=who,
            )

        try:
            async with anyio.create_task_group() as tg:
                for run_id in active:
                    tg.start_soon(one, run_id)
        except BaseExceptionGroup as group:
            first = group.exceptions[0]
            if isinstance(first, Exception):
                raise first from first.__cause__
            raise
        return [done[run_id] for run_id in active]
    finally:
        if own:
            with anyio.CancelScope(shield=True):
                await store.close()


def _is_active(status: str) -> bool:
    """Running, parked (waiting) or queued; not ended, and not a fork that never started."""
    return status in ("running", "queued") or status.startswith("waiting")


# ---------------------------------------------------------------------- resume
