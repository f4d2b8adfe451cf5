"""Trace export: the `SpanFold`'s closed spans as OpenTelemetry spans (extra ``otel``).

`SpanExport` records each `ClosedSpan` with the OpenTelemetry SDK, with the events'
times as start and end times: a run is a trace's root span, its attempts are its
children, an attempt's model requests and tool calls are theirs. A parent still
open when its first child ends is started then (with its own start time) and ended
when the log ends it. `otlp_span_export` builds one exporting over OTLP/HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (and the ``otel`` extra is installed).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smithers.engine.telemetry import ClosedSpan, SpanFold, SpanKey

__all__ = ("SpanExport", "otlp_span_export")

log = logging.getLogger("smithers.server")

_MS_NS = 1_000_000


class SpanExport:
    """Records closed spans through an OpenTelemetry `TracerProvider`.

    Args:
        provider: An ``opentelemetry.sdk.trace.TracerProvider`` with its span
            processors (an OTLP exporter, or an in-memory one in tests).
    """

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("smithers")
        self._live: dict[SpanKey, Any] = {}

    def _live_span(self, key: SpanKey, fold: SpanFold) -> Any:
        """Return the live SDK span of `key`, starting it from the fold's open span."""
        span = self._live.get(key)
        if span is not None:
            return span
        open_span = fold.open.get(key)
        if open_span is None:
            return None
        return self._start(key, open_span.parent, open_span.name, open_span.start_ms, fold)

    def _start(
        self, key: SpanKey, parent: SpanKey | None, name: str, start_ms: int, fold: SpanFold
    ) -> Any:
        from opentelemetry import trace

        parent_span = self._live_span(parent, fold) if parent is not None else None
        context = trace.set_span_in_context(parent_span) if parent_span is not None else None
        span = self.tracer.start_span(name, context=context, start_time=start_ms * _MS_NS)
        self._live[key] = span
        return span

    def export(self, closed: list[ClosedSpan], fold: SpanFold) -> None:
        """Record and end each closed span (children first, as the fold returns them)."""
        from opentelemetry.trace import Status, StatusCode

        for done in closed:
            span = self._live.pop(done.key, None)
            if span is None:
                span = self._start(done.key, done.parent, done.name, done.start_ms, fold)
                self._live.pop(done.key, None)
            span.set_attributes(done.attributes)
            if not done.ok:
                span.set_status(Status(StatusCode.ERROR, done.error))
            span.end(end_time=done.end_ms * _MS_NS)

    def flush(self) -> None:
        """Push the spans ended so far to the exporter (at shutdown)."""
        try:
            self.provider.force_flush()
        except Exception as e:  # an unreachable collector must not fail a shutdown
            log.warning("traces: could not flush: %s", e)


def otlp_span_export() -> SpanExport | None:
    """Return a `SpanExport` over OTLP/HTTP if ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

    The exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables (endpoint,
    headers, timeout); the service name is ``OTEL_SERVICE_NAME``, else ``smithers``.

    Returns:
        None if the variable is unset, or (with a warning in the log) if the ``otel``
        extra is not installed.
    """
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
            "pip install 'smithers-py[otel]' to export traces"
        )
        return None
    service = os.environ.get("OTEL_SERVICE_NAME") or "smithers"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return SpanExport(provider)
