"""The run loop's decisions: render, start what is ready, record outcomes, end the run.

Synchronous bookkeeping over the run's state (static tasks excepted: they are decided
inline, by awaiting their literal). Every decision is an event handed to the
coordinator's `emit`; nothing here touches the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smithers.eventstore.events import (
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    TimerCancelled,
)

from ..authoring import WAIT_KINDS, active_iteration
from ..errors import SchedulerError
from ._ending import RunEnding
from ._execute import Outcome, error_info, execute_attempt, retry_delay_ms
from ._loops import (
    Continuing,
    continuation_run_id,
    decide_pass_end,
    started_loop_events,
)
from ._mounting import done_check, mount_events, mounted
from ._render import render_state
from ._retries import retries_due_later, spent_retries
from ._schedule import Scheduler
from ._subflow import subflow_waiting_events
from ._waits import WaitStatus, wait_step

if TYPE_CHECKING:
    from collections.abc import Mapping

    from smithers.eventstore.events import ContinuationLoaded, ErrorInfo
    from smithers.projections import NodeKey, NodeRecord

    from .._clock import Clock
    from ..authoring import Workflow
    from ._attempts import AttemptRunner
    from ._loop import RunLoop
    from ._messages import AttemptCancelled, AttemptEnded, SubflowWaiting
    from ._render import Leaf, Plan

__all__ = ("DEFAULT_HOLD_MS", "Decider")

DEFAULT_HOLD_MS = 60_000
"""A run whose next wake-up (a timer, a wait's timeout) is at most this many ms away
keeps its process and sleeps instead of parking."""

_PARK_ORDER: tuple[WaitStatus, ...] = ("waiting-approval", "waiting-event", "waiting-timer")
"""The status a run parks in when nodes wait for different things: the first present."""


class Decider(RunEnding):
    """What the run does next, given its state: one per activation.

    Args:
        loop: The coordinator: its live `state`, `emit` and `_commit_frame`.
        attempts: The attempt runner (running attempts, retries waiting).
        wf: The workflow.
        input_value: ``ctx.input``.
        max_concurrency: Run-wide cap on running tasks.
        clock: Time source of the events' timestamps.
        hold_ms: Sleep instead of parking when the next wake-up is this close (ms).
    """

    __slots__ = (
        "attempts",
        "clock",
        "continuing",
        "emit",
        "fresh",
        "hold_ms",
        "input_value",
        "loop",
        "max_concurrency",
        "plan",
        "reads",
        "retries_resumed",
        "run_id",
        "scheduler",
        "waiting",
        "wf",
    )

    def __init__(
        self,
        loop: RunLoop,
        attempts: AttemptRunner,
        *,
        wf: Workflow,
        input_value: object,
        max_concurrency: int,
        clock: Clock,
        hold_ms: int = DEFAULT_HOLD_MS,
    ) -> None:
        self.loop = loop
        self.emit = loop.emit
        self.attempts = attempts
        self.wf = wf
        self.run_id = loop.run_id
        self.input_value = input_value
        self.max_concurrency = max_concurrency
        self.clock = clock
        self.plan: Plan | None = None
        self.scheduler: Scheduler | None = None
        self.reads: set[str] = set()
        """Node ids whose outputs the last render read."""
        self.fresh = False
        """True while the last render is still what rendering now would return: nothing
        it read changed since and no loop event was recorded after it (DESIGN §11). A
        pass that ends then is decided at once, on that render's plan."""
        self.failing: ErrorInfo | None = None
        """The run's error once it is failing: nothing new starts."""
        self.cancelling: tuple[str, str] | None = None
        """``(reason, source)`` once the run is being cancelled."""
        self.hijacking: tuple[str | None] | None = None
        """``(target,)`` once the run is being hijacked: it parks ``waiting-resume``."""
        self.terminal: str | None = None
        """``"finished"``, ``"failed"``, ``"cancelled"`` or ``"continued"`` once the run's
        end is emitted, or the ``waiting-*`` status it parked in."""
        self.hold_ms = hold_ms
        self.waiting: dict[NodeKey, tuple[WaitStatus, int | None]] = {}
        """Mounted nodes waiting for a decision, a signal or a timer: their park status
        and wake-up time (Unix epoch ms, None if only something outside wakes them)."""
        self.continuing: Continuing | None = None
        """Set once the run is to continue as new: nothing new starts (`_loops`)."""
        self.carried: ContinuationLoaded | None = None
        """For a run ended ``continued``: the new run's ``ContinuationLoaded``."""
        self.retries_resumed = False
        """True once the first render deferred the retries a previous activation
        announced (`_resume_retries`)."""

    # ------------------------------------------------------------------ render

    def render(self) -> bool:
        """Render the tree, commit a frame, mount new tasks, rebuild the scheduler.

        Returns True when the render recorded a loop event (a loop started, a pass ended
        and the next began or the loop finished): render again.
        """
        loop = self.loop
        state = loop.state
        try:
            plan, ctx = render_state(self.wf, state, self.input_value)
        except Exception as e:
            self.fail(error_info(e))
            return False
        self.reads = ctx.reads
        self.fresh = True
        loop._commit_frame(plan)
        attempts = self.attempts
        nodes = state.nodes
        for event in mount_events(plan, nodes, attempts.is_busy, self.run_id, self.clock.now_ms()):
            self.emit(event)
        for key in [k for k in attempts.running if not mounted(plan, k)]:
            attempts.cancel(key, "unmounted")
        self._drop_backoffs(
            [k for k in (*attempts.backoff, *attempts.deferred) if not mounted(plan, k)],
            "unmounted",
        )
        for key in [k for k in self.waiting if not mounted(plan, k)]:
            del self.waiting[key]
            timer = nodes[key].timer if key in nodes else None
            if timer is not None and timer.state == "pending":
                # Its node is gone: the timer would wake nothing (nor the supervisor).
                now = self.clock.now_ms()
                self.emit(
                    TimerCancelled(run_id=self.run_id, timestamp_ms=now, timer_id=timer.timer_id)
                )
        self.plan = plan
        self.scheduler = Scheduler(plan, is_done=done_check(plan, nodes), is_busy=attempts.is_busy)
        for key in attempts.running:
            self.scheduler.claim(key)
        if not self.retries_resumed:
            self.retries_resumed = True
            self._resume_retries(plan, nodes)
        return self._loop_hooks(fresh=True)

    def _resume_retries(self, plan: Plan, nodes: Mapping[NodeKey, NodeRecord]) -> None:
        """Retries an earlier activation announced wait until due (first render only)."""
        for key, due in retries_due_later(plan, nodes, self.clock.now_ms(), self.attempts.is_busy):
            self._retry_after(key, due)

    def _loop_hooks(self, *, fresh: bool) -> bool:
        """Act on what the scheduler met: loops started, passes ended, ContinueAsNew.

        A pass's end is decided only by a `fresh` call (right after the render that
        saw it, so `until` reads the pass's outputs); otherwise a render is asked for.
        Returns True when a re-render is due. Costs nothing for a plan without loops
        or ``ContinueAsNew`` (the scheduler's three lists stay empty): it is called on
        every completion.
        """
        scheduler = self.scheduler
        assert scheduler is not None
        if not (scheduler.loops_started or scheduler.continuations or scheduler.passes_ended):
            return False
        state = self.loop.state
        now = self.clock.now_ms()
        rerender = False
        if scheduler.loops_started:
            for started in started_loop_events(
                scheduler.loops_started, state, run_id=self.run_id, now_ms=now
            ):
                self.emit(started)
                rerender = True  # ctx.iteration follows the loop that started
            scheduler.loops_started.clear()
        if scheduler.continuations:
            group = scheduler.continuations[0]
            if self.continuing is None and group.continue_state is not None:
                self.continuing = Continuing(
                    new_run_id=continuation_run_id(self.run_id, state.ancestry_depth + 1),
                    iteration=active_iteration(state),
                    state=group.continue_state,
                )
            scheduler.continuations.clear()
        if scheduler.passes_ended:
            if not fresh:
                return True
            for group in scheduler.passes_ended:
                assert group.loop is not None
                decision = decide_pass_end(group.loop, run_id=self.run_id, now_ms=now)
                for event in decision.events:
                    self.emit(event)
                    rerender = True
                if decision.error is not None:
                    self.fail(error_info(decision.error))
                if decision.continue_at is not None and self.continuing is None:
                    self.continuing = Continuing(
                        new_run_id=continuation_run_id(self.run_id, state.ancestry_depth + 1),
                        iteration=decision.continue_at,
                        state=bytes(state.continuation),
                        loop_id=group.loop.loop_id,
                    )
            scheduler.passes_ended.clear()
        if rerender:
            self.fresh = False  # loop events recorded: the plan is behind the state
        return rerender

    # ------------------------------------------------------------------ start

    async def advance(self, need_render: bool) -> list[tuple[Leaf, int]]:
        """Render if asked, start every task that is ready, end the run if nothing runs.

        Static tasks are decided inline; the others are counted as running and
        returned as ``(leaf, attempt)``, for the coordinator to spawn once this tick's
        events are appended.
        """
        attempts = self.attempts
        loop = self.loop
        to_spawn: list[tuple[Leaf, int]] = []
        while True:
            if need_render and self._may_start() and self.render():
                continue  # loop events recorded: render again
            need_render = False
            if not self._may_start() or self.scheduler is None:
                break
            scheduler = self.scheduler
            leaves = scheduler.take(self.max_concurrency - len(attempts.running))
            if not leaves:
                break
            progressed = False
            for leaf in leaves:
                key = leaf.key
                rec = loop.state.nodes.get(key)
                task = leaf.task
                if rec is not None and rec.state == "failed" and rec.attempt_count > task.retries:
                    # Failed for good in an earlier activation: it stays failed.
                    scheduler.released(key)
                    self.fail(rec.last_error or error_info(SchedulerError("failed")))
                    continue
                if task.needs_approval or task.kind in WAIT_KINDS:
                    step = wait_step(leaf, rec, run_id=self.run_id, now_ms=self.clock.now_ms())
                    for event in step.events:
                        self.emit(event)
                    if step.outcome == "wait":
                        assert step.status is not None
                        scheduler.released(key)
                        self.waiting[key] = (step.status, step.wake_at_ms)
                        if step.wake_at_ms is not None:
                            loop.wake_at(key, step.wake_at_ms)
                        continue
                    self.waiting.pop(key, None)
                    if step.outcome == "skip":
                        self.emit(
                            NodeSkipped(
                                run_id=self.run_id,
                                timestamp_ms=self.clock.now_ms(),
                                node_id=key[0],
                                iteration=key[1],
                                reason=step.reason,
                            )
                        )
                        scheduler.released(key)
                        scheduler.complete(key)
                        need_render = self._changed(key[0]) or need_render
                        progressed = True
                        continue
                    if step.outcome != "run":  # ends now, as one attempt
                        attempt = (rec.attempt_count if rec is not None else 0) + 1
                        self.emit(
                            NodeStarted(
                                run_id=self.run_id,
                                timestamp_ms=self.clock.now_ms(),
                                node_id=key[0],
                                iteration=key[1],
                                attempt=attempt,
                            )
                        )
                        scheduler.released(key)
                        outcome = Outcome(output=step.output, error=step.error)
                        need_render = self.record_outcome(leaf, attempt, outcome) or need_render
                        progressed = True
                        continue
                attempt = (rec.attempt_count if rec is not None else 0) + 1
                if self.waiting:
                    self.waiting.pop(key, None)  # a Subflow whose child parked: look again
                self.emit(
                    NodeStarted(
                        run_id=self.run_id,
                        timestamp_ms=self.clock.now_ms(),
                        node_id=key[0],
                        iteration=key[1],
                        attempt=attempt,
                    )
                )
                if task.kind == "static":
                    # No side effect: decided and recorded inline, in this same tick.
                    tctx = attempts.task_context(leaf, attempt, loop.state)
                    outcome = await execute_attempt(
                        leaf.task, tctx, max_output_bytes=attempts.tools.max_task_output_bytes
                    )
                    scheduler.released(key)
                    need_render = self.record_outcome(leaf, attempt, outcome) or need_render
                    progressed = True
                else:
                    attempts.started(leaf, attempt)
                    to_spawn.append((leaf, attempt))
            if not progressed and not need_render:
                break
        if not attempts.running and not attempts.backoff and not to_spawn:
            self.finish()
        return to_spawn

    def _may_start(self) -> bool:
        """False once the run is failing, cancelling or continuing as new."""
        return (
            self.failing is None
            and self.cancelling is None
            and self.continuing is None
            and self.hijacking is None
        )

    # ------------------------------------------------------------------ outcomes

    def record_outcome(self, leaf: Leaf, attempt: int, outcome: Outcome) -> bool:
        """Emit the events of an ended attempt; return True if a re-render is needed."""
        task = leaf.task
        key = leaf.key
        node_id, iteration = key
        now = self.clock.now_ms()
        scheduler = self.scheduler
        assert scheduler is not None
        if outcome.error is None:
            self.emit(
                NodeFinished(
                    run_id=self.run_id,
                    timestamp_ms=now,
                    node_id=node_id,
                    iteration=iteration,
                    attempt=attempt,
                    output=outcome.output,
                )
            )
            scheduler.complete(key)
            return self._changed(node_id)
        error = outcome.error
        self.emit(
            NodeFailed(
                run_id=self.run_id,
                timestamp_ms=now,
                node_id=node_id,
                iteration=iteration,
                attempt=attempt,
                error=error,
            )
        )
        retry = self.cancelling is None and self.failing is None and mounted(scheduler.plan, key)
        spent = spent_retries(attempt, error, self.loop.state.nodes.get(key))
        if error.retryable and spent <= task.retries and retry:
            delay = retry_delay_ms(task, attempt, error, now_ms=now)
            self.emit(
                NodeRetrying(
                    run_id=self.run_id,
                    timestamp_ms=now,
                    node_id=node_id,
                    iteration=iteration,
                    attempt=attempt + 1,
                    delay_ms=delay,
                )
            )
            self._retry_after(key, now + delay)
        elif task.continue_on_fail:
            scheduler.complete(key)
            return self._loop_hooks(fresh=self.fresh)
        else:
            self.fail(error)
        return False

    def _changed(self, node_id: str) -> bool:
        """`node_id` is done: return True if a re-render is needed.

        It is when the last render read its output. Otherwise the plan is still what a
        render would return, so a loop pass the completion ended is decided on it now
        (one render per pass, not two) unless something since made it stale.
        """
        if node_id in self.reads:
            self.fresh = False
            return True
        return self._loop_hooks(fresh=self.fresh)

    def attempt_ended(self, msg: AttemptEnded) -> bool:
        """Record an attempt's outcome; return True if a re-render is needed."""
        key = msg.key
        self._flush_beat(key)
        # The leaf it started from: recorded even if a re-render unmounted it.
        leaf = self.attempts.ended(key)
        assert self.scheduler is not None
        self.scheduler.released(key)
        return self.record_outcome(leaf, msg.attempt, msg.outcome)

    def attempt_cancelled(self, msg: AttemptCancelled) -> None:
        """Record that a running attempt was cancelled before it returned."""
        key = msg.key
        self._flush_beat(key)
        self.attempts.ended(key)
        assert self.scheduler is not None
        self.scheduler.released(key)
        self.emit(
            NodeCancelled(
                run_id=self.run_id,
                timestamp_ms=self.clock.now_ms(),
                node_id=key[0],
                iteration=key[1],
                attempt=msg.attempt,
                reason=msg.reason,
            )
        )

    def subflow_waiting(self, msg: SubflowWaiting) -> None:
        """A `Subflow`'s child run parked: the node waits too, as the child does.

        The attempt is closed and the node marked waiting (`subflow_waiting_events`);
        the run parks with the child's status once nothing else can go on. A wake-up
        (the child's next timer or timeout, a decision or signal reaching this run)
        or a resume starts the next attempt, which resumes the same child.
        """
        key = msg.key
        self._flush_beat(key)
        self.attempts.ended(key)
        assert self.scheduler is not None
        self.scheduler.released(key)
        parked = msg.parked
        for event in subflow_waiting_events(
            self.run_id, key, msg.attempt, parked, self.clock.now_ms()
        ):
            self.emit(event)
        if self.cancelling is not None or not mounted(self.scheduler.plan, key):
            return
        known = parked.status in _PARK_ORDER
        status = _PARK_ORDER[_PARK_ORDER.index(parked.status) if known else 0]
        self.waiting[key] = (status, parked.wake_at_ms)
        if parked.wake_at_ms is not None:
            self.loop.wake_at(key, parked.wake_at_ms)

    def _flush_beat(self, key: NodeKey) -> None:
        """Record a coalesced-away payload before the attempt's end, so it is durable."""
        event = self.attempts.flush_beat(key)
        if event is not None:
            self.emit(event)

    def wake(self, key: NodeKey | None) -> None:
        """Look at a waiting node again: `key`, or every one (None).

        `key` when its wake-up time came; None when a decision or a signal arrived.
        """
        if self.scheduler is None:
            return
        deferred = self.attempts.deferred
        for k in list(self.waiting) if key is None else [key]:
            if k in deferred:
                if deferred[k] > self.clock.now_ms():
                    continue  # a retry not due yet: a decision elsewhere does not start it
                del deferred[k]
                self.waiting.pop(k, None)
                self.scheduler.requeue(k)
            elif k in self.waiting:
                self.scheduler.requeue(k)

    def _retry_after(self, key: NodeKey, due_ms: int) -> None:
        """Start `key`'s next attempt at Unix epoch ms `due_ms`.

        Now if it is due; after an in-process timer if it is due within `hold_ms`;
        else the retry is deferred and the node waits like a timer (``waiting-timer``):
        the run parks, and the supervisor (`wake_deadline`) or a resume starts it when
        due, e.g. after a provider's quota reset.
        """
        assert self.scheduler is not None
        delay = due_ms - self.clock.now_ms()
        if delay <= 0:
            self.scheduler.requeue(key)
        elif delay <= self.hold_ms:
            self.attempts.wait_backoff(key, delay)
        else:
            self.attempts.deferred[key] = due_ms
            self.waiting[key] = ("waiting-timer", due_ms)
            self.loop.wake_at(key, due_ms)

    def backoff_elapsed(self, key: NodeKey) -> None:
        """A retry's delay is over: queue the task again, unless the retry was dropped."""
        if self.attempts.backoff_elapsed(key) and self.scheduler is not None:
            self.scheduler.requeue(key)
