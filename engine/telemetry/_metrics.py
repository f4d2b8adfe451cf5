"""The metrics fold: the log's events -> counters, gauges and histograms (issue 13).

`MetricsFold` is a pure fold (no I/O, clock or randomness): `apply` takes one stored
event at a time, in global (position) order, and updates plain numbers. A reader (the
server's ``/metrics`` tailer) feeds it from ``read_all(after_position)`` and renders
its numbers at scrape time, so a restart rebuilds every value by folding the log
again, and an event at or below `MetricsFold.position` is ignored (never counted
twice). Each event costs O(1), except `RunRewound` (O(nodes of that run)).

The reference's event-driven metrics (``smithers.runs.total``, ``smithers.nodes.started``,
``smithers.nodes.finished``, ``smithers.nodes.failed``, approval counters) keep their
names, in Prometheus form (``smithers_runs_total``, ``smithers_nodes_started_total``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smithers.eventstore.events import (
    ApprovalAutoApproved,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodePending,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeWaitingApproval,
    NodeWaitingEvent,
    NodeWaitingTimer,
    RetryTaskStarted,
    RunCancelled,
    RunContinuedAsNew,
    RunFailed,
    RunFinished,
    RunRewound,
    RunsDeleted,
    RunStarted,
    RunStatusChanged,
    TaskHeartbeatTimeout,
    TokenUsageReported,
    ToolCallFinished,
)

if TYPE_CHECKING:
    from smithers.eventstore import StoredEvent
    from smithers.eventstore.events import Event

__all__ = (
    "ATTEMPT_BUCKETS_S",
    "RUN_BUCKETS_S",
    "Histogram",
    "MetricsFold",
)

ATTEMPT_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0
)  # fmt: skip
"""Upper bounds (seconds) of the node attempt duration histogram's buckets."""

RUN_BUCKETS_S: tuple[float, ...] = (
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0
)  # fmt: skip
"""Upper bounds (seconds) of the run duration histogram's buckets."""

_NODE_STATE: dict[type[Event], str] = {
    NodePending: "pending",
    NodeStarted: "running",
    NodeFinished: "finished",
    NodeFailed: "failed",
    NodeCancelled: "cancelled",
    NodeSkipped: "skipped",
    NodeRetrying: "pending",
    NodeWaitingApproval: "waiting-approval",
    NodeWaitingEvent: "waiting-event",
    NodeWaitingTimer: "waiting-timer",
}
"""The node state each node event leaves its node in (as `RunState`'s fold does)."""

_RUN_END: dict[type[Event], str] = {
    RunFinished: "finished",
    RunFailed: "failed",
    RunCancelled: "cancelled",
    RunContinuedAsNew: "continued",
}

_ATTEMPT_END: dict[type[Event], str] = {
    NodeFinished: "finished",
    NodeFailed: "failed",
    NodeCancelled: "cancelled",
}


@dataclass
class Histogram:
    """Cumulative-free bucket counts, a sum and a count, in seconds.

    `counts[i]` counts observations ``<= bounds[i]`` and ``> bounds[i-1]``; the last
    slot (index ``len(bounds)``) counts those above every bound (``+Inf``).
    """

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum_s: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value_s: float) -> None:
        """Count one observation of `value_s` seconds (negative values count as 0)."""
        value_s = max(value_s, 0.0)
        i = 0
        while i < len(self.bounds) and value_s > self.bounds[i]:
            i += 1
        self.counts[i] += 1
        self.sum_s += value_s
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """Return ``[(le, cumulative count), ...]`` with ``"+Inf"`` last (Prometheus form)."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        return out


@dataclass
class _Run:
    """What the fold keeps per run: status history, node state histories, open times."""

    started_at_ms: int
    statuses: list[tuple[int, str]] = field(default_factory=list)
    """``(seq, status)`` in log order; the last is the run's status."""
    nodes: dict[tuple[str, int], list[tuple[int, str]]] = field(default_factory=dict)
    """``(node_id, iteration) -> [(seq, state), ...]``; the last is the node's state."""
    attempts: dict[tuple[str, int, int], int] = field(default_factory=dict)
    """Open attempts: ``(node_id, iteration, attempt) -> started at (epoch ms)``."""
    approvals: set[tuple[str, int]] = field(default_factory=set)
    """Approvals requested and not yet decided."""


