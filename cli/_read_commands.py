"""The read commands of runs (DESIGN §9): ``ps``, ``inspect`` (``_log_commands``: the log).

Each opens one client (``ctx.obj``), reads, and prints; every one has ``--json``.
"""

from __future__ import annotations

import contextlib
import time
import typing
from typing import Any

import click
import msgspec
from smithers.engine import COLLECTED_STATUS, IMPORTED_STATUS
from smithers.eventstore import SmithersError
from smithers.eventstore.events import TERMINAL_RUN_STATUSES

from ._audit_command import operations_json, print_operations
from ._children import (
    InspectView,
    children_json,
    inspect_with_children,
    print_children,
    subflow_json,
)
from ._clients import Clients, pass_clients
from ._commands import RUN_STATUSES, main
from ._inspect_view import recent_operations
from ._options import LongNameOption, check_run_id, command_line, db_option, json_option
from ._output import (
    echo_json,
    inspect_json,
    print_inspect,
    print_runs,
    runs_json,
)
from ._text import echo
from ._waiting import (
    WAITING_RUN_STATUSES,
    needs_descendants,
    waiting_for_json,
    waiting_for_text,
    waiting_lines,
)
from ._watch import interval_option, interval_s, watch_view

if typing.TYPE_CHECKING:
    from smithers.engine import Client, Operation, OwnerVerdict
    from smithers.eventstore import RunRecord

__all__ = ()

Listing = tuple[list["RunRecord"], dict[str, list[dict[str, Any]]]]
"""What ``ps`` reads: the runs, and what each live or parked run waits for."""


PS_DEFAULT_LIMIT = 20
"""How many runs ``ps`` lists unless given ``--limit`` or ``--all``."""


