"""Workers: processes on any host that take queued runs from a shared database.

`run_worker` loops until asked to stop: while it drives fewer runs than its
concurrency, it picks a run and drives it in this process with `resume_run` (the
ownership path of ``up --resume``: its `RunStarted` appended with ``expected_seq`` is
the claim, then a lease renewed by heartbeats). Of two workers racing for a run, one
append wins; the other gets ``RESUME_CLAIM_FAILED`` (or sees the winner alive) and
moves on. Candidates, in this order, only among runs submitted to one of its queues
(the run's first event is `RunQueued`):

1. queued runs (status ``queued``), highest priority first, then oldest (a run
   another worker is claiming right now is passed over: `try_run_claim`);
2. running runs whose owner is gone or stale (`judge_owner`, `needs_takeover`: the
   supervisor's verdict), e.g. a worker that was SIGKILLed: its lease stops being
   renewed; attempts it had in flight are closed as ``abandoned`` and run again,
   finished tasks are not;
3. parked runs (``waiting-*``) that became runnable: a wait resolved
   (`RunState.resolved_waits`: an approval decided, a signal received; ``approve``
   and ``signal`` leave a submitted run to the workers, `DecisionResult.queue`), or a
   deadline come (`wake_deadline`: a due timer, a wait's timeout, a retry).

Between looks it waits for any append (`wait_for_append`: LISTEN/NOTIFY on
PostgreSQL, a poll interval on SQLite), so a submitted run, an approval or a signal
is taken up within milliseconds on PostgreSQL. Asked to stop (`stop`, set by the CLI
on SIGTERM), it drains: claims nothing more and finishes the runs it drives, then
returns. Cancelled (a second SIGTERM), it hands its runs back (`handing_back`):
nothing more is recorded, their leases are released, and another worker takes them
over as after a crash, running again only the attempts that were in flight.

Per-queue limits (``queue_limits``, ``--queue-limit NAME=N``): before claiming a run
of a limited queue, a worker counts the queue's running runs in the runs index and
claims only below the limit, holding the queue's claim lock (`queue_claim_lock`: a
PostgreSQL advisory lock) from the count until its `RunStarted` is recorded, so
workers on every host take turns and the limit holds across them (on SQLite nothing
is locked: the limit can be passed by one in a race).

Each worker keeps a row in the workers side table (`WorkerRecord`: name, host, pid,
queues, the runs it drives, a heartbeat every `WORKER_BEAT_MS`), deleted when it
exits; `list_workers` (``smithers workers``) reads them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel
import msgspec
from smithers.eventstore import (
    DatabaseQueryError,
    DatabaseWriteError,
    SmithersError,
    WorkerRecord,
    decode_event,
    open_store,
    queue_claim_lock,
    release_run_claim,
    try_run_claim,
    wait_for_append,
)
from smithers.eventstore.events import RunQueued, RunStarted

from .._actor import resolve_actor
from .._ownership_errors import (
    ResumeClaimFailedError,
    RunOwnerAliveError,
    RunStillRunningError,
)
from ..activation import HEARTBEAT_INTERVAL_MS, handing_back
from ..history import load_state
from ._ownership import DEFAULT_STALE_THRESHOLD_MS, judge_owner, pid_alive
from ._queue import QUEUED_STATUS, check_queue_name
from ._resume import resume_run
from ._wakes import PARKED_STATUSES, needs_takeover, runnable_parked

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from smithers.eventstore import EventStore, Lease, RunRecord
    from smithers.projections import RunState

__all__ = (
    "DEFAULT_POLL_S",
    "WORKER_BEAT_MS",
    "WorkerListing",
    "WorkerStatus",
    "list_workers",
    "run_worker",
)

DEFAULT_POLL_S = 1.0
"""Longest wait between looks for work, seconds (a NOTIFY ends it sooner)."""
WORKER_BEAT_MS = 2_000
"""How often a worker updates its row in the workers table (ms); `list_workers` calls
a row older than 3 beats ``stale`` (the worker was killed or is hung)."""
_FAILED_BACKOFF_MS = 30_000
"""A run this worker failed to start (not a lost race) is left alone this long (ms)."""
_STORE_BACKOFF_MS = 1_000
"""A run this worker could not start or drive because the database failed (a dropped
connection, a lock held too long) is tried again after this long (ms)."""
_FORGET_WORKER_MS = 600_000
"""A worker row silent this long (ms: a killed worker's) is deleted by a live worker."""
_TAKEN_STATUSES = (QUEUED_STATUS, "running", *sorted(PARKED_STATUSES))
"""Index statuses of the runs a worker may take (`candidates` reads only those)."""
_STATES_KEPT = 4096
"""Runs whose folded state a worker keeps between looks before it starts over."""
_CLAIM_WAIT_S = 30.0
"""Longest a worker holds a queue's claim lock waiting for its claim to be recorded."""
_LOST = (ResumeClaimFailedError, RunOwnerAliveError, RunStillRunningError)
"""Errors that mean another process has the run: not a failure. Anything else (e.g.
``RUN_NOT_RESUMABLE``: its workflow file is missing on this host) backs the run off
for `_FAILED_BACKOFF_MS` on this worker (a storage error for `_STORE_BACKOFF_MS`)."""


class WorkerStatus(msgspec.Struct, kw_only=True, rename="camel"):
    """A worker's live state (mutable: updated as it claims and finishes runs)."""

    name: str
    host: str
    pid: int
    queues: tuple[str, ...] | None
    """The queues it takes runs from; None: every queue."""
    concurrency: int
    started_at_ms: int
    runs: list[str] = msgspec.field(default_factory=list)
    """Runs it drives now."""
    finished: int = 0
    """Runs it drove to an outcome (ended or parked)."""
    draining: bool = False


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Worker:
    def __init__(
        self,
        store: EventStore,
        status: WorkerStatus,
        *,
        stale_ms: int,
        hold_ms: int,
        limits: dict[str, int],
        log: Callable[[str], Any],
    ) -> None:
        self.store = store
        self.status = status
        self.stale_ms = stale_ms
        self.hold_ms = hold_ms
        self.limits = limits
        self.log = log
        self.queue_of: dict[str, tuple[str, int] | None] = {}
        """run id -> ``(queue, priority)`` from its `RunQueued`; None: not submitted."""
        self.retry_at: dict[str, int] = {}
        """run id -> when this worker may try it again (ms) after it could not run it."""
        self.states: dict[str, RunState] = {}
        """Running and parked runs' states, by run id, as `_state` last folded them."""
        self.published: tuple[str, ...] = ()
        """The runs the worker's row last showed."""
        self.changed = anyio.Event()
        self.actor = resolve_actor("worker", by=status.name, reason="worker claim")

    async def _queue(self, run_id: str) -> tuple[str, int] | None:
        """The run's ``(queue, priority)`` if it is in one of ours, else None (cached)."""
        if run_id not in self.queue_of:
            rows = await self.store.read(run_id, upto_seq=1)
            event = decode_event(rows[0].type, rows[0].data) if rows else None
            found = (event.queue, event.priority) if isinstance(event, RunQueued) else None
            self.queue_of[run_id] = found
        found = self.queue_of[run_id]
        if found is None or (self.status.queues is not None and found[0] not in self.status.queues):
            return None
        return found

    async def candidates(self) -> list[tuple[str, bool, str | None, int]]:
        """Runs to try now, best first: ``(run id, force, queue to count it in, seq)``.

        The queue is None for a takeover: the run already counts as running there. The
        seq is the run's last seq as seen here: `drive` gives up at once if it moved.
        A run's state is folded again only when its last seq changed (`_state`).
        """
        now = _now_ms()
        queued: list[tuple[int, int, str, int]] = []
        others: list[RunRecord] = []
        for r in await self.store.list_runs(statuses=_TAKEN_STATUSES):
            if r.run_id in self.status.runs:
                continue
            if now < self.retry_at.get(r.run_id, 0):
                continue
            if r.status == QUEUED_STATUS:
                mine = await self._queue(r.run_id)
                if mine is not None:
                    queued.append((-mine[1], r.created_at_ms, r.run_id, r.last_seq))
            elif r.status == "running" or r.status in PARKED_STATUSES:
                others.append(r)
        out: list[tuple[str, bool, str | None, int]] = []
        for _, _, rid, seq in sorted(queued):
            out.append((rid, False, await self._queue_name(rid), seq))
        leases = {lease.run_id: lease for lease in await self.store.list_leases()}
        for r in others:
            lease = leases.get(r.run_id)
            if r.status == "running" and lease is not None and self._renewed(lease, now):
                continue  # its owner keeps its lease: alive, nothing to fold
            if await self._queue(r.run_id) is None:
                continue
            state = await self._state(r)
            if state.status == "running":
                verdict = judge_owner(
                    state, leases.get(r.run_id), now_ms=now, stale_threshold_ms=self.stale_ms
                )
                if needs_takeover(verdict, self.stale_ms):
                    out.append((r.run_id, verdict.kind == "stale", None, r.last_seq))
            elif runnable_parked(state, now):
                out.append((r.run_id, False, await self._queue_name(r.run_id), r.last_seq))
        return out

    def _renewed(self, lease: Lease, now: int) -> bool:
        """Whether `lease`'s owner renewed it lately and, if on this host, still lives.

        `judge_owner` would find such an owner alive: `candidates` skips the run.
        """
        if now - lease.heartbeat_at_ms >= self.stale_ms:
            return False
        return lease.host != self.status.host or pid_alive(lease.pid)

    async def _state(self, run: RunRecord) -> RunState:
        """The run's state at its last seq, folded again only when that seq moved."""
        state = self.states.get(run.run_id)
        if state is None or state.seq != run.last_seq:
            if len(self.states) >= _STATES_KEPT:
                self.states.clear()  # many runs: start over, never grow
            state = self.states[run.run_id] = await load_state(self.store, run.run_id)
        return state

    async def _queue_name(self, run_id: str) -> str | None:
        mine = await self._queue(run_id)
        return mine[0] if mine is not None else None

    async def _running_in(self, queue: str) -> int:
        """How many runs of `queue` the runs index shows running (any worker's)."""
        count = 0
        for r in await self.store.list_runs(statuses=("running",)):
            await self._queue(r.run_id)
            known = self.queue_of.get(r.run_id)
            count += known is not None and known[0] == queue
        return count

    async def drive(
        self, run_id: str, force: bool, seq: int, claimed: anyio.Event | None = None
    ) -> None:
        """Claim and drive one run to an outcome; a lost race is not an error.

        `seq` is the run's last seq when it was chosen: if it moved since (another
        worker claimed it), the try ends at once, before the workflow is loaded.
        `claimed` is set once the run's `RunStarted` is recorded (or the try ended).
        """

        def progress(event: object) -> None:
            if claimed is not None and isinstance(event, RunStarted):
                claimed.set()

        try:
            if await self.store.last_seq(run_id) != seq:
                raise ResumeClaimFailedError(run_id, self.status.name)  # claimed since
            with handing_back():  # cancelled (a second SIGTERM): the run is handed back
                result = await resume_run(
                    run_id,
                    store=self.store,
                    force=force,
                    stale_threshold_ms=self.stale_ms,
                    hold_ms=self.hold_ms,
                    log_dir=None,
                    actor=self.actor,
                    on_progress=progress,
                )
        except _LOST as e:
            self.log(f"worker {self.status.name}: {run_id} taken elsewhere ({e.code})")
        except Exception as e:  # one run's failure must not stop the worker
            # The database (a dropped connection, a lock): soon; the run itself: later.
            storage = isinstance(e, (DatabaseWriteError, DatabaseQueryError))
            wait_ms = _STORE_BACKOFF_MS if storage else _FAILED_BACKOFF_MS
            self.retry_at[run_id] = _now_ms() + wait_ms
            code = getattr(e, "code", type(e).__name__)
            self.log(f"worker {self.status.name}: {run_id} could not run: [{code}] {e}")
        else:
            self.status.finished += 1
            self.log(f"worker {self.status.name}: {run_id} is {result.status}")
        finally:
            if claimed is not None:
                claimed.set()
            self.status.runs.remove(run_id)
            self.changed.set()

    async def publish(self) -> None:
        """Write this worker's row (name, runs, heartbeat) to the workers table."""
        st = self.status
        self.published = tuple(st.runs)
        await self.store.put_worker(
            WorkerRecord(
                name=st.name,
                host=st.host,
                pid=st.pid,
                queues=st.queues or (),
                concurrency=st.concurrency,
                runs=tuple(st.runs),
                started_at_ms=st.started_at_ms,
                heartbeat_at_ms=_now_ms(),
                draining=st.draining,
            )
        )

    async def beat(self) -> None:
        """Publish the row every `WORKER_BEAT_MS` until cancelled; forget dead rows."""
        beats = 0
        while True:
            await anyio.sleep(WORKER_BEAT_MS / 1000)
            await self.publish()
            if beats % 30 == 0:
                await self.forget_dead()
            beats += 1

    async def forget_dead(self) -> None:
        """Delete the rows of workers silent for `_FORGET_WORKER_MS` (killed ones).

        `smithers workers` shows a killed worker as not alive for that long; its runs
        were taken over by then.
        """
        now = _now_ms()
        for row in await self.store.list_workers():
            if now - row.heartbeat_at_ms >= _FORGET_WORKER_MS:
                await self.store.delete_worker(row.name)

    async def loop(self, stop: anyio.Event, poll_s: float) -> None:
        await self.publish()
        async with anyio.create_task_group() as beats:
            beats.start_soon(self.beat)
            try:
                await self._loop(stop, poll_s)
            finally:
                beats.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await self.store.delete_worker(self.status.name)

    async def _loop(self, stop: anyio.Event, poll_s: float) -> None:
        async with anyio.create_task_group() as tg:
            while not stop.is_set():
                if len(self.status.runs) < self.status.concurrency:
                    for run_id, force, queue, seq in await self.candidates():
                        if len(self.status.runs) >= self.status.concurrency or stop.is_set():
                            break
                        limit = self.limits.get(queue) if queue is not None else None
                        if queue is not None and limit is not None:
                            await self._claim_limited(tg, run_id, force, queue, limit, seq)
                            continue
                        await self._start(tg, run_id, force, seq)
                        await anyio.lowlevel.checkpoint()  # let it claim before the next
                if tuple(self.status.runs) != self.published:
                    await self.publish()
                await self._wait(stop, poll_s)
            self.status.draining = True
            self.log(f"worker {self.status.name}: draining {len(self.status.runs)} run(s)")
            await self.publish()

    async def _claim_limited(
        self, tg: anyio.abc.TaskGroup, run_id: str, force: bool, queue: str, limit: int, seq: int
    ) -> None:
        """Claim `run_id` only if `queue` has fewer than `limit` runs running.

        Counting and claiming happen under the queue's claim lock (`queue_claim_lock`:
        an advisory lock on PostgreSQL), held until the claim is recorded, so workers
        on all hosts take turns and the limit holds across them.
        """
        async with queue_claim_lock(self.store, queue):
            if await self._running_in(queue) >= limit:
                return
            claimed = await self._start(tg, run_id, force, seq)
            if claimed is not None:
                with anyio.move_on_after(_CLAIM_WAIT_S):
                    await claimed.wait()

    async def _start(
        self, tg: anyio.abc.TaskGroup, run_id: str, force: bool, seq: int
    ) -> anyio.Event | None:
        """Start driving `run_id` unless another worker is claiming it right now.

        The run's claim lock (`try_run_claim`: an advisory lock on PostgreSQL) is held
        from here until the claim is recorded, so workers woken together try different
        runs instead of all but one losing the append after loading the workflow.
        Returns the event set once the claim is recorded (or the try ended); None if
        the lock was taken.
        """
        if not await try_run_claim(self.store, run_id):
            return None
        claimed = anyio.Event()
        self.status.runs.append(run_id)
        tg.start_soon(self.drive, run_id, force, seq, claimed)
        tg.start_soon(self._release_claim, run_id, claimed)
        return claimed

    async def _release_claim(self, run_id: str, claimed: anyio.Event) -> None:
        """Release `run_id`'s claim lock once its claim is recorded or the try ended."""
        await claimed.wait()
        # If the connection went, the server released the lock with it.
        with anyio.CancelScope(shield=True), contextlib.suppress(SmithersError):
            await release_run_claim(self.store, run_id)

    async def _wait(self, stop: anyio.Event, poll_s: float) -> None:
        """Until an append anywhere, a run of ours ends, `stop`, or `poll_s`."""
        self.changed = anyio.Event()
        changed = self.changed
        with anyio.move_on_after(poll_s):
            async with anyio.create_task_group() as tg:

                async def appended() -> None:
                    await wait_for_append(self.store, None, timeout_s=poll_s)
                    tg.cancel_scope.cancel()

                async def ended() -> None:
                    await changed.wait()
                    tg.cancel_scope.cancel()

                async def stopped() -> None:
                    await stop.wait()
                    tg.cancel_scope.cancel()

                full = len(self.status.runs) >= self.status.concurrency
                if not full:
                    tg.start_soon(appended)
                tg.start_soon(ended)
                tg.start_soon(stopped)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def run_worker(
    db: str | os.PathLike[str] | None = None,
    *,
    queues: Collection[str] | None = None,
    concurrency: int = 4,
    name: str | None = None,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    poll_s: float = DEFAULT_POLL_S,
    hold_ms: int = 0,
    queue_limits: dict[str, int] | None = None,
    stop: anyio.Event | None = None,
    status: Callable[[WorkerStatus], Any] | None = None,
    log: Callable[[str], Any] = _stderr,
) -> WorkerStatus:
    """Take runs from `db`'s queues and drive them until `stop` is set; then drain.

    See the module docstring for what is taken and the guarantees. Awaits I/O; drives
    the runs' workflows in this process.

    Args:
        db: Database path or postgresql:// URL (see `resolve_db`); must exist for a file.
        queues: Queue names to take runs from; None: every queue.
        concurrency: Runs driven at once, >= 1.
        name: The worker's name (default ``<host>:<pid>``), recorded as the actor of
            the activations it starts.
        stale_threshold_ms: An owner silent this long (ms) is taken over.
        poll_s: Longest wait between looks for work, seconds (> 0).
        hold_ms: As `run_workflow`'s: a run whose next timer is further away parks
            (default 0: park at once, the worker takes it again when it is due).
        queue_limits: Queue name -> most runs of it running at once, across every
            worker given the same limits (`_claim_limited`); unlimited if absent.
        stop: Set it to drain and return; None: run until cancelled.
        status: Called once with the live `WorkerStatus` (updated in place).
        log: Called with one line per claim, outcome and lost race.

    Returns:
        The worker's final `WorkerStatus`.

    Raises:
        InvalidInputError: ``INVALID_INPUT`` for a bad queue name, concurrency or poll.
        SmithersError: ``CLI_DB_NOT_FOUND`` if the database file does not exist.
        DatabaseQueryError: if the database cannot be read.
    """
    from ..errors import InvalidInputError

    if concurrency < 1 or poll_s <= 0 or stale_threshold_ms < 1:
        raise InvalidInputError(
            "--concurrency must be >= 1, the poll interval and stale threshold > 0; got "
            f"{concurrency}, {poll_s} s and {stale_threshold_ms} ms.",
            details={"concurrency": concurrency, "pollS": poll_s},
        )
    chosen = tuple(check_queue_name(q) for q in queues) if queues is not None else None
    for queue, limit in (queue_limits or {}).items():
        check_queue_name(queue)
        if limit < 1:
            raise InvalidInputError(
                f"The limit of queue {queue!r} must be >= 1, got {limit}.",
                details={"queue": queue, "limit": limit},
                hint="e.g. --queue-limit nightly=2",
            )
    if stale_threshold_ms < 2 * HEARTBEAT_INTERVAL_MS:
        log(
            f"warning: a stale threshold of {stale_threshold_ms} ms is under two lease "
            f"heartbeats ({HEARTBEAT_INTERVAL_MS} ms each): live owners will be taken "
            "over and their attempts in flight run again"
        )
    host = socket.gethostname()
    state = WorkerStatus(
        name=name or f"{host}:{os.getpid()}",
        host=host,
        pid=os.getpid(),
        queues=chosen,
        concurrency=concurrency,
        started_at_ms=_now_ms(),
    )
    if status is not None:
        status(state)
    store = await open_store(db, create=False)
    try:
        worker = _Worker(
            store,
            state,
            stale_ms=stale_threshold_ms,
            hold_ms=hold_ms,
            limits=dict(queue_limits or {}),
            log=log,
        )
        await worker.loop(stop or anyio.Event(), poll_s)
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()
    return state


class WorkerListing(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A worker row with its liveness, as ``smithers workers`` shows it."""

    worker: WorkerRecord
    alive: bool
    """Its row was updated within 3 beats (`WORKER_BEAT_MS`); False: killed or hung
    (its runs are taken over when their leases go stale)."""
    silent_ms: int
    """Ms since its last heartbeat."""


async def list_workers(db: str | os.PathLike[str] | None = None) -> list[WorkerListing]:
    """Return the workers of `db` (rows of the workers table), by name. Awaits I/O.

    Raises:
        SmithersError: ``CLI_DB_NOT_FOUND`` if the database file does not exist.
        DatabaseQueryError: if the database cannot be read.
    """
    store = await open_store(db, create=False, read_only=True)
    try:
        rows = await store.list_workers()
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()
    now = _now_ms()
    return [
        WorkerListing(
            worker=r,
            alive=now - r.heartbeat_at_ms <= 3 * WORKER_BEAT_MS,
            silent_ms=max(0, now - r.heartbeat_at_ms),
        )
        for r in rows
    ]
