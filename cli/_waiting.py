"""What a run waits for, and the exact command that continues it.

Shared by ``up`` (when a run parks), ``inspect``, ``approvals`` and ``ps``: one wording
and one command per waiting node (``smithers approve``/``deny`` for an approval,
``smithers signal`` for a `WaitForEvent`, ``smithers supervise`` or ``up --resume``
for a timer), and ``ps``'s ``waitingFor`` items. A waiting node (`RunState.waiting`)
is described from its folded record. Formatting only: the state comes from the client
and the caller passes the current time.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from ._output import format_clock, format_duration, format_time

if TYPE_CHECKING:
    from smithers.projections import NodeRecord, RunState

__all__ = (
    "WAITING_RUN_STATUSES",
    "decide_command",
    "wait_text",
    "waiting_for_json",
    "waiting_for_text",
    "waiting_lines",
)


def _q(text: str) -> str:
    return shlex.quote(text)


def decide_command(
    verb: str,
    run_id: str,
    node_id: str,
    iteration: int,
    *,
    mode: str = "approve",
    options: tuple[str, ...] = (),
    db_args: str = "",
) -> str:
    """``smithers approve RUN --node ID [--iteration N] [--select …|--rank …]`` (or deny)."""
    cmd = f"smithers {verb} {_q(run_id)} --node {_q(node_id)}"
    if iteration:
        cmd += f" --iteration {iteration}"
    if verb == "approve" and mode == "select" and options:
        cmd += f" --select {_q(options[0])}"
    elif verb == "approve" and mode == "rank" and options:
        cmd += f" --rank {_q(','.join(options))}"
    return cmd + db_args


def _label(rec: NodeRecord) -> str:
    return f"{rec.node_id}#{rec.iteration}" if rec.iteration else rec.node_id


def waiting_lines(state: RunState, *, now_ms: int, db_args: str = "") -> list[str]:
    """Lines saying what each waiting node waits for and the command to continue.

    Empty when nothing waits. `now_ms` (Unix epoch ms) gives how long each has waited
    and how long a timer has to go.
    """
    rid = state.run_id
    lines: list[str] = []
    for rec in state.waiting():
        label = _label(rec)
        if rec.state == "waiting-approval" and rec.approval is not None:
            a = rec.approval
            what = f"approval ({a.mode})" + (f": {a.title}" if a.title else "")
            waited = format_duration(now_ms - a.requested_at_ms)
            lines.append(f"  waiting: {label}, {what} (for {waited})")
            if a.options:
                lines.append(f"           options: {', '.join(a.options)}")
            for verb, pad in (("approve", ""), ("deny", "   ")):
                cmd = decide_command(
                    verb,
                    rid,
                    rec.node_id,
                    rec.iteration,
                    mode=a.mode,
                    options=a.options,
                    db_args=db_args,
                )
                lines.append(f"  {verb}: {pad}{cmd}")
        elif rec.state == "waiting-event" and rec.wait is not None:
            w = rec.wait
            what = f"signal {w.event_name!r}"
            if w.correlation_id:
                what += f" with correlation id {w.correlation_id!r}"
            if w.timeout_at_ms is not None:
                what += f", times out at {format_time(w.timeout_at_ms)}"
            lines.append(f"  waiting: {label}, {what} (for {format_duration(now_ms - w.since_ms)})")
            cmd = f"smithers signal {_q(rid)} {_q(w.event_name)} --data JSON"
            if w.correlation_id:
                cmd += f" --correlation {_q(w.correlation_id)}"
            lines.append(f"  signal:  {cmd}{db_args}")
        elif rec.state == "waiting-timer" and rec.timer is not None:
            t = rec.timer
            left = t.fires_at_ms - now_ms
            due = f"in {format_duration(left)}" if left > 0 else "due now"
            lines.append(f"  waiting: {label}, timer fires at {format_time(t.fires_at_ms)} ({due})")
            lines.append(
                f"  wake:    smithers supervise{db_args} wakes the run then, "
                f"or run `smithers up --resume {_q(rid)}{db_args}` after that time"
            )
        else:
            lines.append(f"  waiting: {label} ({rec.state})")
    return lines


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
