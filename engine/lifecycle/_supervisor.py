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
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
from smithers.eventstore import (
    EventStore,
    RunRecord,
    SeqConflictError,
    SQLiteEventStore,
    decode_event,
    resolve_db_path,
)
from smithers.eventstore.events import (
    ErrorInfo,
    Event,
    RunAutoResumed,
    RunAutoResumeSkipped,
    SupervisorPollCompleted,
    SupervisorStarted,
)

from .._actor import resolve_actor
from .._clock import Clock, SystemClock
from ..activation import SUBFLOW_EVENT_PREFIX, RunWriter, default_log_dir
from ..errors import InvalidInputError
from ..history import SUPERVISOR_STREAM_ID, load_state
from ._ownership import DEFAULT_STALE_THRESHOLD_MS, OwnerVerdict, judge_owner, pid_alive
from ._spawn import SpawnResume, _resume_failure, spawn_resume

if TYPE_CHECKING:
    import os
    from collections.abc import Callable
    from pathlib import Path

    from smithers.eventstore.events import Actor
    from smithers.projections import RunState

    from ._spawn import ResumeProcess

__all__ = ("PARKED_STATUSES", "WakeReason", "needs_takeover", "supervise", "wake_deadline")

WakeReason = Literal["timer", "timeout", "retry"]
"""Why a parked run is woken: a timer is due, or a `WaitForEvent`'s timeout passed."""
PARKED_STATUSES = frozenset({"waiting-approval", "waiting-event", "waiting-timer"})
"""Statuses of a parked run: no owner, waiting for a decision, a signal or a timer."""

_IDLE_RECORD_MS = 3_600_000
"""An idle poll is recorded only if none was recorded for this long (ms)."""
_MAX_COUNTED_FAILURES = 12
_LOG_FILE = "supervise.log"
_PROGRESS_TYPES = frozenset(
    {
        "NodeFinished",
        "NodeFailed",
        "NodeSkipped",
        "NodeWaitingApproval",
        "NodeWaitingTimer",
        "RunFinished",
        "RunFailed",
        "RunCancelled",
        "RunContinuedAsNew",
    }
)
"""Event types that show a resume got somewhere: a node outcome, a parked node or an end."""


def wake_deadline(state: RunState) -> tuple[int, WakeReason] | None:
    """Return when the parked run of `state` must be woken, and why; None if never. Pure.

    The earliest of: the fire time of a pending timer its node waits on
    (``"timer"``, `TimerRecord.fires_at_ms`, as recorded by `TimerCreated`: a restart
    never moves it), and the timeout of a `WaitForEvent` still waiting for its signal
    (``"timeout"``, `EventWaitRecord.timeout_at_ms`), and a retry due later than a
    process keeps sleeping for, e.g. after a provider's quota reset time
    (``"retry"``, `NodeRecord.next_attempt_at_ms`). Approvals, and waits without a
    timeout, have no deadline: a decision or a signal wakes them. Nor has a `Subflow`
    node waiting in its child run (``subflow:<childRunId>``, which copies the child's
    deadline): the child holds that deadline and is woken itself; its end wakes the
    parent (`wake_parent`). Waking both would race two resumers for the child.

    Returns:
        ``(due_at_ms, reason)``, Unix epoch ms, or None.
    """
    best: tuple[int, WakeReason] | None = None
    for rec in state.nodes.values():
        candidate: tuple[int, WakeReason]
        timer, wait = rec.timer, rec.wait
        if rec.state == "waiting-timer" and timer is not None and timer.state == "pending":
            candidate = (timer.fires_at_ms, "timer")
        elif (
            rec.state == "waiting-event"
            and wait is not None
            and not wait.received
            and wait.timeout_at_ms is not None
            and not wait.event_name.startswith(SUBFLOW_EVENT_PREFIX)
        ):
            candidate = (wait.timeout_at_ms, "timeout")
        elif rec.state == "pending" and rec.next_attempt_at_ms is not None:
            candidate = (rec.next_attempt_at_ms, "retry")
        else:
            continue
        if best is None or candidate[0] < best[0]:
            best = candidate
    return best


