"""Deciding and signalling: ``approve``, ``deny``, ``signal`` and ``approvals`` (DESIGN §9).

``approve``/``deny``/``signal`` record the request through the client
(`RunHandle.approve` ..., with ``resume=False``) and, when the run was parked, resume
it in the background as ``up --detach`` does (``python -m smithers up --resume RUN``
in its own session, output in ``executions/RUN/logs/up.log``), unless ``--no-resume``.
A run with a live owner is left to it: the owner picks the request up.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click
from smithers.eventstore import SmithersError

from ._after_request import (
    Resumed,
    default_by,
    resume_actor_args,
    resume_for,
    resumed_json,
    say_what_next,
)
from ._clients import Clients, pass_clients
from ._commands import main
from ._options import (
    actor_options,
    check_run_id,
    cli_actor,
    command_line,
    db_option,
    json_option,
    read_input_text,
)
from ._output import dumps, echo_json, format_duration, print_table
from ._text import echo
from ._waiting import decide_command

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smithers.engine import (
        Client,
        DecisionResult,
        PendingApproval,
        SignalResult,
    )

__all__ = ("approvals", "approve", "deny", "signal_command")


def _decide(
    ctx: click.Context,
    clients: Clients,
    verb: str,
    run_id: str,
    *,
    db: str | None,
    no_resume: bool,
    as_json: bool,
    actor_args: Sequence[str] = (),
    **options: Any,
) -> None:
    """``approve``/``deny``: record the decision, resume a parked run, report."""

    async def run(client: Client) -> tuple[DecisionResult, str, Resumed | None]:
        handle = await client.get_run(run_id)
        method = handle.approve if verb == "approve" else handle.deny
        result: DecisionResult = await method(resume=False, **options)
        target, resumed = result.resume_run_id or result.run_id, None
        if result.parked and not no_resume and result.queue is None:
            target, resumed = await resume_for(client, result, actor_args)
        return result, target, resumed

    result, target, resumed = clients.run(db, run)
    a = result.node.approval
    if as_json:
        echo_json(
            {
                "runId": result.run_id,
                "requestedRunId": result.requested_run_id or result.run_id,
                "resumeRunId": target,
                "nodeId": result.node_id,
                "iteration": result.iteration,
                "decision": result.decision,
                "decidedBy": a.decided_by if a else None,
                "note": a.note if a else None,
                "selected": a.selected if a else None,
                "ranked": list(a.ranked) if a else [],
                "seq": result.seq,
                "runStatus": result.run_status,
                "parked": result.parked,
                "queue": result.queue,
                "resumed": resumed_json(resumed),
            }
        )
    else:
        it = f" (iteration {result.iteration})" if result.iteration else ""
        by = f" by {a.decided_by}" if a is not None and a.decided_by else ""
        what = "Approved" if result.decision == "granted" else "Denied"
        choice = ""
        if a is not None and a.selected is not None:
            choice = f": selected {a.selected!r}"
        elif a is not None and a.ranked:
            choice = f": ranked {', '.join(a.ranked)}"
        where = _where(result.run_id, run_id)
        echo(f"{what} {result.node_id}{it} in {where}{by}{choice}.")
    say_what_next(
        ctx, target, result.parked, resumed, no_resume, db, as_json=as_json, queue=result.queue
    )


def _where(recorded_in: str, named: str) -> str:
    """``run R``, or ``child run C of run R`` when a request reached a child run."""
    if recorded_in == named:
        return f"run {named}"
    return f"child run {recorded_in} of run {named}"


_node_option = click.option(
    "--node",
    "node_id",
    metavar="ID",
    help="The approval's node (may be left out when only one approval waits).",
)
_iteration_option = click.option(
    "--iteration",
    type=click.IntRange(min=0),
    metavar="N",
    help="The node's loop iteration (when several iterations wait).",
)
_note_option = click.option("--note", metavar="TEXT", help="A note recorded with the decision.")
_by_option = actor_options(
    by_help="Who decides (recorded as decidedBy and as the decision's actor). Default: your "
    "OS user name (the actor: $SMITHERS_ACTOR, else your OS user)."
)
_no_resume_option = click.option(
    "--no-resume",
    is_flag=True,
    help="Only record it; do not resume the parked run (resume later with up --resume).",
)


@main.command()
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@_node_option
@_iteration_option
@_note_option
@_by_option
@click.option(
    "--select",
    "selected",
    metavar="OPTION",
    help="For a select approval: the option chosen.",
)
@click.option(
    "--rank",
    "rank",
    metavar="A,B,C",
    help="For a rank approval: every option, comma-separated, in your order.",
)
@_no_resume_option
@db_option
@json_option
@click.pass_context
@pass_clients
def approve(
    clients: Clients,
    ctx: click.Context,
    run_id: str,
    node_id: str | None,
    iteration: int | None,
    note: str | None,
    by: str | None,
    reason: str | None,
    selected: str | None,
    rank: str | None,
    no_resume: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Grant an approval a run waits for, and resume the run.

    Records ApprovalGranted in the run's log. If the run is parked (waiting-approval)
    it is resumed in the background, as `up --detach` does (output in
    .smithers/executions/RUN/logs/up.log), unless --no-resume; a run whose process is
    live picks the decision up itself. With one approval waiting, --node may be
    left out. An approval is decided once: deciding it again is refused
    (APPROVAL_ALREADY_DECIDED). `smithers approvals` lists what waits.

    \b
    Examples:
        smithers approve run-lx2k3j-1a2b3c
        smithers approve run-lx2k3j-1a2b3c --node deploy-approval --note "LGTM"
        smithers approve run-lx2k3j-1a2b3c --node pick-model --select gpt
        smithers approve run-lx2k3j-1a2b3c --node order --rank b,a,c --no-resume

    \b
    Exit codes:
        0  recorded (and the resume started, if the run was parked)
        4  nothing to decide (NO_PENDING_APPROVALS), several waiting and no --node
           (AMBIGUOUS_APPROVAL), decided already (APPROVAL_ALREADY_DECIDED), or a
           bad --select/--rank (INVALID_INPUT); nothing is recorded
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    ranked = None if rank is None else [r.strip() for r in rank.split(",") if r.strip()]
    actor = cli_actor(by, reason)
    _decide(
        ctx,
        clients,
        "approve",
        run_id,
        db=db,
        no_resume=no_resume,
        as_json=as_json,
        node_id=node_id,
        iteration=iteration,
        note=note,
        by=by if by is not None else default_by(),
        selected=selected,
        ranked=ranked,
        actor=actor,
        actor_args=resume_actor_args(by, reason),
    )


@main.command()
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@_node_option
@_iteration_option
@_note_option
@_by_option
@_no_resume_option
@db_option
@json_option
@click.pass_context
@pass_clients
def deny(
    clients: Clients,
    ctx: click.Context,
    run_id: str,
    node_id: str | None,
    iteration: int | None,
    note: str | None,
    by: str | None,
    reason: str | None,
    no_resume: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Deny an approval a run waits for, and resume the run.

    Records ApprovalDenied; what follows is the node's on_deny: "fail" (the run
    fails with APPROVAL_DENIED unless something catches it), "continue" (the node
    finishes with approved: false) or "skip". A parked run is resumed in the
    background unless --no-resume, as with `smithers approve`.

    \b
    Examples:
        smithers deny run-lx2k3j-1a2b3c --note "not this week"
        smithers deny run-lx2k3j-1a2b3c --node deploy-approval --by alice --json

    \b
    Exit codes:
        0  recorded (and the resume started, if the run was parked)
        4  nothing to decide, several waiting and no --node, or decided already
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    actor = cli_actor(by, reason)
    _decide(
        ctx,
        clients,
        "deny",
        run_id,
        db=db,
        no_resume=no_resume,
        as_json=as_json,
        node_id=node_id,
        iteration=iteration,
        note=note,
        by=by if by is not None else default_by(),
        actor=actor,
        actor_args=resume_actor_args(by, reason),
    )


@main.command("signal")
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@click.argument("name", metavar="NAME")
@click.option(
    "--data",
    "data_json",
    metavar="JSON",
    default="null",
    show_default=True,
    help="The payload: JSON text, @FILE holding it, or - to read it from stdin.",
)
@click.option(
    "--correlation",
    "correlation_id",
    metavar="ID",
    help="Correlation id: only a wait with this id (or none) takes the signal.",
)
@actor_options(
    by_help="Who sends it (recorded as sentBy and as the signal's actor). Default: your OS "
    "user (the actor: $SMITHERS_ACTOR, else your OS user)."
)
@_no_resume_option
@db_option
@json_option
@click.pass_context
@pass_clients
def signal_command(
    clients: Clients,
    ctx: click.Context,
    run_id: str,
    name: str,
    data_json: str,
    correlation_id: str | None,
    by: str | None,
    reason: str | None,
    no_resume: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Send a signal NAME to a run: the oldest WaitForEvent waiting for it receives it.

    The payload is checked against that node's output schema first (a bad payload
    is INVALID_INPUT, exit 4, and nothing is recorded). A signal sent before a wait
    began does not count for that wait; a signal no node waits for is recorded
    anyway (for audit) and resolves nothing. If the run is parked, it is resumed in
    the background unless --no-resume.

    \b
    Examples:
        smithers signal run-lx2k3j-1a2b3c ci.done --data '{"ok": true}'
        smithers signal run-lx2k3j-1a2b3c paid --data '{"amount": 3}' --correlation order-42
        echo '{"ok": true}' | smithers signal run-lx2k3j-1a2b3c ci.done --data -
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    actor = cli_actor(by, reason)
    data = _parse_data(data_json)
    sender = by if by is not None else default_by()

    async def run(client: Client) -> tuple[SignalResult, str, Resumed | None]:
        handle = await client.get_run(run_id)
        result = await handle.signal(
            name, data, correlation_id=correlation_id, by=sender, resume=False, actor=actor
        )
        target, resumed = result.resume_run_id or result.run_id, None
        if result.parked and not no_resume and result.queue is None:
            target, resumed = await resume_for(client, result, resume_actor_args(by, reason))
        return result, target, resumed

    result, target, resumed = clients.run(db, run)
    to = result.delivered_to
    if as_json:
        echo_json(
            {
                "runId": result.run_id,
                "requestedRunId": result.requested_run_id or result.run_id,
                "resumeRunId": target,
                "signalName": result.signal_name,
                "correlationId": result.correlation_id,
                "seq": result.seq,
                "deliveredTo": None if to is None else {"nodeId": to[0], "iteration": to[1]},
                "runStatus": result.run_status,
                "parked": result.parked,
                "queue": result.queue,
                "resumed": resumed_json(resumed),
            }
        )
    elif to is None:
        echo(f"No node waits for {name!r} in run {run_id}; recorded, resolves nothing.")
    else:
        it = f" (iteration {to[1]})" if to[1] else ""
        where = _where(result.run_id, run_id)
        echo(f"Signal {name!r} delivered to {to[0]}{it} in {where}.")
    if to is None:
        if not as_json:
            echo("  inspect: " + command_line("inspect", args=[run_id], db=db))
        return
    say_what_next(
        ctx, target, result.parked, resumed, no_resume, db, as_json=as_json, queue=result.queue
    )


def _parse_data(text: str) -> Any:
    """``--data``: JSON text, ``@FILE`` or ``-``; ``INVALID_INPUT`` if not JSON."""
    body, source = read_input_text(text)
    source = source.replace("--input", "--data")
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise SmithersError(
            f"{source} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}).",
            code="INVALID_INPUT",
            details={"data": text[:300]},
            hint="Pass JSON, e.g. --data '{\"ok\": true}', --data @payload.json or --data -.",
        ) from e


# ---------------------------------------------------------------------- approvals


def _approval_json(p: PendingApproval, now_ms: int, db: str | None) -> dict[str, Any]:
    def command(verb: str) -> str:
        return decide_command(
            verb, p.run_id, p.node_id, p.iteration, mode=p.mode, options=p.options, db=db
        )

    return {
        "runId": p.run_id,
        "rootRunId": p.root_run_id or p.run_id,
        "runStatus": p.run_status,
        "workflowName": p.workflow_name,
        "nodeId": p.node_id,
        "iteration": p.iteration,
        "title": p.title,
        "summary": p.summary,
        "mode": p.mode,
        "options": list(p.options),
        "metadata": p.metadata,
        "requestedAtMs": p.requested_at_ms,
        "waitingMs": max(now_ms - p.requested_at_ms, 0),
        "approveCommand": command("approve"),
        "denyCommand": command("deny"),
    }


@main.command()
@click.argument("run_id", metavar="[RUN]", required=False, callback=check_run_id)
@db_option
@json_option
@pass_clients
def approvals(clients: Clients, run_id: str | None, db: str | None, as_json: bool) -> None:
    """List the approvals waiting for a decision: in every active run, or in RUN.

    For each: the run, the node, how long it has waited, its title and summary,
    and the exact `smithers approve` / `smithers deny` commands.

    \b
    Examples:
        smithers approvals
        smithers approvals run-lx2k3j-1a2b3c
        smithers approvals --json | jq -r '.[].approveCommand'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"

    async def read(client: Client) -> list[PendingApproval]:
        if run_id is not None:
            await client.get_run(run_id)  # RUN_NOT_FOUND for a run that does not exist
        return await client.pending_approvals(run_id=run_id)

    pending = clients.run(db, read, read_only=True)
    now_ms = time.time_ns() // 1_000_000
    items = [_approval_json(p, now_ms, db) for p in pending]
    if as_json:
        echo_json(items)
        return
    if not items:
        where = f"in run {run_id}" if run_id else "in any active run"
        echo(f"No approval waits for a decision {where}.")
        return
    print_table(
        ("RUN ID", "NODE", "ITER", "MODE", "WAITING", "TITLE"),
        (
            (
                i["runId"],
                i["nodeId"],
                str(i["iteration"]),
                i["mode"],
                format_duration(i["waitingMs"]),
                i["title"] or "-",
            )
            for i in items
        ),
        styles=("bold", "", "", "", "", ""),
    )
    for i in items:
        echo()
        it = f"#{i['iteration']}" if i["iteration"] else ""
        echo(f"{i['runId']} {i['nodeId']}{it}: {i['title'] or '(no title)'}")
        if i["rootRunId"] != i["runId"]:
            echo(f"  in run:  {i['rootRunId']} (a Subflow's child run)")
        if i["summary"]:
            echo(f"  summary: {i['summary']}")
        if i["options"]:
            echo(f"  options: {', '.join(i['options'])}")
        if i["metadata"] is not None:
            echo(f"  metadata: {dumps(i['metadata'])}")
        echo(f"  approve: {i['approveCommand']}")
        echo(f"  deny:    {i['denyCommand']}")
