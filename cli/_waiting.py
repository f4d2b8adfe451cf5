"""What a parked run waits for, and the exact command that continues it.

Shared by ``up`` (when a run parks), ``inspect`` and ``approvals``: one wording and
one command per waiting node (``smithers approve``/``deny`` for an approval,
``smithers signal`` for a `WaitForEvent`, ``smithers supervise`` or ``up --resume``
for a timer). Formatting only: the state comes from the client.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from ._output import format_duration, format_time

if TYPE_CHECKING:
    from smithers.projections import NodeRecord, RunState

__all__ = ("decide_command", "waiting_lines")


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
