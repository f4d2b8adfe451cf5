"""Progress of ``smithers up``: a live status line on a terminal, plain lines otherwise.

The reporter is the run's `on_progress` callback. It folds every event into its own
`RunState` (the same projection readers use), so counts and the failing node come from
the events, not from guesses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text
from smithers.eventstore.events import (
    ApprovalDenied,
    ApprovalGranted,
    Event,
    NodeCancelled,
    NodeEvent,
    NodeFailed,
    NodeFinished,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeWaitingApproval,
    NodeWaitingEvent,
    NodeWaitingTimer,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStatusChanged,
    SignalReceived,
    TimerFired,
)
from smithers.projections import RunState, apply_event

from ._output import STATE_STYLES, error_label, format_time, stdout_console

if TYPE_CHECKING:
    from types import TracebackType

    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.status import Status

__all__ = ("ProgressReporter",)


def _node_label(event: NodeEvent) -> str:
    return f"{event.node_id}#{event.iteration}" if event.iteration else event.node_id


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
    if isinstance(event, NodeWaitingApproval):
        return "waiting", _node_label(event), " (approval)"
    if isinstance(event, NodeWaitingEvent):
        corr = f", correlation {event.correlation_id}" if event.correlation_id else ""
        return "waiting", _node_label(event), f" (signal {event.event_name!r}{corr})"
    if isinstance(event, NodeWaitingTimer):
        return "waiting", _node_label(event), f" (timer, fires at {format_time(event.fires_at_ms)})"
    if isinstance(event, ApprovalGranted | ApprovalDenied):
        verb = "approved" if isinstance(event, ApprovalGranted) else "denied"
        return verb, _node_label(event), f" (by {event.decided_by})" if event.decided_by else ""
    if isinstance(event, SignalReceived):
        return "signal", event.signal_name, f" (from {event.sent_by})" if event.sent_by else ""
    if isinstance(event, TimerFired):
        return "timer", event.timer_id, " fired"
    if isinstance(event, RunStatusChanged) and event.status.startswith("waiting-"):
        return "run", event.status, " (parked)"
    if isinstance(event, RunFinished):
        return "run", "finished", ""
    if isinstance(event, RunFailed):
        return "run", "failed", ""
    if isinstance(event, RunCancelled):
        return "run", "cancelled", f" ({event.reason})" if event.reason else ""
    return None


_VERB_STYLES = {"retrying": "yellow", "run": "bold", "waiting": "cyan", "denied": "red"}


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
        text.append(f"{time.monotonic() - r.started:.1f}s")
        if r.last_event:
            text.append(" · ", style="dim")
            text.append(r.last_event, style="dim")
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
        apply_event(self.state, event, seq=self.seq)
        if isinstance(event, NodeFailed):
            self.last_failed = event
        node = f" {_node_label(event)}" if isinstance(event, NodeEvent) else ""
        self.last_event = f"{type(event).__name__}{node}"
        if isinstance(event, NodeStarted) or self.mode == "quiet":
            return None
        line = describe(event)
        if line is None:
            return None
        verb, subject, detail = line
        offset = (event.timestamp_ms - self.first_ms) / 1000
        stamp = f"[{offset:6.2f}s]"
        if self._console is not None:
            style = _VERB_STYLES.get(verb) or STATE_STYLES.get(verb, "")
            self._console.print(
                Text.assemble((stamp, "dim"), " ", (f"{verb:<9}", style), " ", subject, detail)
            )
        else:
            click.echo(f"{stamp} {verb:<9} {subject}{detail}")
        return None
