"""The ``smithers`` commands (DESIGN §9): parse options, call the client, print.

Commands stay thin: each opens one `Client` (from ``ctx.obj``, see `_clients`) inside
its one ``anyio.run`` and does its work through it; formatting is in `_output`; errors
and exit codes in `_errors`.
"""

from __future__ import annotations

import functools
import json
import os
import time
import typing
from typing import Any

import click
from smithers.engine import (
    SMITHERS_VERSION,
    RunResult,
    load_workflow,
    new_run_id,
)
from smithers.eventstore import decode_json
from smithers.eventstore.errors import error_info_to_json, error_to_json
from smithers.eventstore.events import RunStatus

from ._autopsy_hook import NO_POST_FAILURE_HELP, autopsy_hook
from ._clients import Clients, pass_clients
from ._detach import start_detached
from ._errors import (
    EXIT_INTERRUPTED,
    SmithersGroup,
    _unwrap,
    echo_error,
    exit_code_for_status,
)
from ._node_output import error_location
from ._options import (
    LongNameOption,
    actor_options,
    check_run_id,
    cli_actor,
    command_line,
    db_option,
    parse_duration_ms,
)
from ._options import parse_input_json as _parse_input
from ._output import (
    compact_json,
    echo_json,
    error_code,
    error_text,
    format_duration,
    stdout_is_tty,
)
from ._progress import ProgressReporter
from ._signals import Interrupt, leave_promptly, run_interruptible
from ._text import echo, json_controls_escaped
from ._waiting import needs_descendants, waiting_for_json, waiting_lines

if typing.TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from smithers.engine import Client, RunHandle, Workflow
    from smithers.projections import RunState

__all__ = ("main",)

RUN_STATUSES: tuple[str, ...] = typing.get_args(RunStatus)

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# ---------------------------------------------------------------------- the group


@click.group("smithers", cls=SmithersGroup, context_settings=_CONTEXT)
@click.version_option(
    SMITHERS_VERSION, "--version", "-V", prog_name="smithers", message="%(prog)s %(version)s"
)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Durable workflows for AI agents, on an append-only event log.

    Every run is recorded event by event in a SQLite database
    (.smithers/smithers.db by default), so it can be inspected, followed and
    resumed after the fact.

    \b
    Start a run of an example (or of a workflow file of yours, here
    flows/count.py), then look at it:
        smithers up examples/hello.py --input '{"name": "Ada"}'
        smithers up flows/count.py --input '{"start": 5}'
        smithers ps
        smithers inspect RUN_ID
        smithers events RUN_ID --type NodeFailed
        smithers output RUN_ID second

    Every command takes --db PATH; read commands take --json. Errors print
    `Error [CODE]: summary` and a next step; set SMITHERS_DEBUG=1 for a traceback.
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    ctx.ensure_object(Clients)  # each command opens its one client through it


# ---------------------------------------------------------------------- up


def _json_failures(command: Callable[..., None]) -> Callable[..., None]:
    """With ``--json``, a command that stops on an error still prints its result object.

    ``{"runId", "status": null, "outputs": {}, "error": error_to_json(e)}`` on stdout
    (``error.code`` is ``INTERNAL_ERROR`` for an unexpected exception); the usual
    ``Error [CODE]`` line on stderr and exit code follow. This is how a caller (the
    supervisor's ``up --resume RUN --json``) reads why a run did not start or resume
    without parsing text. Usage errors (click's) print no JSON.
    """

    @functools.wraps(command)
    def wrapper(ctx: click.Context, /, **params: Any) -> None:
        try:
            command(ctx, **params)
        except Exception as e:
            if params.get("as_json") and not isinstance(
                e, click.ClickException | click.exceptions.Exit
            ):
                error = error_to_json(_unwrap(e))
                error["code"] = error.get("code") or "INTERNAL_ERROR"
                error = error_info_to_json(error) or error  # the one --json error shape
                run_id = params.get("resume_id") or params.get("run_id")
                result = {"runId": run_id, "status": None, "outputs": {}, "error": error}
                text = json.dumps(result, ensure_ascii=False, default=str)
                click.echo(json_controls_escaped(text))
            raise

    return wrapper


