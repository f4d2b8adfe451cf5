"""The read commands of a run's log and outputs (DESIGN §9): ``events``, ``output``, ``logs``.

Each opens one client (``ctx.obj``), reads, and prints; every one has ``--json``.
"""

from __future__ import annotations

import contextlib
import time
import typing
from typing import Any

import anyio
import click
from smithers.engine import (
    event_to_json,
)
from smithers.eventstore import SmithersError
from smithers.eventstore.events import TERMINAL_RUN_STATUSES

from ._clients import Clients, pass_clients
from ._commands import main
from ._options import DURATION as _DURATION
from ._options import UNIT_MS as _UNIT_MS
from ._options import LongNameOption, check_run_id, db_option
from ._output import (
    dumps,
    echo_json,
    event_line,
    stdout_is_tty,
)
from ._text import echo
from ._watch import flush_stdout, interval_s

if typing.TYPE_CHECKING:
    from smithers.engine import Client, RunHandle
    from smithers.eventstore import StoredEvent
    from smithers.eventstore.events import Event

__all__ = ()


def _invalid_events_option(message: str, command: str = "events") -> SmithersError:
    return SmithersError(
        message,
        code="INVALID_EVENTS_OPTIONS",
        hint=f"See `smithers {command} --help` for the options.",
    )


def _parse_since(text: str | None, command: str = "events") -> tuple[int, int | None]:
    """Return ``(after_seq, since_ms)`` for ``--since SEQ|DURATION``."""
    if text is None:
        return 0, None
    if text.strip().isdigit():
        return int(text), None
    m = _DURATION.match(text)
    if m is None:
        raise _invalid_events_option(
            f"--since takes a seq (e.g. 120) or a duration (e.g. 30s, 5m, 2h, 1d), got {text!r}.",
            command,
        )
    window_ms = int(float(m.group(1)) * _UNIT_MS[m.group(2)])
    return 0, time.time_ns() // 1_000_000 - window_ms


