"""One supervisor's polls: `Supervisor`, driven by `supervise` (`_supervise`).

Its stream (`read_stream`, `record`), one poll (`poll`: judge every running run's
owner, wake the parked runs that are due, start resumers, watch them start) and the
resume policy (backoff after fruitless resumes, a missing workflow file, the cap on
resumers starting at once). The behaviour is described in `_supervise`'s docstring.
"""

from __future__ import annotations

import functools
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from smithers.eventstore import (
    EventStore,
    RunRecord,
    SeqConflictError,
    decode_event,
)
from smithers.eventstore.events import (
    ErrorInfo,
    Event,
    RunAutoResumed,
    RunAutoResumeSkipped,
    SupervisorPollCompleted,
)

from ..activation import RunWriter, default_log_dir
from ..history import SUPERVISOR_STREAM_ID, load_state
from ._ownership import OwnerVerdict, judge_owner, pid_alive
from ._spawn import SpawnResume, _resume_failure
from ._wakes import (
    PARKED_STATUSES,
    PROGRESS_TYPES,
    WakeReason,
    fruitless_resumes,
    needs_takeover,
    wake_deadline,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from smithers.eventstore.events import Actor
    from smithers.projections import RunState

    from .._clock import Clock
    from ._spawn import ResumeProcess

__all__ = ("RESUME_REASON", "Supervisor")

_IDLE_RECORD_MS = 3_600_000
"""An idle poll is recorded only if none was recorded for this long (ms)."""
_MAX_COUNTED_FAILURES = 12
_LOG_FILE = "supervise.log"


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


RESUME_REASON = "supervisor auto-resume"
"""The reason a resume started by the supervisor records (with the supervisor's name)."""


class Supervisor:
    """The state and decisions of one running supervisor (see `supervise`)."""

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
            if row.type in PROGRESS_TYPES
        ]
        return fruitless_resumes([a.from_seq for a in attempts], progress)

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
            if not needs_takeover(verdict, self.stale_ms):
                continue
            stale += 1
            skip = await self._decide(state, verdict, now)
            start = functools.partial(self._resume, run, verdict, now)
            skip = await self._start(run.run_id, skip, now, spawned, decisions, start)
            if skip is None:
                resumed += 1
            else:
                skipped += 1
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
            skip = await self._start(
                rid,
                skip,
                now,
                spawned,
                decisions,
                functools.partial(self._wake, state, at_ms, why, now),
            )
            if skip is None:
                woken += 1
                continue
            if skip.retry_at_ms is not None:
                self._due_later(skip.retry_at_ms)
            skipped += 1
        return woken, skipped

    async def _start(
        self,
        run_id: str,
        skip: RunAutoResumeSkipped | None,
        now: int,
        spawned: list[str],
        decisions: list[Event],
        start: Callable[[], Awaitable[RunAutoResumed]],
    ) -> RunAutoResumeSkipped | None:
        """Start a resumer with `start` unless `skip` says no or too many are starting.

        Appends the `RunAutoResumed` or the skip to `decisions` (and the run to
        `spawned` when started); returns the skip, or None when started.
        """
        # Resumers of ours still starting (this poll's too; a dry run starts none).
        starting = len(spawned) if self.dry_run else self._starting()
        if skip is None and starting >= self.max_concurrent:
            skip = self._skip(run_id, "rate-limited", now)
        if skip is None:
            try:
                decisions.append(await start())
            except OSError as e:  # cannot fork: try again next poll
                error = ErrorInfo(name=type(e).__name__, message=str(e), retryable=True)
                skip = self._skip(run_id, "rate-limited", now, error=error)
            else:
                spawned.append(run_id)
                return None
        decisions.append(skip)
        return skip

    async def _spawn(self, run_id: str, force: bool) -> tuple[int | None, int]:
        """Start a resumer for `run_id` (none in a dry run): ``(its pid, from seq)``."""
        pid: int | None = None
        from_seq = await self.store.last_seq(run_id)
        if not self.dry_run:
            log_file = self._log_file(run_id)
            proc = self.spawn(run_id, self.db_path, force, log_file)
            pid = proc.pid
            self.children[run_id] = _Child(proc, from_seq, log_file)
        return pid, from_seq

    async def _wake(
        self, state: RunState, due_at_ms: int, why: WakeReason, now: int
    ) -> RunAutoResumed:
        """Start a resumer for the parked run of `state` (not in a dry run)."""
        rid = state.run_id
        pid, from_seq = await self._spawn(rid, False)
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
        pid, from_seq = await self._spawn(run.run_id, verdict.kind == "stale")
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