@main.command()
@click.argument("file", metavar="FILE[:NAME]", required=False)
@click.option(
    "-i",
    "--input",
    "input_json",
    cls=LongNameOption,
    metavar="JSON",
    help="Workflow input: a JSON object, @FILE holding one, or - to read it from stdin.",
)
@click.option(
    "-r",
    "--run-id",
    cls=LongNameOption,
    metavar="ID",
    callback=check_run_id,
    help="Run id to use (default: a new one).",
)
@click.option(
    "-c",
    "--max-concurrency",
    type=click.IntRange(min=1),
    metavar="N",
    help="How many tasks may execute at once. Default: 4; with --resume, the run's own.",
)
@click.option(
    "--resume",
    "resume_id",
    metavar="RUN_ID",
    callback=check_run_id,
    help="Resume this run from its log instead of starting one (no FILE: the workflow "
    "file, input and config come from the log).",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --resume: take over a run whose owner on another host still looks alive.",
)
@click.option(
    "--stale-threshold",
    metavar="DURATION",
    help="With --resume: an owner whose lease heartbeat is older than this is stale and "
    "may be taken over (with --force if its process still lives on this host, e.g. "
    "stopped). Default: 60s.",
)
@click.option(
    "--allow-nondeterminism",
    is_flag=True,
    help="With --resume: go on although the workflow no longer renders the run's last "
    "frame as its log recorded it (see `smithers verify`).",
)
@click.option(
    "--hold-ms",
    type=click.IntRange(min=0),
    metavar="MS",
    help="How long a run that has only timers (or wait timeouts) left keeps waiting in "
    "this process before it parks: if the next one is due within MS it sleeps here, "
    "else the run parks (status waiting-timer/-event, exit 3; `smithers supervise` wakes "
    "it when due). 0 parks at once. Default: 60000.",
)
@click.option(
    "--root",
    "root_dir",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False),
    help="Root of the tool sandbox (smithers.tools and agent tools): paths outside it are "
    "refused. Default: the workflow file's folder.",
)
@click.option(
    "--allow-network",
    is_flag=True,
    help="Let the bash tool reach the network (off by default).",
)
@click.option(
    "--max-output-bytes",
    type=click.IntRange(min=1),
    metavar="N",
    help="Cap on one tool call's output, in bytes. Default: 200000.",
)
@click.option(
    "--tool-timeout-ms",
    type=click.IntRange(min=1),
    metavar="MS",
    help="Wall-clock limit of one tool call, in milliseconds. Default: 60000.",
)
@click.option(
    "--max-task-output-bytes",
    type=click.IntRange(min=1),
    metavar="N",
    help="Cap on one task output's JSON, in bytes; a bigger output fails its task "
    "(TASK_OUTPUT_TOO_LARGE, not retried). Default: 67108864 (64 MiB).",
)
@click.option(
    "-d",
    "--detach",
    is_flag=True,
    help="Run in the background, in its own session; print the run id, pid and log file.",
)
@db_option
@click.option(
    "--log-dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Directory of the NDJSON event mirror (default: .smithers/executions/RUN/logs).",
)
@click.option("--no-log", is_flag=True, help="Do not write the NDJSON event mirror.")
@click.option("--no-post-failure", is_flag=True, help=NO_POST_FAILURE_HELP)
@actor_options()
@click.option(
    "-j",
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"runId","status","outputs","error"} at the end (a parked run adds '
    '"waitingFor", as ps --json); also when the command fails before the run ends (status '
    "null, error set).",
)
@click.pass_context
@_json_failures
@pass_clients
def up(
    clients: Clients,
    ctx: click.Context,
    file: str | None,
    input_json: str | None,
    run_id: str | None,
    max_concurrency: int | None,
    resume_id: str | None,
    force: bool,
    stale_threshold: str | None,
    allow_nondeterminism: bool,
    hold_ms: int | None,
    root_dir: str | None,
    allow_network: bool,
    max_output_bytes: int | None,
    tool_timeout_ms: int | None,
    max_task_output_bytes: int | None,
    detach: bool,
    db: str | None,
    log_dir: str | None,
    no_log: bool,
    no_post_failure: bool,
    by: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Run a workflow file to its end, or resume a run by id.

    FILE is a Python file defining one @workflow; with several, pick one with
    FILE:NAME (a variable name or the name given to @workflow). Progress is shown
    live on a terminal and as one line per task otherwise. With --resume RUN_ID the
    run continues from its log: finished tasks are not run again, tasks a crash
    interrupted run again. SIGINT (Ctrl-C) or SIGTERM cancels the run gracefully
    (recorded as cancelled, source "signal"); a second signal stops waiting.

    \b
    Examples:
        smithers up examples/hello.py --input '{"name": "Ada"}'
        echo '{"name": "Ada"}' | smithers up examples/hello.py:hello -i -
        smithers up examples/repo_audit.py -c 8 --db runs/smithers.db --json
        smithers up --resume run-lx2k3j-1a2b3c --by alice --reason "fixed the key"
        smithers up examples/hello.py --detach
        smithers up examples/hello.py --hold-ms 0
        smithers up examples/hello.py --root . --tool-timeout-ms 5000

    \b
    Exit codes:
        0    the run finished
        1    the run failed (or an unexpected error)
        2    the run was cancelled
        3    the run is waiting (approval, event or timer)
        4    bad arguments or input (invalid --input, missing file or workflow,
             run id already used, run not resumable or still owned)
        130  interrupted (SIGINT, Ctrl-C); the run is recorded as cancelled
        143  terminated (SIGTERM); the run is recorded as cancelled
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    if no_log and log_dir is not None:
        raise click.UsageError("Use either --log-dir or --no-log, not both.")
    if resume_id is not None:
        if file is not None:
            raise click.UsageError(
                "Give either FILE or --resume RUN_ID, not both: a resumed run's workflow "
                "file comes from its log."
            )
        if input_json is not None or run_id is not None:
            raise click.UsageError(
                "--input and --run-id cannot be used with --resume: the run's log has them."
            )
        given = (root_dir, max_output_bytes, tool_timeout_ms, max_task_output_bytes)
        if allow_network or any(v is not None for v in given):
            raise click.UsageError(
                "--root, --allow-network, --max-output-bytes, --tool-timeout-ms and "
                "--max-task-output-bytes cannot be used with --resume: the run keeps the "
                "tool sandbox and limits its log recorded."
            )
    elif file is None:
        raise click.UsageError("Missing argument 'FILE[:NAME]' (or --resume RUN_ID).")
    elif force or allow_nondeterminism or stale_threshold is not None:
        flag = (
            "--force"
            if force
            else "--allow-nondeterminism"
            if allow_nondeterminism
            else "--stale-threshold"
        )
        raise click.UsageError(f"{flag} only applies to --resume.")
    options: dict[str, Any] = {}
    if stale_threshold is not None:
        options["stale_threshold_ms"] = parse_duration_ms(stale_threshold, "--stale-threshold")
    if no_log:
        options["log_dir"] = None
    elif log_dir is not None:
        options["log_dir"] = log_dir
    if hold_ms is not None:
        options["hold_ms"] = hold_ms
    sandbox: dict[str, Any] = {}
    if root_dir is not None:
        sandbox["root_dir"] = os.path.abspath(root_dir)
    if allow_network:
        sandbox["allow_network"] = True
    if max_output_bytes is not None:
        sandbox["max_output_bytes"] = max_output_bytes
    if tool_timeout_ms is not None:
        sandbox["tool_timeout_ms"] = tool_timeout_ms
    if max_task_output_bytes is not None:
        sandbox["max_task_output_bytes"] = max_task_output_bytes
    options.update(sandbox)
    options["actor"] = cli_actor(by, reason)  # INVALID_INPUT before anything starts
    actor_args = [*(["--by", by] if by is not None else [])]
    actor_args += ["--reason", reason] if reason is not None else []

    if detach:
        if no_post_failure:  # the background `up` inherits it
            os.environ["SMITHERS_POST_FAILURE"] = "0"
        start_detached(
            ctx,
            clients,
            file=file,
            input_json=input_json,
            run_id=run_id,
            resume_id=resume_id,
            force=force,
            allow_nondeterminism=allow_nondeterminism,
            max_concurrency=max_concurrency,
            db=db,
            log_dir=log_dir,
            no_log=no_log,
            as_json=as_json,
            hold_ms=hold_ms,
            sandbox=sandbox,
            actor_args=actor_args,
        )
        return

    mode = "quiet" if as_json else "live" if stdout_is_tty() else "plain"
    reporter = ProgressReporter(mode)
    wf: Workflow | None = None
    path: Path | None = None
    input_value: Any = None
    if resume_id is not None:
        run_id = resume_id
    else:
        assert file is not None
        input_value = _parse_input(input_json)
        wf, path = load_workflow(file)
        run_id = run_id or new_run_id()
    new_id = run_id
    parked: RunState | None = None
    parked_children: list[RunState] = []
    workflow_name = wf.name if wf is not None else ""

    async def session(client: Client) -> tuple[RunState | None, RunResult | None, Interrupt | None]:
        nonlocal parked, parked_children, workflow_name
        handle: RunHandle | None = None
        if resume_id is not None:
            handle = await client.get_run(resume_id)
            record = await handle.describe()
            workflow_name = record.workflow_name
            if record.status == "finished":
                # Fold only to report it: resuming a finished run changes nothing.
                return await handle.state(), None, None

        async def start(interrupt: Interrupt) -> RunResult:
            if handle is not None:
                return await handle.resume(
                    force=force,
                    allow_nondeterminism=allow_nondeterminism,
                    max_concurrency=max_concurrency,
                    on_progress=reporter,
                    cancel=interrupt,
                    **options,
                )
            assert wf is not None
            return await client.run(
                wf,
                input=input_value,
                run_id=new_id,
                max_concurrency=max_concurrency or 4,
                on_progress=reporter,
                cancel=interrupt,
                workflow_path=path,
                **options,
            )

        with reporter:
            result, interrupt = await run_interruptible(start)
        if result is not None and result.status.startswith("waiting"):
            # What it waits for, from the whole log (the reporter saw this activation).
            parked_handle = await client.get_run(result.run_id)
            parked = await parked_handle.state()
            if needs_descendants(parked):  # a Subflow waits as its child run does
                parked_children = await parked_handle.active_descendants()
        return None, result, interrupt

    try:
        finished, result, interrupt = clients.run(db, session)
    except KeyboardInterrupt:
        if reporter.seq:
            echo_error(
                "RUN_CANCELLED",
                f"Interrupted: run {run_id} stopped and was recorded as cancelled.",
                "See where it stopped: " + command_line("inspect", args=[run_id], db=db),
            )
        else:
            echo_error("RUN_CANCELLED", "Interrupted before the run started.")
        ctx.exit(EXIT_INTERRUPTED)

    if finished is not None:
        _report_already_finished(ctx, finished, db, as_json)
    assert interrupt is not None
    if interrupt.signum is not None and (result is None or result.status == "cancelled"):
        what = "Terminated" if interrupt.reason == "SIGTERM" else "Interrupted"
        how = " (without waiting for its tasks)" if interrupt.forced else ""
        echo_error(
            "RUN_CANCELLED",
            f"{what}: run {run_id} stopped{how} and was recorded as cancelled.",
            "See where it stopped: " + command_line("inspect", args=[run_id], db=db),
        )
        leave_promptly(interrupt.exit_code)
        ctx.exit(interrupt.exit_code)
    assert result is not None
    autopsy = autopsy_hook(result, db, workflow_name, path, opted_out=no_post_failure)
    _report_result(ctx, result, reporter, db, as_json, parked, parked_children, autopsy)


def _report_already_finished(
    ctx: click.Context, state: RunState, db: str | None, as_json: bool
) -> typing.NoReturn:
    """``up --resume`` of a finished run: say so, append nothing, exit 0."""
    if as_json:
        echo_json(
            {
                "runId": state.run_id,
                "status": state.status,
                "outputs": {k: decode_json(v) for k, v in state.outputs().items()},
                "error": None,
            }
        )
    else:
        echo(f"Run {state.run_id} already finished; nothing to resume.")
        echo("  inspect: " + command_line("inspect", args=[state.run_id], db=db))
    ctx.exit(0)


def _report_result(
    ctx: click.Context,
    result: RunResult,
    reporter: ProgressReporter,
    db: str | None,
    as_json: bool,
    parked: RunState | None = None,
    parked_children: list[RunState] | None = None,
    autopsy: Callable[[], None] | None = None,
) -> typing.NoReturn:
    """Print how the run ended (or what it waits for, parked), call `autopsy`, exit."""
    code = exit_code_for_status(result.status)
    if as_json:
        body: dict[str, typing.Any] = {
            "runId": result.run_id,
            "status": result.status,
            "outputs": result.outputs,
            "error": result.error,
        }
        if parked is not None:  # what it waits for, as `ps --json` says it
            body["waitingFor"] = waiting_for_json(parked, parked_children or ())
        echo_json(body)
        if autopsy is not None:
            autopsy()
        if result.status == "cancelled":
            leave_promptly(code)
        ctx.exit(code)

    counts = reporter.state.counts()
    parts = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if n)
    took = format_duration(reporter.elapsed_ms)
    echo(f"Run {result.run_id} {result.status} in {took}" + (f": {parts}." if parts else "."))
    echo("  inspect: " + command_line("inspect", args=[result.run_id], db=db))
    if len(reporter.chain) > 1 and reporter.chain[-1] == result.run_id:
        n = len(reporter.chain) - 1
        echo(
            f"  chain:   {reporter.chain[0]} continued as new {n} time{'s' if n > 1 else ''}; "
            f"the last run is {result.run_id}"
        )
        history = command_line(
            "timeline", args=[result.run_id], options=[("--follow-ancestry", None)], db=db
        )
        echo(f"  history: {history}")
    if result.outputs and result.status == "finished":
        node = "output" if "output" in result.outputs else list(result.outputs)[-1]
        echo("  output:  " + command_line("output", args=[result.run_id, node], db=db))
        if "output" in result.outputs:
            echo(f"  result:  {compact_json(result.outputs['output'], limit=300)}")
    if parked is not None:
        lines = waiting_lines(
            parked,
            now_ms=time.time_ns() // 1_000_000,
            db=db,
            descendants=parked_children or (),
        )
        if lines:
            echo("It is parked (no process runs it) until one of these happens:")
            for line in lines:
                echo(line)
    if result.status == "failed":
        failed = reporter.last_failed
        raised = error_location(result.error)
        at = f" at {raised}" if raised else ""
        where: str | None = None
        retry: str | None = None
        if failed is not None:
            where = f"  in node {failed.node_id!r} (attempt {failed.attempt}){at}"
            see = "See the traceback: " + command_line(
                "node", args=[result.run_id, failed.node_id], db=db
            )
            retry = "Run it again: " + command_line(
                "retry-task", args=[result.run_id], options=[("--node", failed.node_id)], db=db
            )
        else:  # the builder (or the engine) raised: inspect shows the run's error
            where = f"  raised{at}" if at else None
            see = "See the error and its traceback: " + command_line(
                "inspect", args=[result.run_id], db=db
            )
        echo_error(error_code(result.error), error_text(result.error), where, see, retry)
        if autopsy is not None:
            autopsy()
    if result.status == "cancelled":
        leave_promptly(code)  # a cancelled sync task's thread must not hold the process
    ctx.exit(code)


# ---------------------------------------------------------------------- ps
