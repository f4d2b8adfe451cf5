"""Operating runs: ``cancel``, ``down`` and ``supervise`` (DESIGN §9, §10).

Thin commands over the client (`RunHandle.cancel`, `Client.down`) and `supervise` of
`smithers.engine` (which opens the database once and keeps it for its polls).
"""

from __future__ import annotations

import functools
import signal
import threading
from typing import TYPE_CHECKING, Any

import anyio
import click
from smithers.engine import (
    DEFAULT_STALE_THRESHOLD_MS,
    CancelStep,
    resolve_actor,
    supervise,
)
from smithers.eventstore import encode_event
from smithers.eventstore.events import (
    Event,
    RunAutoResumed,
    RunAutoResumeSkipped,
    SupervisorPollCompleted,
    SupervisorStarted,
)

from ._clients import Clients, pass_clients
from ._commands import main
from ._errors import EXIT_OK
from ._options import (
    actor_options,
    check_run_id,
    cli_actor,
    command_line,
    db_option,
    json_option,
    parse_duration_ms,
)
from ._output import echo_json, error_label, format_duration, format_time
from ._text import echo, json_controls_escaped

if TYPE_CHECKING:
    from smithers.engine import Client
    from smithers.projections import RunState

__all__ = ("cancel", "down", "supervise_command")

_WAIT_HELP = (
    "How long to wait for a live owner to stop before recording the cancellation here "
    "(e.g. 10s, 500ms)."
)


# ---------------------------------------------------------------------- cancel


def _cancel_line(state: RunState, steps: list[CancelStep]) -> tuple[str, str]:
    """``(action, sentence)`` describing what a cancel did."""
    rid = state.run_id
    if not steps:
        return "none", f"Run {rid} has already ended ({state.status}); nothing to cancel."
    if state.status != "cancelled":
        return "requested", f"Run {rid} {state.status} before the cancel took effect."
    if "finalizing" in steps:
        why = "did not stop in time" if "requested" in steps else "was gone"
        return (
            "finalized",
            f"Run {rid} cancelled: its owner {why}, so this command recorded the end.",
        )
    owner = f" (pid {state.pid})" if state.pid else ""
    return "requested", f"Run {rid} cancelled: its owner{owner} stopped its tasks and recorded it."