class MetricsFold:
    """Counters, gauges and histograms folded from the log (see the module doc).

    Counters only grow (events that happened stay counted after a rewind); gauges
    (runs by status, nodes by state, approvals waiting) follow each run's effective
    history: a `RunRewound` drops the node and status changes after its ``toSeq``, a
    `RetryTaskStarted` puts its reset nodes back to pending, `RunsDeleted` forgets
    the runs ``smithers gc`` deleted. Nodes a fork inherits from its parent are
    counted in the parent only (a fork's log holds the nodes it runs itself).
    """

    def __init__(self) -> None:
        self.position = 0
        """The global position of the last event folded (0: none)."""
        self.events_total = 0
        self.runs_total = 0
        """`RunStarted` events: starts and resumes (the reference's ``smithers.runs.total``)."""
        self.runs_ended: dict[str, int] = {}
        """Terminal events by status: finished, failed, cancelled, continued."""
        self.nodes_started = 0
        self.nodes_finished = 0
        self.nodes_failed = 0
        self.attempts: dict[str, int] = {}
        """Attempts ended, by outcome: finished, failed, cancelled."""
        self.retries = 0
        self.heartbeat_timeouts = 0
        self.approvals: dict[str, int] = {}
        """Approval events by kind: requested, granted, auto-approved, denied."""
        self.tokens: dict[tuple[str, str], int] = {}
        """``(model, kind) -> tokens``; kind: input, output, cache_read, cache_write, reasoning."""
        self.tool_calls: dict[tuple[str, str], int] = {}
        """``(tool_name, status) -> finished tool calls``."""
        self.attempt_duration: dict[str, Histogram] = {}
        """Node attempt durations (NodeStarted to its end), by outcome."""
        self.run_duration: dict[str, Histogram] = {}
        """Run durations (first RunStarted to the terminal event), by final status."""
        self._runs: dict[str, _Run] = {}

    # ---------------------------------------------------------------- reads

    def runs_by_status(self) -> dict[str, int]:
        """Return ``{status: number of runs}`` by each run's current status."""
        counts: dict[str, int] = {}
        for run in self._runs.values():
            if run.statuses:
                status = run.statuses[-1][1]
                counts[status] = counts.get(status, 0) + 1
        return counts

    def nodes_by_state(self) -> dict[str, int]:
        """Return ``{state: number of nodes}`` over every run's ``(node, iteration)``."""
        counts: dict[str, int] = {}
        for run in self._runs.values():
            for history in run.nodes.values():
                state = history[-1][1]
                counts[state] = counts.get(state, 0) + 1
        return counts

    def approvals_waiting(self) -> int:
        """Return the number of approvals requested and not decided."""
        return sum(len(run.approvals) for run in self._runs.values())

    # ---------------------------------------------------------------- the fold

    def apply(self, stored: StoredEvent, event: Event | None) -> bool:
        """Fold one stored event (and its decoded form; None for an unknown type).

        Args:
            stored: The row, for its position and seq.
            event: `decode_event(stored.type, stored.data)`; None skips the event but
                still advances `position`.

        Returns:
            False if the event was at or below `position` (already counted), else True.
        """
        if stored.position <= self.position:
            return False
        self.position = stored.position
        self.events_total += 1
        if event is not None:
            self._apply(stored.seq, event)
        return True

    def _run(self, event: Event) -> _Run:
        run = self._runs.get(event.run_id)
        if run is None:
            run = self._runs[event.run_id] = _Run(started_at_ms=event.timestamp_ms)
        return run

    def _apply(self, seq: int, e: Event) -> None:
        kind = type(e)
        if kind is RunStarted:
            self.runs_total += 1
            self._run(e).statuses.append((seq, "running"))
        elif kind is RunStatusChanged:
            assert isinstance(e, RunStatusChanged)
            self._run(e).statuses.append((seq, e.status))
        elif kind in _RUN_END:
            status = _RUN_END[kind]
            run = self._run(e)
            run.statuses.append((seq, status))
            self.runs_ended[status] = self.runs_ended.get(status, 0) + 1
            hist = self.run_duration.get(status)
            if hist is None:
                hist = self.run_duration[status] = Histogram(RUN_BUCKETS_S)
            hist.observe((e.timestamp_ms - run.started_at_ms) / 1000)
            run.attempts.clear()
        if kind in _NODE_STATE:
            self._node_event(seq, e, _NODE_STATE[kind])
        elif kind is TaskHeartbeatTimeout:
            self.heartbeat_timeouts += 1
        elif kind is RetryTaskStarted:
            assert isinstance(e, RetryTaskStarted)
            run = self._run(e)
            reset = {e.node_id, *e.reset_nodes}
            for key, history in run.nodes.items():
                if key[0] in reset:
                    history.append((seq, "pending"))
        elif kind is RunRewound:
            assert isinstance(e, RunRewound)
            self._rewind(self._run(e), e.to_seq)
        elif kind is RunsDeleted:
            assert isinstance(e, RunsDeleted)
            for run_id in e.run_ids:
                self._runs.pop(run_id, None)
        elif kind in (ApprovalRequested, ApprovalGranted, ApprovalAutoApproved, ApprovalDenied):
            self._approval(e)
        elif kind is TokenUsageReported:
            assert isinstance(e, TokenUsageReported)
            for name, n in (
                ("input", e.input_tokens),
                ("output", e.output_tokens),
                ("cache_read", e.cache_read_tokens),
                ("cache_write", e.cache_write_tokens),
                ("reasoning", e.reasoning_tokens),
            ):
                if n:
                    usage = (e.model, name)
                    self.tokens[usage] = self.tokens.get(usage, 0) + n
        elif kind is ToolCallFinished:
            assert isinstance(e, ToolCallFinished)
            call = (e.tool_name, e.status)
            self.tool_calls[call] = self.tool_calls.get(call, 0) + 1

    def _node_event(self, seq: int, e: Event, state: str) -> None:
        run = self._run(e)
        node_id: str = getattr(e, "node_id", "")
        iteration: int = getattr(e, "iteration", 0)
        run.nodes.setdefault((node_id, iteration), []).append((seq, state))
        if isinstance(e, NodeStarted):
            self.nodes_started += 1
            run.attempts[(node_id, iteration, e.attempt)] = e.timestamp_ms
        elif isinstance(e, NodeRetrying):
            self.retries += 1
        elif type(e) in _ATTEMPT_END:
            outcome = _ATTEMPT_END[type(e)]
            if isinstance(e, NodeFinished):
                self.nodes_finished += 1
            elif isinstance(e, NodeFailed):
                self.nodes_failed += 1
            attempt: int | None = getattr(e, "attempt", None)
            started = run.attempts.pop((node_id, iteration, attempt or 0), None)
            if started is None:
                return  # a cancel of a node never started: not an attempt
            self.attempts[outcome] = self.attempts.get(outcome, 0) + 1
            hist = self.attempt_duration.get(outcome)
            if hist is None:
                hist = self.attempt_duration[outcome] = Histogram(ATTEMPT_BUCKETS_S)
            hist.observe((e.timestamp_ms - started) / 1000)

    def _approval(self, e: Event) -> None:
        run = self._run(e)
        key = (getattr(e, "node_id", ""), getattr(e, "iteration", 0))
        if isinstance(e, ApprovalRequested):
            name = "requested"
            run.approvals.add(key)
        else:
            name = {
                ApprovalGranted: "granted",
                ApprovalAutoApproved: "auto-approved",
                ApprovalDenied: "denied",
            }[type(e)]
            run.approvals.discard(key)
        self.approvals[name] = self.approvals.get(name, 0) + 1

    @staticmethod
    def _rewind(run: _Run, to_seq: int) -> None:
        for key in list(run.nodes):
            history = [change for change in run.nodes[key] if change[0] <= to_seq]
            if history:
                run.nodes[key] = history
            else:
                del run.nodes[key]
        run.statuses = [change for change in run.statuses if change[0] <= to_seq]
        run.attempts.clear()
        run.approvals.clear()