def needs_takeover(verdict: OwnerVerdict, stale_ms: int) -> bool:
    """Whether a running run's owner is past helping itself (counted as stale). Pure.

    Gone or stale owners are; so is a run nobody has claimed (after a rewind or a
    retry-task whose process died) once it has been silent for `stale_ms`. The
    supervisor and the workers (`run_worker`) take such runs over.
    """
    if verdict.kind == "none":
        return verdict.silent_ms is not None and verdict.silent_ms >= stale_ms
    return verdict.kind != "alive"


@dataclass
class _Attempt:
    """One recorded `RunAutoResumed`."""

    at_ms: int
    from_seq: int | None
    pid: int | None
    host: str | None


@dataclass
class _Child:
    """A resumer this supervisor started and has not reaped yet."""

    proc: ResumeProcess
    from_seq: int
    log_file: Path
    claimed: bool = False


_RESUME_REASON = "supervisor auto-resume"
"""The reason a resume started by the supervisor records (with the supervisor's name)."""


class _Supervisor:
    def __init__(
        self,
        store: EventStore,
        db_path: Path,
        *,
        interval_ms: int,
        stale_threshold_ms: int,
        max_concurrent: int,
        dry_run: bool,
        clock: Clock,
        spawn: SpawnResume,
        retry_backoff_ms: int,
        max_retry_backoff_ms: int,
        startup_grace_ms: int,
        on_event: Callable[[Event], Any] | None,
        actor: Actor | None = None,
    ) -> None:
        self.store = store
        self.actor = actor
        self.db_path = db_path
        self.interval_ms = interval_ms
        self.stale_ms = stale_threshold_ms
        self.max_concurrent = max_concurrent
        self.dry_run = dry_run
        self.clock = clock
        self.spawn = spawn
        self.backoff_ms = retry_backoff_ms
        self.max_backoff_ms = max_retry_backoff_ms
        self.grace_ms = startup_grace_ms
        self.on_event = on_event
        self.host = socket.gethostname()
        self.seq = 0  # last seq of the supervisor stream we have folded
        self.attempts: dict[str, list[_Attempt]] = {}
        self.last_poll_recorded_ms: int | None = None
        self.children: dict[str, _Child] = {}
        self.recorded: list[Event] = []
        self.polls = 0
        self.next_due_ms: int | None = None
        """The earliest future deadline the last poll saw (a parked run's timer or
        timeout, a backed-off wake's next try), Unix epoch ms; None if none."""

    # ------------------------------------------------------------------ the stream

    async def read_stream(self) -> None:
        """Fold what the supervisor stream holds beyond `self.seq` (others' too)."""
        for row in await self.store.read(SUPERVISOR_STREAM_ID, after_seq=self.seq):
            self.seq = row.seq
            event = decode_event(row.type, row.data)
            if event is not None:
                self._fold(event)

    def _fold(self, event: Event) -> None:
        if isinstance(event, RunAutoResumed):
            self.attempts.setdefault(event.run_id, []).append(
                _Attempt(event.timestamp_ms, event.from_seq, event.pid, event.host)
            )
        elif isinstance(event, SupervisorPollCompleted):
            self.last_poll_recorded_ms = event.timestamp_ms

    async def record(self, events: list[Event]) -> None:
        """Append `events` to the supervisor stream (another supervisor may append too)."""
        if not events:
            return
        if not self.dry_run:

            async def reread(_: SeqConflictError) -> int:
                await self.read_stream()
                return self.seq

            writer = RunWriter(self.store, SUPERVISOR_STREAM_ID)  # no mirror: not a run
            self.seq = await writer.append(events, expected_seq=self.seq, rebase=reread, retries=19)
        for event in events:
            self._fold(event)
            self.recorded.append(event)
            if self.on_event is not None:
                self.on_event(event)

    # ------------------------------------------------------------------ decisions

    def _log_file(self, run_id: str) -> Path:
        return default_log_dir(self.db_path, run_id) / _LOG_FILE

    def _backoff(self, failures: int) -> int:
        return int(min(self.max_backoff_ms, self.backoff_ms * 2 ** max(failures - 1, 0)))

    async def _failures(self, run_id: str) -> int:
        """How many of the run's last resumes in a row got nowhere (no node outcome)."""
        attempts = self.attempts.get(run_id, [])[-_MAX_COUNTED_FAILURES:]
        if not attempts or attempts[-1].from_seq is None:
            return 0
        lo = min(a.from_seq if a.from_seq is not None else 0 for a in attempts)
        progress = [
            row.seq
            for row in await self.store.read(run_id, after_seq=lo)
            if row.type in _PROGRESS_TYPES
        ]
        failures = 0
        for i in range(len(attempts) - 1, -1, -1):
            start = attempts[i].from_seq
            if start is None:
                break
            end = attempts[i + 1].from_seq if i + 1 < len(attempts) else None
            if any(s > start and (end is None or s <= end) for s in progress):
                break
            failures += 1
        return failures

    def _resumer_alive(self, run_id: str) -> int | None:
        """Pid of a live resumer of `run_id` started by a supervisor on this host, if any."""
        child = self.children.get(run_id)
        if child is not None and child.proc.poll() is None:
            return child.proc.pid
        attempts = self.attempts.get(run_id)
        if attempts:
            last = attempts[-1]
            if last.pid and last.host == self.host and pid_alive(last.pid):
                return last.pid
        return None

    def _needs_resume(self, verdict: OwnerVerdict) -> bool:
        """Whether a running run's owner is past helping itself (`needs_takeover`)."""
        return needs_takeover(verdict, self.stale_ms)

    def _starting(self) -> int:
        """Resumers of ours that have neither claimed their run nor exited."""
        return sum(1 for c in self.children.values() if not c.claimed and c.proc.poll() is None)

    def _reap(self) -> None:
        """Forget resumers that exited (`poll` reaps them, so no zombie is left)."""
        for run_id, child in list(self.children.items()):
            if child.proc.poll() is not None:
                del self.children[run_id]

    # ------------------------------------------------------------------ one poll

    async def poll(self) -> None:
        """One poll: decide for every running run, start resumers, record (2 appends)."""
        started = time.monotonic()
        self.polls += 1
        self._reap()
        now = self.clock.now_ms()
        every = [r for r in await self.store.list_runs() if r.run_id != SUPERVISOR_STREAM_ID]
        runs = [r for r in every if r.status == "running"]
        leases = {lease.run_id: lease for lease in await self.store.list_leases()}
        runs.sort(key=lambda r: r.updated_at_ms)  # the longest-silent first
        stale = resumed = skipped = 0
        spawned: list[str] = []
        decisions: list[Event] = []
        self.next_due_ms = None
        woken, wake_skipped = await self._wake_parked(
            [r for r in every if r.status in PARKED_STATUSES], now, spawned, decisions
        )
        resumed += woken
        skipped += wake_skipped
        for run in runs:
            state = await load_state(self.store, run.run_id)
            verdict = judge_owner(
                state,
                leases.get(run.run_id),
                now_ms=now,
                stale_threshold_ms=self.stale_ms,
                host=self.host,
            )
            if not self._needs_resume(verdict):
                continue
            stale += 1
            skip = await self._decide(state, verdict, now)
            # Resumers of ours still starting (this poll's too; a dry run starts none).
            starting = len(spawned) if self.dry_run else self._starting()
            if skip is None and starting >= self.max_concurrent:
                skip = self._skip(run.run_id, "rate-limited", now)
            if skip is None:
                try:
                    decisions.append(await self._resume(run, verdict, now))
                except OSError as e:  # cannot fork: try again next poll
                    error = ErrorInfo(name=type(e).__name__, message=str(e), retryable=True)
                    skip = self._skip(run.run_id, "rate-limited", now, error=error)
                else:
                    spawned.append(run.run_id)
                    resumed += 1
                    continue
            skipped += 1
            decisions.append(skip)
        await self.record(decisions)
        tail = await self._watch_startup(spawned)
        resumed -= len(tail)
        skipped += len(tail)
        if self._should_record_poll(stale + woken + wake_skipped, now):
            tail.append(
                SupervisorPollCompleted(
                    run_id=SUPERVISOR_STREAM_ID,
                    timestamp_ms=self.clock.now_ms(),
                    stale_count=stale,
                    resumed_count=resumed,
                    skipped_count=skipped,
                    duration_ms=int((time.monotonic() - started) * 1000),
                    woken_count=woken,
                )
            )
        await self.record(tail)

    def _due_later(self, at_ms: int) -> None:
        """Remember a future deadline: the sleep after this poll ends by then."""
        if self.next_due_ms is None or at_ms < self.next_due_ms:
            self.next_due_ms = at_ms

    async def _wake_parked(
        self, parked: list[RunRecord], now: int, spawned: list[str], decisions: list[Event]
    ) -> tuple[int, int]:
        """Wake the parked runs whose deadline has come; return ``(woken, skipped)``.

        A run not due yet only sets `next_due_ms`. A due run whose resumer (of this
        supervisor, or an earlier one on this host) still starts is left alone, not
        counted; one backed off after fruitless wakes, or whose workflow file is gone,
        is skipped (`RunAutoResumeSkipped`, as for stale runs); the others are resumed
        (`RunAutoResumed` with `wake` and `due_at_ms`), at most `max_concurrent`
        starting at once. Appends the decisions to `decisions`, the started runs to
        `spawned`.
        """
        woken = skipped = 0
        due: list[tuple[int, WakeReason, RunState]] = []
        for run in parked:
            state = await load_state(self.store, run.run_id)
            if state.status not in PARKED_STATUSES:
                continue  # resumed (or ended) since the runs index was read
            deadline = wake_deadline(state)
            if deadline is None:
                continue
            at_ms, why = deadline
            if at_ms > now:
                self._due_later(at_ms)
                continue
            due.append((at_ms, why, state))
        due.sort(key=lambda d: d[0])  # the most overdue first
        for at_ms, why, state in due:
            rid = state.run_id
            if self._resumer_alive(rid) is not None:
                continue  # woken already; its resumer has not claimed the run yet
            skip = await self._refuse(state, now)
            starting = len(spawned) if self.dry_run else self._starting()
            if skip is None and starting >= self.max_concurrent:
                skip = self._skip(rid, "rate-limited", now)
            if skip is None:
                try:
                    decisions.append(await self._wake(state, at_ms, why, now))
                except OSError as e:  # cannot fork: try again next poll
                    error = ErrorInfo(name=type(e).__name__, message=str(e), retryable=True)
                    skip = self._skip(rid, "rate-limited", now, error=error)
                else:
                    spawned.append(rid)
                    woken += 1
                    continue
            if skip.retry_at_ms is not None:
                self._due_later(skip.retry_at_ms)
            skipped += 1
            decisions.append(skip)
        return woken, skipped

    async def _wake(
        self, state: RunState, due_at_ms: int, why: WakeReason, now: int
    ) -> RunAutoResumed:
        """Start a resumer for the parked run of `state` (not in a dry run)."""
        rid = state.run_id
        pid: int | None = None
        from_seq = await self.store.last_seq(rid)
        if not self.dry_run:
            log_file = self._log_file(rid)
            proc = self.spawn(rid, self.db_path, False, log_file)
            pid = proc.pid
            self.children[rid] = _Child(proc, from_seq, log_file)
        return RunAutoResumed(
            run_id=rid,
            timestamp_ms=now,
            stale_duration_ms=max(now - due_at_ms, 0),
            pid=pid,
            host=self.host if pid is not None else None,
            from_seq=from_seq,
            wake=why,
            due_at_ms=due_at_ms,
            actor=self.actor,
        )

    def _should_record_poll(self, acted: int, now: int) -> bool:
        if acted or self.polls == 1:
            return True
        last = self.last_poll_recorded_ms
        return last is None or now - last >= _IDLE_RECORD_MS

    def _skip(
        self,
        run_id: str,
        reason: Any,
        now: int,
        *,
        error: ErrorInfo | None = None,
        retry_at_ms: int | None = None,
    ) -> RunAutoResumeSkipped:
        return RunAutoResumeSkipped(
            run_id=run_id,
            timestamp_ms=now,
            reason=reason,
            error=error,
            retry_at_ms=retry_at_ms,
            actor=self.actor,
        )

    async def _decide(
        self, state: RunState, verdict: OwnerVerdict, now: int
    ) -> RunAutoResumeSkipped | None:
        """A skip for a stale run that must not be resumed now, or None to resume it."""
        rid = state.run_id
        if verdict.protected or self._resumer_alive(rid) is not None:
            # Never take over a live process on this host with a fresh heartbeat; one
            # whose heartbeat is stale (stopped, hung) is resumed with --force.
            return self._skip(rid, "pid-alive", now)
        return await self._refuse(state, now)

    async def _refuse(self, state: RunState, now: int) -> RunAutoResumeSkipped | None:
        """A skip for a run backed off after fruitless resumes or whose file is gone."""
        rid = state.run_id
        failures = await self._failures(rid)
        if failures:
            retry_at = self.attempts[rid][-1].at_ms + self._backoff(failures)
            if now < retry_at:
                log_file = self._log_file(rid)
                error = _resume_failure(None, log_file) or ErrorInfo(
                    name="ResumeFailed",
                    message=f"the last {failures} resume(s) made no progress (see {log_file})",
                    retryable=True,
                )
                return self._skip(rid, "rate-limited", now, error=error, retry_at_ms=retry_at)
        path = state.workflow_path
        if not path or not await anyio.Path(path).is_file():
            return self._skip(rid, "missing-workflow", now)
        return None

    async def _resume(self, run: RunRecord, verdict: OwnerVerdict, now: int) -> RunAutoResumed:
        """Start a resumer for `run` (not in a dry run); return the event that says so.

        A stale owner (on another host, or a live process here whose heartbeat is
        stale) is not gone: the resumer gets ``--force``, and this supervisor's stale
        threshold (`spawn` is called with it when it is `spawn_resume`).
        """
        force = verdict.kind == "stale"
        pid: int | None = None
        from_seq = await self.store.last_seq(run.run_id)
        if not self.dry_run:
            log_file = self._log_file(run.run_id)
            proc = self.spawn(run.run_id, self.db_path, force, log_file)
            pid = proc.pid
            self.children[run.run_id] = _Child(proc, from_seq, log_file)
        return RunAutoResumed(
            run_id=run.run_id,
            timestamp_ms=now,
            last_heartbeat_at_ms=verdict.heartbeat_at_ms,
            stale_duration_ms=verdict.silent_ms or 0,
            pid=pid,
            host=self.host if pid is not None else None,
            from_seq=from_seq,
            actor=self.actor,
        )

    async def _watch_startup(self, spawned: list[str]) -> list[Event]:
        """Wait (up to the start-up grace) until each new resumer claims its run or exits.

        A resumer that exits before its run reached an outcome (by its exit code and
        JSON result, see `_resume_failure`) with no node outcome recorded is a failed
        resume: it is recorded at once as `rate-limited`, with the error from its
        result and the time of the next try. Returns those skips (to record).
        """
        pending = [rid for rid in spawned if rid in self.children]
        skips: list[Event] = []
        with anyio.move_on_after(self.grace_ms / 1000):
            while pending:
                await anyio.sleep(0.05)
                for rid in list(pending):
                    child = self.children[rid]
                    code = child.proc.poll()
                    if code is None:
                        lease = await self.store.get_lease(rid)
                        if lease is not None and lease.pid == child.proc.pid:
                            child.claimed = True
                            pending.remove(rid)
                        continue
                    pending.remove(rid)
                    error = _resume_failure(code, child.log_file)
                    failures = await self._failures(rid) if error is not None else 0
                    if error is not None and failures:
                        retry_at = self.attempts[rid][-1].at_ms + self._backoff(failures)
                        skips.append(
                            self._skip(
                                rid,
                                "rate-limited",
                                self.clock.now_ms(),
                                error=error,
                                retry_at_ms=retry_at,
                            )
                        )
        return skips


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
            reason=_RESUME_REASON,
        )
    db_path = resolve_db_path(db, must_exist=True).resolve()
    store = await SQLiteEventStore.open(db_path, create=False)
    try:
        sup = _Supervisor(
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
