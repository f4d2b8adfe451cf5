"""The ``smithers`` commands (DESIGN §9): parse options, call the public API, print.

Commands stay thin: the work is in `smithers.engine` (`run_workflow`, `load_workflow`,
the read API); formatting is in `_output`; errors and exit codes in `_errors`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import shlex
import time
import typing
from typing import Any

import anyio
import click
from smithers.engine import (
    SMITHERS_VERSION,
    event_to_json,
    follow_events,
    get_output,
    list_runs,
    load_run,
    load_workflow,
    new_run_id,
    read_events,
    run_workflow,
)
from smithers.eventstore import SmithersError
from smithers.eventstore.events import RunStatus

from ._errors import (
    EXIT_INTERRUPTED,
    SmithersGroup,
    echo_error,
    exit_code_for_status,
)
from ._output import (
    compact_json,
    dumps,
    echo_json,
    error_code,
    error_text,
    event_line,
    format_duration,
    inspect_json,
    print_inspect,
    print_runs,
    runs_json,
    stdout_is_tty,
)
from ._progress import ProgressReporter

__all__ = ("main",)

RUN_STATUSES: tuple[str, ...] = typing.get_args(RunStatus)

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

db_option = click.option(
    "--db",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    help="Database file. Default: $SMITHERS_DB, else the nearest .smithers/smithers.db "
    "walking up from the current directory.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def _db_args(db: str | None) -> str:
    """Return `` --db PATH`` to append to a suggested command, or empty."""
    return f" --db {shlex.quote(db)}" if db else ""


# ---------------------------------------------------------------------- the group


@click.group("smithers", cls=SmithersGroup, context_settings=_CONTEXT)
@click.version_option(
    SMITHERS_VERSION, "--version", "-V", prog_name="smithers", message="%(prog)s %(version)s"
)
def main() -> None:
    """Durable workflows for AI agents, on an append-only event log.

    Every run is recorded event by event in a SQLite database
    (.smithers/smithers.db by default), so it can be inspected, followed and
    resumed after the fact.

    \b
    Start a run, then look at it:
        smithers up flows/count.py --input '{"start": 5}'
        smithers ps
        smithers inspect RUN_ID
        smithers events RUN_ID --type NodeFailed
        smithers output RUN_ID second

    Every command takes --db PATH; read commands take --json. Errors print
    `Error [CODE]: summary` and a next step; set SMITHERS_DEBUG=1 for a traceback.
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"


# ---------------------------------------------------------------------- up


def _parse_input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise SmithersError(
            f"--input is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}).",
            code="INVALID_INPUT",
            details={"input": text},
            hint="Pass a JSON object, e.g. --input '{\"start\": 5}'.",
        ) from e
    if not isinstance(value, dict):
        raise SmithersError(
            f"--input must be a JSON object, got {type(value).__name__}.",
            code="INVALID_INPUT",
            details={"input": text},
            hint="Pass a JSON object, e.g. --input '{\"start\": 5}'.",
        )
    return value


