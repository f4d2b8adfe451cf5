"""Telemetry as folds of the log (issue 13): Prometheus metrics and trace spans.

Pure: no I/O, clock or randomness, and no Prometheus or OpenTelemetry import. The
server feeds these folds from the global tail of the log (``read_all``) and renders
them (``/metrics``) or exports them (OTLP); the engine's hot path never calls them.
"""

from __future__ import annotations

from ._metrics import ATTEMPT_BUCKETS_S as ATTEMPT_BUCKETS_S
from ._metrics import RUN_BUCKETS_S as RUN_BUCKETS_S
from ._metrics import Histogram as Histogram
from ._metrics import MetricsFold as MetricsFold
from ._spans import AttributeValue as AttributeValue
from ._spans import ClosedSpan as ClosedSpan
from ._spans import OpenSpan as OpenSpan
from ._spans import SpanFold as SpanFold
from ._spans import SpanKey as SpanKey

__all__ = (
    "ATTEMPT_BUCKETS_S",
    "RUN_BUCKETS_S",
    "AttributeValue",
    "ClosedSpan",
    "Histogram",
    "MetricsFold",
    "OpenSpan",
    "SpanFold",
    "SpanKey",
)
