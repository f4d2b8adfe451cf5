"""The supervisor: resume runs whose owner is gone (DESIGN §6, §10; ``smithers supervise``).

Each poll lists the runs whose status is ``"running"`` and looks at their leases. A run
whose owner is gone (dead pid on this host, heartbeat older than the stale threshold,
or no lease for that long) is resumed by a separate process, ``python -m smithers up
--resume RUN``, started in its own session with its output appended to
``<db dir>/executions/<run>/logs/supervise.log``: a resume that crashes at start-up
cannot take the supervisor down.

What the supervisor decides is recorded in its own stream (``run_id`` column
``"supervisor"``; one per database, appended with `expected_seq`): `SupervisorStarted`,
`RunAutoResumed` and `RunAutoResumeSkipped` (their `run_id` field names the target run;
appending there never races a run's owner) and `SupervisorPollCompleted`. Idle polls of
a long-running supervisor are recorded at most once an hour, so an idle supervisor does
not grow the database.

A resume that fails (the resumer exits with an error before any node outcome) or makes
no progress (the run is stale again with no node outcome since the resume began) is
backed off exponentially per run (`rate-limited`, with the error and the time of the next
try), never retried in a hot loop. The backoff is computed from the log, so it survives
supervisor restarts and holds across ``supervise --once`` invocations.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import anyio
from smithers.eventstore import (
    EventStore,
    Lease,
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

from ._clock import Clock, SystemClock
from ._history import SUPERVISOR_STREAM_ID, load_state
from ._ndjson import default_log_dir
from ._run import pid_alive
from .errors import InvalidInputError

__all__ = (
    "DEFAULT_SUPERVISOR_STALE_THRESHOLD_MS",
    "ResumeProcess",
    "SpawnResume",
    "spawn_detached",
    "spawn_resume",
    "supervise",
)

DEFAULT_SUPERVISOR_STALE_THRESHOLD_MS = 60_000
"""A run whose owner has not renewed its lease for this long (ms) is resumed."""
_IDLE_RECORD_MS = 3_600_000
"""An idle poll is recorded only if none was recorded for this long (ms)."""
_MAX_COUNTED_FAILURES = 12
_LOG_FILE = "supervise.log"
_HEADER = "--- smithers supervise: resuming"
_ERROR_LINE = re.compile(r"^Error \[([A-Z0-9_]+)\]: (.*)$", re.MULTILINE)
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


class ResumeProcess(Protocol):
    """A started resumer, as `subprocess.Popen` is."""

    @property
    def pid(self) -> int:
        """Its process id."""
        ...

    def poll(self) -> int | None:
        """Return its exit code, or None while it runs (reaps it once it exited)."""
        ...


SpawnResume: TypeAlias = Callable[[str, Path, bool, Path], ResumeProcess]
"""``spawn(run_id, db_path, force, log_file) -> ResumeProcess``: starts a resumer."""


class _DetachedPopen(subprocess.Popen[bytes]):
    """A process meant to outlive this object (and this program).

    Dropping a `Popen` whose process still runs warns (`ResourceWarning`); here that is
    the intent, so no warning. The process is still reaped (by `subprocess` later, or by
    init once this program exits).
    """

    def __del__(self, _maxsize: int = sys.maxsize, _warn: Any = None) -> None:
        super().__del__(_maxsize, lambda *args, **kwargs: None)  # type: ignore[call-arg]


def spawn_detached(argv: list[str], log_file: Path, *, header: str | None = None) -> ResumeProcess:
    """Start `argv` in its own session, its output appended to `log_file`; do not wait.

    The process keeps running when this program exits and is not hit by signals sent
    to this program's process group (Ctrl-C in its terminal). Blocks only to fork.

    Args:
        argv: The command and its arguments.
        log_file: Receives the process's stdout and stderr (created with its folder).
        header: A line written to `log_file` first (e.g. what is started, and when).

    Returns:
        The started process (`pid`, `poll()`).

    Raises:
        OSError: if the process cannot be started.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        if header is not None:
            out.write(header.encode() + b"\n")
            out.flush()
        return _DetachedPopen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def spawn_resume(run_id: str, db_path: Path, force: bool, log_file: Path) -> ResumeProcess:
    """Start ``python -m smithers up --resume RUN_ID --db DB`` in its own session.

    Its stdout and stderr are appended to `log_file`, after a header line. Returns at
    once (the process keeps running after the supervisor exits).

    Args:
        run_id: The run to resume.
        db_path: The database (absolute path).
        force: Pass ``--force`` (the owner was on another host).
        log_file: File the resumer's output is appended to (created with its folder).

    Returns:
        The started process.

    Raises:
        OSError: if the process cannot be started.
    """
    cmd = [sys.executable, "-m", "smithers", "up", "--resume", run_id, "--db", str(db_path)]
    if force:
        cmd.append("--force")
    when = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return spawn_detached(cmd, log_file, header=f"{_HEADER} {run_id} at {when} ---")