@main.command()
@click.argument("file", metavar="FILE[:NAME]")
@click.option("--input", "input_json", metavar="JSON", help="Workflow input, a JSON object.")
@click.option("--run-id", metavar="ID", help="Run id to use (default: a new one).")
@click.option(
    "-c",
    "--max-concurrency",
    type=click.IntRange(min=1),
    metavar="N",
    default=4,
    show_default=True,
    help="How many tasks may execute at once.",
)
@db_option
@click.option(
    "--log-dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Directory of the NDJSON event mirror (default: .smithers/executions/RUN/logs).",
)
@click.option("--no-log", is_flag=True, help="Do not write the NDJSON event mirror.")
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"runId","status","outputs","error"} at the end.'
)
@click.pass_context
def up(
    ctx: click.Context,
    file: str,
    input_json: str | None,
    run_id: str | None,
    max_concurrency: int,
    db: str | None,
    log_dir: str | None,
    no_log: bool,
    as_json: bool,
) -> None:
    """Run a workflow file to its end.

    FILE is a Python file defining one @workflow; with several, pick one with
    FILE:NAME (a variable name or the name given to @workflow). Progress is shown
    live on a terminal and as one line per task otherwise.

    \b
    Examples:
        smithers up flows/count.py --input '{"start": 5}'
        smithers up flows/all.py:count -c 8 --db runs/smithers.db --json

    \b
    Exit codes:
        0    the run finished
        1    the run failed (or an unexpected error)
        2    the run was cancelled
        3    the run is waiting (approval, event or timer)
        4    bad arguments or input (invalid --input, missing file or workflow,
             run id already used)
        130  interrupted (Ctrl-C); the run is recorded as cancelled
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    if no_log and log_dir is not None:
        raise click.UsageError("Use either --log-dir or --no-log, not both.")
    input_value = _parse_input(input_json)
    wf, path = load_workflow(file)
    run_id = run_id or new_run_id()
    options: dict[str, Any] = {}
    if no_log:
        options["log_dir"] = None
    elif log_dir is not None:
        options["log_dir"] = log_dir
    mode = "quiet" if as_json else "live" if stdout_is_tty() else "plain"
    reporter = ProgressReporter(mode)
    run = functools.partial(
        run_workflow,
        wf,
        input=input_value,
        run_id=run_id,
        db=db,
        max_concurrency=max_concurrency,
        on_progress=reporter,
        workflow_path=path,
        **options,
    )
    try:
        with reporter:
            result = anyio.run(run)
    except KeyboardInterrupt:
        if reporter.seq:
            echo_error(
                "RUN_CANCELLED",
                f"Interrupted: run {run_id} stopped and was recorded as cancelled.",
                f"See where it stopped: smithers inspect {run_id}{_db_args(db)}",
            )
        else:
            echo_error("RUN_CANCELLED", "Interrupted before the run started.")
        ctx.exit(EXIT_INTERRUPTED)

    if as_json:
        echo_json(
            {
                "runId": result.run_id,
                "status": result.status,
                "outputs": result.outputs,
                "error": result.error,
            }
        )
        ctx.exit(exit_code_for_status(result.status))

    counts = reporter.state.counts()
    parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if n)
    took = format_duration(reporter.elapsed_ms)
    click.echo(f"Run {result.run_id} {result.status} in {took}" + (f": {parts}." if parts else "."))
    click.echo(f"  inspect: smithers inspect {result.run_id}{_db_args(db)}")
    if result.outputs and result.status == "finished":
        node = "output" if "output" in result.outputs else list(result.outputs)[-1]
        click.echo(f"  output:  smithers output {result.run_id} {node}{_db_args(db)}")
        if "output" in result.outputs:
            click.echo(f"  result:  {compact_json(result.outputs['output'], limit=300)}")
    if result.status == "failed":
        failed = reporter.last_failed
        where = None
        if failed is not None:
            where = f"  in node {failed.node_id!r} (attempt {failed.attempt})"
        echo_error(
            error_code(result.error),
            error_text(result.error),
            where,
            f"See what happened: smithers events {result.run_id} --type NodeFailed{_db_args(db)}",
        )
    ctx.exit(exit_code_for_status(result.status))


# ---------------------------------------------------------------------- ps


@main.command()
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Show at most N runs.")
@click.option(
    "--status",
    type=click.Choice(RUN_STATUSES),
    help="Only runs with this status.",
)
@db_option
@json_option
def ps(limit: int | None, status: str | None, db: str | None, as_json: bool) -> None:
    """List runs, newest first.

    \b
    Examples:
        smithers ps
        smithers ps --status failed --limit 5 --json
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    runs = anyio.run(functools.partial(list_runs, db, limit=limit, status=status))
    if as_json:
        echo_json(runs_json(runs))
    else:
        print_runs(runs)


# ---------------------------------------------------------------------- inspect


