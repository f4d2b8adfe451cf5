"""Progress of ``smithers up``: a live status line on a terminal, plain lines otherwise.

The reporter is the run's `on_progress` callback. It folds every event into its own
`RunState` (the same projection readers use), so counts and the failing node come from
the events, not from guesses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.text import Text
from smithers.eventstore.events import (
    Event,
    LoopFinished,
    LoopIterationStarted,
    NodeCancelled,
    NodeEvent,
    NodeFailed,
    NodeFinished,
    NodeOutput,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeWaitingApproval,
    NodeWaitingEvent,
    NodeWaitingTimer,
    RunCancelled,
    RunContinuedAsNew,
    RunFailed,
    RunFinished,
    RunStatusChanged,
    TimerCancelled,
    TimerFired,
    TokenUsageReported,
    ToolCallFinished,
)
from smithers.projections import WAITING_NODE_STATES, RunState, apply_event

from ._output import STATE_STYLES, error_label, format_clock, format_duration, stdout_console
from ._text import echo, safe

if TYPE_CHECKING:
    from types import TracebackType

    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.status import Status

__all__ = ("ProgressReporter",)


def _node_label(event: NodeEvent) -> str:
    return f"{event.node_id}#{event.iteration}" if event.iteration else event.node_id


def _timer_label(timer_id: str) -> str:
    """``soak`` for timer ``soak:0``, ``soak#2`` for ``soak:2`` (ids are ``node:iteration``)."""
    node_id, _, iteration = timer_id.rpartition(":")
    if not node_id or not iteration.isdigit():
        return timer_id
    return node_id if iteration == "0" else f"{node_id}#{iteration}"


def _at(at_ms: int, from_ms: int) -> str:
    """``12:00:03 (in 30s)``: a wall-clock time and how far it is from `from_ms`."""
    return f"{format_clock(at_ms)[:8]} (in {format_duration(max(at_ms - from_ms, 0))})"


def describe_wait(event: Event, before: RunState) -> tuple[str, str, str] | None:
    """Return ``(verb, subject, detail)`` when `event` starts or ends a node's wait.

    `before` is the run's state before `event` (the approval's title, a wait's signal).
    A node starts waiting (``waiting for approval: deploy (Deploy?)``, ``timer soak
    fires at 12:00:03 (in 30s)``, ``waiting for signal ci.done``); a wait ends (``timer
    soak fired``, ``approved``/``denied deploy``, ``signal ci.done reached ci``, ``timed
    out``). Decisions and signals recorded by another process before this activation
    are not seen here: the node's own end line shows then.
    """
    if isinstance(event, NodeWaitingApproval):
        rec = before.nodes.get((event.node_id, event.iteration))
        title = rec.approval.title if rec is not None and rec.approval is not None else None
        return "waiting", f"for approval: {_node_label(event)}", f" ({title})" if title else ""
    if isinstance(event, NodeWaitingTimer):
        fires = _at(event.fires_at_ms, event.timestamp_ms)
        return "timer", _node_label(event), f" fires at {fires}"
    if isinstance(event, NodeWaitingEvent):
        detail = f" on {_node_label(event)}"
        if event.correlation_id is not None:
            detail += f" (correlation {event.correlation_id})"
        if event.timeout_at_ms is not None:
            detail += f", times out at {_at(event.timeout_at_ms, event.timestamp_ms)}"
        return "waiting", f"for signal {event.event_name}", detail
    if isinstance(event, TimerFired):
        late = f" ({format_duration(event.delay_ms)} late)" if event.delay_ms >= 1000 else ""
        return "timer", _timer_label(event.timer_id), f" fired{late}"
    if isinstance(event, TimerCancelled):
        return "timer", _timer_label(event.timer_id), " cancelled"
    if isinstance(event, NodeStarted | NodeSkipped | NodeFailed):
        rec = before.nodes.get((event.node_id, event.iteration))
        if rec is None or rec.state not in WAITING_NODE_STATES:
            return None
        if rec.state == "waiting-approval":
            decision = rec.approval.decision if rec.approval is not None else None
            by = rec.approval.decided_by if rec.approval is not None else None
            verb = {"granted": "approved", "denied": "denied"}.get(decision or "", "decided")
            return verb, _node_label(event), f" (by {by})" if by else ""
        if rec.state == "waiting-event" and rec.wait is not None:
            if rec.wait.received:
                return "signal", rec.wait.event_name, f" reached {_node_label(event)}"
            return "timed out", _node_label(event), f" (no signal {rec.wait.event_name})"
    return None


