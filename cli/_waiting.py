"""What a run waits for, as ``ps`` shows it (issue 9, item 7).

A waiting node (`RunState.waiting`: an approval, a `WaitForEvent`, a `Timer`) is
described from its folded record: its kind, since when it waits, and what would end
the wait (the approval's title, the signal's name, the timer's fire time). Pure
formatting over a `RunState`; the caller passes the current time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._output import format_clock, format_duration

if TYPE_CHECKING:
    from smithers.projections import NodeRecord, RunState

__all__ = ("WAITING_RUN_STATUSES", "wait_text", "waiting_for_json", "waiting_for_text")

WAITING_RUN_STATUSES = frozenset({"running", "waiting-approval", "waiting-event", "waiting-timer"})
"""Statuses of runs that may have waiting nodes (a live run may hold a timer in-process)."""

_KINDS = {"waiting-approval": "approval", "waiting-event": "event", "waiting-timer": "timer"}


def _since_ms(rec: NodeRecord) -> int | None:
    if rec.state == "waiting-approval" and rec.approval is not None:
        return rec.approval.requested_at_ms
    if rec.state == "waiting-event" and rec.wait is not None:
        return rec.wait.since_ms
    if rec.state == "waiting-timer" and rec.timer is not None:
        return rec.timer.created_at_ms
    return None


def waiting_for_json(state: RunState) -> list[dict[str, Any]]:
    """Return the run's waiting nodes as ``ps --json``'s ``waitingFor`` list.

    Each item: ``nodeId``, ``iteration``, ``kind`` (``"approval"``, ``"event"`` or
    ``"timer"``), ``since`` (Unix epoch ms the wait began, or null); for an approval
    also ``title``; for an event ``eventName``, ``correlationId`` and ``timeoutAtMs``
    (null: never); for a timer ``firesAtMs``. Empty for a run that ended (its nodes may
    still be recorded as waiting: nothing will resolve them).
    """
    if state.status not in WAITING_RUN_STATUSES:
        return []
    out: list[dict[str, Any]] = []
    for rec in state.waiting():
        item: dict[str, Any] = {
            "nodeId": rec.node_id,
            "iteration": rec.iteration,
            "kind": _KINDS[rec.state],
            "since": _since_ms(rec),
        }
        if rec.state == "waiting-approval":
            item["title"] = rec.approval.title if rec.approval is not None else None
        elif rec.state == "waiting-event" and rec.wait is not None:
            item["eventName"] = rec.wait.event_name
            item["correlationId"] = rec.wait.correlation_id
            item["timeoutAtMs"] = rec.wait.timeout_at_ms
        elif rec.state == "waiting-timer" and rec.timer is not None:
            item["firesAtMs"] = rec.timer.fires_at_ms
        out.append(item)
    return out


def _node(item: dict[str, Any]) -> str:
    return f"{item['nodeId']}#{item['iteration']}" if item["iteration"] else item["nodeId"]


def _until(at_ms: int, now_ms: int) -> str:
    left = at_ms - now_ms
    return f"{format_clock(at_ms)[:8]} (" + (
        f"in {format_duration(left)})" if left >= 0 else f"{format_duration(-left)} ago)"
    )


def wait_text(item: dict[str, Any], now_ms: int) -> str:
    """One `waiting_for_json` item as a short phrase, e.g. ``timer soak at 12:00:03 (in 30s)``.

    Args:
        item: An item of `waiting_for_json`.
        now_ms: Now, Unix epoch ms (for "in 30s", "for 5m").
    """
    kind = item["kind"]
    since = item.get("since")
    waited = f" for {format_duration(now_ms - since)}" if since is not None else ""
    if kind == "timer" and item.get("firesAtMs") is not None:
        return f"timer {_node(item)} at {_until(item['firesAtMs'], now_ms)}"
    if kind == "event":
        text = f"signal {item.get('eventName')} ({_node(item)}){waited}"
        if item.get("timeoutAtMs") is not None:
            text += f", times out at {_until(item['timeoutAtMs'], now_ms)}"
        return text
    title = item.get("title")
    return f"approval {_node(item)}" + (f" ({title})" if title else "") + waited


def waiting_for_text(items: list[dict[str, Any]], now_ms: int) -> str:
    """The ``WAITING FOR`` cell of ``ps``: each item's `wait_text`, ``; ``-separated."""
    return "; ".join(wait_text(item, now_ms) for item in items)
