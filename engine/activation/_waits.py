"""What a waiting node does when the scheduler reaches it: `wait_step` (DESIGN §6, Parking).

A waiting node (`Approval`, `WaitForEvent`, `Timer`, or a task with
``needs_approval=True``) runs no callable. Each time the scheduler hands it over (on
first reach, after a render, on a wake-up, after a decision or signal arrived, on
resume), `wait_step` reads the node's record and says what to record and what happens:
go on waiting (maybe until a deadline), finish with an output, fail, be skipped, or (a
gated task whose approval was granted) run. Pure: no I/O; the clock's reading is an
argument.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec
from smithers.eventstore import encode_json
from smithers.eventstore.events import (
    NULL_RAW,
    ApprovalRequested,
    ErrorInfo,
    NodeCancelled,
    NodeWaitingApproval,
    NodeWaitingEvent,
    NodeWaitingTimer,
    TimerCancelled,
    TimerCreated,
    TimerFired,
)
from smithers.projections import WAITING_NODE_STATES

from ..authoring import Approval, Timer, WaitForEvent

if TYPE_CHECKING:
    from smithers.eventstore.events import Event
    from smithers.projections import NodeRecord, RunState

    from ..authoring import Task
    from ._render import Leaf

__all__ = ("WaitStatus", "WaitStep", "close_waits", "timer_id", "wait_step")

WaitStatus = Literal["waiting-approval", "waiting-event", "waiting-timer"]
"""The run status a waiting node parks its run in."""


class WaitStep(msgspec.Struct, frozen=True, kw_only=True):
    """What a waiting node does now: the events to record, then `outcome`."""

    events: tuple[Event, ...] = ()
    """Recorded first, in order (requests, waiting markers, timer events)."""
    outcome: Literal["wait", "finish", "fail", "skip", "run"]
    """``"wait"``: still waiting; ``"finish"``/``"fail"``: the node ends now with
    `output`/`error` (the engine records one attempt); ``"skip"``: it is skipped with
    `reason`; ``"run"``: a gated task whose approval was granted starts as usual."""
    status: WaitStatus | None = None
    """For ``"wait"``: the run status it parks in."""
    wake_at_ms: int | None = None
    """For ``"wait"``: Unix epoch ms at which to look again (a timer, a timeout)."""
    output: msgspec.Raw = NULL_RAW
    error: ErrorInfo | None = None
    reason: str | None = None


def close_waits(state: RunState, *, now_ms: int, reason: str) -> list[Event]:
    """The events that close what still waits when `state`'s run ends. Pure.

    A run that ends (finished, failed, cancelled) leaves nothing waiting: each node in
    a waiting state gets ``NodeCancelled`` (with `reason`, no attempt), each pending
    timer ``TimerCancelled``, so the log says no decision, signal or timer will act on
    the run any more. The owner records them at the run's end, ``smithers cancel``
    when it ends a parked run itself.
    """
    rid = state.run_id
    out: list[Event] = []
    for rec in state.nodes.values():
        if rec.timer is not None and rec.timer.state == "pending":
            out.append(TimerCancelled(run_id=rid, timestamp_ms=now_ms, timer_id=rec.timer.timer_id))
        if rec.state in WAITING_NODE_STATES:
            out.append(
                NodeCancelled(
                    run_id=rid,
                    timestamp_ms=now_ms,
                    node_id=rec.node_id,
                    iteration=rec.iteration,
                    reason=reason,
                )
            )
    return out


def timer_id(node_id: str, iteration: int) -> str:
    """The stable id of a `Timer` node's timer: ``"<nodeId>:<iteration>"``."""
    return f"{node_id}:{iteration}"


def wait_step(leaf: Leaf, rec: NodeRecord | None, *, run_id: str, now_ms: int) -> WaitStep:
    """Return what the waiting node `leaf` does now, given its record `rec`. No I/O.

    Args:
        leaf: A mounted leaf whose task is an `Approval`, `WaitForEvent`, `Timer`, or a
            task with ``needs_approval=True``.
        rec: The node's record in the run's state (None if not recorded yet).
        run_id: The run, for the events' ``runId``.
        now_ms: Now, Unix epoch ms (timestamps, due timers, timeouts).
    """
    task = leaf.task
    if isinstance(task, Timer):
        return _timer(leaf, task, rec, run_id, now_ms)
    if isinstance(task, WaitForEvent):
        return _event(leaf, task, rec, run_id, now_ms)
    return _approval(leaf, task, rec, run_id, now_ms)


