"""Time-travel commands that append: ``rewind``, ``fork``, ``replay``, ``retry-task``.

DESIGN §7, §9. They take a run id, never a workflow path: the log knows the workflow
(its recorded file is imported again to run). Each appends events and deletes nothing;
a run's earlier events stay byte for byte as they were. Registered on the ``smithers``
group when `smithers.cli` is imported.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click
from smithers.engine import load_workflow
from smithers.eventstore.events import RetryTaskFinished

from ._clients import Clients, pass_clients
from ._commands import _report_result, main
from ._options import (
    LongNameOption,
    actor_options,
    check_run_id,
    cli_actor,
    command_line,
    db_option,
    json_option,
    parse_input_json,
)
from ._output import echo_json, stdout_is_tty
from ._progress import ProgressReporter
from ._text import echo

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from smithers.engine import Client, RunResult
    from smithers.projections import RunState

__all__ = ("fork_command", "replay_command", "retry_task_command", "rewind_command")

frame_option = click.option(
    "--frame",
    type=click.IntRange(min=0),
    required=True,
    metavar="N",
    help="Frame number (see `smithers timeline RUN`).",
)
input_option = click.option(
    "-i",
    "--input",
    "input_json",
    cls=LongNameOption,
    metavar="JSON",
    help="The new run's input: a JSON object, @FILE holding one, or - to read it from stdin.",
)
reset_option = click.option(
    "--reset-node",
    "reset_nodes",
    metavar="ID",
    multiple=True,
    help="Run this node again in the fork although it finished by the frame (repeatable).",
)
label_option = click.option("--label", metavar="LABEL", help="Branch label of the fork.")
new_run_id_option = click.option(
    "-r",
    "--run-id",
    "new_run_id",
    cls=LongNameOption,
    metavar="ID",
    callback=check_run_id,
    help="The fork's run id (default: a new one).",
)


def _stdin_is_tty() -> bool:
    """True when a person can answer a prompt."""
    isatty = getattr(sys.stdin, "isatty", None)
    return bool(isatty and isatty())


Ran = tuple["RunResult", ProgressReporter]
"""A run's result and the reporter that showed its progress."""


async def _with_progress(
    as_json: bool, start: Callable[[ProgressReporter], Awaitable[RunResult]]
) -> Ran:
    """Await ``start(reporter)`` while a progress reporter shows the run."""
    reporter = ProgressReporter("quiet" if as_json else "live" if stdout_is_tty() else "plain")
    with reporter:
        return await start(reporter), reporter


# ---------------------------------------------------------------------- rewind


