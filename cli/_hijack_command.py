"""``smithers hijack RUN [--node ID]``: stop a run and hand its agent session to a person.

A thin command over `smithers.engine.hijack_run`: the run parks ``waiting-resume``
(resumable, not cancelled), and the command that opens the coding agent's session
interactively is printed (``cd <folder> && claude --resume <id>``, ``codex resume
<id>``, ``gemini --resume <id>``). ``smithers up --resume RUN`` continues the run
afterwards, in the same session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from smithers.engine import hijack_run, resolve_actor

from ._clients import Clients, pass_clients
from ._commands import main
from ._options import check_run_id, command_line, db_option, json_option, parse_duration_ms
from ._output import echo_json
from ._text import echo

if TYPE_CHECKING:
    from smithers.engine import Client, HijackResult, HijackStep

__all__ = ("hijack",)


@main.command()
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@click.option(
    "--node",
    "node_id",
    metavar="ID",
    help="The agent task to take over (default: the latest agent session, running first).",
)
@click.option("--by", "by", metavar="NAME", help="Who takes over (recorded). Default: you.")
@click.option("--reason", metavar="TEXT", help="Why; recorded with the request.")
@click.option(
    "--wait",
    "wait",
    metavar="DURATION",
    default="10s",
    show_default=True,
    help="How long to wait for a live owner to stop before recording the hijack here.",
)
@db_option
@json_option
@pass_clients
def hijack(
    clients: Clients,
    run_id: str,
    node_id: str | None,
    by: str | None,
    reason: str | None,
    wait: str,
    db: str | None,
    as_json: bool,
) -> None:
    """Stop a run and print the command that opens its agent session for you.

    The run's owner stops its tasks (the coding agent's process is killed), records
    the hijack and parks the run as waiting-resume: it is not cancelled. Open the
    session with the printed command, work in it, then continue the run with
    `smithers up --resume RUN`: the agent task continues the same session. A run
    whose process is gone (or that is parked) is hijacked by this command directly.

    \b
    Examples:
        smithers hijack run-lx2k3j-1a2b3c
        smithers hijack run-lx2k3j-1a2b3c --node implement --json
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    wait_ms = parse_duration_ms(wait, "--wait")
    actor = resolve_actor("cli", by=by, reason=reason)

    def on_step(step: HijackStep) -> None:
        if step == "requested" and not as_json:
            echo(f"Hijack requested; waiting for the owner of run {run_id} to stop…")

    async def run(client: Client) -> HijackResult:
        return await hijack_run(
            run_id,
            node_id=node_id,
            db=client.db,
            actor=actor,
            wait_ms=wait_ms,
            on_step=on_step,
        )

    result = clients.run(db, run)
    resume = command_line("up", options=[("--resume", run_id)], db=db)
    if as_json:
        echo_json(
            {
                "runId": result.run_id,
                "status": result.status,
                "action": result.action,
                "nodeId": result.node_id,
                "iteration": result.iteration,
                "attempt": result.attempt,
                "engine": result.engine,
                "sessionId": result.session_id,
                "cwd": result.cwd,
                "command": result.command,
                "resumeCommand": resume,
            }
        )
        return
    who = "its owner stopped it" if result.action == "requested" else "recorded here"
    echo(
        f"Run {result.run_id} hijacked ({who}): node {result.node_id} "
        f"(attempt {result.attempt}, {result.engine}) is yours; the run is {result.status}."
    )
    echo("Open the session:")
    echo(f"  {result.command}")
    echo("When you are done, continue the run:")
    echo(f"  {resume}")
