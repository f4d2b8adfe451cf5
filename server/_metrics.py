"""``GET /metrics`` (Prometheus text) and trace export, fed by a tail of the whole log.

`Telemetry` reads the log's global tail (``read_all(after_position)``) on its own
read-only store, folds each event into a `MetricsFold` (and, when traces are on, a
`SpanFold`), and renders the metrics at scrape time through a collector registered
in a private `CollectorRegistry` (never the process-wide one, so several apps in one
process do not collide). Nothing is kept but the folds: a restarted server folds
the log again from position 0 and shows the same numbers, and an event is folded
once (the fold ignores positions it has passed). A scrape first catches up with the
log, so it shows every event committed before it; a background loop keeps the folds
(and the trace export) current between scrapes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from smithers.engine.telemetry import MetricsFold, SpanFold
from smithers.eventstore import SQLiteEventStore, decode_event
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from anyio.abc import TaskGroup
    from smithers.engine.telemetry import Histogram
    from starlette.requests import Request

    from ._traces import SpanExport

__all__ = ("METRICS_ROUTES", "Telemetry", "start_telemetry")

log = logging.getLogger("smithers.server")

READ_BATCH = 5_000
"""Events read per call of ``read_all`` while catching up."""


class _FoldCollector(Collector):
    """Renders a `MetricsFold` as metric families at each scrape."""

    def __init__(self, fold: MetricsFold) -> None:
        self.fold = fold

    def collect(self) -> Iterable[Metric]:
        """Yield the metric families (see the README's "Metrics and traces")."""
        f = self.fold

        def counter(name: str, doc: str, value: int) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, value=value)

        yield counter("smithers_events", "Events folded from the log.", f.events_total)
        yield counter(
            "smithers_runs", "RunStarted events (starts and resumes of runs).", f.runs_total
        )
        ended = CounterMetricFamily(
            "smithers_runs_ended", "Runs that ended, by status.", labels=["status"]
        )
        for status, n in sorted(f.runs_ended.items()):
            ended.add_metric([status], n)
        yield ended
        by_status = GaugeMetricFamily(
            "smithers_runs_by_status", "Runs by their current status.", labels=["status"]
        )
        for status, n in sorted(f.runs_by_status().items()):
            by_status.add_metric([status], n)
        yield by_status
        by_state = GaugeMetricFamily(
            "smithers_nodes_by_state",
            "Nodes (node, iteration) of every run by their current state.",
            labels=["state"],
        )
        for state, n in sorted(f.nodes_by_state().items()):
            by_state.add_metric([state], n)
        yield by_state
        yield counter("smithers_nodes_started", "Node attempts started.", f.nodes_started)
        yield counter("smithers_nodes_finished", "Node attempts finished.", f.nodes_finished)
        yield counter("smithers_nodes_failed", "Node attempts failed.", f.nodes_failed)
        attempts = CounterMetricFamily(
            "smithers_node_attempts", "Node attempts ended, by outcome.", labels=["outcome"]
        )
        for outcome, n in sorted(f.attempts.items()):
            attempts.add_metric([outcome], n)
        yield attempts
        yield counter("smithers_node_retries", "NodeRetrying events (retries).", f.retries)
        yield counter(
            "smithers_heartbeat_timeouts",
            "TaskHeartbeatTimeout events.",
            f.heartbeat_timeouts,
        )
        approvals = CounterMetricFamily(
            "smithers_approvals",
            "Approval events by kind (requested, granted, auto-approved, denied).",
            labels=["kind"],
        )
        for kind, n in sorted(f.approvals.items()):
            approvals.add_metric([kind], n)
        yield approvals
        yield GaugeMetricFamily(
            "smithers_approvals_waiting",
            "Approvals requested and not yet decided.",
            value=f.approvals_waiting(),
        )
        tokens = CounterMetricFamily(
            "smithers_tokens", "Tokens used, by model and kind.", labels=["model", "kind"]
        )
        for (model, kind), n in sorted(f.tokens.items()):
            tokens.add_metric([model, kind], n)
        yield tokens
        tools = CounterMetricFamily(
            "smithers_tool_calls",
            "Tool calls finished, by tool and status.",
            labels=["tool", "status"],
        )
        for (tool, status), n in sorted(f.tool_calls.items()):
            tools.add_metric([tool, status], n)
        yield tools
        yield _histogram(
            "smithers_node_attempt_duration_seconds",
            "Node attempt durations (NodeStarted to its end), by outcome.",
            "outcome",
            f.attempt_duration,
        )
        yield _histogram(
            "smithers_run_duration_seconds",
            "Run durations (first RunStarted to the run's end), by final status.",
            "status",
            f.run_duration,
        )
        yield GaugeMetricFamily(
            "smithers_log_position", "Global position of the last event folded.", value=f.position
        )


