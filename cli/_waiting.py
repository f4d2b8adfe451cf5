"""What a run waits for, and the exact command that continues it.

Shared by ``up`` (when a run parks), ``inspect``, ``approvals`` and ``ps``: one wording
and one command per waiting node (``smithers approve``/``deny`` for an approval,
``smithers signal`` for a `WaitForEvent`, ``smithers supervise`` or ``up --resume``
for a timer), and ``ps``'s ``waitingFor`` items. A waiting node (`RunState.waiting`)
is described from its folded record. A `Subflow` node waits as its child run does;
given the run's active descendants (`RunHandle.active_descendants`), what the child
waits for is shown under the node ("ask waits in child run R: approval ok ...",
``kind: "subflow"`` in ``waitingFor``), with a command naming the top run when that is
unambiguous (``approve``/``deny``/``signal`` reach into child runs), else the child.
Formatting only: the states come from the client and the caller passes the current
time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._options import command_line
from ._output import format_clock, format_duration, format_time

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smithers.projections import NodeRecord, RunState

__all__ = (
    "WAITING_RUN_STATUSES",
    "decide_command",
    "needs_descendants",
    "wait_text",
    "waiting_for_json",
    "waiting_for_text",
    "waiting_lines",
)


def decide_command(
    verb: str,
    run_id: str,
    node_id: str,
    iteration: int,
    *,
    mode: str = "approve",
    options: tuple[str, ...] = (),
    db: str | None = None,
) -> str:
    """``smithers approve RUN --node ID [--iteration N] [--select …|--rank …]`` (or deny).

    Safe to paste (`command_line`): every word quoted, ``--`` before a run id
    starting with ``-``.
    """
    opts: list[tuple[str, str | None]] = [("--node", node_id)]
    if iteration:
        opts.append(("--iteration", str(iteration)))
    if verb == "approve" and mode == "select" and options:
        opts.append(("--select", options[0]))
    elif verb == "approve" and mode == "rank" and options:
        opts.append(("--rank", ",".join(options)))
    return command_line(verb, args=[run_id], options=opts, db=db)


def _label(rec: NodeRecord) -> str:
    return f"{rec.node_id}#{rec.iteration}" if rec.iteration else rec.node_id


Tree = dict[str, dict[tuple[str, int], "RunState"]]
"""Active child runs by parent run id, then by the parent's `Subflow` node key."""


def _tree(descendants: Sequence[RunState]) -> Tree:
    tree: Tree = {}
    for child in descendants:  # tree order: a later round of a node wins
        parent = child.subflow_of
        if parent is not None:
            tree.setdefault(parent.run_id, {})[(parent.node_id, parent.iteration)] = child
    return tree


def _child_of(tree: Tree, state: RunState, rec: NodeRecord) -> RunState | None:
    """The active child run a waiting `Subflow` node `rec` of `state` waits in, if any."""
    return tree.get(state.run_id, {}).get((rec.node_id, rec.iteration))


def _counts(
    state: RunState, descendants: Sequence[RunState]
) -> tuple[dict[str, int], dict[str, int]]:
    """Per node id and per signal name: how many places a request naming `state` may reach.

    An approval request looks at `state`'s own node of that id first (whatever its
    state), then at pending approvals in child runs; a signal at every wait for its
    name. A command names `state` only when its count is 1.
    """
    approvals: dict[str, int] = {}
    signals: dict[str, int] = {}
    for rec in state.nodes.values():
        approvals[rec.node_id] = approvals.get(rec.node_id, 0) + 1
    for s in (state, *descendants):
        for rec in s.waiting():
            if s is not state and rec.state == "waiting-approval" and rec.approval is not None:
                approvals[rec.node_id] = approvals.get(rec.node_id, 0) + 1
            elif rec.state == "waiting-event" and rec.wait is not None:
                signals[rec.wait.event_name] = signals.get(rec.wait.event_name, 0) + 1
    return approvals, signals


def waiting_lines(
    state: RunState,
    *,
    now_ms: int,
    db: str | None = None,
    descendants: Sequence[RunState] = (),
) -> list[str]:
    """Lines saying what each waiting node waits for and the command to continue.

    Empty when nothing waits. `now_ms` (Unix epoch ms) gives how long each has waited
    and how long a timer has to go. `descendants` (the run's active child runs,
    `RunHandle.active_descendants`) shows what a waiting `Subflow` node's child waits
    for, recursively; a command names the run `state` when the request is
    unambiguous from there, else the child run.
    """
    approvals, signals = _counts(state, descendants)
    return _lines(state, now_ms, db, _tree(descendants), state.run_id, approvals, signals, "")


