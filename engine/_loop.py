"""The run loop: render → schedule → execute → record, one append per tick (DESIGN §6).

One coordinator task owns the run's in-memory `RunState`, folds every event it appends,
and decides again on every completion (no batch barrier). Workers only execute attempts
and report outcomes through a memory stream; every event is written by the coordinator.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from smithers.eventstore import EventStore, Lease, decode_event, decode_json
from smithers.eventstore.errors import (
    RunAlreadyExistsError,
    SmithersError,
    StreamVersionConflictError,
)
from smithers.eventstore.events import (
    NULL_RAW,
    ErrorInfo,
    Event,
    FrameCommitted,
    NodeCancelled,
    NodeEvent,
    NodeFailed,
    NodeFinished,
    NodePending,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    RunCancelled,
    RunCancelRequested,
    RunFailed,
    RunFinished,
    RunStatusChanged,
    TaskHeartbeatTimeout,
)
from smithers.projections import RunState, apply_event, encode_state

from ._beats import BeatBook
from ._context import TaskContext, WorkflowContext
from ._execute import Outcome, error_info, execute_attempt
from ._frames import FrameEncoder
from ._history import checkpoint_due, compress_checkpoint
from ._render import Leaf, Plan, compile_tree
from ._schedule import Scheduler
from .errors import (
    OwnershipLostError,
    ResumeClaimFailedError,
    SchedulerError,
    TaskHeartbeatTimeoutError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from anyio.abc import TaskGroup

    from ._clock import Clock
    from ._components import Workflow
    from ._ndjson import NdjsonMirror

__all__ = ("HEARTBEAT_INTERVAL_MS", "RunLoop")

HEARTBEAT_INTERVAL_MS = 1_000
"""How often the owner renews its lease and looks for requests appended by others."""
_CONFLICT_RETRIES = 5
_IDLE_WORKERS = 8
"""Most worker tasks kept waiting for the next attempt (see `RunLoop._pooled_worker`)."""
_REQUEST_TYPES = (RunCancelRequested,)
"""Events another process may append to a run it does not own (requests to the owner)."""

log = logging.getLogger("smithers.engine")


class RunLoop:
    """One activation of a run: the coordinator and its in-memory state.

    Args:
        wf: The workflow.
        store: The open event store.
        run_id: The run.
        input_value: ``ctx.input``.
        max_concurrency: Run-wide cap on running tasks.
        on_progress: Called with each event after it is recorded.
        clock: Time source.
        mirror: NDJSON mirror, or None.
        state: The run's folded state when resuming (None for a new run).
        owner: This activation's lease, recorded once the first append (the claim) wins.
        reload: Re-folds the run from the log (used after another process appended).
    """

    def __init__(
        self,
        wf: Workflow,
        store: EventStore,
        run_id: str,
        *,
        input_value: Any,
        max_concurrency: int,
        on_progress: Callable[[Event], Any] | None,
        clock: Clock,
        mirror: NdjsonMirror | None,
        state: RunState | None = None,
        owner: Lease | None = None,
        reload: Callable[[], Awaitable[RunState]] | None = None,
    ) -> None:
        self.wf = wf
        self.store = store
        self.run_id = run_id
        self.input_value = input_value
        self.max_concurrency = max_concurrency
        self.on_progress = on_progress
        self.clock = clock
        self.mirror = mirror
        self.state = state if state is not None else RunState(run_id=run_id)
        self.seq = self.state.seq  # last appended seq
        self.claimed = False  # True once our first append (the claim) is in the log
        self.owner = owner
        self.reload = reload
        self.batch: list[Event] = []
        self.plan: Plan | None = None
        self.scheduler: Scheduler | None = None
        self.reads: set[str] = set()
        self.frame_no = _next_frame_no(self.state)
        self.frame_encoder = FrameEncoder()  # the previous frame's tree, for deltas
        # node id -> (attempt, cancel scope, leaf it was started from)
        self.running: dict[str, tuple[int, anyio.CancelScope, Leaf]] = {}
        self.backoff: dict[str, anyio.CancelScope] = {}
        self.cancel_reasons: dict[str, str] = {}
        self.failing: ErrorInfo | None = None
        self.cancelling: tuple[str, str] | None = None  # (reason, source)
        self.terminal: str | None = None
        self.send, self.recv = anyio.create_memory_object_stream[tuple[Any, ...]](math.inf)
        self.tg: TaskGroup | None = None
        self.status_for_index: str | None = None
        self.nodes_changed_since_frame = False
        self.beats = BeatBook(run_id)
        # Attempts go to reusable worker tasks (`_pooled_worker`): a new anyio task per
        # attempt costs ~30 us, a hand-over through a memory stream about half that.
        self.jobs_send, self.jobs_recv = anyio.create_memory_object_stream[
            tuple[Leaf, int, anyio.CancelScope]
        ](math.inf)
        self.idle_workers = 0

    # ------------------------------------------------------------------ recording

    def emit(self, event: Event) -> None:
        """Fold `event` into the live state and queue it for this tick's append."""
        self.batch.append(event)
        apply_event(self.state, event, seq=self.seq + len(self.batch))
        if isinstance(event, RunStatusChanged):
            self.status_for_index = event.status
        elif isinstance(event, FrameCommitted):
            self.nodes_changed_since_frame = False
        elif isinstance(event, NodeEvent):
            self.nodes_changed_since_frame = True

    async def flush(self) -> None:
        """Append this tick's events in one transaction, then publish them."""
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        # Shielded: aiosqlite's thread commits even if we stop waiting, so a cancelled
        # wait would leave `self.seq` behind the log and lose what we record next.
        with anyio.CancelScope(shield=True):
            for attempt in range(_CONFLICT_RETRIES + 1):
                first = self.seq + 1
                try:
                    self.seq = await self.store.append(
                        self.run_id,
                        batch,
                        expected_seq=self.seq,
                        status=self.status_for_index,
                        workflow_name=self.wf.name if first == 1 else None,
                    )
                    break
                except RunAlreadyExistsError:
                    raise
                except StreamVersionConflictError as e:
                    if not self.claimed:
                        raise ResumeClaimFailedError(self.run_id, self._owner_id()) from e
                    if attempt == _CONFLICT_RETRIES:
                        raise
                    await self._rebase(batch)
        if not self.claimed:
            self.claimed = True
            if self.owner is not None:
                await self.store.put_lease(self.owner)
        self.status_for_index = None
        if self.mirror is not None:
            self.mirror.write(batch, first)
        if self.on_progress is not None:
            for event in batch:
                try:
                    self.on_progress(event)
                except Exception:
                    log.exception("on_progress callback raised; the run goes on")
        if checkpoint_due(first, self.seq, self.state):
            await self._checkpoint()

    def _owner_id(self) -> str:
        return self.owner.owner_id if self.owner is not None else ""

    async def _rebase(self, batch: list[Event]) -> None:
        """Another process appended to our run: re-fold the log, re-apply `batch` on top.

        What they appended (e.g. a cancel request) is handled at the next tick.
        """
        foreign = await self.store.read(self.run_id, after_seq=self.seq)
        events = self._requests_only([decode_event(r.type, r.data) for r in foreign])
        if self.reload is None:
            raise StreamVersionConflictError(
                self.run_id, expected_seq=self.seq, actual_seq=foreign[-1].seq if foreign else 0
            )
        self.state = await self.reload()
        self.seq = self.state.seq
        for i, event in enumerate(batch, 1):
            apply_event(self.state, event, seq=self.seq + i)
        self._handle_foreign(events)

    def _requests_only(self, events: list[Event | None]) -> list[Event | None]:
        """Return `events` if they are all requests; else another process owns the run.

        Raises:
            OwnershipLostError: if another process wrote as the run's owner (a new
                activation, or a cancel that finalized the run believing us dead): we
                stop without writing more.
        """
        for event in events:
            if event is not None and not isinstance(event, _REQUEST_TYPES):
                raise OwnershipLostError(self.run_id, self._owner_id())
        return events

    def _handle_foreign(self, events: Iterable[Event | None]) -> None:
        """React to requests other processes appended to this run's log."""
        for event in events:
            if isinstance(event, RunCancelRequested):
                self.send.send_nowait(("cancel", event.reason or "cancel-requested", event.source))

    async def _read_foreign(self) -> None:
        """Fold events others appended since our last append, and react to them."""
        if self.batch:
            raise AssertionError("foreign events must be folded before this tick's events")
        rows = await self.store.read(self.run_id, after_seq=self.seq)
        decoded = self._requests_only([decode_event(row.type, row.data) for row in rows])
        events = []
        for row, event in zip(rows, decoded, strict=True):
            if event is not None:
                apply_event(self.state, event, seq=row.seq)
            else:
                self.state.seq = row.seq
            self.seq = row.seq
            events.append(event)
        self._handle_foreign(events)

    def now(self) -> int:
        return self.clock.now_ms()

    # ------------------------------------------------------------------ decisions

    def _is_busy(self, node_id: str) -> bool:
        return node_id in self.running or node_id in self.backoff

    def render(self) -> None:
        """Render the tree, commit a frame, mount new tasks, rebuild the scheduler."""
        ctx = WorkflowContext(run_id=self.run_id, input=self.input_value, state=self.state)
        try:
            plan = compile_tree(self.wf.build(ctx))
        except Exception as e:
            self.fail(error_info(e))
            return
        self.reads = ctx.reads
        self._commit_frame(plan)
        now = self.now()
        nodes = self.state.nodes
        for node_id, leaf in plan.leaves.items():
            rec = nodes.get((node_id, 0))
            task = leaf.task
            if rec is None:
                if task.skip_if:
                    self.emit(
                        NodeSkipped(
                            run_id=self.run_id, timestamp_ms=now, node_id=node_id, reason="skip_if"
                        )
                    )
                else:
                    self.emit(
                        NodePending(
                            run_id=self.run_id, timestamp_ms=now, node_id=node_id, label=task.label
                        )
                    )
            elif rec.state == "pending" and task.skip_if and not self._is_busy(node_id):
                self.emit(
                    NodeSkipped(
                        run_id=self.run_id, timestamp_ms=now, node_id=node_id, reason="skip_if"
                    )
                )
        for node_id, (_, scope, _) in self.running.items():
            if node_id not in plan.leaves:
                self.cancel_reasons[node_id] = "unmounted"
                scope.cancel()
        self._drop_backoffs([n for n in self.backoff if n not in plan.leaves], "unmounted")

        def is_done(node_id: str) -> bool:
            rec = nodes.get((node_id, 0))
            if rec is None:
                return False
            if rec.state in ("finished", "skipped"):
                return True
            leaf = plan.leaves.get(node_id)
            return rec.state == "failed" and leaf is not None and leaf.task.continue_on_fail

        self.plan = plan
        self.scheduler = Scheduler(plan, is_done=is_done, is_busy=self._is_busy)
        for node_id in self.running:
            self.scheduler.claim(node_id)

    def _commit_frame(self, plan: Plan) -> None:
        """Emit the frame: a keyframe or a delta against the previous one (`_frames`).

        This activation's first frame is a keyframe, so a resumed run never needs the
        trees of earlier activations.
        """
        frames = self.state.frames
        keyframe, delta = self.frame_encoder.encode(
            self.frame_no,
            plan.tree,
            plan.xml_hash,
            previous_seq=frames[-1].seq if frames else None,
        )
        self.emit(
            FrameCommitted(
                run_id=self.run_id,
                timestamp_ms=self.now(),
                frame_no=self.frame_no,
                xml_hash=plan.xml_hash,
                keyframe=keyframe if keyframe is not None else NULL_RAW,
                delta=delta if delta is not None else NULL_RAW,
            )
        )
        self.frame_encoder.committed(self.seq + len(self.batch))
        self.frame_no += 1

    async def _checkpoint(self) -> None:
        """Cache the folded state in the store's checkpoint table (DESIGN §5).

        Encoded here, synchronously (the next tick mutates the state in place);
        compressed and stored by a task of the run's task group, so the loop goes on
        meanwhile. Only a state known to match the log is written: not while
        cancelling (an interrupted tick's unflushed events may be folded in), nor if
        seqs disagree.
        """
        if self.cancelling is not None or self.state.seq != self.seq or self.batch:
            return
        data = encode_state(self.state)
        if self.tg is None:
            await self._store_checkpoint(self.seq, data)
        else:
            self.tg.start_soon(self._store_checkpoint, self.seq, data)

    async def _store_checkpoint(self, seq: int, data: bytes) -> None:
        # Shielded: the run's end waits for it rather than leaving a write in flight
        # on a store about to be closed. A failed write loses nothing (a cache).
        with anyio.CancelScope(shield=True):
            try:
                packed = await anyio.to_thread.run_sync(compress_checkpoint, data)
                await self.store.put_checkpoint(self.run_id, seq, packed)
            except SmithersError:
                log.warning("could not write a checkpoint of run %s at seq %d", self.run_id, seq)

    def fail(self, error: ErrorInfo) -> None:
        """Mark the run as failing: nothing new starts; it fails once running tasks end.

        Retries waiting out a backoff will never start: they are closed now.
        """
        if self.failing is None:
            self.failing = error
            self._drop_backoffs(self.backoff, "run-failed")

    def _drop_backoffs(self, node_ids: Iterable[str], reason: str) -> None:
        """Cancel pending retries of `node_ids`, recording NodeCancelled for each."""
        now = self.now()
        for node_id in list(node_ids):
            scope = self.backoff.pop(node_id, None)
            if scope is None:
                continue
            scope.cancel()
            self.emit(
                NodeCancelled(run_id=self.run_id, timestamp_ms=now, node_id=node_id, reason=reason)
            )

    def record_outcome(self, leaf: Leaf, attempt: int, outcome: Outcome) -> bool:
        """Emit the events of an ended attempt; return True if a re-render is needed."""
        task = leaf.task
        node_id = task.id
        now = self.now()
        assert self.scheduler is not None
        if outcome.error is None:
            self.emit(
                NodeFinished(
                    run_id=self.run_id,
                    timestamp_ms=now,
                    node_id=node_id,
                    attempt=attempt,
                    output=outcome.output,
                )
            )
            self.scheduler.complete(node_id)
            return node_id in self.reads
        error = outcome.error
        self.emit(
            NodeFailed(
                run_id=self.run_id, timestamp_ms=now, node_id=node_id, attempt=attempt, error=error
            )
        )
        retry = (
            self.cancelling is None
            and self.failing is None
            and node_id in self.scheduler.plan.leaves
        )
        if error.retryable and attempt <= task.retries and retry:
            delay = task.backoff.delay_ms(attempt)
            self.emit(
                NodeRetrying(
                    run_id=self.run_id,
                    timestamp_ms=now,
                    node_id=node_id,
                    attempt=attempt + 1,
                    delay_ms=delay,
                )
            )
            if delay <= 0:
                self.scheduler.requeue(node_id)
            else:
                scope = anyio.CancelScope()
                self.backoff[node_id] = scope
                assert self.tg is not None
                self.tg.start_soon(self._backoff_timer, node_id, delay, scope)
        elif task.continue_on_fail:
            self.scheduler.complete(node_id)
        else:
            self.fail(error)
        return False

    def request_cancel(self, reason: str, source: str) -> None:
        """Abort running attempts and pending retries; the run ends cancelled."""
        if self.cancelling is not None:
            return
        self.cancelling = (reason, source)
        for node_id, (_, scope, _) in self.running.items():
            self.cancel_reasons.setdefault(node_id, "cancelled")
            scope.cancel()
        self._drop_backoffs(self.backoff, "cancelled")

    # ------------------------------------------------------------------ the tick

    async def tick(self, msgs: list[tuple[Any, ...]]) -> None:
        """Handle completions, decide, and append everything in one transaction."""
        need_render = self.plan is None
        changed = False  # did a node's state change (so a frame is due)?
        if any(m[0] == "foreign" for m in msgs):
            await self._read_foreign()
        for msg in msgs:
            kind = msg[0]
            if kind == "hb":
                self._on_heartbeat(msg[1], msg[2], msg[3])
                continue
            if kind == "hb-timeout":
                _, node_id, attempt, last_ms, timeout_ms = msg
                self.emit(
                    TaskHeartbeatTimeout(
                        run_id=self.run_id,
                        timestamp_ms=self.now(),
                        node_id=node_id,
                        attempt=attempt,
                        last_heartbeat_at_ms=last_ms,
                        timeout_ms=timeout_ms,
                    )
                )
                continue
            changed = True
            if kind == "done":
                _, node_id, attempt, outcome = msg
                self._flush_beat(node_id)
                # The leaf it started from: recorded even if a re-render unmounted it.
                leaf = self.running.pop(node_id)[2]
                assert self.scheduler is not None
                self.scheduler.released(node_id)
                if self.record_outcome(leaf, attempt, outcome):
                    need_render = True
            elif kind == "cancelled":
                _, node_id, attempt, reason = msg
                self._flush_beat(node_id)
                del self.running[node_id]
                assert self.scheduler is not None
                self.scheduler.released(node_id)
                self.emit(
                    NodeCancelled(
                        run_id=self.run_id,
                        timestamp_ms=self.now(),
                        node_id=node_id,
                        attempt=attempt,
                        reason=reason,
                    )
                )
            elif kind == "retry":
                node_id = msg[1]
                if self.backoff.pop(node_id, None) is not None and self.scheduler is not None:
                    self.scheduler.requeue(node_id)
            elif kind == "cancel":
                self.request_cancel(msg[1], msg[2])

        if changed and not need_render and self.plan is not None:
            # Nothing the last render read has changed: the tree is the same (empty delta).
            self._commit_frame(self.plan)
        to_spawn: list[tuple[Leaf, int]] = []
        while True:
            if need_render and self.failing is None and self.cancelling is None:
                self.render()
            need_render = False
            if self.failing is not None or self.cancelling is not None or self.scheduler is None:
                break
            leaves = self.scheduler.take(self.max_concurrency - len(self.running))
            if not leaves:
                break
            progressed = False
            for leaf in leaves:
                node_id = leaf.task.id
                rec = self.state.nodes.get((node_id, 0))
                exhausted = rec is not None and rec.attempt_count > leaf.task.retries
                if rec is not None and rec.state == "failed" and exhausted:
                    # Failed for good in an earlier activation: it stays failed.
                    self.scheduler.released(node_id)
                    self.fail(rec.last_error or error_info(SchedulerError("failed")))
                    continue
                attempt = (rec.attempt_count if rec is not None else 0) + 1
                self.emit(
                    NodeStarted(
                        run_id=self.run_id,
                        timestamp_ms=self.now(),
                        node_id=node_id,
                        attempt=attempt,
                    )
                )
                if leaf.task.kind == "static":
                    # No side effect: decided and recorded inline, in this same tick.
                    tctx = self._task_context(leaf, attempt)
                    outcome = await execute_attempt(leaf.task, tctx)
                    self.scheduler.released(node_id)
                    need_render = self.record_outcome(leaf, attempt, outcome) or need_render
                    progressed = True
                else:
                    self.running[node_id] = (attempt, anyio.CancelScope(), leaf)
                    to_spawn.append((leaf, attempt))
            if not progressed and not need_render:
                break
        if not self.running and not self.backoff and not to_spawn:
            self._finish()
        await self.flush()
        assert self.tg is not None
        for leaf, attempt in to_spawn:
            job = (leaf, attempt, self.running[leaf.task.id][1])
            if self.idle_workers:
                self.idle_workers -= 1
                self.jobs_send.send_nowait(job)
            else:
                self.tg.start_soon(self._pooled_worker, job)

    def _finish(self) -> None:
        if self.nodes_changed_since_frame and self.plan is not None:
            # A last frame, so the final node states are at a frame too (tasks decided
            # inline after the tick's frame, e.g. static ones, would be missing).
            self._commit_frame(self.plan)
        now = self.now()
        rid = self.run_id
        if self.cancelling is not None:
            reason, source = self.cancelling
            self.emit(RunStatusChanged(run_id=rid, timestamp_ms=now, status="cancelled"))
            self.emit(RunCancelled(run_id=rid, timestamp_ms=now, reason=reason, source=source))
            self.terminal = "cancelled"
            return
        if self.failing is None and self.scheduler is not None and not self.scheduler.finished:
            waiting = self.scheduler.waiting_on()
            err = SchedulerError(
                "The workflow cannot make progress: "
                + (
                    "; ".join(
                        f"{', '.join(ts)} wait(s) on {dep!r}, which can never finish "
                        "(not mounted, or a dependency cycle)"
                        for dep, ts in waiting.items()
                    )
                    if waiting
                    else "no task is ready and nothing is running"
                )
                + ".",
                details={"waitingOn": waiting},
            )
            self.fail(error_info(err))
        if self.failing is not None:
            self.emit(RunStatusChanged(run_id=rid, timestamp_ms=now, status="failed"))
            self.emit(RunFailed(run_id=rid, timestamp_ms=now, error=self.failing))
            self.terminal = "failed"
            return
        self.emit(RunStatusChanged(run_id=rid, timestamp_ms=now, status="finished"))
        self.emit(RunFinished(run_id=rid, timestamp_ms=now))
        self.terminal = "finished"

    # ------------------------------------------------------------------ tasks

    def _task_context(self, leaf: Leaf, attempt: int) -> TaskContext:
        node_id = leaf.task.id
        loop_thread = threading.get_ident()

        def beat(raw: msgspec.Raw | None) -> None:
            msg = ("hb", node_id, attempt, raw)
            try:
                if threading.get_ident() == loop_thread:
                    self.send.send_nowait(msg)
                else:
                    anyio.from_thread.run_sync(self.send.send_nowait, msg)
            except (anyio.ClosedResourceError, RuntimeError):
                pass  # the attempt outlived its run (an abandoned worker thread)

        raw = self.beats.payload(node_id)
        if raw is None:
            rec = self.state.nodes.get((node_id, 0))
            raw = rec.heartbeat_data if rec is not None else None
        return TaskContext(
            run_id=self.run_id,
            node_id=node_id,
            iteration=0,
            attempt=attempt,
            input=self.input_value,
            last_heartbeat=decode_json(raw) if raw is not None else None,  # JSON null -> None
            beat=beat,
        )

    def _on_heartbeat(self, node_id: str, attempt: int, raw: msgspec.Raw | None) -> None:
        """Record a heartbeat of a running attempt (coalesced into TaskHeartbeat events)."""
        running = self.running.get(node_id)
        if running is None or running[0] != attempt:
            return  # from an attempt that already ended
        event = self.beats.record(node_id, attempt, raw, self.now())
        if event is not None:
            self.emit(event)

    def _flush_beat(self, node_id: str) -> None:
        """Record a coalesced-away payload before the attempt's end, so it is durable."""
        event = self.beats.flush(node_id, self.now())
        if event is not None:
            self.emit(event)

    async def _watchdog(
        self, node_id: str, attempt: int, timeout_ms: int, stop: anyio.CancelScope
    ) -> None:
        """Cancel the attempt when it sends no heartbeat for `timeout_ms`."""
        while True:
            last = self.beats.last_at(node_id)
            stale = self.now() - last
            if stale >= timeout_ms:
                self.send.send_nowait(("hb-timeout", node_id, attempt, last, timeout_ms))
                self.beats.timed_out.add(node_id)
                stop.cancel()
                return
            await self.clock.sleep_ms(timeout_ms - stale)

    async def _worker(self, leaf: Leaf, attempt: int, scope: anyio.CancelScope) -> None:
        outcome: Outcome | None = None
        task = leaf.task
        node_id = task.id
        self.beats.started(node_id, self.now())
        with scope:
            tctx = self._task_context(leaf, attempt)
            if task.heartbeat_timeout_ms is None:
                outcome = await execute_attempt(task, tctx)
            else:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(
                        self._watchdog, node_id, attempt, task.heartbeat_timeout_ms, tg.cancel_scope
                    )
                    outcome = await execute_attempt(task, tctx)
                    tg.cancel_scope.cancel()
        if node_id in self.beats.timed_out:
            self.beats.timed_out.discard(node_id)
            last = self.beats.last_at(node_id)
            err = TaskHeartbeatTimeoutError(
                node_id, 0, attempt, task.heartbeat_timeout_ms or 0, self.now() - last, last
            )
            outcome = Outcome(error=error_info(err))
        if outcome is None:
            reason = self.cancel_reasons.pop(node_id, "cancelled")
            self.send.send_nowait(("cancelled", node_id, attempt, reason))
        else:
            self.send.send_nowait(("done", node_id, attempt, outcome))

    async def _pooled_worker(self, job: tuple[Leaf, int, anyio.CancelScope]) -> None:
        """Run `job`, then the jobs `tick` hands over, until the run ends.

        At most `_IDLE_WORKERS` wait for work; others end (after a wide fanout,
        cancelling a hundred idle tasks at the run's end would cost more than it saved).
        """
        while True:
            await self._worker(*job)
            if self.idle_workers >= _IDLE_WORKERS:
                return
            self.idle_workers += 1
            job = await self.jobs_recv.receive()

    async def _backoff_timer(self, node_id: str, delay_ms: int, scope: anyio.CancelScope) -> None:
        with scope:
            await self.clock.sleep_ms(delay_ms)
            self.send.send_nowait(("retry", node_id))

    async def _heartbeat(self) -> None:
        """Renew the lease and look for what other processes appended to the run.

        The log, not the lease row, says who owns the run: a lease that is missing or
        names another owner is re-recorded unless the log shows another activation (the
        tick that reads it then stops this one with `OwnershipLostError`).
        """
        while True:
            await self.clock.sleep_ms(HEARTBEAT_INTERVAL_MS)
            foreign = await self.store.last_seq(self.run_id) > self.seq
            if self.owner is not None and self.claimed and not foreign:
                now = self.clock.now_ms()
                if not await self.store.renew_lease(self.run_id, self.owner.owner_id, now):
                    owner = msgspec.structs.replace(self.owner, heartbeat_at_ms=now)
                    await self.store.put_lease(owner)
            if foreign:
                self.send.send_nowait(("foreign",))

    async def _watch_cancel(self, cancel: Any) -> None:
        await cancel.wait()
        # Optional `reason`/`source` attributes, read when it fires (the CLI passes
        # source "signal" and the signal's name).
        reason = getattr(cancel, "reason", None) or "cancel-requested"
        source = getattr(cancel, "source", None) or "api"
        self.send.send_nowait(("cancel", reason, source))

    # ------------------------------------------------------------------ driving

    async def drive(self, first_events: list[Event], cancel: Any) -> None:
        """Run the loop until the run finishes, fails or is cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                self.tg = tg
                for event in first_events:
                    self.emit(event)
                if cancel is not None:
                    tg.start_soon(self._watch_cancel, cancel)
                tg.start_soon(self._heartbeat)
                await self.tick([])
                while self.terminal is None:
                    msgs = [await self.recv.receive()]
                    while True:
                        try:
                            msgs.append(self.recv.receive_nowait())
                        except anyio.WouldBlock:
                            break
                    await self.tick(msgs)
                tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The task group wraps what a tick raised (e.g. a storage error): callers
            # should get the SmithersError itself, not a group of one.
            if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
                inner = group.exceptions[0]
                raise inner from inner.__cause__  # keeps e.g. the sqlite3 error as cause
            raise
        except anyio.get_cancelled_exc_class():
            # The caller cancelled us: record it, shielded, then let cancellation go on.
            with anyio.CancelScope(shield=True):
                await self._record_interrupted("interrupted", "api")
            raise
        except KeyboardInterrupt:
            with anyio.CancelScope(shield=True):
                await self._record_interrupted("interrupted", "signal")
            raise
        finally:
            if self.owner is not None and self.claimed:
                with anyio.CancelScope(shield=True):
                    try:
                        await self.store.release_lease(self.run_id, self.owner.owner_id)
                    except SmithersError:
                        log.warning("could not release the lease of run %s", self.run_id)
            self.send.close()
            self.recv.close()
            self.jobs_send.close()
            self.jobs_recv.close()
            if self.mirror is not None:
                self.mirror.close()

    async def _record_interrupted(self, reason: str, source: str) -> None:
        if self.terminal is not None or not self.claimed:
            return
        self.batch = []
        now = self.now()
        for node_id, (attempt, _, _) in self.running.items():
            self.emit(
                NodeCancelled(
                    run_id=self.run_id,
                    timestamp_ms=now,
                    node_id=node_id,
                    attempt=attempt,
                    reason=reason,
                )
            )
        self.running.clear()
        self._drop_backoffs(self.backoff, reason)
        self.cancelling = (reason, source)
        self._finish()
        try:
            await self.flush()
        except SmithersError:
            log.exception("could not record the cancellation of run %s", self.run_id)


def _next_frame_no(state: RunState) -> int:
    """The frame number the next render of `state`'s run gets (never reused)."""
    return state.next_frame_no