def _histogram(name: str, doc: str, label: str, hists: dict[str, Histogram]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for value, hist in sorted(hists.items()):
        family.add_metric([value], hist.cumulative(), sum_value=hist.sum_s)
    return family


async def _open_shielded(db: Path) -> SQLiteEventStore:
    """Open `db` read-only, shielded: a store half-opened by a cancel keeps its thread."""
    with anyio.CancelScope(shield=True):
        return await SQLiteEventStore.open(db, create=False, read_only=True)
    raise AssertionError("unreachable")  # pragma: no cover - a shielded scope swallows nothing


class Telemetry:
    """The folds of one database's log, the registry that renders them, the tailer.

    Args:
        db: The run database (it must exist; the app's lifespan creates it).
        spans: Where closed trace spans go (`SpanExport`), or None for no traces.
        export_backlog: Also export the spans the log had already closed when the
            tailer started (False: a restart does not export a run's spans twice).
    """

    def __init__(
        self, db: Path, *, spans: SpanExport | None = None, export_backlog: bool = False
    ) -> None:
        self.db = db
        self.fold = MetricsFold()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_FoldCollector(self.fold))
        self.spans = spans
        self.span_fold = SpanFold() if spans is not None else None
        self._export = export_backlog
        self._store: SQLiteEventStore | None = None
        self._lock = anyio.Lock()

    async def catch_up(self) -> int:
        """Fold every event appended since the last call; return how many. Awaits I/O.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        async with self._lock:
            store = self._store
            if store is None:
                store = self._store = await _open_shielded(self.db)
            total = 0
            while True:
                rows = await store.read_all(after_position=self.fold.position, limit=READ_BATCH)
                for stored in rows:
                    event = decode_event(stored.type, stored.data)
                    self.fold.apply(stored, event)
                    if event is not None and self.span_fold is not None:
                        closed = self.span_fold.apply(event)
                        if closed and self._export and self.spans is not None:
                            self.spans.export(closed, self.span_fold)
                total += len(rows)
                if len(rows) < READ_BATCH:
                    break
            self._export = True  # from now on, every closed span is new
            return total

    async def follow(self, *, poll_interval_s: float = 1.0) -> None:
        """Catch up every `poll_interval_s` seconds until cancelled (the app's task)."""
        try:
            while True:
                try:
                    await self.catch_up()
                except Exception as e:  # a locked or missing file: try again next time
                    log.warning("metrics: could not read the log: %s", e)
                await anyio.sleep(poll_interval_s)
        finally:
            with anyio.CancelScope(shield=True):
                await self.close()

    async def close(self) -> None:
        """Close the tailer's store and flush the span export (if any)."""
        async with self._lock:  # not under a scrape's catch-up
            store, self._store = self._store, None
            if store is not None:
                await store.close()
        if self.spans is not None:
            self.spans.flush()

    def render(self) -> bytes:
        """Return the metrics in Prometheus text exposition format."""
        return generate_latest(self.registry)


def _telemetry(request: Request) -> Telemetry:
    telemetry: Telemetry = request.app.state.smithers_telemetry
    return telemetry


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the log's metrics in Prometheus text (behind the auth token)."""
    telemetry = _telemetry(request)
    await telemetry.catch_up()
    return Response(telemetry.render(), media_type=CONTENT_TYPE_LATEST)


METRICS_ROUTES = [Route("/metrics", metrics, methods=["GET"])]


def start_telemetry(app: Any, db: Path, tg: TaskGroup) -> Telemetry:
    """Build the app's `Telemetry` (traces when OTLP is configured) and start its tailer.

    Args:
        app: The Starlette app; the telemetry goes to ``app.state.smithers_telemetry``.
        db: The run database (it must exist).
        tg: The lifespan's task group, which runs (and at shutdown cancels) the tailer.

    Returns:
        The telemetry, already following the log.
    """
    from ._traces import otlp_span_export

    telemetry = Telemetry(db, spans=otlp_span_export())
    app.state.smithers_telemetry = telemetry
    tg.start_soon(telemetry.follow)
    return telemetry
