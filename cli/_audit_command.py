"""``smithers audit``: who took which operation on a run, when, from where, and why.

The operations are read from the log (`Client.audit`): every event carrying an
``actor`` (``--by``/``--reason``/``SMITHERS_ACTOR`` where it was taken). ``inspect``
shows a run's last few with `operations_json` and `print_operations`.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import click
from smithers.eventstore import SmithersError

from ._clients import Clients, pass_clients
from ._commands import main
from ._options import DURATION, UNIT_MS, check_run_id, db_option, json_option
from ._output import echo_json, format_time, print_table
from ._text import echo

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smithers.engine import Client, Operation

__all__ = ("operations_json", "parse_since_ms", "print_operations")


def parse_since_ms(text: str, *, now_ms: int) -> int:
    """Return ``--since`` as Unix epoch ms: a duration back from `now_ms`, or a date.

    A duration is a number and a unit (``30m``, ``12h``, ``7d``); a date is ISO 8601
    (``2026-11-30`` or ``2026-11-30T09:00``, local time unless it names a zone).

    Raises:
        SmithersError: code ``INVALID_INPUT`` (exit 4) for anything else.
    """
    m = DURATION.match(text)
    if m is not None:
        return now_ms - int(float(m.group(1)) * UNIT_MS[m.group(2)])
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise SmithersError(
            f"--since takes a duration (e.g. 30m, 12h, 7d) or a date (e.g. 2026-11-30), "
            f"got {text!r}.",
            code="INVALID_INPUT",
            details={"field": "since", "value": text},
            hint="Try `smithers audit --since 7d`.",
        ) from None
    return int(when.timestamp() * 1000)


def operations_json(ops: Sequence[Operation]) -> list[dict[str, Any]]:
    """The JSON of operations: ``[{runId, seq, stream, type, timestampMs, actor, what, params}]``.

    ``actor`` is ``{name, host, pid, interface, reason}`` (``reason`` null when none).
    """
    return [
        {
            "runId": op.run_id,
            "seq": op.seq,
            "stream": op.stream,
            "type": op.type,
            "timestampMs": op.timestamp_ms,
            "actor": {
                "name": op.actor.name,
                "host": op.actor.host,
                "pid": op.actor.pid,
                "interface": op.actor.interface,
                "reason": op.actor.reason,
            },
            "what": op.what,
            "params": op.params,
        }
        for op in ops
    ]


def print_operations(ops: Sequence[Operation], *, run_column: bool = True) -> None:
    """Print operations as a table: when, (run,) who, from where, what, why."""
    headers = ["WHEN", *(["RUN"] if run_column else []), "WHO", "FROM", "WHAT", "WHY"]
    rows = [
        [
            format_time(op.timestamp_ms),
            *([op.run_id] if run_column else []),
            op.actor.name,
            f"{op.actor.interface} {op.actor.host} pid {op.actor.pid}",
            op.what,
            op.actor.reason or "-",
        ]
        for op in ops
    ]
    print_table(headers, rows, styles=[""] * len(headers))


@main.command("audit")
@click.argument("run_id", metavar="[RUN]", required=False, callback=check_run_id)
@click.option(
    "--since",
    metavar="DURATION|DATE",
    help="Only operations in the last DURATION (30m, 12h, 7d) or since DATE (ISO 8601).",
)
@click.option("--actor", metavar="NAME", help="Only operations taken by NAME.")
@click.option(
    "--type",
    "types",
    metavar="TYPE",
    multiple=True,
    help="Only operations of this event type (e.g. RunRewound); repeat or comma-separate.",
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N, the newest.")
@db_option
@json_option
@pass_clients
def audit_command(
    clients: Clients,
    run_id: str | None,
    since: str | None,
    actor: str | None,
    types: tuple[str, ...],
    limit: int | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Show who did what to a run (or to every run), when, from where, and why.

    Lists the operations recorded in the log, newest first: starts and resumes,
    cancel requests, rewinds, forks, replays, retry-tasks, approvals, denials,
    signals and the supervisor's resumes, each with its actor (--by, else
    $SMITHERS_ACTOR, else the OS user), host, process, interface (cli, api,
    supervisor) and reason (--reason). With RUN, its forks and continuations are
    included. --json prints a list of {runId, seq, stream, type, timestampMs,
    actor{name, host, pid, interface, reason}, what, params}.

    \b
    Examples:
        smithers audit run-lx2k3j-1a2b3c
        smithers audit run-lx2k3j-1a2b3c --type RunRewound --json
        smithers audit --since 7d --actor alice
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    since_ms = None if since is None else parse_since_ms(since, now_ms=time.time_ns() // 1_000_000)
    wanted = [t.strip() for given in types for t in given.split(",") if t.strip()] or None

    async def read(client: Client) -> list[Operation]:
        return await client.audit(run_id, since_ms=since_ms, actor=actor, types=wanted, limit=limit)

    ops = clients.run(db, read, read_only=True)
    if as_json:
        echo_json(operations_json(ops))
        return
    if not ops:
        where = f"run {run_id}" if run_id is not None else "this database"
        echo(f"No operations recorded for {where} (with these filters).")
        return
    print_operations(ops)