def _parse_limit(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise _invalid_events_option(f"--limit takes a whole number >= 1, got {text!r}.")
    return int(text)


Rows = list[tuple["StoredEvent", "Event"]]


async def _read_new(run: RunHandle, after_seq: int, **filters: Any) -> tuple[Rows, int, bool]:
    """Read the run's events after `after_seq` matching `filters`.

    Returns:
        ``(rows, seq to read after next time, whether the run has ended)``: the run's
        row is read first, so no event recorded meanwhile is skipped.
    """
    record = await run.describe()
    rows = await run.events(after_seq=after_seq, **filters)
    own = [stored.seq for stored, _ in rows if stored.run_id == run.run_id]
    return rows, max([after_seq, record.last_seq, *own]), record.status in TERMINAL_RUN_STATUSES


def _group_key(body: dict[str, Any], by: str) -> str | None:
    value = body.get("nodeId") if by == "node" else body.get("type")
    return None if value is None else str(value)


def _print_groups(bodies: list[dict[str, Any]], by: str, as_json: bool) -> None:
    """Print events grouped by node or type, groups in order of their first event."""
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for body in bodies:
        groups.setdefault(_group_key(body, by), []).append(body)
    if as_json:
        echo_json(
            {
                "groupBy": by,
                "groups": [
                    {"key": key, "count": len(items), "events": items}
                    for key, items in groups.items()
                ],
            }
        )
        return
    if not groups:
        echo("No matching events.")
        return
    for n, (key, items) in enumerate(groups.items()):
        name = key if key is not None else "(the run itself)"
        plural = "s" if len(items) != 1 else ""
        echo(("\n" if n else "") + f"== {by} {name}: {len(items)} event{plural}", multiline=True)
        for body in items:
            echo(event_line(body))


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
@click.option(
    "-l",
    "--limit",
    cls=LongNameOption,
    metavar="N",
    help="At most N events (the first ones matching).",
)
@click.option(
    "--group-by",
    type=click.Choice(["node", "type"]),
    help="Print the events grouped by node or by type (with --json: one object).",
)
@click.option(
    "-w",
    "--watch",
    is_flag=True,
    help="Then keep printing new matching events until the run ends (or Ctrl-C).",
)
@click.option(
    "--interval",
    default="500ms",
    show_default=True,
    metavar="DURATION",
    help="With --watch: how often to look for new events.",
)
@click.option(
    "--follow-ancestry",
    is_flag=True,
    help="First the ancestors' events: a fork's parent up to the fork point, a "
    "continue-as-new run's predecessors whole (and so on up the chain).",
)
@db_option
@click.option(
    "-j", "--json", "as_json", is_flag=True, help="Print NDJSON: one event object per line."
)
@pass_clients
def events(
    clients: Clients,
    run_id: str,
    node_id: str | None,
    types: tuple[str, ...],
    since: str | None,
    limit: str | None,
    group_by: str | None,
    watch: bool,
    interval: str,
    follow_ancestry: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Print a run's events in order, optionally filtered.

    With --json each line is Smithers' NDJSON event object: `seq`, `type`, `runId`,
    `timestampMs` and the event's fields (camelCase). --group-by prints them in
    groups, one per node (or type), in the order each group first appears; with
    --json that is one object: {"groupBy", "groups": [{"key", "count", "events"}]}.
    --watch keeps printing new matching events until the run ends; Ctrl-C stops it
    sooner (exit 130).

    \b
    Examples:
        smithers events RUN --type NodeFailed --type NodeRetrying
        smithers events RUN --node second --since 5m
        smithers events RUN --since 120 -l 50 --json
        smithers events RUN --group-by node
        smithers events RUN --type NodeFinished,NodeFailed --watch
        smithers events FORK --follow-ancestry
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    if watch and group_by is not None:
        raise click.UsageError("--group-by needs every event first; it cannot --watch.")
    if watch and limit is not None:
        raise click.UsageError("Use either --limit or --watch, not both.")
    every_s = interval_s(interval)
    after_seq, since_ms = _parse_since(since)
    wanted = [t.strip() for item in types for t in item.split(",") if t.strip()] or None
    at_most = _parse_limit(limit)
    filters: dict[str, Any] = {"node_id": node_id, "types": wanted, "since_ms": since_ms}
    shown_run = run_id if not follow_ancestry else None

    def show(rows: Rows) -> None:
        nonlocal shown_run
        for stored, event in rows:
            body = event_to_json(stored, event)
            if not as_json and stored.run_id != shown_run:
                shown_run = stored.run_id  # following ancestry: say whose events follow
                echo(f"-- run {shown_run}")
            echo(dumps(body) if as_json else event_line(body))

    async def read(client: Client) -> Rows:
        run = await client.get_run(run_id)
        if not watch:
            return await run.events(
                after_seq=after_seq, limit=at_most, follow_ancestry=follow_ancestry, **filters
            )
        rows, after, ended = await _read_new(
            run, after_seq, follow_ancestry=follow_ancestry, **filters
        )
        show(rows)
        flush_stdout()
        while not ended:
            await anyio.sleep(every_s)
            rows, after, ended = await _read_new(run, after, **filters)
            show(rows)
            flush_stdout()
        return []

    rows = clients.run(db, read, read_only=True)
    if watch:
        return
    if group_by is not None:
        _print_groups([event_to_json(s, e) for s, e in rows], group_by, as_json)
        return
    show(rows)
    if not rows and not as_json:
        echo("No matching events.")


# ---------------------------------------------------------------------- output


@main.command()
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@click.argument("node_id", metavar="NODE")
@click.option(
    "--iteration", type=click.IntRange(min=0), metavar="I", help="Loop iteration (default: latest)."
)
@db_option
@click.option("-j", "--json", "as_json", is_flag=True, help="Print compact JSON on one line.")
@click.option(
    "--pretty", is_flag=True, help="Print indented JSON (the default on a terminal only)."
)
@pass_clients
def output(
    clients: Clients,
    run_id: str,
    node_id: str,
    iteration: int | None,
    db: str | None,
    as_json: bool,
    pretty: bool,
) -> None:
    """Print a node's output as JSON.

    Indented on a terminal (or with --pretty), on one line otherwise (or with --json).

    \b
    Examples:
        smithers output RUN second
        smithers output RUN second --pretty > second.json
        smithers output RUN review --iteration 2 --json | jq .score
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    if as_json and pretty:
        raise click.UsageError("Use either --json (one line) or --pretty (indented), not both.")

    async def read(client: Client) -> Any:
        return await (await client.get_run(run_id)).output(node_id, iteration=iteration)

    value = clients.run(db, read, read_only=True)
    echo_json(value, pretty=pretty or (stdout_is_tty() and not as_json))


# ---------------------------------------------------------------------- logs


async def _print_log(
    client: Client,
    run_id: str,
    follow: bool,
    ancestry: bool = False,
    since: str | None = None,
    tail: int | None = None,
) -> None:
    run = await client.get_run(run_id)

    def show(rows: Rows) -> None:
        for stored, event in rows:
            echo(dumps(event_to_json(stored, event)))

    if since is None and tail is None:
        if not follow:
            show(await run.events(follow_ancestry=ancestry))
            return
        stream_events = run.follow_events(poll_interval_s=0.5, follow_ancestry=ancestry)
        async with contextlib.aclosing(stream_events) as stream:
            async for stored, event in stream:
                echo(dumps(event_to_json(stored, event)))
                flush_stdout()
        return

    after_seq, since_ms = _parse_since(since, "logs")
    rows, after, ended = await _read_new(
        run, after_seq, since_ms=since_ms, follow_ancestry=ancestry
    )
    show(rows[len(rows) - tail :] if tail is not None else rows)
    if not follow or ended:
        return
    flush_stdout()
    stream_events = run.follow_events(after_seq=after, poll_interval_s=0.5)
    async with contextlib.aclosing(stream_events) as stream:
        async for stored, event in stream:
            echo(dumps(event_to_json(stored, event)))
            flush_stdout()


@main.command()
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing new events (polling every 0.5 s) until the run ends.",
)
@click.option(
    "--since",
    metavar="SEQ|DURATION",
    help="Events after this seq (e.g. 120), or newer than this duration (30s, 5m, 2h, 1d).",
)
@click.option(
    "-n",
    "--tail",
    cls=LongNameOption,
    type=click.IntRange(min=0),
    metavar="N",
    help="Only the last N events (then, with -f, the new ones).",
)
@click.option(
    "--follow-ancestry",
    is_flag=True,
    help="First the ancestors' events: a fork's parent up to the fork point, a "
    "continue-as-new run's predecessors whole (and so on up the chain).",
)
@db_option
@pass_clients
def logs(
    clients: Clients,
    run_id: str,
    follow: bool,
    since: str | None,
    tail: int | None,
    follow_ancestry: bool,
    db: str | None,
) -> None:
    """Print a run's event stream as NDJSON, from the database.

    The lines are those of `smithers events RUN --json` (and of the run's
    stream.ndjson mirror). With -f, waits for new events until the run finishes,
    fails, is cancelled or continues as new; Ctrl-C stops following (exit 130).

    \b
    Examples:
        smithers logs RUN
        smithers logs RUN -n 20 -f
        smithers logs RUN --since 5m
        smithers logs RUN -f | jq -c 'select(.type == "NodeFinished")'
        smithers logs FORK --follow-ancestry
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    clients.run(
        db,
        lambda client: _print_log(client, run_id, follow, follow_ancestry, since, tail),
        read_only=True,
    )