def _resume_error(log_file: Path, fallback: str) -> ErrorInfo:
    """The error the last resumer printed in `log_file` (``Error [CODE]: …``), if any."""
    try:
        with log_file.open("rb") as f:
            f.seek(max(0, log_file.stat().st_size - 65_536))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        text = ""
    last = text.rsplit(_HEADER, 1)[-1]
    found = list(_ERROR_LINE.finditer(last))
    if found:
        code, message = found[-1].groups()
        return ErrorInfo(name="ResumeFailed", message=message.strip(), code=code, retryable=True)
    return ErrorInfo(name="ResumeFailed", message=f"{fallback} (see {log_file})", retryable=True)


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
    ) -> None:
        self.store = store
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
            for attempt in range(20):
                try:
                    self.seq = await self.store.append(
                        SUPERVISOR_STREAM_ID, events, expected_seq=self.seq
                    )
                    break
                except SeqConflictError:
                    if attempt == 19:
                        raise
                    await self.read_stream()
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

    def _classify(
        self, run: RunRecord, lease: Lease | None, now: int
    ) -> tuple[str, int | None, int] | None:
        """None if the owner is healthy; else ``(verdict, last heartbeat, stale for ms)``.

        `verdict` is ``"stale"`` (resume it), ``"stale-remote"`` (resume with --force)
        or ``"pid-alive"`` (stale heartbeat, but its process lives on this host).
        """
        if lease is None:
            age = now - run.updated_at_ms
            return ("stale", None, age) if age >= self.stale_ms else None
        age = now - lease.heartbeat_at_ms
        if lease.host == self.host:
            if not pid_alive(lease.pid):
                return "stale", lease.heartbeat_at_ms, max(age, 0)
            return ("pid-alive", lease.heartbeat_at_ms, age) if age >= self.stale_ms else None
        return ("stale-remote", lease.heartbeat_at_ms, age) if age >= self.stale_ms else None

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
        runs = [
            r
            for r in await self.store.list_runs()
            if r.run_id != SUPERVISOR_STREAM_ID and r.status == "running"
        ]
        leases = {lease.run_id: lease for lease in await self.store.list_leases()}
        runs.sort(key=lambda r: r.updated_at_ms)  # the longest-silent first
        stale = resumed = skipped = 0
        spawned: list[str] = []
        decisions: list[Event] = []
        for run in runs:
            verdict = self._classify(run, leases.get(run.run_id), now)
            if verdict is None:
                continue
            kind, last_hb, stale_for = verdict
            stale += 1
            skip = await self._decide(run, kind, now)
            # Resumers of ours still starting (this poll's too; a dry run starts none).
            starting = len(spawned) if self.dry_run else self._starting()
            if skip is None and starting >= self.max_concurrent:
                skip = self._skip(run.run_id, "rate-limited", now)
            if skip is None:
                try:
                    decisions.append(
                        await self._resume(run, kind == "stale-remote", last_hb, stale_for, now)
                    )
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
        if self._should_record_poll(stale, now):
            tail.append(
                SupervisorPollCompleted(
                    run_id=SUPERVISOR_STREAM_ID,
                    timestamp_ms=self.clock.now_ms(),
                    stale_count=stale,
                    resumed_count=resumed,
                    skipped_count=skipped,
                    duration_ms=int((time.monotonic() - started) * 1000),
                )
            )
        await self.record(tail)

    def _should_record_poll(self, stale: int, now: int) -> bool:
        if stale or self.polls == 1:
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
            run_id=run_id, timestamp_ms=now, reason=reason, error=error, retry_at_ms=retry_at_ms
        )

    async def _decide(self, run: RunRecord, kind: str, now: int) -> RunAutoResumeSkipped | None:
        """A skip for a stale run that must not be resumed now, or None to resume it."""
        rid = run.run_id
        if kind == "pid-alive" or self._resumer_alive(rid) is not None:
            return self._skip(rid, "pid-alive", now)
        failures = await self._failures(rid)
        if failures:
            retry_at = self.attempts[rid][-1].at_ms + self._backoff(failures)
            if now < retry_at:
                error = _resume_error(
                    self._log_file(rid),
                    f"the last {failures} resume(s) made no progress",
                )
                return self._skip(rid, "rate-limited", now, error=error, retry_at_ms=retry_at)
        state = await load_state(self.store, rid)
        pid = state.pid
        here = kind == "stale" and state.host == self.host and bool(pid) and pid != os.getpid()
        if here and pid is not None and pid_alive(pid):
            # No lease (or a dead leaseholder), but the last activation's process lives:
            # it may be between its claim and its lease.
            return self._skip(rid, "pid-alive", now)
        path = state.workflow_path
        if not path or not await anyio.Path(path).is_file():
            return self._skip(rid, "missing-workflow", now)
        return None

    async def _resume(
        self, run: RunRecord, force: bool, last_hb: int | None, stale_for: int, now: int
    ) -> RunAutoResumed:
        """Start a resumer for `run` (not in a dry run); return the event that says so."""
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
            last_heartbeat_at_ms=last_hb,
            stale_duration_ms=stale_for,
            pid=pid,
            host=self.host if pid is not None else None,
            from_seq=from_seq,
        )

    async def _watch_startup(self, spawned: list[str]) -> list[Event]:
        """Wait (up to the start-up grace) until each new resumer claims its run or exits.

        A resumer that exits with an error before any node outcome is a failed resume:
        it is recorded at once as `rate-limited`, with its error and the time of the
        next try. Returns those skips (to record).
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
                    failures = await self._failures(rid) if code != 0 else 0
                    if failures:
                        error = _resume_error(
                            child.log_file, f"the resumer exited with code {code}"
                        )
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
    stale_threshold_ms: int = DEFAULT_SUPERVISOR_STALE_THRESHOLD_MS,
    max_concurrent: int = 2,
    dry_run: bool = False,
    once: bool = False,
    clock: Clock | None = None,
    spawn: SpawnResume = spawn_resume,
    retry_backoff_ms: int = 30_000,
    max_retry_backoff_ms: int = 1_800_000,
    startup_grace_ms: int = 5_000,
    on_event: Callable[[Event], Any] | None = None,
) -> list[Event]:
    """Resume runs whose owner is gone, every `interval_ms` (``smithers supervise``).

    Each poll considers runs with status ``"running"``: a run whose lease's pid is dead
    (this host), whose heartbeat is older than `stale_threshold_ms` (another host), or
    that has had no lease for that long, is resumed by a new process (`spawn`, default
    `spawn_resume`), at most `max_concurrent` starting at once. It is skipped instead,
    with a `RunAutoResumeSkipped`, when its process still lives on this host
    (``pid-alive``), its workflow file is gone (``missing-workflow``), or it is backed
    off after failed or fruitless resumes or over the concurrency cap
    (``rate-limited``; backoff `retry_backoff_ms` doubling per failure up to
    `max_retry_backoff_ms`). Decisions are recorded in the ``"supervisor"`` stream (see
    the module docstring). Awaits I/O; runs until cancelled unless `once`.

    Args:
        db: Database path (see `resolve_db_path`; the file must exist).
        interval_ms: Time between polls (ms).
        stale_threshold_ms: Heartbeat age (ms) after which an owner is gone.
        max_concurrent: At most this many resumers starting at once.
        dry_run: Decide and report, but start nothing and record nothing.
        once: Poll once and return.
        clock: Time source (tests pass a fake).
        spawn: Starts a resumer: ``spawn(run_id, db_path, force, log_file)``.
        retry_backoff_ms: Backoff after the first failed resume of a run (ms).
        max_retry_backoff_ms: Cap of the doubling backoff (ms).
        startup_grace_ms: How long a poll waits for new resumers to claim their run or
            fail, so a start-up failure is recorded in the same poll (ms).
        on_event: Called with each event recorded (or, with `dry_run`, decided).

    Returns:
        The events recorded (or decided, with `dry_run`), when `once`.

    Raises:
        InvalidInputError: if an interval, threshold or cap is not positive.
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
    clock = clock or SystemClock()
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
        )
        await sup.read_stream()
        await sup.record(
            [
                SupervisorStarted(
                    run_id=SUPERVISOR_STREAM_ID,
                    timestamp_ms=clock.now_ms(),
                    poll_interval_ms=interval_ms,
                    stale_threshold_ms=stale_threshold_ms,
                )
            ]
        )
        while True:
            await sup.poll()
            if once:
                return sup.recorded
            await clock.sleep_ms(interval_ms)
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()