@main.command("rewind")
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@frame_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--resume", is_flag=True, help="Resume the run from the frame right away.")
@click.option(
    "--force",
    is_flag=True,
    help="Rewind although an owner on another host still looks alive (fresh lease).",
)
@actor_options()
@db_option
@json_option
@click.pass_context
@pass_clients
def rewind_command(
    clients: Clients,
    ctx: click.Context,
    run_id: str,
    frame: int,
    yes: bool,
    resume: bool,
    force: bool,
    by: str | None,
    reason: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Rewind a run to frame N: its state becomes its state at that frame.

    Appends RunRewound{toFrameNo, toSeq}. Later events stay in the log for audit but
    no longer count; tasks that were running at the frame run again when the run
    resumes. On a terminal, asks for confirmation unless --yes. A run still being
    driven is refused (RUN_OWNER_ALIVE, RUN_STILL_RUNNING).

    \b
    Examples:
        smithers rewind RUN --frame 4
        smithers rewind RUN --frame 4 --yes --resume
        smithers rewind RUN --frame 4 --by alice --reason "bad deploy at frame 5"
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    actor = cli_actor(by, reason)
    if not yes and _stdin_is_tty():
        click.confirm(
            f"Rewind run {run_id} to frame {frame}? Later events stay in the log but stop "
            "counting.",
            abort=True,
        )

    async def session(client: Client) -> tuple[RunState, Ran | None]:
        run = await client.get_run(run_id)
        state = await run.rewind(frame, force=force, actor=actor)
        if not resume:
            return state, None
        if not as_json:
            to_seq = state.frames[-1].seq if state.frames else 0
            echo(f"Run {run_id} rewound to frame {frame} (seq {to_seq}); resuming.")
        return state, await _with_progress(
            as_json, lambda reporter: run.resume(force=force, on_progress=reporter, actor=actor)
        )

    state, ran = clients.run(db, session)
    if ran is not None:
        _report_result(ctx, *ran, db, as_json)
    # The state is the frame's plus the rewind: frame N is its last frame.
    to_seq = state.frames[-1].seq if state.frames else 0
    if as_json:
        echo_json({"runId": run_id, "toFrameNo": frame, "toSeq": to_seq, "status": state.status})
        return
    counts = ", ".join(f"{n} {s}" for s, n in sorted(state.counts().items()) if n)
    echo(f"Run {run_id} rewound to frame {frame} (state at seq {to_seq}).")
    echo(f"  status: {state.status} (nothing runs it until it is resumed)")
    if counts:
        echo(f"  nodes:  {counts}")
    echo("  resume: " + command_line("up", options=[("--resume", run_id)], db=db))


# ---------------------------------------------------------------------- fork


@main.command("fork")
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@frame_option
@reset_option
@input_option
@label_option
@new_run_id_option
@click.option("--run", "run_now", is_flag=True, help="Run the fork now, to its end.")
@click.option(
    "--workflow",
    "workflow_file",
    metavar="FILE[:NAME]",
    help="With --run: run the fork on this workflow file instead of the one the run "
    "recorded (e.g. the source `smithers import` wrote for an imported run).",
)
@actor_options()
@db_option
@json_option
@click.pass_context
@pass_clients
def fork_command(
    clients: Clients,
    ctx: click.Context,
    run_id: str,
    frame: int,
    reset_nodes: tuple[str, ...],
    input_json: str | None,
    label: str | None,
    new_run_id: str | None,
    run_now: bool,
    workflow_file: str | None,
    by: str | None,
    reason: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Fork a run at frame N into a new run (the parent is not touched).

    The fork's first event is RunForked{parentRunId, parentFrameNo, parentSeq,
    resetNodes, branchLabel}; its state is the parent's at that frame, with the
    --reset-node nodes pending again. It reads the parent's log instead of copying it.
    Without --run it waits: run it with `smithers up --resume FORK` (on the current
    code of the workflow file, edited or not). --json prints {"runId": FORK}.

    \b
    Examples:
        smithers fork RUN --frame 3 --input '{"start": 7}' --label try-7
        smithers fork RUN --frame 3 --reset-node second --run
        smithers fork RUN --frame 3 --run --workflow FILE
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    if workflow_file is not None and not run_now:
        raise click.UsageError("--workflow only applies with --run.")
    actor = cli_actor(by, reason)
    input_value = parse_input_json(input_json)
    wf = load_workflow(workflow_file)[0] if workflow_file is not None else None

    async def session(client: Client) -> tuple[str, Ran | None]:
        parent = await client.get_run(run_id)
        fork = await parent.fork(
            frame,
            reset_nodes=reset_nodes,
            input=input_value,
            label=label,
            run_id_new=new_run_id,
            workflow=wf,
            actor=actor,
        )
        if not run_now:
            return fork.run_id, None
        if not as_json:
            echo(f"Forked run {run_id} at frame {frame} as {fork.run_id}; running it.")
        if wf is not None:
            return fork.run_id, await _with_progress(
                as_json,
                lambda reporter: client.run(
                    wf, run_id=fork.run_id, resume=True, on_progress=reporter
                ),
            )
        return fork.run_id, await _with_progress(
            as_json, lambda reporter: fork.resume(on_progress=reporter, actor=actor)
        )

    child, ran = clients.run(db, session)
    if ran is not None:
        _report_result(ctx, *ran, db, as_json)
    if as_json:
        echo_json({"runId": child})
        return
    echo(f"Forked run {run_id} at frame {frame} as {child}.")
    echo("  run it:  " + command_line("up", options=[("--resume", child)], db=db))
    echo("  inspect: " + command_line("inspect", args=[child], db=db))


# ---------------------------------------------------------------------- replay


@main.command("replay")
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@frame_option
@input_option
@reset_option
@label_option
@new_run_id_option
@click.option(
    "--allow-nondeterminism",
    is_flag=True,
    help="Replay although the workflow renders frame N differently from what the run "
    "recorded there (see `smithers verify`).",
)
@actor_options()
@db_option
@click.option(
    "-j",
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"runId","status","outputs","error"} at the end.',
)
@click.pass_context
@pass_clients
def replay_command(
    clients: Clients,
    ctx: click.Context,
    run_id: str,
    frame: int,
    input_json: str | None,
    reset_nodes: tuple[str, ...],
    label: str | None,
    new_run_id: str | None,
    allow_nondeterminism: bool,
    by: str | None,
    reason: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Replay a run from frame N: fork it there and run the fork now.

    The fork's log starts RunForked, ReplayStarted; what was not finished at the
    frame runs again (with --input, if given), on the workflow file's current code.
    That code must render frame N as the run recorded it, except for tasks still
    pending there (else RESUME_FRAME_MISMATCH; --allow-nondeterminism goes on anyway).
    Exit codes as `smithers up` (0 finished, 1 failed, 2 cancelled, 4 bad arguments).

    \b
    Examples:
        smithers replay RUN --frame 3
        smithers replay RUN --frame 0 --input '{"start": 7}' --json
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    actor = cli_actor(by, reason)
    input_value = parse_input_json(input_json)

    async def session(client: Client) -> Ran:
        run = await client.get_run(run_id)
        return await _with_progress(
            as_json,
            lambda reporter: run.replay(
                frame,
                input=input_value,
                reset_nodes=reset_nodes,
                label=label,
                run_id_new=new_run_id,
                allow_nondeterminism=allow_nondeterminism,
                on_progress=reporter,
                actor=actor,
            ),
        )

    _report_result(ctx, *clients.run(db, session), db, as_json)


# ---------------------------------------------------------------------- retry-task


@main.command("retry-task")
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@click.option("--node", "node_id", required=True, metavar="ID", help="The task to run again.")
@click.option(
    "--iteration",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Loop iteration (pass) to retry; default: the node's latest.",
)
@click.option("--no-deps", is_flag=True, help="Reset only the node, not its dependents.")
@click.option(
    "--force",
    is_flag=True,
    help="Proceed although an owner on another host still looks alive (fresh lease).",
)
@actor_options()
@db_option
@click.option(
    "-j",
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"runId","status","outputs","error"} at the end.',
)
@click.pass_context
@pass_clients
def retry_task_command(
    clients: Clients,
    ctx: click.Context,
    run_id: str,
    node_id: str,
    iteration: int | None,
    no_deps: bool,
    force: bool,
    by: str | None,
    reason: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Run a task again in the same run, with the tasks that depend on it.

    Appends RetryTaskStarted{resetNodes}, resumes the run (exactly those nodes run
    again) and appends RetryTaskFinished. Dependents come from the rendered workflow:
    later members of its sequences, what follows its Parallel, depends_on, tasks
    mounted on its output. An active run is refused without --force.

    \b
    Examples:
        smithers retry-task RUN --node review
        smithers retry-task RUN --node fetch --no-deps
        smithers retry-task RUN --node review --iteration 1
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    actor = cli_actor(by, reason)

    async def session(client: Client) -> Ran:
        run = await client.get_run(run_id)
        ran = await _with_progress(
            as_json,
            lambda reporter: run.retry_task(
                node_id,
                iteration=iteration,
                deps=not no_deps,
                force=force,
                on_progress=reporter,
                actor=actor,
            ),
        )
        if not as_json:
            rows = await run.events(types=["RetryTaskFinished"])
            if rows and isinstance(rows[-1][1], RetryTaskFinished):
                echo(f"Reset: {', '.join(rows[-1][1].reset_nodes)}.")
        return ran

    _report_result(ctx, *clients.run(db, session), db, as_json)
