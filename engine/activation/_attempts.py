"""The attempt runner: the workers of one activation, and what is running or backing off.

It spawns attempts in the run's task group, watches their heartbeats, times their
retry backoffs, and reports every end as a message (`_messages`) on the coordinator's
stream. It records no event: it returns the heartbeat events for the coordinator to
emit, and the coordinator decides everything else.
"""

from __future__ import annotations

import math
import os
import threading
from typing import TYPE_CHECKING, TypeAlias

import anyio
import msgspec
from smithers.eventstore import decode_json
from smithers.eventstore.events import (
    AgentEvent,
    NodeOutput,
    TaskHeartbeatTimeout,
    TokenUsageReported,
    ToolCallFinished,
    ToolCallStarted,
)

from ..agents import AgentPlan, plan_agent_attempt
from ..authoring import Subflow, TaskContext
from ..errors import TaskHeartbeatTimeoutError
from ..tools import DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_TOOL_TIMEOUT_MS, ToolContext
from ._beats import BeatBook
from ._execute import DEFAULT_MAX_TASK_OUTPUT_BYTES, Outcome, error_info, execute_attempt
from ._messages import (
    AttemptCancelled,
    AttemptEnded,
    BackoffElapsed,
    BeatTimedOut,
    Message,
    SubflowWaiting,
    TaskBeat,
    ToolJournaled,
)
from ._subflow import ChildParked, run_subflow, subflow_request

if TYPE_CHECKING:
    from collections.abc import Iterable

    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectSendStream
    from smithers.eventstore.events import Event, TaskHeartbeat
    from smithers.projections import NodeKey, RunState

    from .._clock import Clock
    from ._render import Leaf
    from ._subflow import ChildRunner, SubflowRequest

__all__ = ("AttemptRunner", "RunningAttempt", "ToolSettings")

_IDLE_WORKERS = 8
"""Most pooled worker tasks kept waiting for the next attempt (see `_pooled_worker`)."""
_Job: TypeAlias = "tuple[Leaf, int, anyio.CancelScope, TaskContext, AgentPlan | None]"
"""An attempt handed to a pooled worker: leaf, attempt number, its scope, its context,
and for an agent task what the run's state says about it."""
_JOURNALED = (ToolCallStarted, ToolCallFinished, AgentEvent, NodeOutput, TokenUsageReported)
"""Events an attempt's journal may send (tool calls; an agent's conversation and usage)."""


class ToolSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The run's tool sandbox, handed to every attempt's `ToolContext` (``ctx.tools``).

    As Smithers' ``rootDir``/``allowNetwork``/``maxOutputBytes``/``toolTimeoutMs`` run
    options (`run_workflow` records them in ``RunStarted.config``).
    """

    root_dir: str | None = None
    """The sandbox root; None: the current directory when the first tool is used."""
    allow_network: bool = False
    """Whether `bash` may reach the network."""
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    """Cap on one tool call's returned text, in bytes."""
    tool_timeout_ms: int = DEFAULT_TOOL_TIMEOUT_MS
    """Wall-clock limit of one tool call, in milliseconds."""
    max_task_output_bytes: int = DEFAULT_MAX_TASK_OUTPUT_BYTES
    """Cap on one task output's JSON, in bytes (not a tool setting: carried here because
    every attempt gets these settings)."""


class RunningAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """An attempt started in this activation and not yet ended."""

    attempt: int
    """The attempt number (1-based)."""
    scope: anyio.CancelScope
    """Cancels the attempt's worker."""
    leaf: Leaf
    """The leaf it started from: its outcome is recorded even if a re-render unmounts it."""


