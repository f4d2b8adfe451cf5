"""The spans fold: the log's events -> trace spans with the events' times (issue 13).

`SpanFold` is a pure fold (no I/O, clock or randomness) like `MetricsFold`: it keeps
the spans still open (`OpenSpan`, by `SpanKey`) and `apply` returns the spans one
event closed (`ClosedSpan`). A run is one span (``smithers.run``, from its first
`RunStarted` to its terminal event); each node attempt is a child span
(``smithers.attempt``, `NodeStarted` to `NodeFinished`/`NodeFailed`/`NodeCancelled`);
each model request of an agent (an `AgentEvent` ``request`` to its ``response``) and
each tool call (`ToolCallStarted` to `ToolCallFinished`) is a child of its attempt.
An exporter (the server's, with the OpenTelemetry SDK) turns them into real spans;
this module imports no OpenTelemetry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from smithers.eventstore import decode_json
from smithers.eventstore.events import (
    AgentEvent,
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodeRetrying,
    NodeStarted,
    RunCancelled,
    RunContinuedAsNew,
    RunFailed,
    RunFinished,
    RunStarted,
    TaskHeartbeatTimeout,
    TokenUsageReported,
    ToolCallFinished,
    ToolCallStarted,
)

if TYPE_CHECKING:
    from smithers.eventstore.events import Event

__all__ = ("AttributeValue", "ClosedSpan", "OpenSpan", "SpanFold", "SpanKey")

AttributeValue = str | int | float | bool
SpanKey = tuple[str | int, ...]
"""``(run_id,)``, ``(run_id, node_id, iteration, attempt)``, then ``"tool", seq`` or
``"request", fingerprint`` for the children of an attempt."""


class OpenSpan(msgspec.Struct, kw_only=True):
    """A span begun and not yet ended."""

    key: SpanKey
    parent: SpanKey | None
    """The parent span's key; None for a run span (a trace's root)."""
    name: str
    start_ms: int
    """Unix epoch ms of the event that began it."""
    attributes: dict[str, AttributeValue]


class ClosedSpan(msgspec.Struct, frozen=True, kw_only=True):
    """A span the log has ended: what an exporter needs to record it."""

    key: SpanKey
    parent: SpanKey | None
    name: str
    start_ms: int
    end_ms: int
    """Unix epoch ms of the event that ended it."""
    attributes: dict[str, AttributeValue]
    ok: bool
    """False for a failed (or cancelled) run, attempt or tool call."""
    error: str | None = None
    """``CODE: message`` of the failure, if any."""


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


class SpanFold:
    """The open spans of every run (see the module doc).

    Each event costs O(1), but an attempt's or a run's end, O(open spans).
    """

    def __init__(self) -> None:
        self.open: dict[SpanKey, OpenSpan] = {}

    def apply(self, event: Event) -> list[ClosedSpan]:
        """Fold one event; return the spans it ended (children before their parent).

        Args:
            event: A decoded event, in its run's log order.

        Returns:
            The closed spans (often none). An end whose begin is not in the fold (a
            log read from its middle) closes nothing.
        """
        kind = type(event)
        if kind is RunStarted:
            assert isinstance(event, RunStarted)
            self._run_started(event)
        elif kind in _RUN_END:
            return self._run_ended(event, _RUN_END[kind])
        elif kind is NodeStarted:
            assert isinstance(event, NodeStarted)
            self._begin(
                _attempt_key(event),
                (event.run_id,),
                "smithers.attempt",
                event.timestamp_ms,
                {
                    "smithers.run_id": event.run_id,
                    "smithers.node_id": event.node_id,
                    "smithers.iteration": event.iteration,
                    "smithers.attempt": event.attempt,
                },
            )
        elif kind in _ATTEMPT_END:
            attempt = getattr(event, "attempt", None)
            if attempt is None:
                return []
            node: Any = event
            key: SpanKey = (event.run_id, node.node_id, node.iteration, attempt)
            error = _error(getattr(event, "error", None))
            state = _ATTEMPT_END[kind]
            return self._end_tree(key, event.timestamp_ms, state, error)
        elif kind is ToolCallStarted:
            assert isinstance(event, ToolCallStarted)
            self._begin(
                (*_attempt_key(event), "tool", event.seq),
                _attempt_key(event),
                f"smithers.tool {event.tool_name}",
                event.timestamp_ms,
                {"smithers.tool_name": event.tool_name, "smithers.tool_seq": event.seq},
            )
        elif kind is ToolCallFinished:
            assert isinstance(event, ToolCallFinished)
            tool_key: SpanKey = (*_attempt_key(event), "tool", event.seq)
            extra: dict[str, AttributeValue] = {
                "smithers.tool_status": event.status,
                "smithers.result_size_bytes": event.result_size_bytes,
            }
            ok = event.status != "error"
            closed = self._end(tool_key, event.timestamp_ms, extra, ok, _error(event.error))
            return [closed] if closed else []
        elif kind is AgentEvent:
            assert isinstance(event, AgentEvent)
            return self._agent_event(event)
        elif kind is TokenUsageReported:
            assert isinstance(event, TokenUsageReported)
            span = self.open.get(_attempt_key(event))
            if span is not None:
                attrs = span.attributes
                attrs["gen_ai.request.model"] = event.model
                for name, n in (
                    ("gen_ai.usage.input_tokens", event.input_tokens),
                    ("gen_ai.usage.output_tokens", event.output_tokens),
                ):
                    prior = attrs.get(name, 0)
                    attrs[name] = (prior if isinstance(prior, int) else 0) + n
        elif kind in (NodeRetrying, TaskHeartbeatTimeout):
            run = self.open.get((event.run_id,))
            if run is not None and kind is NodeRetrying:
                prior = run.attributes.get("smithers.retries", 0)
                run.attributes["smithers.retries"] = (prior if isinstance(prior, int) else 0) + 1
        return []

    # ---------------------------------------------------------------- runs

    def _run_started(self, e: RunStarted) -> None:
        key: SpanKey = (e.run_id,)
        span = self.open.get(key)
        if span is None:
            attrs: dict[str, AttributeValue] = {
                "smithers.run_id": e.run_id,
                "smithers.workflow": e.workflow_name,
                "smithers.activations": 1,
            }
            if e.parent_run_id:
                attrs["smithers.parent_run_id"] = e.parent_run_id
            self._begin(
                key, None, f"smithers.run {e.workflow_name}".rstrip(), e.timestamp_ms, attrs
            )
        else:  # a resume: the same span, one more activation
            prior = span.attributes.get("smithers.activations", 1)
            span.attributes["smithers.activations"] = (prior if isinstance(prior, int) else 1) + 1

    def _run_ended(self, e: Event, status: str) -> list[ClosedSpan]:
        error = _error(getattr(e, "error", None))
        return self._end_tree((e.run_id,), e.timestamp_ms, status, error)

    # ---------------------------------------------------------------- agents

    def _agent_event(self, e: AgentEvent) -> list[ClosedSpan]:
        try:
            body = decode_json(e.event)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return []
        if not isinstance(body, dict):
            return []
        kind, fingerprint = body.get("type"), body.get("fingerprint")
        if not isinstance(fingerprint, str):
            return []
        key: SpanKey = (*_attempt_key(e), "request", fingerprint)
        if kind == "request":
            attrs: dict[str, AttributeValue] = {"smithers.agent_engine": e.engine}
            self._begin(key, _attempt_key(e), "smithers.agent.request", e.timestamp_ms, attrs)
        elif kind == "response":
            closed = self._end(key, e.timestamp_ms, {}, True, None)
            return [closed] if closed else []
        return []

    # ---------------------------------------------------------------- helpers

    def _begin(
        self,
        key: SpanKey,
        parent: SpanKey | None,
        name: str,
        start_ms: int,
        attributes: dict[str, AttributeValue],
    ) -> None:
        if parent is not None and parent not in self.open:
            # Its parent began before the fold's first event: hang it on the run, if open.
            parent = (parent[0],) if (parent[0],) in self.open else None
        self.open[key] = OpenSpan(
            key=key, parent=parent, name=name, start_ms=start_ms, attributes=attributes
        )

    def _end(
        self,
        key: SpanKey,
        end_ms: int,
        attributes: dict[str, AttributeValue],
        ok: bool,
        error: str | None,
    ) -> ClosedSpan | None:
        span = self.open.pop(key, None)
        if span is None:
            return None
        return ClosedSpan(
            key=key,
            parent=span.parent,
            name=span.name,
            start_ms=span.start_ms,
            end_ms=max(end_ms, span.start_ms),
            attributes={**span.attributes, **attributes},
            ok=ok,
            error=error,
        )

    def _end_tree(
        self, key: SpanKey, end_ms: int, state: str, error: str | None
    ) -> list[ClosedSpan]:
        """End `key` and every open span under it (left open by a crash or a cancel)."""
        closed: list[ClosedSpan] = []
        n = len(key)
        for child in [k for k in self.open if len(k) > n and k[:n] == key]:
            span = self._end(child, end_ms, {}, False, "abandoned")
            if span is not None:
                closed.append(span)
        closed.sort(key=lambda s: -len(s.key))
        span = self._end(key, end_ms, {"smithers.state": state}, state == "finished", error)
        if span is not None:
            closed.append(span)
        return closed


def _attempt_key(e: Any) -> SpanKey:
    return (e.run_id, e.node_id, e.iteration, e.attempt)


def _error(info: Any) -> str | None:
    if info is None:
        return None
    code = getattr(info, "code", None) or getattr(info, "name", None) or "ERROR"
    return f"{code}: {getattr(info, 'message', '')}"