@main.command()
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@actor_options()
@click.option(
    "--wait", "wait", metavar="DURATION", default="10s", show_default=True, help=_WAIT_HELP
)
@db_option
@json_option
@pass_clients
def cancel(
    clients: Clients,
    run_id: str,
    by: str | None,
    reason: str | None,
    wait: str,
    db: str | None,
    as_json: bool,
) -> None:
    """Cancel a run, whether its process is alive or not.

    A live owner is asked through the run's log: it cancels its running tasks and
    records the run as cancelled, then its `up` exits 2. If the owner is gone (its
    process was killed) or does not stop within --wait, this command records the
    cancellation itself, so the run always ends. A run that already ended is left
    as it is (exit 0).

    \b
    Examples:
        smithers cancel run-lx2k3j-1a2b3c
        smithers cancel run-lx2k3j-1a2b3c --reason "wrong input" --json
        smithers cancel run-lx2k3j-1a2b3c --by alice --reason "stuck on a bad prompt"
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    wait_ms = parse_duration_ms(wait, "--wait")
    actor = cli_actor(by, reason)
    steps: list[CancelStep] = []

    def on_step(step: CancelStep) -> None:
        steps.append(step)
        if step == "requested" and not as_json:
            echo(f"Cancel requested; waiting for the owner of run {run_id} to stop…")

    async def run(client: Client) -> RunState:
        handle = await client.get_run(run_id)
        return await handle.cancel(
            source="cli", reason=reason, wait_ms=wait_ms, on_step=on_step, actor=actor
        )

    state = clients.run(db, run)
    action, line = _cancel_line(state, steps)
    if as_json:
        echo_json({"runId": state.run_id, "status": state.status, "action": action})
    else:
        echo(line)
        echo("  inspect: " + command_line("inspect", args=[run_id], db=db))


# ---------------------------------------------------------------------- down


@main.command()
@actor_options()
@click.option("--wait", "wait", metavar="DURATION", help=_WAIT_HELP + " Default: 10s.")
@click.option(
    "--force",
    is_flag=True,
    help="Do not wait for live owners: record every cancellation now (as --wait 0).",
)
@db_option
@json_option
@pass_clients
def down(
    clients: Clients,
    by: str | None,
    reason: str | None,
    wait: str | None,
    force: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Cancel every active run, running or waiting (as `smithers cancel`, all at once).

    Each live owner is asked to stop and waited for (--wait); one that is gone, or
    does not stop in time, has its run's cancellation recorded by this command.
    With --force nobody is waited for: each run is recorded as cancelled at once
    and its owner, if still alive, stops when it sees that.

    \b
    Examples:
        smithers down
        smithers down --force --reason "stuck"
        smithers down --json | jq -r '.[].runId'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    if force and wait is not None:
        raise click.UsageError("Use either --force or --wait, not both.")
    wait_ms = 0 if force else parse_duration_ms(wait or "10s", "--wait")
    actor = cli_actor(by, reason)
    states = clients.run(
        db,
        lambda client: client.down(source="cli", reason=reason, wait_ms=wait_ms, actor=actor),
    )
    if as_json:
        echo_json([{"runId": s.run_id, "status": s.status} for s in states])
        return
    if not states:
        echo("No active runs.")
        return
    for s in states:
        echo(f"{s.status:<10} {s.run_id}")
    cancelled = sum(1 for s in states if s.status == "cancelled")
    echo(f"Cancelled {cancelled} of {len(states)} active run(s).")


# ---------------------------------------------------------------------- supervise


def _event_line(event: Event, dry_run: bool) -> str | None:
    if isinstance(event, SupervisorStarted):
        return (
            f"Supervising: every {format_duration(event.poll_interval_ms)}, runs stale after "
            f"{format_duration(event.stale_threshold_ms)}"
            + (" (dry run: nothing is started or recorded)." if dry_run else ".")
        )
    if isinstance(event, RunAutoResumed):
        pid = f"; resumer pid {event.pid}" if event.pid else ""
        if event.wake is not None:
            verb = "would wake" if dry_run else "woke"
            what = "timer due" if event.wake == "timer" else "wait timed out"
            due = f" at {format_time(event.due_at_ms)}" if event.due_at_ms is not None else ""
            return f"{verb:<12} {event.run_id}  ({what}{due}{pid})"
        verb = "would resume" if dry_run else "resumed"
        gone = format_duration(event.stale_duration_ms)
        return f"{verb:<12} {event.run_id}  (owner silent for {gone}{pid})"
    if isinstance(event, RunAutoResumeSkipped):
        detail: str = event.reason
        if event.retry_at_ms is not None:
            detail += f" until {format_time(event.retry_at_ms)}"
        if event.error is not None:
            detail += f": {error_label(event.error)}"
        return f"{'skipped':<12} {event.run_id}  {detail}"
    if isinstance(event, SupervisorPollCompleted):
        resumed = "would resume" if dry_run else "resumed"
        # resumed_count includes the parked runs woken (each is a resume).
        woken = f" ({event.woken_count} woken)" if event.woken_count else ""
        return (
            f"poll: {event.stale_count} stale, {event.resumed_count} {resumed}{woken}, "
            f"{event.skipped_count} skipped ({format_duration(event.duration_ms)})"
        )
    return None


async def _supervise_until_signal(**options: Any) -> int:
    """Run `supervise` until it returns (``--once``) or SIGINT/SIGTERM; the exit code."""
    code = EXIT_OK
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal code
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    code = 128 + signum
                    tg.cancel_scope.cancel()
                    return

        if threading.current_thread() is threading.main_thread():
            tg.start_soon(watch)
        await supervise(**options)
        tg.cancel_scope.cancel()
    return code


@main.command("supervise")
@click.option(
    "--interval", metavar="DURATION", default="10s", show_default=True, help="Time between polls."
)
@click.option(
    "--stale-threshold",
    metavar="DURATION",
    default=f"{DEFAULT_STALE_THRESHOLD_MS // 1000}s",
    show_default=True,
    help="A run whose owner has sent no heartbeat for this long is resumed.",
)
@click.option(
    "--max-concurrent",
    type=click.IntRange(min=1),
    metavar="N",
    default=2,
    show_default=True,
    help="At most N resumes starting at once.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be done; start and record nothing.")
@click.option("--once", is_flag=True, help="Poll once, then exit.")
@actor_options(
    by_help="Who runs the supervisor (recorded on its decisions). "
    "Default: $SMITHERS_ACTOR, else your OS user."
)
@db_option
@click.option("-j", "--json", "as_json", is_flag=True, help="Print each event as an NDJSON line.")
@click.pass_context
def supervise_command(
    ctx: click.Context,
    interval: str,
    stale_threshold: str,
    max_concurrent: int,
    dry_run: bool,
    once: bool,
    by: str | None,
    reason: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Resume runs whose process is gone; wake parked runs whose timer is due.

    Every --interval, runs still marked running whose owner's pid is dead (this
    host) or whose heartbeat is older than --stale-threshold are resumed, each by a
    background `smithers up --resume RUN --json`: its stderr is appended to
    .smithers/executions/RUN/logs/supervise.log, its JSON result
    {"runId","status","outputs","error"} goes to supervise.json beside it. How a
    resume ended is read from its exit code (0 finished, 1 failed, 2 cancelled,
    3 waiting, 4 refused) and that result's error code, not from its text. Runs
    whose process still lives, whose workflow file is gone, or whose last resume
    failed (backed off, doubling up to 30 min) are skipped. Decisions are recorded
    in the log stream `supervisor` (`smithers events supervisor`). SIGINT/SIGTERM
    stop it.

    Parked runs (waiting-timer, waiting-event, waiting-approval: no process) whose
    timer is due or whose WaitForEvent timeout passed are woken the same way. Between
    polls it sleeps until the next such deadline it knows of, at most --interval, so
    a timer fires on time: a run parked while it sleeps is seen at the next poll.

    \b
    Examples:
        smithers supervise
        smithers supervise --interval 30s --stale-threshold 2m --max-concurrent 4
        smithers supervise --once --dry-run
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    interval_ms = parse_duration_ms(interval, "--interval")
    stale_ms = parse_duration_ms(stale_threshold, "--stale-threshold")
    actor = resolve_actor("supervisor", by=by, reason=reason)

    def on_event(event: Event) -> None:
        if as_json:
            click.echo(json_controls_escaped(encode_event(event).decode()))
            return
        line = _event_line(event, dry_run)
        if line is not None:
            echo(line)

    code = anyio.run(
        functools.partial(
            _supervise_until_signal,
            db=db,
            interval_ms=interval_ms,
            stale_threshold_ms=stale_ms,
            max_concurrent=max_concurrent,
            dry_run=dry_run,
            once=once,
            on_event=on_event,
            actor=actor,
        )
    )
    if code != EXIT_OK and not as_json:
        echo("Supervisor stopped.", err=True)
    ctx.exit(code)
