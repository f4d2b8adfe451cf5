"""The end of an activation: cancel, hijack, park, or end the run (`RunEnding`).

A part of `Decider` (its base class), kept apart so each stays readable: what the run
does once nothing new may start. Every decision is an event handed to `emit`; nothing
here touches the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smithers.eventstore.events import (
    NodeCancelled,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStatusChanged,
)

from ..errors import ContinuationStateTooLargeError
from ._execute import error_info
from ._hijacking import HIJACK_REASON, HIJACK_STATUS, hijacked_events
from ._loops import Continuing, continuation_events
from ._mounting import stuck
from ._retries import retry_end
from ._waits import WaitStatus, close_waits

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from smithers.eventstore.events import ContinuationLoaded, ErrorInfo, Event
    from smithers.projections import NodeKey

    from .._clock import Clock
    from ._attempts import AttemptRunner
    from ._loop import RunLoop
    from ._render import Plan
    from ._schedule import Scheduler

__all__ = ("RunEnding",)

_PARK_ORDER: tuple[WaitStatus, ...] = ("waiting-approval", "waiting-event", "waiting-timer")
"""The status a run parks in when nodes wait for different things: the first present."""


class RunEnding:
    """`Decider`'s ending: cancel, hijack, interrupt, finish (park or end the run).

    The attributes are `Decider`'s (see its docstring, which sets them): the ones
    assigned here are this class's slots, the others declared for the checker.
    """

    __slots__ = ("cancelling", "carried", "failing", "hijacking", "terminal")

    attempts: AttemptRunner
    cancelling: tuple[str, str] | None
    carried: ContinuationLoaded | None
    clock: Clock
    continuing: Continuing | None
    emit: Callable[[Event], object]
    failing: ErrorInfo | None
    hijacking: tuple[str | None] | None
    hold_ms: int
    loop: RunLoop
    plan: Plan | None
    run_id: str
    scheduler: Scheduler | None
    terminal: str | None
    waiting: dict[NodeKey, tuple[WaitStatus, int | None]]

    def fail(self, error: ErrorInfo) -> None:
        """Mark the run as failing: nothing new starts; it fails once running tasks end.

        Retries waiting out a backoff will never start: they are closed now.
        """
        if self.failing is None:
            self.failing = error
            self._drop_backoffs(self._retries(), "run-failed")

    def _retries(self) -> list[NodeKey]:
        """Keys of the retries waiting to start (in-process backoffs and deferred ones)."""
        return [*self.attempts.backoff, *self.attempts.deferred]

    def _drop_backoffs(self, keys: Iterable[NodeKey], reason: str) -> None:
        """Cancel pending retries of `keys`, recording NodeCancelled for each."""
        now = self.clock.now_ms()
        for key in self.attempts.drop_backoffs(keys):
            self.emit(
                NodeCancelled(
                    run_id=self.run_id,
                    timestamp_ms=now,
                    node_id=key[0],
                    iteration=key[1],
                    reason=reason,
                )
            )

    def request_cancel(self, reason: str, source: str) -> None:
        """Abort running attempts and pending retries; the run ends cancelled."""
        if self.cancelling is not None:
            return
        self.cancelling = (reason, source)
        self.attempts.cancel_all("cancelled")
        self._drop_backoffs(self._retries(), "cancelled")

    def _may_park_hijacked(self) -> bool:
        """A hijack parks the run unless it is failing, cancelled or continuing as new."""
        return self.failing is None and self.cancelling is None and self.continuing is None

    def request_hijack(self, target: str | None) -> None:
        """Stop running attempts and pending retries; the run parks ``waiting-resume``.

        Nothing new starts; once nothing runs, `finish` records the hijack
        (`hijacked_events`). Ignored while the run is being cancelled.
        """
        if self.cancelling is not None or self.hijacking is not None:
            return
        self.hijacking = (target,)
        self.attempts.cancel_all(HIJACK_REASON)
        self._drop_backoffs(self._retries(), HIJACK_REASON)

    def interrupted(self, reason: str, source: str) -> None:
        """The activation is stopping now: close what runs and end the run cancelled."""
        now = self.clock.now_ms()
        running = self.attempts.running
        for key, attempt in running.items():
            self.emit(
                NodeCancelled(
                    run_id=self.run_id,
                    timestamp_ms=now,
                    node_id=key[0],
                    iteration=key[1],
                    attempt=attempt.attempt,
                    reason=reason,
                )
            )
        running.clear()
        self._drop_backoffs(self._retries(), reason)
        self.cancelling = (reason, source)
        self.finish()

    def finish(self) -> None:
        """Emit the run's end (cancelled, failed, also when stuck, or finished), or park it.

        Nothing runs any more. If nodes wait and the run is neither failing nor being
        cancelled, it parks (``RunStatusChanged`` to a ``waiting-*`` status; the process
        may exit), unless the next wake-up is within `hold_ms`: then it keeps sleeping
        (the wake-up's message brings the next tick). A run that ends closes what
        still waits (`close_waits`: ``NodeCancelled`` for waiting nodes,
        ``TimerCancelled`` for pending timers).
        """
        if self.hijacking is not None and self._may_park_hijacked():
            self._commit_last_frame()
            now = self.clock.now_ms()
            for event in hijacked_events(self.loop.state, self.hijacking[0], now_ms=now):
                self.emit(event)
            self.terminal = HIJACK_STATUS
            return
        if self.failing is None and self.cancelling is None and self.waiting:
            wakes = [at for _, at in self.waiting.values() if at is not None]
            if wakes and min(wakes) - self.clock.now_ms() <= self.hold_ms:
                return  # sleep: the wake-up's message ticks again
            self._commit_last_frame()
            statuses = {status for status, _ in self.waiting.values()}
            status = next(s for s in _PARK_ORDER if s in statuses)
            now = self.clock.now_ms()
            self.emit(RunStatusChanged(run_id=self.run_id, timestamp_ms=now, status=status))
            self.terminal = status
            return
        reason = "cancelled" if self.cancelling is not None else "run-ended"
        for event in close_waits(self.loop.state, now_ms=self.clock.now_ms(), reason=reason):
            self.emit(event)
        self._commit_last_frame()
        self._end()

    def _close_retry(self, now: int) -> None:
        """Record the end of a `retry-task` still open when the run ends (`retry_end`)."""
        ok = self.failing is None and self.cancelling is None
        event = retry_end(self.loop.state, self.run_id, now, ok=ok)
        if event is not None:
            self.emit(event)

    def _commit_last_frame(self) -> None:
        if self.loop.nodes_changed_since_frame and self.plan is not None:
            # A last frame, so the final node states are at a frame too (tasks decided
            # inline after the tick's frame, e.g. static ones, would be missing).
            self.loop._commit_frame(self.plan)

    def _end(self) -> None:
        now = self.clock.now_ms()
        rid = self.run_id
        self._close_retry(now)
        if self.cancelling is not None:
            reason, source = self.cancelling
            self.emit(RunStatusChanged(run_id=rid, timestamp_ms=now, status="cancelled"))
            self.emit(RunCancelled(run_id=rid, timestamp_ms=now, reason=reason, source=source))
            self.terminal = "cancelled"
            return
        if self.failing is None and self.continuing is not None:
            try:
                ended, self.carried = continuation_events(
                    self.loop.state, self.continuing, now_ms=now
                )
            except ContinuationStateTooLargeError as e:
                self.fail(error_info(e))
            else:
                self.emit(ended)
                self.emit(RunStatusChanged(run_id=rid, timestamp_ms=now, status="continued"))
                self.terminal = "continued"
                return
        if self.failing is None and self.scheduler is not None and not self.scheduler.finished:
            self.fail(error_info(stuck(self.scheduler.waiting_on())))
        if self.failing is not None:
            self.emit(RunStatusChanged(run_id=rid, timestamp_ms=now, status="failed"))
            self.emit(RunFailed(run_id=rid, timestamp_ms=now, error=self.failing))
            self.terminal = "failed"
            return
        self.emit(RunStatusChanged(run_id=rid, timestamp_ms=now, status="finished"))
        self.emit(RunFinished(run_id=rid, timestamp_ms=now))
        self.terminal = "finished"
