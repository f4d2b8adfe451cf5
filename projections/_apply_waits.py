"""Fold steps of waits (approvals, signals, timers), agent replay and heartbeats.

Registered with `_on` on import (`_apply` imports this module); see `apply_event`.
"""

from __future__ import annotations

import msgspec
from smithers.eventstore.events import (
    AgentEvent,
    ApprovalAutoApproved,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    NodeWaitingEvent,
    SignalReceived,
    TaskHeartbeat,
    TimerCancelled,
    TimerCreated,
    TimerFired,
    ToolCallFinished,
)

from ._handlers import _on, _rec
from ._run_state import (
    AgentReplay,
    ApprovalRecord,
    EventWaitRecord,
    NodeRecord,
    RunState,
    SignalRecord,
    TimerRecord,
)

__all__ = ()


# ------------------------------------------------------- waits (approvals, signals, timers)


@_on(ApprovalRequested)
def _approval_requested(s: RunState, e: ApprovalRequested, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    approval = ApprovalRecord(
        requested_at_ms=e.timestamp_ms,
        title=e.title,
        summary=e.summary,
        metadata=e.metadata,
        mode=e.mode,
        options=e.options,
    )
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(rec, approval=approval)


def _decide(s: RunState, node_id: str, iteration: int, at_ms: int, **decision: object) -> None:
    rec = _rec(s, node_id, iteration)
    base = rec.approval or ApprovalRecord(requested_at_ms=at_ms)
    approval = msgspec.structs.replace(base, decided_at_ms=at_ms, **decision)
    s.nodes[(node_id, iteration)] = msgspec.structs.replace(rec, approval=approval)


@_on(ApprovalGranted)
def _approval_granted(s: RunState, e: ApprovalGranted, seq: int) -> None:
    _decide(
        s,
        e.node_id,
        e.iteration,
        e.timestamp_ms,
        decision="granted",
        note=e.note,
        decided_by=e.decided_by,
        selected=e.selected,
        ranked=e.ranked,
    )


@_on(ApprovalAutoApproved)
def _approval_auto(s: RunState, e: ApprovalAutoApproved, seq: int) -> None:
    _decide(s, e.node_id, e.iteration, e.timestamp_ms, decision="granted", auto=True)


@_on(ApprovalDenied)
def _approval_denied(s: RunState, e: ApprovalDenied, seq: int) -> None:
    _decide(
        s,
        e.node_id,
        e.iteration,
        e.timestamp_ms,
        decision="denied",
        note=e.note,
        decided_by=e.decided_by,
    )


@_on(NodeWaitingEvent)
def _waiting_event(s: RunState, e: NodeWaitingEvent, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    wait = EventWaitRecord(
        event_name=e.event_name,
        correlation_id=e.correlation_id,
        timeout_at_ms=e.timeout_at_ms,
        since_seq=seq,
        since_ms=e.timestamp_ms,
    )
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec, state="waiting-event", wait=wait
    )


@_on(SignalReceived)
def _signal(s: RunState, e: SignalReceived, seq: int) -> None:
    # The oldest wait already open for this name (and correlation id, if it names one)
    # gets it: a signal sent before a wait began never resolves that wait.
    target = s.signal_target(e.signal_name, e.correlation_id)
    delivered: tuple[str, int] | None = None
    if target is not None and target.wait is not None:
        delivered = (target.node_id, target.iteration)
        wait = msgspec.structs.replace(
            target.wait, received=True, data=e.data, signal_seq=seq, sent_by=e.sent_by
        )
        s.nodes[delivered] = msgspec.structs.replace(target, wait=wait)
    s.signals.append(
        SignalRecord(
            seq=seq,
            signal_name=e.signal_name,
            timestamp_ms=e.timestamp_ms,
            correlation_id=e.correlation_id,
            sent_by=e.sent_by,
            delivered_to=delivered,
        )
    )


def _timer_node(s: RunState, timer_id: str) -> NodeRecord | None:
    """The node whose timer is `timer_id` (``"<nodeId>:<iteration>"``), or None."""
    node_id, _, iteration = timer_id.rpartition(":")
    rec = s.nodes.get((node_id, int(iteration))) if iteration.isdigit() else None
    if rec is not None and rec.timer is not None and rec.timer.timer_id == timer_id:
        return rec
    for rec in s.nodes.values():
        if rec.timer is not None and rec.timer.timer_id == timer_id:
            return rec
    return None


@_on(TimerCreated)
def _timer_created(s: RunState, e: TimerCreated, seq: int) -> None:
    if e.node_id is None:
        return
    rec = _rec(s, e.node_id, e.iteration)
    timer = TimerRecord(
        timer_id=e.timer_id,
        fires_at_ms=e.fires_at_ms,
        timer_type=e.timer_type,
        created_at_ms=e.timestamp_ms,
    )
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(rec, timer=timer)


@_on(TimerFired)
def _timer_fired(s: RunState, e: TimerFired, seq: int) -> None:
    rec = _timer_node(s, e.timer_id)
    if rec is not None and rec.timer is not None:
        timer = msgspec.structs.replace(rec.timer, state="fired", fired_at_ms=e.fired_at_ms)
        s.nodes[(rec.node_id, rec.iteration)] = msgspec.structs.replace(rec, timer=timer)


@_on(TimerCancelled)
def _timer_cancelled(s: RunState, e: TimerCancelled, seq: int) -> None:
    rec = _timer_node(s, e.timer_id)
    if rec is not None and rec.timer is not None:
        timer = msgspec.structs.replace(rec.timer, state="cancelled")
        s.nodes[(rec.node_id, rec.iteration)] = msgspec.structs.replace(rec, timer=timer)


class _AgentEventType(msgspec.Struct):
    type: str = ""
    agent: str | None = None


_agent_event_type = msgspec.json.Decoder(_AgentEventType)


@_on(AgentEvent)
def _agent_event(s: RunState, e: AgentEvent, seq: int) -> None:
    # The agent of the conversation and its model responses are kept: the next attempt
    # replays them after a crash (or a provider failure).
    try:
        head = _agent_event_type.decode(e.event)
    except msgspec.DecodeError:
        return
    rec = _rec(s, e.node_id, e.iteration)
    if head.type == "start":
        # A conversation is replayed only to the agent that had it (a fallback starts over).
        if rec.agent_replay is None or rec.agent_replay.agent_id != head.agent:
            s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
                rec, agent_replay=AgentReplay(agent_id=head.agent)
            )
        return
    if head.type != "response":
        return
    replay = rec.agent_replay or AgentReplay()
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        agent_replay=msgspec.structs.replace(replay, responses=(*replay.responses, e.event)),
    )


@_on(ToolCallFinished)
def _tool_call_finished(s: RunState, e: ToolCallFinished, seq: int) -> None:
    # An agent's tool result, by the model's call id: the next attempt replays it.
    if e.call_id is None or e.status != "success":
        return
    rec = _rec(s, e.node_id, e.iteration)
    replay = rec.agent_replay or AgentReplay()
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        agent_replay=msgspec.structs.replace(
            replay, tool_results={**replay.tool_results, e.call_id: e.result}
        ),
    )


@_on(TaskHeartbeat)
def _heartbeat(s: RunState, e: TaskHeartbeat, seq: int) -> None:
    rec = _rec(s, e.node_id, e.iteration)
    s.nodes[(e.node_id, e.iteration)] = msgspec.structs.replace(
        rec,
        heartbeat_at_ms=e.timestamp_ms,
        heartbeat_data=e.data if e.has_data else rec.heartbeat_data,
    )