def _approval(leaf: Leaf, task: Task, rec: NodeRecord | None, run_id: str, now: int) -> WaitStep:
    node_id, iteration = leaf.key
    approval = rec.approval if rec is not None else None
    if approval is None or approval.decision is None:
        events: list[Event] = []
        if approval is None:
            if isinstance(task, Approval):
                events.append(
                    ApprovalRequested(
                        run_id=run_id,
                        timestamp_ms=now,
                        node_id=node_id,
                        iteration=iteration,
                        title=task.title,
                        summary=task.summary,
                        metadata=msgspec.Raw(task.metadata) if task.metadata else NULL_RAW,
                        mode=task.mode,
                        options=task.options,
                    )
                )
            else:  # a task with needs_approval=True
                events.append(
                    ApprovalRequested(
                        run_id=run_id,
                        timestamp_ms=now,
                        node_id=node_id,
                        iteration=iteration,
                        title=task.label or f"Run task {node_id!r}?",
                    )
                )
        if approval is None or rec is None or rec.state != "waiting-approval":
            events.append(
                NodeWaitingApproval(
                    run_id=run_id, timestamp_ms=now, node_id=node_id, iteration=iteration
                )
            )
        return WaitStep(events=tuple(events), outcome="wait", status="waiting-approval")
    granted = approval.decision == "granted"
    if not isinstance(task, Approval):  # a gated task
        if granted:
            return WaitStep(outcome="run")
        return WaitStep(outcome="fail", error=_denied(node_id, iteration, approval))
    if not granted and task.on_deny == "fail":
        return WaitStep(outcome="fail", error=_denied(node_id, iteration, approval))
    if not granted and task.on_deny == "skip":
        return WaitStep(outcome="skip", reason="approval-denied")
    if task.mode == "select":
        out: dict[str, object] = {
            "selected": approval.selected if granted else None,
            "notes": approval.note,
        }
    elif task.mode == "rank":
        ranked = list(approval.ranked or task.options) if granted else []
        out = {"ranked": ranked, "notes": approval.note}
    else:
        out = {
            "approved": granted,
            "note": approval.note,
            "decidedBy": approval.decided_by,
            "decidedAt": approval.decided_at_ms,
        }
    return _finish(task, out)


def _denied(node_id: str, iteration: int, approval: object) -> ErrorInfo:
    note = getattr(approval, "note", None)
    by = getattr(approval, "decided_by", None)
    return ErrorInfo(
        name="ApprovalDeniedError",
        message=f"The approval of {node_id!r} was denied"
        + (f" by {by}" if by else "")
        + (f": {note}" if note else "")
        + ".",
        code="APPROVAL_DENIED",
        details=msgspec.Raw(
            encode_json({"nodeId": node_id, "iteration": iteration, "note": note, "decidedBy": by})
        ),
        retryable=False,
    )


