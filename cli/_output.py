"""Formatting for the CLI: JSON shapes, tables, times and event lines.

Human output adapts to the terminal: rich tables on a TTY, plain aligned columns
otherwise (pipes, files, tests). JSON output (``--json``) uses Smithers' camelCase keys.

Text from runs (node ids, labels, workflow names, error messages, outputs) is shown
through `safe`, TTY or not: control characters come out as visible escapes, so a
string cannot move the cursor, clear the screen, set the window title (OSC 0) or
write the clipboard (OSC 52). Rich consoles print text as text (no markup).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text
from smithers.engine import parse_child_run_id, shell_command
from smithers.eventstore import decode_json
from smithers.eventstore.errors import error_info_to_json
from smithers.eventstore.events import ErrorInfo

from ._node_output import print_failures
from ._text import echo, json_controls_escaped, safe

if TYPE_CHECKING:
    from smithers.engine import AttemptDetail
    from smithers.eventstore import RunRecord
    from smithers.projections import AttemptRecord, NodeRecord, RunState

__all__ = (
    "attempt_json",
    "echo",
    "safe",
    "shell_command",
    "STATE_STYLES",
    "dumps",
    "echo_json",
    "error_code",
    "error_label",
    "error_json",
    "event_line",
    "format_duration",
    "format_time",
    "inspect_json",
    "node_duration_ms",
    "node_waits_json",
    "nodes_in_tree_order",
    "print_inspect",
    "print_runs",
    "print_table",
    "run_duration_ms",
    "runs_json",
    "stdout_console",
    "stdout_is_tty",
)

STATE_STYLES: Mapping[str, str] = {
    "finished": "green",
    "failed": "red",
    "running": "yellow",
    "pending": "cyan",
    "cancelled": "magenta",
    "skipped": "dim",
    "continued": "green",
    "waiting-resume": "cyan",
    "waiting-approval": "cyan",
    "waiting-event": "cyan",
    "waiting-timer": "cyan",
}
"""Rich styles for run and node states on a terminal."""

_MAX_FIELDS_CHARS = 160


def stdout_is_tty() -> bool:
    """Return True when stdout is an interactive terminal."""
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def stdout_console() -> Console:
    """Return a rich console writing to the current stdout, that prints text as text.

    No markup, emoji codes or auto-highlighting: a string it prints (a label, a node
    id, an error message, an output) shows verbatim, so ``[/]`` neither crashes it
    (``MarkupError``) nor vanishes. Styles come only from `Text` spans.
    """
    return Console(file=sys.stdout, highlight=False, soft_wrap=False, markup=False, emoji=False)


def dumps(value: Any, *, pretty: bool = False) -> str:
    r"""Return `value` (plain JSON values) as JSON text: one line, or indented when `pretty`.

    Non-ASCII text stays as it is, but for DEL, C1 controls and lone surrogates, written
    as ``\u`` escapes (as C0 controls always are): the text holds no control
    character a terminal would act on, and decodes to `value` exactly.
    """
    if pretty:
        text = json.dumps(value, ensure_ascii=False, indent=2)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return json_controls_escaped(text)


def echo_json(value: Any, *, pretty: bool = False) -> None:
    """Print `value` as JSON on stdout."""
    click.echo(dumps(value, pretty=pretty))


# ---------------------------------------------------------------------- units


def format_time(ms: int | None) -> str:
    """Return a Unix epoch ms as local ``YYYY-MM-DD HH:MM:SS``, or ``-``."""
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def format_clock(ms: int) -> str:
    """Return a Unix epoch ms as local ``HH:MM:SS.mmm``."""
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S.%f")[:-3]


def format_duration(ms: int | None) -> str:
    """Return milliseconds as ``850ms``, ``1.52s``, ``3m05s`` or ``2h04m``; ``-`` for None."""
    if ms is None or ms < 0:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f}s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# ---------------------------------------------------------------------- tables


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, styles: Sequence[str | None] = ()
) -> None:
    """Print rows under headers: a rich table on a TTY, aligned plain columns otherwise.

    Args:
        headers: Column titles.
        rows: One sequence of cell strings per row.
        styles: Per-column rich style of each cell, or None to look the cell up in
            `STATE_STYLES` (only on a TTY).
    """
    body = [[safe(c) for c in r] for r in rows]
    if stdout_is_tty():
        table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
        for h in headers:
            table.add_column(h, overflow="fold")
        for row in body:
            cells = []
            for i, cell in enumerate(row):
                style = styles[i] if i < len(styles) else ""
                if style is None:
                    style = STATE_STYLES.get(cell, "")
                cells.append(Text(cell, style=style))
            table.add_row(*cells)
        stdout_console().print(table)
        return
    widths = [len(h) for h in headers]
    for row in body:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    for row in [list(headers), *body]:
        echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# ---------------------------------------------------------------------- errors


def error_json(info: ErrorInfo | None) -> dict[str, Any] | None:
    """Return a stored error in the one ``--json`` error shape (`error_info_to_json`)."""
    return error_info_to_json(info)


def error_code(error: ErrorInfo | Mapping[str, Any] | None) -> str:
    """Return an error's code; ``WORKFLOW_EXECUTION_FAILED`` for an untyped one."""
    code: Any = error.code if isinstance(error, ErrorInfo) else (error or {}).get("code")
    return code if isinstance(code, str) and code else "WORKFLOW_EXECUTION_FAILED"


