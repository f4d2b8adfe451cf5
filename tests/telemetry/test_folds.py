"""The telemetry folds, given events: counted once, gauges after rewinds, span trees."""

from __future__ import annotations

from typing import Any

from smithers.engine.telemetry import MetricsFold, SpanFold
from smithers.eventstore import StoredEvent, to_raw
from smithers.eventstore.events import (
    AgentEvent,
    ErrorInfo,
    Event,
    NodeFailed,
    NodeFinished,
    NodePending,
    NodeStarted,
    RetryTaskStarted,
    RunFinished,
    RunRewound,
    RunStarted,
    TaskHeartbeatTimeout,
    TokenUsageReported,
    ToolCallFinished,
    ToolCallStarted,
)


class Log:
    """Events of one run with positions and seqs from 1, times 1 s apart from t0."""

    def __init__(self, run_id: str = "r1") -> None:
        self.run_id = run_id
        self.rows: list[tuple[StoredEvent, Event]] = []

    def add(self, cls: type[Event], **fields: Any) -> Event:
        n = len(self.rows) + 1
        fields.setdefault("timestamp_ms", 1_000_000 + n * 1000)
        event = cls(run_id=self.run_id, **fields)
        stored = StoredEvent(
            position=n,
            run_id=self.run_id,
            seq=n,
            type=cls.__name__,
            timestamp_ms=fields["timestamp_ms"],
            data=b"",
        )
        self.rows.append((stored, event))
        return event

    def fold(self) -> MetricsFold:
        fold = MetricsFold()
        for stored, event in self.rows:
            fold.apply(stored, event)
        return fold


def _err() -> ErrorInfo:
    return ErrorInfo(name="RuntimeError", code="TASK_FAILED", message="boom")


def test_an_event_is_counted_once_however_often_it_is_fed() -> None:
    log = Log()
    log.add(RunStarted, workflow_name="w")
    log.add(NodeStarted, node_id="a", iteration=0, attempt=1)
    log.add(NodeFinished, node_id="a", iteration=0, attempt=1)
    fold = log.fold()
    assert [fold.apply(s, e) for s, e in log.rows] == [False, False, False]
    assert (fold.runs_total, fold.nodes_started, fold.nodes_finished) == (1, 1, 1)
    assert fold.events_total == 3
    assert fold.attempt_duration["finished"].count == 1
    assert fold.attempt_duration["finished"].sum_s == 1.0


def test_unknown_events_advance_the_position_only() -> None:
    fold = MetricsFold()
    row = StoredEvent(position=7, run_id="r", seq=1, type="FromTheFuture", timestamp_ms=1, data=b"")
    assert fold.apply(row, None)
    assert (fold.position, fold.events_total, fold.runs_total) == (7, 1, 0)


def test_a_rewind_drops_later_node_states_but_keeps_the_counters() -> None:
    log = Log()
    log.add(RunStarted, workflow_name="w")  # seq 1
    log.add(NodePending, node_id="a", iteration=0)  # 2
    log.add(NodeStarted, node_id="a", iteration=0, attempt=1)  # 3
    log.add(NodeFinished, node_id="a", iteration=0, attempt=1)  # 4
    log.add(NodeStarted, node_id="b", iteration=0, attempt=1)  # 5
    log.add(NodeFailed, node_id="b", iteration=0, attempt=1, error=_err())  # 6
    assert log.fold().nodes_by_state() == {"finished": 1, "failed": 1}
    log.add(RunRewound, to_frame_no=1, to_seq=2)
    fold = log.fold()
    assert fold.nodes_by_state() == {"pending": 1}
    assert fold.runs_by_status() == {"running": 1}
    assert (fold.nodes_finished, fold.nodes_failed) == (1, 1)