@main.command()
@click.argument("run_id", metavar="RUN")
@db_option
@json_option
def inspect(run_id: str, db: str | None, as_json: bool) -> None:
    """Show a run: status, input, error, and each node's state and attempts.

    The state is folded from the run's event log.

    \b
    Examples:
        smithers inspect run-lx2k3j-1a2b3c
        smithers inspect run-lx2k3j-1a2b3c --json | jq '.nodes[] | select(.state == "failed")'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    state = anyio.run(functools.partial(load_run, run_id, db=db))
    if as_json:
        echo_json(inspect_json(state))
    else:
        print_inspect(state)


# ---------------------------------------------------------------------- events

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _invalid_events_option(message: str) -> SmithersError:
    return SmithersError(
        message,
        code="INVALID_EVENTS_OPTIONS",
        hint="See `smithers events --help` for the options.",
    )


def _parse_since(text: str | None) -> tuple[int, int | None]:
    """Return ``(after_seq, since_ms)`` for ``--since SEQ|DURATION``."""
    if text is None:
        return 0, None
    if text.strip().isdigit():
        return int(text), None
    m = _DURATION.match(text)
    if m is None:
        raise _invalid_events_option(
            f"--since takes a seq (e.g. 120) or a duration (e.g. 30s, 5m, 2h, 1d), got {text!r}."
        )
    window_ms = int(float(m.group(1)) * _UNIT_MS[m.group(2)])
    return 0, time.time_ns() // 1_000_000 - window_ms


def _parse_limit(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise _invalid_events_option(f"--limit takes a whole number >= 1, got {text!r}.")
    return int(text)


@main.command()
@click.argument("run_id", metavar="RUN")
@click.option("--node", "node_id", metavar="ID", help="Only events about this node.")
@click.option(
    "--type",
    "types",
    metavar="TYPE",
    multiple=True,
    help="Only events of this type (repeatable, or comma-separated), e.g. NodeFailed.",
)
@click.option(
    "--since",
    metavar="SEQ|DURATION",
    help="Events after this seq (e.g. 120), or newer than this duration (30s, 5m, 2h, 1d).",
)
@click.option("--limit", metavar="N", help="At most N events (the first ones matching).")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print NDJSON: one event object per line.")
def events(
    run_id: str,
    node_id: str | None,
    types: tuple[str, ...],
    since: str | None,
    limit: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Print a run's events in order, optionally filtered.

    With --json each line is Smithers' NDJSON event object: `seq`, `type`, `runId`,
    `timestampMs` and the event's fields (camelCase).

    \b
    Examples:
        smithers events RUN --type NodeFailed --type NodeRetrying
        smithers events RUN --node second --since 5m
        smithers events RUN --since 120 --limit 50 --json
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    after_seq, since_ms = _parse_since(since)
    wanted = [t.strip() for item in types for t in item.split(",") if t.strip()] or None
    rows = anyio.run(
        functools.partial(
            read_events,
            run_id,
            db=db,
            node_id=node_id,
            types=wanted,
            after_seq=after_seq,
            since_ms=since_ms,
            limit=_parse_limit(limit),
        )
    )
    for stored, event in rows:
        body = event_to_json(stored, event)
        click.echo(dumps(body) if as_json else event_line(body))
    if not rows and not as_json:
        click.echo("No matching events.")


# ---------------------------------------------------------------------- output


@main.command()
@click.argument("run_id", metavar="RUN")
@click.argument("node_id", metavar="NODE")
@click.option(
    "--iteration", type=click.IntRange(min=0), metavar="I", help="Loop iteration (default: latest)."
)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print compact JSON on one line.")
def output(run_id: str, node_id: str, iteration: int | None, db: str | None, as_json: bool) -> None:
    """Print a node's output as JSON.

    \b
    Examples:
        smithers output RUN second
        smithers output RUN review --iteration 2 --json | jq .score
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    value = anyio.run(functools.partial(get_output, run_id, node_id, db=db, iteration=iteration))
    echo_json(value, pretty=stdout_is_tty() and not as_json)


# ---------------------------------------------------------------------- logs


async def _print_log(run_id: str, db: str | None, follow: bool) -> None:
    if not follow:
        for stored, event in await read_events(run_id, db=db):
            click.echo(dumps(event_to_json(stored, event)))
        return
    async with contextlib.aclosing(follow_events(run_id, db=db, poll_interval_s=0.5)) as stream:
        async for stored, event in stream:
            click.echo(dumps(event_to_json(stored, event)))


@main.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing new events (polling every 0.5 s) until the run ends.",
)
@db_option
def logs(run_id: str, follow: bool, db: str | None) -> None:
    """Print a run's event stream as NDJSON, from the database.

    The lines are those of `smithers events RUN --json` (and of the run's
    stream.ndjson mirror). With -f, waits for new events until the run finishes,
    fails, is cancelled or continues as new; Ctrl-C stops following (exit 130).

    \b
    Examples:
        smithers logs RUN
        smithers logs RUN -f | jq -c 'select(.type == "NodeFinished")'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    anyio.run(_print_log, run_id, db, follow)
