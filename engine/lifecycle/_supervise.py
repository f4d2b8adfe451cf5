"""The supervisor: resume runs whose owner is gone, wake parked runs (``supervise``).

DESIGN §6, §10.

Each poll lists the runs whose status is ``"running"`` and judges their owner with the
one ownership verdict (`judge_owner`: the log's latest `RunStarted` names the owner,
its lease carries the heartbeat). A run whose owner is gone (dead pid on this host),
stale (no heartbeat for the stale threshold: on another host, or a live process here
that is stopped or hung), or that nobody has claimed for that long, is resumed by a
separate process (the resume entry point)::

    python -m smithers up --resume RUN --json --db DB [--force --stale-threshold MSms]
        --by NAME --reason "supervisor auto-resume"

started in its own session, so a resume that crashes at start-up cannot take the
supervisor down. ``--force`` and the supervisor's threshold are passed for a stale
owner, and the supervisor's actor name (`SupervisorStarted.actor`), so the resume
records who resumed the run. The resumer's stderr (human-readable errors, warnings) is
appended to ``<db dir>/executions/<run>/logs/supervise.log`` after a header line; its
stdout, one JSON object ``{"runId", "status", "outputs", "error"}``, goes to
``supervise.json`` beside it (replaced by each resume). How a resume ended is read from
the resumer's exit code (DESIGN §9: 0 finished, 1 failed, 2 cancelled, 3 waiting, 4
refused: bad input, code changed, owner alive, …) and from that document: ``status`` is
the run's status when the run reached one, or null when the resume stopped before;
``error`` is then ``{"code", "message", "name", "details", …}`` (`error_to_json`). The
resumer's text is never parsed.

What the supervisor decides is recorded in its own stream (``run_id`` column
``"supervisor"``; one per database, appended with `expected_seq`): `SupervisorStarted`,
`RunAutoResumed` and `RunAutoResumeSkipped` (their `run_id` field names the target run;
appending there never races a run's owner) and `SupervisorPollCompleted`. Idle polls of
a long-running supervisor are recorded at most once an hour, so an idle supervisor does
not grow the database.

Parked runs (status ``waiting-approval``, ``waiting-event`` or ``waiting-timer``) have
no owner and cost no process. Each poll also computes, from each parked run's folded
state, its next deadline (`wake_deadline`: a pending timer's fire time, an unresolved
`WaitForEvent`'s timeout) and wakes the runs whose deadline has come through the same
resume entry point (recorded as `RunAutoResumed` with ``wake`` set). Between polls the
supervisor sleeps until the next deadline it knows of, capped by the poll interval, so
a timer fires on time without a hot loop; a run parked after the sleep began is found
at the latest by the next poll.

A resume that fails (the resumer exits before its run reached an outcome, with no node
outcome recorded) or makes no progress (the run is stale again with no node outcome
since the resume began) is backed off exponentially per run (`rate-limited`, with the
error from the resumer's JSON result and the time of the next try), never retried in a
hot loop. The backoff is computed from the log, so it survives supervisor restarts and
holds across ``supervise --once`` invocations.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import anyio
from smithers.eventstore import SQLiteEventStore, resolve_db_path
from smithers.eventstore.events import SupervisorStarted

from .._actor import resolve_actor
from .._clock import Clock, SystemClock
from ..errors import InvalidInputError
from ..history import SUPERVISOR_STREAM_ID
from ._ownership import DEFAULT_STALE_THRESHOLD_MS
from ._spawn import SpawnResume, spawn_resume
from ._supervisor import RESUME_REASON, Supervisor

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    from smithers.eventstore.events import Actor, Event

__all__ = ("supervise",)


async def supervise(
    *,
    db: str | os.PathLike[str] | None = None,
    interval_ms: int = 10_000,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    max_concurrent: int = 2,
    dry_run: bool = False,
    once: bool = False,
    clock: Clock | None = None,
    spawn: SpawnResume = spawn_resume,
    retry_backoff_ms: int = 30_000,
    max_retry_backoff_ms: int = 1_800_000,
    startup_grace_ms: int = 5_000,
    on_event: Callable[[Event], Any] | None = None,
    by: str | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> list[Event]:
    """Resume runs whose owner is gone and wake parked runs that are due (``smithers supervise``).

    Each poll judges the owner of every run with status ``"running"`` (`judge_owner`):
    a run whose owner is gone (its pid on this host is dead), stale (no heartbeat for
    `stale_threshold_ms`, on another host), or that no activation has claimed for that
    long, is resumed by a new process (`spawn`, default `spawn_resume`: the resume
    entry point ``up --resume RUN --json``, read by exit code and JSON result), at most
    `max_concurrent` starting at once. It is skipped instead,
    with a `RunAutoResumeSkipped`, when its process still lives on this host
    (``pid-alive``), its workflow file is gone (``missing-workflow``), or it is backed
    off after failed or fruitless resumes or over the concurrency cap
    (``rate-limited``; backoff `retry_backoff_ms` doubling per failure up to
    `max_retry_backoff_ms`). Decisions are recorded in the ``"supervisor"`` stream (see
    the module docstring). Awaits I/O; runs until cancelled unless `once`.

    Each poll also wakes parked runs (``waiting-*``, no owner) whose deadline has come
    (`wake_deadline`: a due timer, a `WaitForEvent` timeout passed), through the same
    resume entry point; recorded as `RunAutoResumed` with ``wake`` (``"timer"`` or
    ``"timeout"``) and ``dueAtMs``, counted in `SupervisorPollCompleted.woken_count`
    (and `resumed_count`). They are skipped like stale runs when backed off or when
    their workflow file is gone. Between polls it sleeps until the earliest future
    deadline it saw, at most `interval_ms`: a timer fires on time without a hot loop.

    Args:
        db: Database path (see `resolve_db_path`; the file must exist).
        interval_ms: Longest time between polls (ms); shorter when a parked run's
            deadline comes sooner.
        stale_threshold_ms: How long (ms) an owner may be silent before it is stale
            (default `DEFAULT_STALE_THRESHOLD_MS`, 60 s).
        max_concurrent: At most this many resumers starting at once.
        dry_run: Decide and report, but start nothing and record nothing.
        once: Poll once and return.
        clock: Time source (tests pass a fake).
        spawn: Starts a resumer: ``spawn(run_id, db_path, force, log_file)`` (see
            `SpawnResume`: it reports by exit code and a JSON result in
            `resume_result_file(log_file)`).
        retry_backoff_ms: Backoff after the first failed resume of a run (ms).
        max_retry_backoff_ms: Cap of the doubling backoff (ms).
        startup_grace_ms: How long a poll waits for new resumers to claim their run or
            fail, so a start-up failure is recorded in the same poll (ms).
        on_event: Called with each event recorded (or, with `dry_run`, decided).
        by: Who runs the supervisor, recorded as the ``actor`` (interface
            ``"supervisor"``) of its `SupervisorStarted`, `RunAutoResumed` and
            `RunAutoResumeSkipped`; None: ``$SMITHERS_ACTOR``, else the OS user.
        reason: Why, recorded with `by`.
        actor: The `Actor` to record instead of one built from `by` and `reason`.

    Returns:
        The events recorded (or decided, with `dry_run`), when `once`.

    Raises:
        InvalidInputError: if an interval, threshold or cap is not positive, or
            `by`/`reason` is not printable text of a sane length.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        DatabaseWriteError, DatabaseQueryError: on storage failures.
        OSError: if a resumer cannot be started.

    Example:
        >>> await supervise(db="runs.db", once=True)  # doctest: +SKIP
    """
    if interval_ms <= 0 or stale_threshold_ms <= 0 or max_concurrent < 1:
        raise InvalidInputError(
            "interval, stale threshold and max concurrent resumes must be positive; got "
            f"{interval_ms} ms, {stale_threshold_ms} ms and {max_concurrent}.",
            details={
                "intervalMs": interval_ms,
                "staleThresholdMs": stale_threshold_ms,
                "maxConcurrent": max_concurrent,
            },
        )
    who = actor or resolve_actor("supervisor", by=by, reason=reason)
    clock = clock or SystemClock()
    if spawn is spawn_resume:
        # The resumer judges the owner with this supervisor's threshold, not its default,
        # and records this supervisor's actor as who resumed the run.
        spawn = functools.partial(
            spawn_resume,
            stale_threshold_ms=stale_threshold_ms,
            by=who.name,
            reason=RESUME_REASON,
        )
    db_path = resolve_db_path(db, must_exist=True).resolve()
    store = await SQLiteEventStore.open(db_path, create=False)
    try:
        sup = Supervisor(
            store,
            db_path,
            interval_ms=interval_ms,
            stale_threshold_ms=stale_threshold_ms,
            max_concurrent=max_concurrent,
            dry_run=dry_run,
            clock=clock,
            spawn=spawn,
            retry_backoff_ms=retry_backoff_ms,
            max_retry_backoff_ms=max_retry_backoff_ms,
            startup_grace_ms=startup_grace_ms,
            on_event=on_event,
            actor=who,
        )
        await sup.read_stream()
        await sup.record(
            [
                SupervisorStarted(
                    run_id=SUPERVISOR_STREAM_ID,
                    timestamp_ms=clock.now_ms(),
                    poll_interval_ms=interval_ms,
                    stale_threshold_ms=stale_threshold_ms,
                    actor=who,
                )
            ]
        )
        while True:
            await sup.poll()
            if once:
                return sup.recorded
            delay_ms = interval_ms
            if sup.next_due_ms is not None:
                # Sleep until the next deadline we know of, never longer than a poll.
                delay_ms = min(delay_ms, max(sup.next_due_ms - clock.now_ms(), 0))
            await clock.sleep_ms(delay_ms)
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()