def _timer(leaf: Leaf, task: Timer, rec: NodeRecord | None, run_id: str, now: int) -> WaitStep:
    node_id, iteration = leaf.key
    timer = rec.timer if rec is not None else None
    events: list[Event] = []
    if timer is not None and timer.state == "fired":
        fired_at = timer.fired_at_ms if timer.fired_at_ms is not None else timer.fires_at_ms
        return _finish(task, {"firesAtMs": timer.fires_at_ms, "firedAtMs": fired_at})
    tid = timer_id(node_id, iteration)
    if timer is None or timer.state == "cancelled":
        absolute = task.until_ms is not None
        fires_at = task.until_ms if task.until_ms is not None else now + (task.duration_ms or 0)
        events.append(
            TimerCreated(
                run_id=run_id,
                timestamp_ms=now,
                timer_id=tid,
                fires_at_ms=fires_at,
                timer_type="absolute" if absolute else "duration",
                node_id=node_id,
                iteration=iteration,
            )
        )
        waiting = False
    else:
        fires_at = timer.fires_at_ms
        waiting = rec is not None and rec.state == "waiting-timer"
    if now >= fires_at:
        events.append(
            TimerFired(
                run_id=run_id,
                timestamp_ms=now,
                timer_id=tid,
                fires_at_ms=fires_at,
                fired_at_ms=now,
                delay_ms=now - fires_at,
            )
        )
        step = _finish(task, {"firesAtMs": fires_at, "firedAtMs": now})
        return msgspec.structs.replace(step, events=tuple(events))
    if not waiting:
        events.append(
            NodeWaitingTimer(
                run_id=run_id,
                timestamp_ms=now,
                node_id=node_id,
                iteration=iteration,
                fires_at_ms=fires_at,
            )
        )
    return WaitStep(
        events=tuple(events), outcome="wait", status="waiting-timer", wake_at_ms=fires_at
    )


def _event(
    leaf: Leaf, task: WaitForEvent, rec: NodeRecord | None, run_id: str, now: int
) -> WaitStep:
    node_id, iteration = leaf.key
    wait = rec.wait if rec is not None else None
    if wait is None or rec is None or rec.state != "waiting-event":
        if wait is not None and wait.received:
            return _received(task, wait.data)
        timeout_at = now + task.timeout_ms if task.timeout_ms is not None else None
        event = NodeWaitingEvent(
            run_id=run_id,
            timestamp_ms=now,
            node_id=node_id,
            iteration=iteration,
            event_name=task.event,
            correlation_id=task.correlation_id,
            timeout_at_ms=timeout_at,
        )
        return WaitStep(
            events=(event,), outcome="wait", status="waiting-event", wake_at_ms=timeout_at
        )
    if wait.received:
        return _received(task, wait.data)
    if wait.timeout_at_ms is not None and now >= wait.timeout_at_ms:
        if task.on_timeout == "skip":
            return WaitStep(outcome="skip", reason="timeout")
        if task.on_timeout == "continue":
            return WaitStep(outcome="finish", output=msgspec.Raw(b"null"))
        return WaitStep(
            outcome="fail",
            error=ErrorInfo(
                name="WaitForEventTimeoutError",
                message=f"No {task.event!r} signal reached {node_id!r} within "
                f"{task.timeout_ms} ms.",
                code="WAIT_FOR_EVENT_TIMEOUT",
                details=msgspec.Raw(
                    encode_json(
                        {
                            "nodeId": node_id,
                            "iteration": iteration,
                            "eventName": task.event,
                            "timeoutMs": task.timeout_ms,
                        }
                    )
                ),
                retryable=False,
            ),
        )
    return WaitStep(outcome="wait", status="waiting-event", wake_at_ms=wait.timeout_at_ms)


def _received(task: WaitForEvent, data: msgspec.Raw) -> WaitStep:
    """Finish with the signal's payload, validated against the node's output schema."""
    try:
        value = msgspec.json.decode(bytes(data) if data else b"null", type=task.output)
    except msgspec.ValidationError as e:
        return WaitStep(
            outcome="fail",
            error=ErrorInfo(
                name="InvalidOutputError",
                message=f"The {task.event!r} signal's payload does not match "
                f"{task.output_name}: {e}.",
                code="INVALID_OUTPUT",
                retryable=False,
            ),
        )
    return WaitStep(outcome="finish", output=msgspec.Raw(encode_json(value)))


def _finish(task: Task, out: dict[str, object]) -> WaitStep:
    """Finish with `out` converted to the node's output schema (its canonical JSON)."""
    try:
        value = msgspec.convert(out, task.output, from_attributes=False, str_keys=True)
    except msgspec.ValidationError as e:
        return WaitStep(
            outcome="fail",
            error=ErrorInfo(
                name="InvalidOutputError",
                message=f"The output of {task.id!r} does not match {task.output_name}: {e}.",
                code="INVALID_OUTPUT",
                retryable=False,
            ),
        )
    return WaitStep(outcome="finish", output=msgspec.Raw(encode_json(value)))