@main.command()
@click.option(
    "-s",
    "--status",
    cls=LongNameOption,
    type=click.Choice((*RUN_STATUSES, IMPORTED_STATUS)),
    help="Only runs with this status (imported: copied by `smithers import` before they ended).",
)
@click.option(
    "-l",
    "--limit",
    cls=LongNameOption,
    type=click.IntRange(min=1),
    metavar="N",
    help=f"Show at most N runs (default: {PS_DEFAULT_LIMIT}).",
)
@click.option("-a", "--all", "show_all", is_flag=True, help="Show every run (no limit).")
@click.option(
    "--no-children",
    "no_children",
    is_flag=True,
    help="Hide child runs (the runs of Subflow nodes, ids RUN:child:NODE:ITER).",
)
@click.option(
    "-w", "--watch", is_flag=True, help="Show the list again as it changes, until Ctrl-C."
)
@interval_option
@db_option
@json_option
@pass_clients
def ps(
    clients: Clients,
    status: str | None,
    limit: int | None,
    show_all: bool,
    no_children: bool,
    watch: bool,
    interval: str,
    db: str | None,
    as_json: bool,
) -> None:
    """List runs, newest first (the newest 20 unless --limit or --all).

    A run that waits (parked: waiting-approval, -event or -timer; or live and
    holding a timer) shows what for: the node, the approval's title, the signal's
    name, the timer's fire time, and for how long (--json: a "waitingFor" list of
    {nodeId, iteration, kind, since, ...} on running and waiting runs).

    With --watch the list is shown again each time it changes (redrawn on a
    terminal; with --json one JSON array per line); Ctrl-C stops it (exit 130).

    \b
    Examples:
        smithers ps
        smithers ps -s failed -l 5 --json
        smithers ps --all
        smithers ps --watch --interval 1s
        smithers ps --no-children
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    if show_all and limit is not None:
        raise click.UsageError("Use either --all or --limit, not both.")
    every_s = interval_s(interval)
    at_most = None if show_all else (limit or PS_DEFAULT_LIMIT)

    # A running run's owner (issue 15): one that died or stopped writing shows so.
    owners: dict[str, OwnerVerdict] = {}

    async def read(client: Client) -> Listing:
        # One more than shown: tells whether runs were left out.
        runs = await client.runs(
            status=status,
            limit=None if at_most is None else at_most + 1,
            children=not no_children,
        )
        waits: dict[str, list[dict[str, Any]]] = {}
        for r in runs[:at_most]:
            if r.status == "running":
                with contextlib.suppress(SmithersError):
                    owners[r.run_id] = await (await client.get_run(r.run_id)).owner()
            if r.status in WAITING_RUN_STATUSES:
                try:
                    handle = await client.get_run(r.run_id)
                    state = await handle.state()
                    below = await handle.active_descendants() if needs_descendants(state) else []
                except SmithersError:
                    continue  # e.g. a run whose log a newer version wrote
                waits[r.run_id] = waiting_for_json(state, below)
        return runs, waits

    def show(listing: Listing) -> None:
        runs, waits = listing
        shown = runs[:at_most]
        if as_json:
            body = runs_json(shown)
            for run in body:  # live and parked runs only: the others wait for nothing
                if run["runId"] in waits:
                    run["waitingFor"] = waits[run["runId"]]
                verdict = owners.get(run["runId"])
                if verdict is not None:
                    run["owner"] = {
                        "state": verdict.kind,
                        "pid": verdict.pid,
                        "host": verdict.host,
                        "silentMs": verdict.silent_ms,
                        "reason": verdict.reason,
                    }
            echo_json(body)
            return
        now = time.time_ns() // 1_000_000
        texts = {rid: waiting_for_text(items, now) for rid, items in waits.items() if items}
        marks = {"stale": "running (stale)", "gone": "running (owner gone)"}
        print_runs(
            [
                msgspec.structs.replace(r, status=marks[owners[r.run_id].kind])
                if r.run_id in owners and owners[r.run_id].kind in marks
                else r
                for r in shown
            ],
            waiting=texts,
        )
        if at_most is not None and len(runs) > at_most:
            echo(f"Newest {at_most} runs shown; -l N for more, -a for all.")

    if not watch:
        show(clients.run(db, read, read_only=True))
        return

    async def watch_runs(client: Client) -> None:
        await watch_view(
            lambda: read(client),
            show,
            title="smithers ps",
            every_s=every_s,
            key=lambda listing: (runs_json(listing[0][:at_most]), listing[1]),
            separate=not as_json,
        )

    clients.run(db, watch_runs, read_only=True)


# ---------------------------------------------------------------------- inspect


@main.command()
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@click.option(
    "-w",
    "--watch",
    is_flag=True,
    help="Show the run again as it changes, until it ends (or Ctrl-C).",
)
@interval_option
@db_option
@json_option
@pass_clients
def inspect(
    clients: Clients, run_id: str, watch: bool, interval: str, db: str | None, as_json: bool
) -> None:
    """Show a run: status, input, error, and each node's state and attempts.

    The state is folded from the run's event log. With --watch it is shown again
    each time the run records something (redrawn on a terminal; with --json one
    JSON object per line) until the run finishes, fails, is cancelled or continues
    as new; Ctrl-C stops watching sooner (exit 130).

    \b
    Examples:
        smithers inspect run-lx2k3j-1a2b3c
        smithers inspect run-lx2k3j-1a2b3c --json | jq '.nodes[] | select(.state == "failed")'
        smithers inspect run-lx2k3j-1a2b3c --watch
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    every_s = interval_s(interval)
    marks: list[str] = []  # the index status once read, when collected or imported

    def show(seen: tuple[InspectView, list[Operation]]) -> None:
        (state, tree, children, below), ops = seen
        if as_json:
            out = inspect_json(state, tree)
            out["subflowOf"] = subflow_json(state)
            out["children"] = children_json(children)
            out["waitingFor"] = waiting_for_json(state, below)
            out["operations"] = operations_json(ops)
            if COLLECTED_STATUS in marks:
                out["collected"] = True
            if IMPORTED_STATUS in marks:
                out["imported"] = True
            echo_json(out)
        else:
            if COLLECTED_STATUS in marks:
                echo(
                    f"Run {run_id} was collected by `smithers gc --keep-audit`: only its "
                    "operation events and last event are left (see `smithers events "
                    "RUN`), so its nodes and outputs are gone."
                )
            if IMPORTED_STATUS in marks:
                echo(
                    f"Run {run_id} was imported (`smithers import`) before it ended, or up "
                    "to a fork point: nothing runs it here unless you resume it "
                    "(`smithers up --resume RUN`)."
                )
            print_inspect(state, tree=tree, db=db)
            lines = waiting_lines(
                state,
                now_ms=time.time_ns() // 1_000_000,
                db=db,
                descendants=below,
            )
            if lines:
                echo()
                echo("Waiting:")
                for line in lines:
                    echo(line)
            print_children(state, children)
            if ops:
                echo()
                echo("Last operations (all: " + command_line("audit", args=[run_id], db=db) + "):")
                print_operations(ops, run_column=False)

    async def read_once(client: Client) -> tuple[InspectView, list[Operation]]:
        view = await inspect_with_children(client, run_id)
        return view, await recent_operations(client, run_id)

    async def read(client: Client) -> tuple[InspectView, list[Operation]]:
        handle = await client.get_run(run_id)
        with contextlib.suppress(SmithersError):
            status = (await handle.describe()).status
            if status in (COLLECTED_STATUS, IMPORTED_STATUS):
                marks.append(status)
        if not watch:
            return await read_once(client)
        return await watch_view(
            lambda: read_once(client),
            show,
            title=f"smithers inspect {run_id}",
            every_s=every_s,
            key=lambda seen: seen[0][0].seq,
            done=lambda seen: seen[0][0].status in TERMINAL_RUN_STATUSES,
            separate=not as_json,
        )

    view = clients.run(db, read, read_only=True)
    if not watch:
        show(view)


# ---------------------------------------------------------------------- events