def error_text(error: ErrorInfo | Mapping[str, Any] | None) -> str:
    """Return ``message``, prefixed with the exception name for untyped errors.

    One line, through `safe`: a newline or escape sequence in the message is shown.
    """
    if error is None:
        return "-"
    fields: Mapping[str, Any] = (
        {"name": error.name, "message": error.message, "code": error.code}
        if isinstance(error, ErrorInfo)
        else error
    )
    name, message, code = fields.get("name"), fields.get("message"), fields.get("code")
    if not code and name:
        return safe(f"{name}: {message}")
    return safe(message)


def error_label(error: ErrorInfo | Mapping[str, Any] | None) -> str:
    """Return ``[CODE] message`` for typed errors, ``Name: message`` for plain exceptions."""
    if error is None:
        return ""
    code: Any = error.code if isinstance(error, ErrorInfo) else error.get("code")
    return f"[{code}] {error_text(error)}" if code else error_text(error)


# ---------------------------------------------------------------------- ps


def runs_json(runs: Iterable[RunRecord]) -> list[dict[str, Any]]:
    """Return runs as ``ps --json`` objects (camelCase keys).

    The run's wall time (what ``ps`` shows) is ``updatedAtMs - createdAtMs``: from its
    first event to its last. ``parentRunId`` is the parent of a `Subflow`'s child run
    (from its id, see `parse_child_run_id`), None for other runs.
    """
    return [
        {
            "runId": r.run_id,
            "status": r.status,
            "workflowName": r.workflow_name,
            "createdAtMs": r.created_at_ms,
            "updatedAtMs": r.updated_at_ms,
            "parentRunId": _parent_of(r.run_id),
        }
        for r in runs
    ]


def _parent_of(run_id: str) -> str | None:
    parsed = parse_child_run_id(run_id)
    return parsed[0] if parsed is not None else None


def print_runs(runs: Sequence[RunRecord], *, waiting: Mapping[str, str] | None = None) -> None:
    """Print the ``ps`` table: run id, workflow, status, started, duration.

    The duration is the run's wall time, from its first event to its last (as
    ``inspect`` shows it). With `waiting` (run id -> what it waits for) and a run in
    it, a ``WAITING FOR`` column is added.
    """
    if not runs:
        echo("No runs. Start one with `smithers up FILE`.")
        return
    waits = {rid: text for rid, text in (waiting or {}).items() if text}
    extra = ("WAITING FOR",) if waits else ()
    print_table(
        ("RUN ID", "WORKFLOW", "STATUS", "STARTED", "DURATION", *extra),
        (
            (
                r.run_id,
                r.workflow_name or "-",
                r.status,
                format_time(r.created_at_ms),
                format_duration(r.updated_at_ms - r.created_at_ms),
                *((waits.get(r.run_id, ""),) if waits else ()),
            )
            for r in runs
        ),
        styles=("bold", "", None, "", "", ""),
    )


# ---------------------------------------------------------------------- inspect


def attempt_json(a: AttemptRecord | AttemptDetail) -> dict[str, Any]:
    """One attempt as ``inspect --json`` and ``node --json`` show it."""
    return {
        "attempt": a.attempt,
        "state": a.state,
        "startedAtMs": a.started_at_ms,
        "finishedAtMs": a.finished_at_ms,
        "durationMs": a.duration_ms,
        "error": error_json(a.error),
        "cancelReason": a.cancel_reason,
    }


def _node_json(rec: NodeRecord) -> dict[str, Any]:
    return {
        "nodeId": rec.node_id,
        "iteration": rec.iteration,
        "state": rec.state,
        "label": rec.label,
        "attemptCount": rec.attempt_count,
        "durationMs": node_duration_ms(rec),
        "attempts": [attempt_json(a) for a in rec.attempts],
        "output": decode_json(rec.output) if rec.has_output else None,
        **node_waits_json(rec),
    }


