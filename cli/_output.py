"""Formatting for the CLI: JSON shapes, tables, times and event lines.

Human output adapts to the terminal: rich tables on a TTY, plain aligned columns
otherwise (pipes, files, tests). JSON output (``--json``) uses Smithers' camelCase keys.
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
from smithers.eventstore import decode_json
from smithers.eventstore.errors import error_info_to_json
from smithers.eventstore.events import ErrorInfo

from ._node_output import print_failures

if TYPE_CHECKING:
    from smithers.eventstore import RunRecord
    from smithers.projections import AttemptRecord, NodeRecord, RunState

__all__ = (
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
    "print_inspect",
    "print_runs",
    "print_table",
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
    """Return `value` (plain JSON values) as JSON text: one line, or indented when `pretty`."""
    if pretty:
        return json.dumps(value, ensure_ascii=False, indent=2)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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
    body = [list(r) for r in rows]
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
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# ---------------------------------------------------------------------- errors


def error_json(info: ErrorInfo | None) -> dict[str, Any] | None:
    """Return a stored error in the one ``--json`` error shape (`error_info_to_json`)."""
    return error_info_to_json(info)


def error_code(error: ErrorInfo | Mapping[str, Any] | None) -> str:
    """Return an error's code; ``WORKFLOW_EXECUTION_FAILED`` for an untyped one."""
    code: Any = error.code if isinstance(error, ErrorInfo) else (error or {}).get("code")
    return code if isinstance(code, str) and code else "WORKFLOW_EXECUTION_FAILED"


def error_text(error: ErrorInfo | Mapping[str, Any] | None) -> str:
    """Return ``message``, prefixed with the exception name for untyped errors."""
    if error is None:
        return "-"
    fields: Mapping[str, Any] = (
        {"name": error.name, "message": error.message, "code": error.code}
        if isinstance(error, ErrorInfo)
        else error
    )
    name, message, code = fields.get("name"), fields.get("message"), fields.get("code")
    if not code and name:
        return f"{name}: {message}"
    return str(message)


def error_label(error: ErrorInfo | Mapping[str, Any] | None) -> str:
    """Return ``[CODE] message`` for typed errors, ``Name: message`` for plain exceptions."""
    if error is None:
        return ""
    code: Any = error.code if isinstance(error, ErrorInfo) else error.get("code")
    return f"[{code}] {error_text(error)}" if code else error_text(error)


# ---------------------------------------------------------------------- ps


def runs_json(runs: Iterable[RunRecord]) -> list[dict[str, Any]]:
    """Return runs as ``ps --json`` objects (camelCase keys)."""
    return [
        {
            "runId": r.run_id,
            "status": r.status,
            "workflowName": r.workflow_name,
            "createdAtMs": r.created_at_ms,
            "updatedAtMs": r.updated_at_ms,
        }
        for r in runs
    ]


def print_runs(runs: Sequence[RunRecord]) -> None:
    """Print the ``ps`` table: run id, workflow, status, started, duration."""
    if not runs:
        click.echo("No runs. Start one with `smithers up FILE`.")
        return
    print_table(
        ("RUN ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"),
        (
            (
                r.run_id,
                r.workflow_name or "-",
                r.status,
                format_time(r.created_at_ms),
                format_duration(r.updated_at_ms - r.created_at_ms),
            )
            for r in runs
        ),
        styles=("bold", "", None, "", ""),
    )


# ---------------------------------------------------------------------- inspect


def _attempt_json(a: AttemptRecord) -> dict[str, Any]:
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
        "attempts": [_attempt_json(a) for a in rec.attempts],
        "output": decode_json(rec.output) if rec.has_output else None,
    }


def inspect_json(state: RunState) -> dict[str, Any]:
    """Return the ``inspect --json`` object of a run (camelCase keys)."""
    return {
        "runId": state.run_id,
        "status": state.status,
        "workflowName": state.workflow_name,
        "workflowPath": state.workflow_path,
        "input": decode_json(state.input),
        "error": error_json(state.error),
        "createdAtMs": state.created_at_ms,
        "updatedAtMs": state.updated_at_ms,
        "finishedAtMs": state.finished_at_ms,
        "lastSeq": state.seq,
        "nodes": [_node_json(rec) for rec in state.nodes.values()],
        "frames": len(state.frames),
    }


def _node_duration(rec: NodeRecord) -> int | None:
    if not rec.attempts or rec.attempts[-1].finished_at_ms is None:
        return None
    return rec.attempts[-1].finished_at_ms - rec.attempts[0].started_at_ms


def _run_duration(state: RunState) -> int | None:
    if state.created_at_ms is None:
        return None
    end = state.finished_at_ms if state.finished_at_ms is not None else state.updated_at_ms
    return None if end is None else end - state.created_at_ms


def compact_json(value: Any, *, limit: int = 200) -> str:
    """One-line JSON of `value`, cut to `limit` characters with an ellipsis."""
    return _shorten(dumps(value), limit)


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_inspect(state: RunState, *, db_args: str = "") -> None:
    """Print a run's summary, its nodes table and its failed attempts (with file:line).

    `db_args` (`` --db PATH`` or empty) is appended to the suggested commands.
    """
    workflow = state.workflow_name or "-"
    if state.workflow_path:
        workflow += f" ({state.workflow_path})"
    summary = [
        ("Run", state.run_id),
        ("Workflow", workflow),
        ("Status", state.status),
        ("Started", format_time(state.created_at_ms)),
        ("Duration", format_duration(_run_duration(state))),
        ("Input", _shorten(dumps(decode_json(state.input)), 120)),
        ("Frames", str(len(state.frames))),
    ]
    if state.error is not None:
        summary.append(("Error", error_label(state.error)))
    tty = stdout_is_tty()
    for key, value in summary:
        if tty and key == "Status":
            style = STATE_STYLES.get(value, "")
            stdout_console().print(Text.assemble(f"{key:<9} ", (value, style)))
        else:
            click.echo(f"{key:<9} {value}")
    click.echo()
    print_failures(state, db_args=db_args)  # before the table, which ends the output
    if not state.nodes:
        click.echo("No nodes yet.")
        return
    print_table(
        ("NODE", "ITER", "STATE", "ATTEMPTS", "DURATION", "LAST ERROR"),
        (
            (
                rec.node_id,
                str(rec.iteration),
                rec.state,
                str(rec.attempt_count),
                format_duration(_node_duration(rec)),
                _shorten(error_label(rec.last_error), 70),
            )
            for rec in state.nodes.values()
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
    return (line + _shorten(fields, _MAX_FIELDS_CHARS)).rstrip()