class AttemptRunner:
    """The attempts of one activation: running ones, retries waiting, heartbeats.

    Args:
        run_id: The run.
        input_value: ``ctx.input`` handed to each attempt.
        clock: Time source (heartbeat times, backoff sleeps).
        send: The coordinator's stream; every worker reports on it.
        run_child: Runs the child run of a `Subflow` attempt (set by `run_workflow`);
            None fails such attempts.
        tools: The run's tool sandbox (``ctx.tools`` of each attempt); default settings
            rooted in the current directory when None.
    """

    __slots__ = (
        "backoff",
        "beats",
        "cancel_reasons",
        "clock",
        "deferred",
        "idle_workers",
        "input_value",
        "jobs_recv",
        "jobs_send",
        "run_child",
        "run_id",
        "running",
        "send",
        "subflows",
        "tg",
        "tools",
    )

    def __init__(
        self,
        run_id: str,
        *,
        input_value: object,
        clock: Clock,
        send: MemoryObjectSendStream[Message],
        run_child: ChildRunner | None = None,
        tools: ToolSettings | None = None,
    ) -> None:
        self.run_id = run_id
        self.tools = tools if tools is not None else ToolSettings()
        self.run_child = run_child
        self.subflows: dict[NodeKey, SubflowRequest] = {}
        """The child-run requests of running `Subflow` attempts, by node key."""
        self.input_value = input_value
        self.clock = clock
        self.send = send
        self.running: dict[NodeKey, RunningAttempt] = {}
        """Attempts started and not ended, by node key, in start order."""
        self.backoff: dict[NodeKey, anyio.CancelScope] = {}
        """Retries waiting out their delay, by node key: the scope cancels the timer."""
        self.deferred: dict[NodeKey, int] = {}
        """Retries due later than the process keeps sleeping for, by node key: Unix epoch
        ms they are due. The run parks for them (``waiting-timer``); the supervisor or the
        next activation starts them."""
        self.cancel_reasons: dict[NodeKey, str] = {}
        """Why a running attempt was cancelled, recorded on its `NodeCancelled`."""
        self.beats = BeatBook(run_id)
        self.tg: TaskGroup | None = None
        """The run's task group, set by the coordinator before the first spawn."""
        # Attempts go to reusable worker tasks (`_pooled_worker`): a new anyio task per
        # attempt costs ~30 us, a hand-over through a memory stream about half that.
        self.jobs_send, self.jobs_recv = anyio.create_memory_object_stream[_Job](math.inf)
        self.idle_workers = 0
        """Pooled workers waiting for a job (at most `_IDLE_WORKERS`)."""

    def is_busy(self, key: NodeKey) -> bool:
        """True if the task is running or waiting out a retry delay (short or parked)."""
        return key in self.running or key in self.backoff or key in self.deferred

    # ------------------------------------------------------------------ attempts

    def started(self, leaf: Leaf, attempt: int) -> None:
        """Count `attempt` of `leaf` as running (its worker starts with `spawn`)."""
        self.running[leaf.key] = RunningAttempt(
            attempt=attempt, scope=anyio.CancelScope(), leaf=leaf
        )

    def spawn(self, leaf: Leaf, attempt: int, state: RunState) -> None:
        """Start the worker of an attempt counted by `started`, in the run's task group.

        `state` is the run's state now (for the task's last recorded heartbeat).
        """
        assert self.tg is not None
        if leaf.task.kind == "subflow":
            assert isinstance(leaf.task, Subflow)
            key = leaf.key
            self.subflows[key] = subflow_request(leaf.task, self.run_id, key, state.nodes.get(key))
        plan = None
        if leaf.task.kind == "agent":
            plan = plan_agent_attempt(state, state.nodes.get(leaf.key), len(leaf.task.agents))
        tctx = self.task_context(leaf, attempt, state)
        job = (leaf, attempt, self.running[leaf.key].scope, tctx, plan)
        if self.idle_workers:
            self.idle_workers -= 1
            self.jobs_send.send_nowait(job)
        else:
            self.tg.start_soon(self._pooled_worker, job)

    async def _pooled_worker(self, job: _Job) -> None:
        """Run `job`, then the jobs `spawn` hands over, until enough workers are idle."""
        while True:
            await self._worker(*job)
            if self.idle_workers >= _IDLE_WORKERS:
                return
            self.idle_workers += 1
            try:
                job = await self.jobs_recv.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                return

    def close(self) -> None:
        """Close the job stream: idle pooled workers return (the run's end)."""
        self.jobs_send.close()
        self.jobs_recv.close()

    def ended(self, key: NodeKey) -> Leaf:
        """Forget a running attempt that ended; return the leaf it started from."""
        return self.running.pop(key).leaf

    def cancel(self, key: NodeKey, reason: str) -> None:
        """Cancel a running attempt; its `NodeCancelled` gets `reason`.

        A `Subflow` attempt is not cut short: its child run is asked to cancel, records
        its cancellation and ends, and then the attempt ends cancelled.
        """
        self.cancel_reasons[key] = reason
        self._stop(key, reason)

    def cancel_all(self, reason: str) -> None:
        """Cancel every running attempt (keeping a reason already given to one)."""
        for key in self.running:
            self.cancel_reasons.setdefault(key, reason)
            self._stop(key, reason)

    def _stop(self, key: NodeKey, reason: str) -> None:
        child = self.subflows.get(key)
        if child is not None:
            child.cancel.set(f"parent-{reason}", "parent")
        else:
            self.running[key].scope.cancel()

    def task_context(self, leaf: Leaf, attempt: int, state: RunState) -> TaskContext:
        """The `TaskContext` of an attempt; its ``beat`` reports on the stream.

        The last heartbeat is this activation's latest payload, else the one recorded
        in `state`.
        """
        key = leaf.key
        loop_thread = threading.get_ident()
        send = self.send

        def beat(raw: msgspec.Raw | None) -> None:
            msg = TaskBeat(key=key, attempt=attempt, data=raw)
            try:
                if threading.get_ident() == loop_thread:
                    send.send_nowait(msg)
                else:
                    anyio.from_thread.run_sync(send.send_nowait, msg)
            except (anyio.ClosedResourceError, RuntimeError):
                pass  # the attempt outlived its run (an abandoned worker thread)

        raw = self.beats.payload(key)
        if raw is None:
            rec = state.nodes.get(key)
            raw = rec.heartbeat_data if rec is not None else None
        return TaskContext(
            run_id=self.run_id,
            node_id=key[0],
            iteration=key[1],
            attempt=attempt,
            input=self.input_value,
            last_heartbeat=decode_json(raw) if raw is not None else None,  # JSON null -> None
            beat=beat,
            make_tools=self._tool_context,
        )

    def _tool_context(self, tctx: TaskContext) -> ToolContext:
        """The `ToolContext` of the attempt of `tctx`, built on its first ``ctx.tools``.

        Its journal sends each tool event (and an agent's conversation events) to the
        coordinator (`ToolJournaled`), from the event loop's thread or a worker thread
        alike; the tick records it.
        """
        key = (tctx.node_id, tctx.iteration)
        attempt = tctx.attempt
        loop_thread = threading.get_ident()
        send = self.send

        def journal(event: Event) -> None:
            if not isinstance(event, _JOURNALED):
                return
            msg = ToolJournaled(key=key, attempt=attempt, event=event)
            try:
                if threading.get_ident() == loop_thread:
                    send.send_nowait(msg)
                else:
                    anyio.from_thread.run_sync(send.send_nowait, msg)
            except (anyio.ClosedResourceError, RuntimeError):
                pass  # the attempt outlived its run (an abandoned worker thread)

        settings = self.tools
        return ToolContext(
            settings.root_dir if settings.root_dir is not None else os.getcwd(),
            allow_network=settings.allow_network,
            max_output_bytes=settings.max_output_bytes,
            tool_timeout_ms=settings.tool_timeout_ms,
            journal=journal,
            run_id=self.run_id,
            node_id=tctx.node_id,
            iteration=tctx.iteration,
            attempt=attempt,
            idempotency_key=tctx.idempotency_key,
            now_ms=self.clock.now_ms,
        )

    async def _worker(
        self,
        leaf: Leaf,
        attempt: int,
        scope: anyio.CancelScope,
        tctx: TaskContext,
        plan: AgentPlan | None,
    ) -> None:
        outcome: Outcome | None = None
        task = leaf.task
        key = leaf.key
        self.beats.started(key, self.clock.now_ms())
        parked: ChildParked | None = None
        with scope:
            if task.kind == "subflow":
                assert isinstance(task, Subflow)
                ended = await run_subflow(
                    task, self.subflows[key], self.run_child, self.clock, attempt
                )
                if isinstance(ended, ChildParked):
                    parked = ended
                else:
                    outcome = ended
            elif task.heartbeat_timeout_ms is None:
                outcome = await execute_attempt(
                    task, tctx, plan, max_output_bytes=self.tools.max_task_output_bytes
                )
            else:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(
                        self._watchdog, key, attempt, task.heartbeat_timeout_ms, tg.cancel_scope
                    )
                    outcome = await execute_attempt(
                        task, tctx, plan, max_output_bytes=self.tools.max_task_output_bytes
                    )
                    tg.cancel_scope.cancel()
        if key in self.beats.timed_out:
            self.beats.timed_out.discard(key)
            last = self.beats.last_at(key)
            err = TaskHeartbeatTimeoutError(
                key[0],
                key[1],
                attempt,
                task.heartbeat_timeout_ms or 0,
                self.clock.now_ms() - last,
                last,
            )
            outcome = Outcome(error=error_info(err))
        if self.subflows:
            self.subflows.pop(key, None)
        if parked is not None:
            self.send.send_nowait(SubflowWaiting(key=key, attempt=attempt, parked=parked))
        elif outcome is None:
            reason = self.cancel_reasons.pop(key, "cancelled")
            self.send.send_nowait(AttemptCancelled(key=key, attempt=attempt, reason=reason))
        else:
            self.send.send_nowait(AttemptEnded(key=key, attempt=attempt, outcome=outcome))

    async def _watchdog(
        self, key: NodeKey, attempt: int, timeout_ms: int, stop: anyio.CancelScope
    ) -> None:
        """Cancel the attempt when it sends no heartbeat for `timeout_ms`."""
        while True:
            last = self.beats.last_at(key)
            stale = self.clock.now_ms() - last
            if stale >= timeout_ms:
                self.send.send_nowait(
                    BeatTimedOut(
                        key=key, attempt=attempt, last_heartbeat_at_ms=last, timeout_ms=timeout_ms
                    )
                )
                self.beats.timed_out.add(key)
                stop.cancel()
                return
            await self.clock.sleep_ms(timeout_ms - stale)

    # ------------------------------------------------------------------ heartbeats

    def on_beat(self, msg: TaskBeat) -> TaskHeartbeat | None:
        """Note a heartbeat of a running attempt; return the event to record, if any.

        Heartbeats are coalesced (`BeatBook`); one from an attempt that already ended
        is ignored.
        """
        running = self.running.get(msg.key)
        if running is None or running.attempt != msg.attempt:
            return None
        return self.beats.record(msg.key, msg.attempt, msg.data, self.clock.now_ms())

    def on_tool(self, msg: ToolJournaled) -> Event | None:
        """The journaled event to record, or None if its attempt is no longer running.

        It counts as a sign of life of the attempt (for its heartbeat timeout).
        """
        running = self.running.get(msg.key)
        if running is None or running.attempt != msg.attempt:
            return None
        self.beats.started(msg.key, self.clock.now_ms())
        return msg.event

    def timed_out_event(self, msg: BeatTimedOut) -> TaskHeartbeatTimeout:
        """The event recording that the watchdog stopped a silent attempt."""
        return TaskHeartbeatTimeout(
            run_id=self.run_id,
            timestamp_ms=self.clock.now_ms(),
            node_id=msg.key[0],
            iteration=msg.key[1],
            attempt=msg.attempt,
            last_heartbeat_at_ms=msg.last_heartbeat_at_ms,
            timeout_ms=msg.timeout_ms,
        )

    def flush_beat(self, key: NodeKey) -> TaskHeartbeat | None:
        """The event of a payload coalesced away, to record before the attempt's end."""
        return self.beats.flush(key, self.clock.now_ms())

    # ------------------------------------------------------------------ retries

    def wait_backoff(self, key: NodeKey, delay_ms: int) -> None:
        """Start the timer of a retry; `BackoffElapsed` is sent after `delay_ms`."""
        scope = anyio.CancelScope()
        self.backoff[key] = scope
        assert self.tg is not None
        self.tg.start_soon(self._backoff_timer, key, delay_ms, scope)

    def backoff_elapsed(self, key: NodeKey) -> bool:
        """Forget a retry's timer; False if the retry was dropped meanwhile."""
        return self.backoff.pop(key, None) is not None

    def drop_backoffs(self, keys: Iterable[NodeKey]) -> list[NodeKey]:
        """Cancel the timers of pending retries of `keys`; return those that were pending."""
        dropped = []
        for key in list(keys):
            if self.deferred.pop(key, None) is not None:
                dropped.append(key)
                continue
            scope = self.backoff.pop(key, None)
            if scope is None:
                continue
            scope.cancel()
            dropped.append(key)
        return dropped

    async def _backoff_timer(self, key: NodeKey, delay_ms: int, scope: anyio.CancelScope) -> None:
        with scope:
            await self.clock.sleep_ms(delay_ms)
            self.send.send_nowait(BackoffElapsed(key=key))