def node_waits_json(rec: NodeRecord) -> dict[str, Any]:
    """The ``approval``, ``wait`` and ``timer`` keys of a node in ``inspect --json``.

    Each is null when the node has none; otherwise camelCase objects: ``approval``
    ``{title, summary, metadata, mode, options, requestedAtMs, decision, decidedBy,
    decidedAtMs, note, selected, ranked}``; ``wait`` ``{eventName, correlationId,
    timeoutAtMs, sinceMs, received, sentBy}``; ``timer`` ``{timerId, firesAtMs,
    timerType, state, firedAtMs}``.
    """
    approval = wait = timer = None
    if rec.approval is not None:
        a = rec.approval
        approval = {
            "title": a.title,
            "summary": a.summary,
            "metadata": decode_json(a.metadata),
            "mode": a.mode,
            "options": list(a.options),
            "requestedAtMs": a.requested_at_ms,
            "decision": a.decision,
            "auto": a.auto,
            "decidedBy": a.decided_by,
            "decidedAtMs": a.decided_at_ms,
            "note": a.note,
            "selected": a.selected,
            "ranked": list(a.ranked),
        }
    if rec.wait is not None:
        w = rec.wait
        wait = {
            "eventName": w.event_name,
            "correlationId": w.correlation_id,
            "timeoutAtMs": w.timeout_at_ms,
            "sinceMs": w.since_ms,
            "received": w.received,
            "sentBy": w.sent_by,
        }
    if rec.timer is not None:
        t = rec.timer
        timer = {
            "timerId": t.timer_id,
            "firesAtMs": t.fires_at_ms,
            "timerType": t.timer_type,
            "state": t.state,
            "firedAtMs": t.fired_at_ms,
        }
    return {"approval": approval, "wait": wait, "timer": timer}


def _tree_ids(tree: Any, out: dict[str, int]) -> None:
    """Collect the ids of `tree`'s nodes (depth first, in order) into `out`: id -> position."""
    if isinstance(tree, Mapping):
        node_id = tree.get("id")
        if isinstance(node_id, str) and node_id not in out:
            out[node_id] = len(out)
        _tree_ids(tree.get("children"), out)
    elif isinstance(tree, list):
        for child in tree:
            _tree_ids(child, out)


def nodes_in_tree_order(state: RunState, tree: Mapping[str, Any] | None) -> list[NodeRecord]:
    """Return the run's nodes in the order of `tree` (the last rendered tree). No I/O.

    A node's iterations stay together, by iteration. A node not in the tree (an
    unmounted branch, a task the workflow no longer renders) follows the node mounted
    just before it that is in the tree, so it stays where it was mounted. Without a
    tree, mount order (``state.nodes``'s).
    """
    if tree is None:
        return list(state.nodes.values())
    position: dict[str, int] = {}
    _tree_ids(tree, position)
    keyed: list[tuple[tuple[int, int, int, int], NodeRecord]] = []
    anchor = -1
    for mounted, rec in enumerate(state.nodes.values()):
        at = position.get(rec.node_id)
        if at is not None:
            anchor = at
            key = (at, 0, rec.iteration, mounted)
        else:
            key = (anchor, 1, rec.iteration, mounted)
        keyed.append((key, rec))
    keyed.sort(key=lambda pair: pair[0])
    return [rec for _, rec in keyed]


def _origin(state: RunState) -> str:
    """``"run"``, or how it came from its parent: ``"fork"`` or ``"replay"`` (as timeline)."""
    if state.parent_run_id is None:
        return "run"
    return "replay" if state.replay_of is not None else "fork"


