"""The run loop's coordinator: one append per tick (DESIGN §6).

One coordinator task owns the run's in-memory `RunState`, folds every event it appends,
and decides again on every completion (no batch barrier). Workers (`_attempts`) only
execute attempts and report through a memory stream, as typed messages (`_messages`);
the decisions are the `Decider`'s (`_decide`); every event is written here.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import math
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from smithers.eventstore import EventStore, Lease, decode_event
from smithers.eventstore.errors import (
    DatabaseWriteError,
    RunAlreadyExistsError,
    SeqConflictError,
    SmithersError,
)
from smithers.eventstore.events import (
    NULL_RAW,
    ApprovalAutoApproved,
    ApprovalDenied,
    ApprovalGranted,
    ChildRunEnded,
    Event,
    FrameCommitted,
    NodeEvent,
    RunCancelRequested,
    RunHijackRequested,
    RunStarted,
    RunStatusChanged,
    SignalReceived,
)
from smithers.projections import RunState, apply_event

from ..errors import OwnershipLostError, ResumeClaimFailedError
from ._attempts import AttemptRunner, ToolSettings
from ._decide import DEFAULT_HOLD_MS, Decider
from ._frames import FrameEncoder
from ._messages import (
    AttemptCancelled,
    AttemptEnded,
    BackoffElapsed,
    BeatTimedOut,
    CancelRequested,
    ForeignAppended,
    HijackRequested,
    Message,
    SubflowWaiting,
    TaskBeat,
    ToolJournaled,
    WaitDue,
)
from ._writer import RunWriter

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator

    from anyio.abc import TaskGroup
    from smithers.projections import NodeKey

    from .._clock import Clock
    from ..authoring import Workflow
    from ._ndjson import NdjsonMirror
    from ._render import Plan
    from ._subflow import ChildRunner

__all__ = ("HEARTBEAT_INTERVAL_MS", "RunLoop", "handing_back")

_HAND_BACK: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "smithers_hand_back", default=False
)


@contextlib.contextmanager
def handing_back() -> Iterator[None]:
    """Within it, an activation cancelled from outside hands its run back.

    Without it, a cancelled activation ends its run ``cancelled`` (`RunCancelled`,
    reason ``interrupted``), as Ctrl-C in ``smithers up`` does. Within it (a worker,
    `run_worker`), it records nothing more and releases its lease: the run stays
    ``running`` with no owner, as after a crash, and another process takes it over
    (the attempts in flight are closed as abandoned then, and run again). Applies to
    the activations started in the block, child runs of `Subflow` nodes included.
    """
    token = _HAND_BACK.set(True)
    try:
        yield
    finally:
        _HAND_BACK.reset(token)


HEARTBEAT_INTERVAL_MS = 1_000
"""How often the owner renews its lease and looks for requests appended by others."""
_CONFLICT_RETRIES = 5
_DECISION_TYPES = (
    ApprovalGranted,
    ApprovalDenied,
    ApprovalAutoApproved,
    SignalReceived,
    ChildRunEnded,
)
"""Requests that may resolve a waiting node: decisions, signals, a child run's end."""
_REQUEST_TYPES = (RunCancelRequested, RunHijackRequested, *_DECISION_TYPES)
"""Events another process may append to a run it does not own (requests to the owner)."""

log = logging.getLogger("smithers.engine")