def test_a_retry_task_puts_its_nodes_back_to_pending() -> None:
    log = Log()
    log.add(RunStarted, workflow_name="w")
    log.add(NodeStarted, node_id="a", iteration=0, attempt=1)
    log.add(NodeFinished, node_id="a", iteration=0, attempt=1)
    log.add(NodeStarted, node_id="b", iteration=0, attempt=1)
    log.add(NodeFinished, node_id="b", iteration=0, attempt=1)
    log.add(RetryTaskStarted, node_id="a", iteration=0, reset_dependents=True, reset_nodes=("a",))
    assert log.fold().nodes_by_state() == {"pending": 1, "finished": 1}


def test_heartbeat_timeouts_tokens_and_tool_calls_are_counted() -> None:
    log = Log()
    log.add(RunStarted, workflow_name="w")
    log.add(NodeStarted, node_id="a", iteration=0, attempt=1)
    log.add(TaskHeartbeatTimeout, node_id="a", iteration=0, attempt=1, **_beat())
    log.add(TokenUsageReported, **_usage(input_tokens=5, output_tokens=2))
    log.add(TokenUsageReported, **_usage(input_tokens=1, output_tokens=1, reasoning_tokens=4))
    log.add(ToolCallFinished, **_tool(), status="ok")
    fold = log.fold()
    assert fold.heartbeat_timeouts == 1
    assert fold.tokens == {("m", "input"): 6, ("m", "output"): 3, ("m", "reasoning"): 4}
    assert fold.tool_calls == {("grep", "ok"): 1}


def _beat() -> dict[str, Any]:
    return {"last_heartbeat_at_ms": 1, "timeout_ms": 10}


def _usage(**n: int) -> dict[str, Any]:
    return {"node_id": "a", "iteration": 0, "attempt": 1, "model": "m", "agent": "x", **n}


def _tool() -> dict[str, Any]:
    return {"node_id": "a", "iteration": 0, "attempt": 1, "tool_name": "grep", "seq": 1}


def test_spans_nest_tool_calls_and_requests_under_attempts_under_the_run() -> None:
    log = Log()
    log.add(RunStarted, workflow_name="w")
    log.add(NodeStarted, node_id="a", iteration=0, attempt=1)
    at = {"node_id": "a", "iteration": 0, "attempt": 1, "engine": "test"}
    log.add(AgentEvent, **at, event=to_raw({"type": "request", "fingerprint": "f1"}))
    log.add(AgentEvent, **at, event=to_raw({"type": "response", "fingerprint": "f1"}))
    log.add(TokenUsageReported, **_usage(input_tokens=5, output_tokens=2))
    log.add(ToolCallStarted, **_tool())
    log.add(ToolCallFinished, **_tool(), status="error", error=_err())
    log.add(NodeStarted, node_id="b", iteration=0, attempt=1)  # left open: a crash
    log.add(NodeFinished, node_id="a", iteration=0, attempt=1)
    log.add(RunFinished)
    fold = SpanFold()
    closed = [span for _, event in log.rows for span in fold.apply(event)]
    by_name = {span.name: span for span in closed}
    assert [s.name for s in closed] == [
        "smithers.agent.request",
        "smithers.tool grep",
        "smithers.attempt",
        "smithers.attempt",
        "smithers.run w",
    ]
    run, request, tool = by_name["smithers.run w"], by_name["smithers.agent.request"], closed[1]
    attempt_a = closed[2]
    assert run.parent is None
    assert run.ok
    assert attempt_a.parent == run.key
    assert attempt_a.attributes["smithers.node_id"] == "a"
    assert attempt_a.attributes["gen_ai.usage.input_tokens"] == 5
    assert request.parent == tool.parent == attempt_a.key
    assert (request.start_ms, request.end_ms) == (1_003_000, 1_004_000)
    assert not tool.ok
    assert tool.error == "TASK_FAILED: boom"
    abandoned = closed[3]
    assert abandoned.attributes["smithers.node_id"] == "b"
    assert abandoned.error == "abandoned"
    assert fold.open == {}