def _lines(
    state: RunState,
    now_ms: int,
    db: str | None,
    tree: Tree,
    top: str,
    approvals: dict[str, int],
    signals: dict[str, int],
    where: str,
) -> list[str]:
    """`waiting_lines` of `state`; `where` prefixes each node (the path from `top`)."""
    rid = state.run_id
    lines: list[str] = []
    for rec in state.waiting():
        label = where + _label(rec)
        child = _child_of(tree, state, rec)
        if child is not None:
            inner = f"{label} waits in child run {child.run_id}: "
            sub = _lines(child, now_ms, db, tree, top, approvals, signals, inner)
            lines.extend(sub or [f"  waiting: {inner}{child.status}"])
            continue
        if rec.state == "waiting-approval" and rec.approval is not None:
            ask = top if approvals.get(rec.node_id) == 1 else rid
            a = rec.approval
            what = f"approval ({a.mode})" + (f": {a.title}" if a.title else "")
            waited = format_duration(now_ms - a.requested_at_ms)
            lines.append(f"  waiting: {label}, {what} (for {waited})")
            if a.options:
                lines.append(f"           options: {', '.join(a.options)}")
            for verb, pad in (("approve", ""), ("deny", "   ")):
                cmd = decide_command(
                    verb,
                    ask,
                    rec.node_id,
                    rec.iteration,
                    mode=a.mode,
                    options=a.options,
                    db=db,
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
            to = top if signals.get(w.event_name) == 1 else rid
            opts: list[tuple[str, str | None]] = [("--data", "JSON")]
            if w.correlation_id:
                opts.append(("--correlation", w.correlation_id))
            cmd = command_line("signal", args=[to, w.event_name], options=opts, db=db)
            lines.append(f"  signal:  {cmd}")
        elif rec.state == "waiting-timer" and rec.timer is not None:
            t = rec.timer
            left = t.fires_at_ms - now_ms
            due = f"in {format_duration(left)}" if left > 0 else "due now"
            lines.append(f"  waiting: {label}, timer fires at {format_time(t.fires_at_ms)} ({due})")
            lines.append(
                f"  wake:    {command_line('supervise', db=db)} wakes the run then, "
                f"or run `{command_line('up', options=[('--resume', top)], db=db)}` after "
                "that time"
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


def needs_descendants(state: RunState) -> bool:
    """Whether a waiting node of `state` may be a `Subflow` waiting in a child run.

    Its own approvals, signals and timers have their records; a `Subflow` node's
    wait has none (or a ``subflow:`` event name). Callers read the run's
    descendants only then.
    """
    for rec in state.waiting():
        if rec.state == "waiting-approval" and rec.approval is None:
            return True
        if rec.state == "waiting-timer" and rec.timer is None:
            return True
        if rec.wait is not None and rec.wait.event_name.startswith("subflow:"):
            return True
    return False


def waiting_for_json(state: RunState, descendants: Sequence[RunState] = ()) -> list[dict[str, Any]]:
    """Return the run's waiting nodes as ``ps --json``'s ``waitingFor`` list.

    Each item: ``nodeId``, ``iteration``, ``kind`` (``"approval"``, ``"event"``,
    ``"timer"``, or ``"subflow"`` for a `Subflow` node waiting in a child run found in
    `descendants`), ``since`` (Unix epoch ms the wait began, or null); for an approval
    also ``title``; for an event ``eventName``, ``correlationId`` and ``timeoutAtMs``
    (null: never); for a timer ``firesAtMs``; for a subflow ``childRunId``,
    ``childStatus`` and the child's own ``waitingFor`` (recursively). Empty for a run
    that ended (its nodes may still be recorded as waiting: nothing will resolve them).
    """
    return _waiting_json(state, _tree(descendants))


def _waiting_json(state: RunState, tree: Tree) -> list[dict[str, Any]]:
    if state.status not in WAITING_RUN_STATUSES:
        return []
    out: list[dict[str, Any]] = []
    for rec in state.waiting():
        child = _child_of(tree, state, rec)
        if child is not None:
            inner = _waiting_json(child, tree)
            since = [i["since"] for i in inner if i.get("since") is not None]
            out.append(
                {
                    "nodeId": rec.node_id,
                    "iteration": rec.iteration,
                    "kind": "subflow",
                    "since": min(since) if since else None,
                    "childRunId": child.run_id,
                    "childStatus": child.status,
                    "waitingFor": inner,
                }
            )
            continue
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
    if kind == "subflow":
        inner = waiting_for_text(item.get("waitingFor") or [], now_ms) or item["childStatus"]
        return f"{_node(item)} waits in child run {item['childRunId']}: {inner}"
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