def inspect_json(state: RunState, tree: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the ``inspect --json`` object of a run (camelCase keys).

    ``frames`` counts the frames of the run's own log as ``timeline`` lists them,
    ``discardedFrames`` those a rewind discarded; ``durationMs`` is the run's wall
    time (first event to last); ``kind`` (``run``, ``fork``, ``replay``),
    ``parentRunId``, ``parentFrameNo`` and ``branchLabel`` say where a fork came from.
    Nodes are in the order of `tree` (see `nodes_in_tree_order`), each with
    ``durationMs``, the sum of its attempts' durations.
    """
    return {
        "runId": state.run_id,
        "status": state.status,
        "workflowName": state.workflow_name,
        "workflowPath": state.workflow_path,
        "kind": _origin(state),
        "parentRunId": state.parent_run_id,
        "parentFrameNo": state.parent_frame_no,
        "branchLabel": state.branch_label,
        "input": decode_json(state.input),
        "error": error_json(state.error),
        "createdAtMs": state.created_at_ms,
        "updatedAtMs": state.updated_at_ms,
        "finishedAtMs": state.finished_at_ms,
        "durationMs": run_duration_ms(state),
        "lastSeq": state.seq,
        "nodes": [_node_json(rec) for rec in nodes_in_tree_order(state, tree)],
        "frames": state.frame_count,
        "discardedFrames": state.frame_count - len(state.frames),
    }


def node_duration_ms(rec: NodeRecord) -> int | None:
    """Return the time (ms) the node's attempts took, summed; None if one still runs.

    Not the span from the first attempt's start to the last one's end: a node run
    again later (``retry-task``, a resume after a rewind) did not run in between.
    None also for a node with no attempt.
    """
    if not rec.attempts:
        return None
    total = 0
    for attempt in rec.attempts:
        duration = attempt.duration_ms
        if duration is None:
            return None
        total += duration
    return total


def run_duration_ms(state: RunState) -> int | None:
    """Return the run's wall time (ms): from its first event to its last, as ``ps``."""
    if state.created_at_ms is None or state.updated_at_ms is None:
        return None
    return state.updated_at_ms - state.created_at_ms


def compact_json(value: Any, *, limit: int = 200) -> str:
    """One-line JSON of `value`, cut to `limit` characters with an ellipsis."""
    return _shorten(dumps(value), limit)


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _frames_text(state: RunState) -> str:
    """``4 (0-3), 2 discarded by a rewind``: the frames as ``timeline`` counts them."""
    count = state.frame_count
    if not count:
        return "0"
    last = state.next_frame_no - 1
    text = f"{count} ({last - count + 1}-{last})"
    discarded = count - len(state.frames)
    if discarded:
        text += f", {discarded} discarded by {'a rewind' if state.rewinds == 1 else 'rewinds'}"
    return text


def _parent_text(state: RunState) -> str:
    """``RUN at frame N (fork, label L)`` for a fork or replay."""
    how = _origin(state)
    if state.branch_label is not None:
        how += f", label {state.branch_label}"
    return f"{state.parent_run_id} at frame {state.parent_frame_no} ({how})"


def print_inspect(
    state: RunState, *, tree: Mapping[str, Any] | None = None, db: str | None = None
) -> None:
    """Print a run's summary, its nodes table and its failed attempts (with file:line).

    Nodes are listed in the order of `tree`, the last rendered tree (see
    `nodes_in_tree_order`). `db` (the ``--db`` path, or None) goes into the
    suggested commands.
    """
    workflow = state.workflow_name or "-"
    if state.workflow_path:
        workflow += f" ({state.workflow_path})"
    summary = [
        ("Run", state.run_id),
        ("Workflow", workflow),
        ("Status", state.status),
    ]
    if state.parent_run_id is not None:
        summary.append(("Parent", _parent_text(state)))
    summary += [
        ("Started", format_time(state.created_at_ms)),
        ("Duration", format_duration(run_duration_ms(state))),
        ("Input", _shorten(dumps(decode_json(state.input)), 120)),
        ("Frames", _frames_text(state)),
    ]
    if state.error is not None:
        summary.append(("Error", error_label(state.error)))
    tty = stdout_is_tty()
    for key, value in summary:
        if tty and key == "Status":
            style = STATE_STYLES.get(value, "")
            stdout_console().print(Text.assemble(f"{key:<9} ", (safe(value), style)))
        else:
            echo(f"{key:<9} {safe(value)}")
    echo()
    print_failures(state, db=db)  # before the table, which ends the output
    if not state.nodes:
        echo("No nodes yet.")
        return
    print_table(
        ("NODE", "ITER", "STATE", "ATTEMPTS", "DURATION", "LAST ERROR"),
        (
            (
                rec.node_id,
                str(rec.iteration),
                rec.state,
                str(rec.attempt_count),
                format_duration(node_duration_ms(rec)),
                _shorten(error_label(rec.last_error), 70),
            )
            for rec in nodes_in_tree_order(state, tree)
        ),
        styles=("bold", "", None, "", "", "red"),
    )


# ---------------------------------------------------------------------- events


_ENVELOPE_KEYS = frozenset({"seq", "type", "runId", "timestampMs", "nodeId", "iteration"})


def _field(key: str, value: Any) -> str:
    if key == "error" and isinstance(value, Mapping):
        return f"error={error_label(value)}"
    if isinstance(value, str) and value and " " not in value:
        return f"{key}={value}"
    return f"{key}={dumps(value)}"


def event_line(body: Mapping[str, Any]) -> str:
    """Return a readable line for an event JSON object (as `event_to_json` gives).

    ``  12  14:03:22.123  NodeFinished    second     attempt=1 output={"n":6}``

    One line, through `safe`: control characters in ids or values are shown escaped.
    """
    node = body.get("nodeId") or ""
    if node and body.get("iteration"):
        node = f"{node}#{body['iteration']}"
    fields = " ".join(
        _field(k, v) for k, v in body.items() if k not in _ENVELOPE_KEYS and v is not None
    )
    ts = body.get("timestampMs")
    when = format_clock(ts) if isinstance(ts, int) else "-"
    line = f"{body.get('seq', ''):>5}  {when}  {body.get('type', ''):<18} {node:<12} "
    return safe((line + _shorten(fields, _MAX_FIELDS_CHARS)).rstrip())
