"""``smithers why RUN``: why a run is in its state and what to type next (`explain`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click
import msgspec
from smithers.engine.autopsy import find_autopsy
from smithers.engine.history import WHY_EVENT_TYPES, explain
from smithers.eventstore.errors import error_info_to_json

from ._clients import Clients, pass_clients
from ._commands import main
from ._node_output import error_location
from ._options import check_run_id, command_line, db_option, json_option
from ._output import echo_json, format_time
from ._text import echo
from ._waiting import needs_descendants, waiting_for_json, waiting_lines

if TYPE_CHECKING:
    from smithers.engine import Client
    from smithers.engine.history import WhyReport, WhyStep
    from smithers.projections import RunState

__all__ = ("why",)

WhyView = tuple["WhyReport", "RunState", list["RunState"]]


def _command(step: WhyStep, db: str | None) -> str:
    return command_line(step.verb, args=step.args, options=step.options, db=db)


def _json(report: WhyReport, state: RunState, below: list[RunState], db: str | None) -> Any:
    # Through JSON, not to_builtins: an error's details are raw JSON (msgspec.Raw).
    out: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(report))
    for failure, item in zip(report.failures, out["failures"], strict=True):
        item["error"] = error_info_to_json(failure.error)
    for step, item in zip(report.steps, out["steps"], strict=True):
        item["command"] = _command(step, db)
    out["waitingFor"] = waiting_for_json(state, below) if report.waiting else []
    return out


def _print(report: WhyReport, state: RunState, below: list[RunState], db: str | None) -> None:
    echo(f"Run {report.run_id}: {report.status}")
    echo(report.headline)
    for note in report.notes:
        echo(note)
    if report.cancelled is not None:
        c = report.cancelled
        who = c.actor.name + (f" on {c.actor.host}" if c.actor else "") if c.actor else None
        by = f" by {who}" if who else ""
        via = f" via {c.source}" if c.source else ""
        why = f": {c.reason}" if c.reason else ""
        echo(f"Cancelled at {format_time(c.at_ms)}{by}{via}{why}.")
    if report.continued_as:
        echo(f"It continues in run {report.continued_as}.")
    for f in report.failures:
        echo()
        error = f.error
        label = f.node_id + (f"#{f.iteration}" if f.iteration else "")
        code = f"[{error.code}] " if error.code else ""
        echo(f"  {label}  attempt {f.attempts}: {code}{error.name}: {error.message}")
        where = error_location(error)
        echo(f"    category: {f.category}" + (f" · at {where}" if where else ""))
        echo(f"    retry helps: {'yes' if f.retry_helps else 'no'}. {f.why_retry}")
    if report.waiting:
        lines = waiting_lines(state, now_ms=time.time_ns() // 1_000_000, db=db, descendants=below)
        if lines:
            echo()
            echo("Waiting:")
            for line in lines:
                echo(line)
    _print_autopsy(report, db)
    if report.steps:
        echo()
        echo("Next:")
        for step in report.steps:
            echo(f"  {_command(step, db)}")
            echo(f"      {step.says}")


def _print_autopsy(report: WhyReport, db: str | None) -> None:
    rid = report.autopsy_run_id
    if rid is None:
        return
    echo()
    verdict = report.autopsy
    if verdict is None:
        echo(f"Autopsy {rid} ({report.autopsy_status}): no verdict yet.")
        echo("  read it once it is in: " + command_line("output", args=[rid, "output"], db=db))
        return
    echo(f"Autopsy {rid}: {verdict.failure_class} ({verdict.confidence} confidence)")
    echo(f"  root cause: {verdict.root_cause}")
    for line in verdict.evidence:
        echo(f"    - {line}")
    echo(f"  suggestion: {verdict.suggestion}. {verdict.suggestion_detail}")
    if verdict.bug_filed:
        echo(f"  bug filed: {verdict.bug_url}")
    for command in verdict.commands:
        echo(f"    {command}")


@main.command()
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@db_option
@json_option
@pass_clients
def why(clients: Clients, run_id: str, db: str | None, as_json: bool) -> None:
    """Say why a run is in its state, and the commands that move it on.

    \b
    For a failed run: the failing tasks, their error (code, category, where it
    was raised), whether a retry can help, and the exact commands (up --resume,
    retry-task, replay --frame N after a fix, a fork with fixed input). For a
    waiting run: what it waits for and the command that continues it. For a run
    marked running whose process is gone: that it is stale and how to resume it.
    For a cancelled run: who cancelled it, when and why. When a post-failure
    autopsy of the run exists, its verdict (class, root cause, evidence, the
    commands it suggests). Writes nothing.
    \b
    Examples:
        smithers why RUN
        smithers why RUN --json | jq -r '.steps[0].command'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"

    async def read(client: Client) -> WhyView:
        handle = await client.get_run(run_id)
        state = await handle.state()
        owner = await handle.owner() if state.status == "running" else None
        events = await handle.events(types=WHY_EVENT_TYPES)
        below = await handle.active_descendants() if needs_descendants(state) else []
        autopsy = await find_autopsy(client, run_id)
        return explain(state, owner, events, autopsy), state, below

    report, state, below = clients.run(db, read, read_only=True)
    if as_json:
        echo_json(_json(report, state, below, db))
    else:
        _print(report, state, below, db)