class RunLoop:
    """One activation of a run: the coordinator, its in-memory state and the store.

    It owns the log side (the live state, this tick's batch, frames, checkpoints, the
    lease); `attempts` runs the workers and `decider` decides.

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
        hold_ms: Sleep instead of parking when the next wake-up (a timer, a wait's
            timeout) is at most this many ms away.
        run_child: Starts or resumes the child run of a `Subflow` node (`run_workflow`
            passes one; the activation room cannot import the lifecycle room).
        tools: The run's tool sandbox, for each attempt's ``ctx.tools``.
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
        hold_ms: int = DEFAULT_HOLD_MS,
        run_child: ChildRunner | None = None,
        tools: ToolSettings | None = None,
    ) -> None:
        self.wf = wf
        self.store = store
        self.run_id = run_id
        self.on_progress = on_progress
        self.clock = clock
        self.writer = RunWriter(store, run_id, mirror=mirror)
        self.state = state if state is not None else RunState(run_id=run_id)
        self.seq = self.state.seq  # last appended seq
        self.claimed = False  # True once our first append (the claim) is in the log
        self.write_failed = False  # an append failed (DatabaseWriteError): stop writing
        self.owner = owner
        self.reload = reload
        self.batch: list[Event] = []
        self.frame_no = _next_frame_no(self.state)
        self.frame_encoder = FrameEncoder()  # the previous frame's tree, for deltas
        self.send, self.recv = anyio.create_memory_object_stream[Message](math.inf)
        self.tg: TaskGroup | None = None
        self.nodes_changed_since_frame = False
        self.unpark = False
        """A decision or signal arrived while this activation was parking: the next
        tick starts the run again (`_unpark`)."""
        self.attempts = AttemptRunner(
            run_id,
            input_value=input_value,
            clock=clock,
            send=self.send,
            run_child=run_child,
            tools=tools,
        )
        self.decider = Decider(
            self,
            self.attempts,
            wf=wf,
            input_value=input_value,
            max_concurrency=max_concurrency,
            clock=clock,
            hold_ms=hold_ms,
        )

    @property
    def cancelling(self) -> tuple[str, str] | None:
        """``(reason, source)`` once the run is being cancelled, else None."""
        return self.decider.cancelling

    # ------------------------------------------------------------------ recording

    def emit(self, event: Event) -> None:
        """Fold `event` into the live state and queue it for this tick's append."""
        self.batch.append(event)
        apply_event(self.state, event, seq=self.seq + len(self.batch))
        if isinstance(event, FrameCommitted):
            self.nodes_changed_since_frame = False
        elif isinstance(event, NodeEvent):
            self.nodes_changed_since_frame = True

    async def flush(self) -> None:
        """Append this tick's events in one transaction (`RunWriter`), then publish them."""
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        try:
            self.seq = await self._append_batch(batch)
        except DatabaseWriteError:
            # Locked past the lock wait, disk full, I/O error: the lease is not released
            # either (a second wait); it goes stale and ps/the supervisor see the run
            # as ownerless once this process is gone.
            self.write_failed = True
            raise
        first = self.seq - len(batch) + 1
        if not self.claimed:
            self.claimed = True
            if self.owner is not None:
                await self.store.put_lease(self.owner)
        if self.on_progress is not None:
            for event in batch:
                try:
                    self.on_progress(event)
                except Exception:
                    log.exception("on_progress callback raised; the run goes on")
        # Only a state known to match the log is cached: not while cancelling (an
        # interrupted tick's unflushed events may be folded in), nor if seqs disagree.
        if self.cancelling is None and self.state.seq == self.seq and not self.batch:
            await self.writer.checkpoint(self.state, first_seq=first, tg=self.tg)

    async def _append_batch(self, batch: list[Event]) -> int:
        return await self.writer.append(
            batch,
            expected_seq=self.seq,
            workflow_name=self.wf.name if self.seq == 0 else None,
            rebase=functools.partial(self._rebase, batch),
            retries=_CONFLICT_RETRIES,
        )

    def _owner_id(self) -> str:
        return self.owner.owner_id if self.owner is not None else ""

    async def _rebase(self, batch: list[Event], conflict: SeqConflictError) -> int:
        """Another process appended to our run: re-fold the log, re-apply `batch` on top.

        What they appended (e.g. a cancel request) is handled at the next tick. Returns
        the seq to append `batch` after.

        Raises:
            RunAlreadyExistsError: if the batch started a new run whose id is taken.
            ResumeClaimFailedError: if the batch was our claim (another activation won).
            OwnershipLostError: if they appended more than requests.
        """
        if isinstance(conflict, RunAlreadyExistsError):
            raise conflict
        if not self.claimed:
            raise ResumeClaimFailedError(self.run_id, self._owner_id()) from conflict
        foreign = await self.writer.read_new(self.seq)
        events = self._requests_only([decode_event(r.type, r.data) for r in foreign])
        if self.reload is None:
            raise SeqConflictError(
                self.run_id, expected_seq=self.seq, actual_seq=foreign[-1].seq if foreign else 0
            )
        self.state = await self.reload()
        self.seq = self.state.seq
        for i, event in enumerate(batch, 1):
            apply_event(self.state, event, seq=self.seq + i)
        self._handle_foreign(events)
        return self.seq

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
                self.send.send_nowait(
                    CancelRequested(reason=event.reason or "cancel-requested", source=event.source)
                )
            elif isinstance(event, RunHijackRequested):
                self.send.send_nowait(HijackRequested(target=event.target))
            elif isinstance(event, _DECISION_TYPES):
                terminal = self.decider.terminal
                if terminal is not None and terminal.startswith("waiting-"):
                    # It came in while our park was being appended (the park was
                    # re-applied after it): the decider saw us running and will not
                    # resume us, so we go on ourselves.
                    self.decider.terminal = None
                    self.unpark = True
                self.send.send_nowait(WaitDue(key=None))

    async def _read_foreign(self) -> None:
        """Fold events others appended since our last append, and react to them."""
        if self.batch:
            raise AssertionError("foreign events must be folded before this tick's events")
        rows = await self.writer.read_new(self.seq)
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

    def _unpark(self) -> None:
        """Take back the run this activation has just parked: a new activation."""
        self.unpark = False
        now = self.now()
        owner = self.owner
        self.emit(
            RunStarted(
                run_id=self.run_id,
                timestamp_ms=now,
                workflow_name=self.wf.name,
                activation=self.state.activation + 1,
                owner_id=owner.owner_id if owner is not None else "",
                pid=owner.pid if owner is not None else None,
                host=owner.host if owner is not None else None,
            )
        )
        self.emit(RunStatusChanged(run_id=self.run_id, timestamp_ms=now, status="running"))

    def wake_at(self, key: NodeKey, at_ms: int) -> None:
        """Send `WaitDue(key)` at Unix epoch ms `at_ms` (a timer's fire time, a timeout)."""

        async def sleeper() -> None:
            await self.clock.sleep_ms(max(at_ms - self.clock.now_ms(), 0))
            self.send.send_nowait(WaitDue(key=key))

        if self.tg is not None:
            self.tg.start_soon(sleeper)

    def now(self) -> int:
        """Return the clock's Unix epoch ms."""
        return self.clock.now_ms()

    # ------------------------------------------------------------------ frames

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

    # ------------------------------------------------------------------ the tick

    async def tick(self, msgs: list[Message]) -> None:
        """Handle completions, decide, and append everything in one transaction."""
        decider = self.decider
        attempts = self.attempts
        if self.unpark:
            self._unpark()
        need_render = decider.plan is None
        changed = False  # did a node's state change (so a frame is due)?
        if any(type(m) is ForeignAppended for m in msgs):
            await self._read_foreign()
        for msg in msgs:
            match msg:
                case AttemptEnded():
                    changed = True
                    if decider.attempt_ended(msg):
                        need_render = True
                case TaskBeat():
                    event = attempts.on_beat(msg)
                    if event is not None:
                        self.emit(event)
                case ToolJournaled():
                    tool_event = attempts.on_tool(msg)
                    if tool_event is not None:
                        self.emit(tool_event)
                case BeatTimedOut():
                    self.emit(attempts.timed_out_event(msg))
                case AttemptCancelled():
                    changed = True
                    decider.attempt_cancelled(msg)
                case BackoffElapsed(key=key):
                    changed = True
                    decider.backoff_elapsed(key)
                case CancelRequested(reason=reason, source=source):
                    changed = True
                    decider.request_cancel(reason, source)
                case HijackRequested(target=target):
                    decider.request_hijack(target)  # the stopped attempts change nodes
                case ForeignAppended():
                    changed = True  # folded in above, by `_read_foreign`
                case WaitDue(key=key):
                    decider.wake(key)
                case SubflowWaiting():
                    changed = True
                    decider.subflow_waiting(msg)

        if changed and not need_render and decider.plan is not None:
            # Nothing the last render read has changed: the tree is the same (empty delta).
            self._commit_frame(decider.plan)
        to_spawn = await decider.advance(need_render)
        await self.flush()
        for leaf, attempt in to_spawn:
            attempts.spawn(leaf, attempt, self.state)

    # ------------------------------------------------------------------ workers

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
                try:
                    if not await self.store.renew_lease(self.run_id, self.owner.owner_id, now):
                        owner = msgspec.structs.replace(self.owner, heartbeat_at_ms=now)
                        await self.store.put_lease(owner)
                except DatabaseWriteError:
                    self.write_failed = True  # as in `flush`: no release, no second wait
                    raise
            if foreign:
                self.send.send_nowait(ForeignAppended())

    async def _watch_cancel(self, cancel: Any) -> None:
        await cancel.wait()
        # Optional `reason`/`source` attributes, read when it fires (the CLI passes
        # source "signal" and the signal's name).
        reason = getattr(cancel, "reason", None) or "cancel-requested"
        source = getattr(cancel, "source", None) or "api"
        self.send.send_nowait(CancelRequested(reason=reason, source=source))

    # ------------------------------------------------------------------ driving

    async def drive(self, first_events: list[Event], cancel: Any) -> None:
        """Run the loop until the run finishes, fails or is cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                self.tg = tg
                self.attempts.tg = tg
                for event in first_events:
                    self.emit(event)
                if cancel is not None:
                    tg.start_soon(self._watch_cancel, cancel)
                tg.start_soon(self._heartbeat)
                await self.tick([])
                while self.decider.terminal is None:
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
            # The caller cancelled us: record it, shielded, then let cancellation go on
            # (or, `handing_back`, record nothing: the lease is released below).
            if not _HAND_BACK.get():
                with anyio.CancelScope(shield=True):
                    await self._record_interrupted("interrupted", "api")
            raise
        except KeyboardInterrupt:
            with anyio.CancelScope(shield=True):
                await self._record_interrupted("interrupted", "signal")
            raise
        finally:
            if self.owner is not None and self.claimed and not self.write_failed:
                with anyio.CancelScope(shield=True):
                    try:
                        await self.store.release_lease(self.run_id, self.owner.owner_id)
                    except SmithersError:
                        log.warning("could not release the lease of run %s", self.run_id)
            self.send.close()
            self.recv.close()
            self.attempts.close()
            self.writer.close()

    async def _record_interrupted(self, reason: str, source: str) -> None:
        if self.decider.terminal is not None or not self.claimed:
            return
        self.batch = []
        self.decider.interrupted(reason, source)
        try:
            await self.flush()
        except SmithersError:
            log.exception("could not record the cancellation of run %s", self.run_id)


def _next_frame_no(state: RunState) -> int:
    """The frame number the next render of `state`'s run gets (never reused)."""
    return state.next_frame_no