def describe(event: Event) -> tuple[str, str, str] | None:
    """Return ``(verb, subject, detail)`` for events worth a line, else None."""
    if isinstance(event, NodeFinished):
        detail = f" (attempt {event.attempt})" if event.attempt > 1 else ""
        return "finished", _node_label(event), detail
    if isinstance(event, NodeFailed):
        err = event.error
        return (
            "failed",
            _node_label(event),
            f" (attempt {event.attempt}): {error_label(err)}",
        )
    if isinstance(event, NodeRetrying):
        wait = f" in {event.delay_ms} ms" if event.delay_ms else ""
        return "retrying", _node_label(event), f" (attempt {event.attempt}{wait})"
    if isinstance(event, NodeSkipped):
        return "skipped", _node_label(event), f" ({event.reason})" if event.reason else ""
    if isinstance(event, NodeCancelled):
        return "cancelled", _node_label(event), f" ({event.reason})" if event.reason else ""
    if isinstance(event, RunFinished):
        return "run", "finished", ""
    if isinstance(event, RunFailed):
        return "run", "failed", ""
    if isinstance(event, RunCancelled):
        return "run", "cancelled", f" ({event.reason})" if event.reason else ""
    if isinstance(event, RunStatusChanged) and event.status.startswith("waiting-"):
        return "run", "parked", f" ({event.status})"
    if isinstance(event, LoopIterationStarted):
        return "loop", event.loop_id, f" pass {event.iteration}"
    if isinstance(event, LoopFinished):
        n = event.iteration + 1
        why = "until" if event.reason == "until" else "max_iterations reached"
        return "loop", event.loop_id, f" done after {n} pass{'es' if n > 1 else ''} ({why})"
    if isinstance(event, RunContinuedAsNew):
        return "run", "continued", f" as {event.new_run_id}"
    if isinstance(event, ToolCallFinished):
        status = "" if event.status == "success" else f" {event.status}"
        error = f": {error_label(event.error)}" if event.error is not None else ""
        return "tool", _node_label(event), f" {event.tool_name}{status}{error}"
    if isinstance(event, TokenUsageReported):
        tokens = f"{event.input_tokens} in / {event.output_tokens} out"
        return "tokens", _node_label(event), f" {tokens} ({event.model})"
    return None


_VERB_STYLES = {
    "tool": "dim",
    "tokens": "dim",
    "retrying": "yellow",
    "run": "bold",
    "loop": "magenta",
    "waiting": "cyan",
    "timer": "cyan",
    "signal": "cyan",
    "approved": "green",
    "denied": "red",
    "timed out": "red",
}


class _StatusLine:
    """The live status line; rendered on every refresh so the elapsed time ticks."""

    def __init__(self, reporter: ProgressReporter) -> None:
        self.reporter = reporter

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        r = self.reporter
        counts = r.state.counts()
        text = Text()
        for state in ("running", "finished", "failed"):
            text.append(f"{state} {counts.get(state, 0)}", style=STATE_STYLES[state])
            text.append(" · ")
        waiting = sum(counts.get(state, 0) for state in WAITING_NODE_STATES)
        if waiting:
            text.append(f"waiting {waiting}", style="cyan")
            text.append(" · ")
        text.append(f"{time.monotonic() - r.started:.1f}s")
        if r.last_event:
            text.append(" · ", style="dim")
            text.append(safe(r.last_event), style="dim")
        yield text


class ProgressReporter:
    """`on_progress` callback of ``up``; also a context manager for the live display.

    Args:
        mode: ``"live"`` (rich status line and coloured lines, for a TTY), ``"plain"``
            (one line per node end, retry and run end) or ``"quiet"`` (track only).
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.state = RunState(run_id="")
        self.seq = 0
        self.started = time.monotonic()
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self.last_event = ""
        self.last_failed: NodeFailed | None = None
        self.chain: list[str] = []
        """Run ids of a continue-as-new chain seen, first to last (empty: none)."""
        self._console: Console | None = None
        self._status: Status | None = None

    def __enter__(self) -> ProgressReporter:
        if self.mode == "live":
            self._console = stdout_console()
            self._status = self._console.status(_StatusLine(self), spinner="dots")
            self._status.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    @property
    def elapsed_ms(self) -> int | None:
        """Milliseconds from the run's first to its last event, None before any."""
        if self.first_ms is None or self.last_ms is None:
            return None
        return self.last_ms - self.first_ms

    def __call__(self, event: Event) -> Any:
        """Fold `event` and show it (called by the engine after each event is recorded)."""
        self.seq += 1
        if self.first_ms is None:
            self.first_ms = event.timestamp_ms
            self.state.run_id = event.run_id
        self.last_ms = event.timestamp_ms
        wait_line = None if self.mode == "quiet" else describe_wait(event, self.state)
        apply_event(self.state, event, seq=self.seq)
        if isinstance(event, NodeFailed):
            self.last_failed = event
        elif isinstance(event, RunContinuedAsNew):
            if not self.chain:
                self.chain.append(event.run_id)
            self.chain.append(event.new_run_id)
        node = f" {_node_label(event)}" if isinstance(event, NodeEvent) else ""
        self.last_event = f"{type(event).__name__}{node}"
        if isinstance(event, NodeOutput):
            # What an agent is saying now, in the live status line.
            lines = [line for line in event.text.splitlines() if line.strip()]
            if lines:
                self.last_event = f"{_node_label(event)}: {lines[-1].strip()[:80]}"
        if wait_line is not None:
            self._show(event, wait_line)
        if isinstance(event, NodeStarted) or self.mode == "quiet":
            return None
        line = describe(event)
        if line is not None:
            self._show(event, line)
        return None

    def _show(self, event: Event, line: tuple[str, str, str]) -> None:
        """Print one progress line: ``[  1.23s] verb      subject detail``."""
        assert self.first_ms is not None
        verb, subject, detail = line
        subject, detail = safe(subject), safe(detail)
        offset = (event.timestamp_ms - self.first_ms) / 1000
        stamp = f"[{offset:6.2f}s]"
        if self._console is not None:
            style = _VERB_STYLES.get(verb) or STATE_STYLES.get(verb, "")
            self._console.print(
                Text.assemble((stamp, "dim"), " ", (f"{verb:<9}", style), " ", subject, detail)
            )
        else:
            echo(f"{stamp} {verb:<9} {subject}{detail}")
