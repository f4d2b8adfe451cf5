"""Traces of real runs, exported through the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("prometheus_client")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from smithers.eventstore import SQLiteEventStore
from smithers.eventstore.events import NodeFinished, NodeStarted, RunFinished, RunStarted
from smithers.server import SpanExport, Telemetry, otlp_span_export

from smithers import Sequence, Task, read_events, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path


class N(msgspec.Struct):
    n: int


def _boom() -> dict[str, int]:
    raise ValueError("boom")


@workflow("three")
def three(ctx: Any) -> Any:
    return Sequence(
        Task("a", output=N, value={"n": 1}),
        Task("b", output=N, run=lambda: {"n": 2}),
        Task("c", output=N, value={"n": 3}),
    )


@workflow("fails")
def fails(ctx: Any) -> Any:
    return Sequence(Task("ok", output=N, value={"n": 1}), Task("bad", output=N, run=_boom))


def _exporter() -> tuple[InMemorySpanExporter, SpanExport]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory, SpanExport(provider)


async def _created(db: Path) -> None:
    store = await SQLiteEventStore.open(db, create=True)
    await store.close()


async def test_a_run_is_a_root_span_with_one_child_per_attempt(db: Path) -> None:
    await _created(db)
    memory, export = _exporter()
    telemetry = Telemetry(db, spans=export)
    assert await telemetry.catch_up() == 0  # started before the run: every span is new
    result = await run_workflow(three, db=db)
    assert result.status == "finished"
    await telemetry.catch_up()
    await telemetry.close()
    spans = memory.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert [s.name for s in roots] == ["smithers.run three"]
    run = roots[0]
    attempts = [s for s in spans if s.name == "smithers.attempt"]
    assert sorted(str(s.attributes["smithers.node_id"]) for s in attempts) == ["a", "b", "c"]
    for span in attempts:
        assert span.parent is not None
        assert span.parent.span_id == run.context.span_id
        assert span.context.trace_id == run.context.trace_id
        assert span.attributes["smithers.run_id"] == result.run_id
        assert span.attributes["smithers.attempt"] == 1
        assert span.attributes["smithers.state"] == "finished"
        assert span.status.status_code != StatusCode.ERROR
    assert run.attributes["smithers.workflow"] == "three"
    # Start and end times are the events' times (ms -> ns).
    events = [e for _, e in await read_events(result.run_id, db=db)]
    first_start = next(e for e in events if isinstance(e, RunStarted)).timestamp_ms
    end = next(e for e in events if isinstance(e, RunFinished)).timestamp_ms
    assert (run.start_time, run.end_time) == (first_start * 1_000_000, end * 1_000_000)
    b = next(s for s in attempts if s.attributes["smithers.node_id"] == "b")
    b_start = next(e for e in events if isinstance(e, NodeStarted) and e.node_id == "b")
    b_end = next(e for e in events if isinstance(e, NodeFinished) and e.node_id == "b")
    assert b.start_time == b_start.timestamp_ms * 1_000_000
    assert b.end_time == b_end.timestamp_ms * 1_000_000


async def test_a_failed_attempt_and_run_are_error_spans(db: Path) -> None:
    await _created(db)
    memory, export = _exporter()
    telemetry = Telemetry(db, spans=export)
    await telemetry.catch_up()
    result = await run_workflow(fails, db=db)
    assert result.status == "failed"
    await telemetry.catch_up()
    await telemetry.close()
    finished = memory.get_finished_spans()
    spans = {str(s.attributes.get("smithers.node_id", s.name)): s for s in finished}
    assert spans["ok"].status.status_code != StatusCode.ERROR
    assert spans["bad"].status.status_code == StatusCode.ERROR
    assert "boom" in (spans["bad"].status.description or "")
    assert spans["smithers.run fails"].status.status_code == StatusCode.ERROR


async def test_a_restarted_tailer_does_not_export_old_spans_again(db: Path) -> None:
    await run_workflow(three, db=db)
    memory, export = _exporter()
    telemetry = Telemetry(db, spans=export)
    assert await telemetry.catch_up() > 0
    assert memory.get_finished_spans() == ()
    await run_workflow(three, db=db)
    await telemetry.catch_up()
    await telemetry.close()
    assert len([s for s in memory.get_finished_spans() if s.parent is None]) == 1


def test_no_endpoint_no_export(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert otlp_span_export() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    export = otlp_span_export()
    assert export is not None
    export.provider.shutdown()


def test_the_engine_loads_no_telemetry(tmp_path: Path) -> None:
    # The hot path pays nothing for metrics or traces: a run imports none of them.
    program = f"""
import sys, anyio, msgspec
from smithers import Task, run_workflow, workflow

class N(msgspec.Struct):
    n: int

@workflow("one")
def one(ctx):
    return Task("a", output=N, value={{"n": 1}})

assert anyio.run(lambda: run_workflow(one, db={str(tmp_path / "t.db")!r})).status == "finished"
loaded = [m for m in ("smithers.engine.telemetry", "prometheus_client", "opentelemetry")
          if m in sys.modules]
print(loaded)
"""
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr
