"""The read commands (DESIGN §9): ``ps``, ``inspect``, ``events``, ``output``, ``logs``.

Each opens one client (``ctx.obj``), reads, and prints; every one has ``--json``.
"""

from __future__ import annotations

import contextlib
import time
import typing
from typing import Any

import click
from smithers.engine import (
    event_to_json,
)
from smithers.eventstore import SmithersError

from ._clients import Clients, pass_clients
from ._commands import RUN_STATUSES, main
from ._inspect_view import inspect_view
from ._options import DURATION as _DURATION
from ._options import UNIT_MS as _UNIT_MS
from ._options import check_run_id, db_args, db_option, json_option
from ._output import (
    dumps,
    echo_json,
    event_line,
    inspect_json,
    print_inspect,
    print_runs,
    runs_json,
    stdout_is_tty,
)

if typing.TYPE_CHECKING:
    from smithers.engine import Client
    from smithers.eventstore import StoredEvent
    from smithers.eventstore.events import Event

__all__ = ()


@main.command()
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Show at most N runs.")
@click.option(
    "--status",
    type=click.Choice(RUN_STATUSES),
    help="Only runs with this status.",
)
@db_option
@json_option
@pass_clients
def ps(
    clients: Clients, limit: int | None, status: str | None, db: str | None, as_json: bool
) -> None:
    """List runs, newest first.

    \b
    Examples:
        smithers ps
        smithers ps --status failed --limit 5 --json
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    runs = clients.run(db, lambda client: client.runs(status=status, limit=limit))
    if as_json:
        echo_json(runs_json(runs))
    else:
        print_runs(runs)


# ---------------------------------------------------------------------- inspect


@main.command()
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@db_option
@json_option
@pass_clients
def inspect(clients: Clients, run_id: str, db: str | None, as_json: bool) -> None:
    """Show a run: status, input, error, and each node's state and attempts.

    The state is folded from the run's event log.

    \b
    Examples:
        smithers inspect run-lx2k3j-1a2b3c
        smithers inspect run-lx2k3j-1a2b3c --json | jq '.nodes[] | select(.state == "failed")'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    state, tree = clients.run(db, lambda client: inspect_view(client, run_id))
    if as_json:
        echo_json(inspect_json(state, tree))
    else:
        print_inspect(state, tree=tree, db_args=db_args(db))


# ---------------------------------------------------------------------- events


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
@click.argument("run_id", metavar="RUN", callback=check_run_id)
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
@click.option(
    "--follow-ancestry",
    is_flag=True,
    help="For a fork, first the parent's events up to the fork point (and its parent's...).",
)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print NDJSON: one event object per line.")
@pass_clients
def events(
    clients: Clients,
    run_id: str,
    node_id: str | None,
    types: tuple[str, ...],
    since: str | None,
    limit: str | None,
    follow_ancestry: bool,
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
        smithers events FORK --follow-ancestry
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    after_seq, since_ms = _parse_since(since)
    wanted = [t.strip() for item in types for t in item.split(",") if t.strip()] or None
    at_most = _parse_limit(limit)

    async def read(client: Client) -> list[tuple[StoredEvent, Event]]:
        return await (await client.get_run(run_id)).events(
            node_id=node_id,
            types=wanted,
            after_seq=after_seq,
            since_ms=since_ms,
            limit=at_most,
            follow_ancestry=follow_ancestry,
        )

    rows = clients.run(db, read)
    shown_run = run_id if not follow_ancestry else None
    for stored, event in rows:
        body = event_to_json(stored, event)
        if not as_json and stored.run_id != shown_run:
            shown_run = stored.run_id  # following ancestry: say whose events follow
            click.echo(f"-- run {shown_run}")
        click.echo(dumps(body) if as_json else event_line(body))
    if not rows and not as_json:
        click.echo("No matching events.")


# ---------------------------------------------------------------------- output


@main.command()
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@click.argument("node_id", metavar="NODE")
@click.option(
    "--iteration", type=click.IntRange(min=0), metavar="I", help="Loop iteration (default: latest)."
)
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print compact JSON on one line.")
@pass_clients
def output(
    clients: Clients,
    run_id: str,
    node_id: str,
    iteration: int | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Print a node's output as JSON.

    \b
    Examples:
        smithers output RUN second
        smithers output RUN review --iteration 2 --json | jq .score
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"

    async def read(client: Client) -> Any:
        return await (await client.get_run(run_id)).output(node_id, iteration=iteration)

    value = clients.run(db, read)
    echo_json(value, pretty=stdout_is_tty() and not as_json)


# ---------------------------------------------------------------------- logs


async def _print_log(client: Client, run_id: str, follow: bool, ancestry: bool = False) -> None:
    run = await client.get_run(run_id)
    if not follow:
        for stored, event in await run.events(follow_ancestry=ancestry):
            click.echo(dumps(event_to_json(stored, event)))
        return
    stream_events = run.follow_events(poll_interval_s=0.5, follow_ancestry=ancestry)
    async with contextlib.aclosing(stream_events) as stream:
        async for stored, event in stream:
            click.echo(dumps(event_to_json(stored, event)))


@main.command()
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing new events (polling every 0.5 s) until the run ends.",
)
@click.option(
    "--follow-ancestry",
    is_flag=True,
    help="For a fork, first the parent's events up to the fork point (and its parent's...).",
)
@db_option
@pass_clients
def logs(
    clients: Clients, run_id: str, follow: bool, follow_ancestry: bool, db: str | None
) -> None:
    """Print a run's event stream as NDJSON, from the database.

    The lines are those of `smithers events RUN --json` (and of the run's
    stream.ndjson mirror). With -f, waits for new events until the run finishes,
    fails, is cancelled or continues as new; Ctrl-C stops following (exit 130).

    \b
    Examples:
        smithers logs RUN
        smithers logs RUN -f | jq -c 'select(.type == "NodeFinished")'
        smithers logs FORK --follow-ancestry
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    clients.run(db, lambda client: _print_log(client, run_id, follow, follow_ancestry))
