"""``smithers node RUN NODE``: one node's whole story.

Every attempt (start, end, duration, error with file:line and traceback, heartbeats),
the output of each iteration, and every event about the node. Reads through the
client (`RunHandle.node`); formats here.
"""

from __future__ import annotations

import typing
from typing import Any

import click
from smithers.engine import event_to_json
from smithers.eventstore import decode_json

from ._clients import Clients, pass_clients
from ._commands import main
from ._node_output import error_location, indented, node_ref
from ._options import command_line, db_option, json_option
from ._output import (
    attempt_json,
    compact_json,
    echo_json,
    error_label,
    event_line,
    format_clock,
    format_duration,
)
from ._text import echo, safe

if typing.TYPE_CHECKING:
    from smithers.engine import AttemptDetail, Client, IterationDetail, NodeDetail

__all__ = ("node_json", "print_node")

_SHOWN_HEARTBEATS = 5
"""Heartbeats listed per attempt in text (the last ones); ``--json`` has them all."""


# ---------------------------------------------------------------------- JSON


def _attempt_json(a: AttemptDetail) -> dict[str, Any]:
    return {
        **attempt_json(a),
        "heartbeats": [
            {
                "seq": h.seq,
                "timestampMs": h.timestamp_ms,
                "dataSizeBytes": h.data_size_bytes,
                "data": decode_json(h.data),
            }
            for h in a.heartbeats
        ],
    }


def _iteration_json(it: IterationDetail) -> dict[str, Any]:
    return {
        "iteration": it.iteration,
        "state": it.state,
        "label": it.label,
        "skipReason": it.skip_reason,
        "durationMs": it.duration_ms,
        "attempts": [_attempt_json(a) for a in it.attempts],
        "hasOutput": it.has_output,
        "output": decode_json(it.output) if it.has_output else None,
    }


def node_json(detail: NodeDetail) -> dict[str, Any]:
    """Return the ``node --json`` object (camelCase keys).

    ``{"runId", "nodeId", "iterations": [{"iteration", "state", "label", "skipReason",
    "durationMs", "attempts": [{"attempt", "state", "startedAtMs", "finishedAtMs",
    "durationMs", "error", "cancelReason", "heartbeats": [...]}], "hasOutput",
    "output"}], "events": [NDJSON event objects]}``; errors have the one ``--json``
    error shape (`error_info_to_json`).
    """
    return {
        "runId": detail.run_id,
        "nodeId": detail.node_id,
        "iterations": [_iteration_json(it) for it in detail.iterations],
        "events": [event_to_json(stored, event) for stored, event in detail.events],
    }


# ---------------------------------------------------------------------- text


def _attempt_lines(a: AttemptDetail) -> list[str]:
    end = format_clock(a.finished_at_ms) if a.finished_at_ms is not None else "(running)"
    lines = [
        f"  Attempt {a.attempt}  {a.state:<9}  {format_clock(a.started_at_ms)} -> {end}"
        f"  {format_duration(a.duration_ms)}"
    ]
    if a.cancel_reason:
        lines.append(f"    cancelled: {safe(a.cancel_reason)}")
    if a.error is not None:
        lines.append(f"    {error_label(a.error)}")
        where = error_location(a.error)
        if where:
            lines.append(f"    at {where}")
        if a.error.stack:
            lines.extend(indented(a.error.stack, "    "))
    if a.heartbeats:
        shown = a.heartbeats[-_SHOWN_HEARTBEATS:]
        more = len(a.heartbeats) - len(shown)
        lines.append(
            f"    heartbeats: {len(a.heartbeats)}"
            + (f" (the last {len(shown)} shown; --json has all)" if more else "")
        )
        for h in shown:
            data = f"  {compact_json(decode_json(h.data), limit=120)}" if h.data_size_bytes else ""
            lines.append(f"      {format_clock(h.timestamp_ms)}{data}")
    return lines


def _iteration_lines(node_id: str, it: IterationDetail) -> list[str]:
    count = len(it.attempts)
    head = (
        f"{safe(node_ref(node_id, it.iteration))} (iteration {it.iteration}): {it.state}, "
        f"{count} attempt{'s' if count != 1 else ''}"
    )
    if it.duration_ms is not None:
        head += f", {format_duration(it.duration_ms)} in attempts"
    lines = [head]
    if it.label:
        lines.append(f"  label: {safe(it.label)}")
    if it.skip_reason:
        lines.append(f"  skipped: {safe(it.skip_reason)}")
    for a in it.attempts:
        lines.extend(_attempt_lines(a))
    output = compact_json(decode_json(it.output), limit=300) if it.has_output else "-"
    lines.append(f"  output: {output}")
    return lines


def print_node(detail: NodeDetail, *, db: str | None = None) -> None:
    """Print a node's story: each iteration's attempts, errors, tracebacks, output, events.

    Plain text (no rich markup): user text prints as it is.
    """
    echo(f"Node {detail.node_id} of run {detail.run_id}")
    if not detail.iterations:
        echo("  Not in the run's state now (rewound away?); its events follow.")
    for it in detail.iterations:
        echo()
        echo("\n".join(_iteration_lines(detail.node_id, it)), multiline=True)
    echo()
    echo(f"Events ({len(detail.events)}):")
    shown_run = detail.run_id
    for stored, event in detail.events:
        if stored.run_id != shown_run:
            shown_run = stored.run_id  # a fork's ancestors' events come first
            echo(f"-- run {shown_run}")
        echo(event_line(event_to_json(stored, event)))
    echo()
    echo(
        "  output: " + command_line("output", args=[detail.run_id, detail.node_id], db=db)
        if any(it.has_output for it in detail.iterations)
        else "  events: "
        + command_line("events", args=[detail.run_id], options=[("--node", detail.node_id)], db=db)
    )


# ---------------------------------------------------------------------- command


@main.command()
@click.argument("run_id", metavar="RUN")
@click.argument("node_id", metavar="NODE")
@click.option(
    "--iteration",
    type=click.IntRange(min=0),
    metavar="N",
    help="Only this loop iteration (default: every iteration).",
)
@db_option
@json_option
@pass_clients
def node(
    clients: Clients,
    run_id: str,
    node_id: str,
    iteration: int | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Show a node's whole story: attempts, errors with tracebacks, heartbeats, output.

    Every attempt with its start, end and duration; a failed one with its error, the
    file:line where it was raised and the traceback (the engine's own frames
    trimmed); heartbeats; the output of each iteration; and every event about the
    node (for a fork, its parent's first, up to the fork point).

    \b
    Examples:
        smithers node RUN second
        smithers node RUN review --iteration 2
        smithers node RUN second --json | jq '.iterations[].attempts[].error.stack'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"

    async def read(client: Client) -> NodeDetail:
        return await (await client.get_run(run_id)).node(node_id, iteration=iteration)

    detail = clients.run(db, read, read_only=True)
    if as_json:
        echo_json(node_json(detail))
    else:
        print_node(detail, db=db)
