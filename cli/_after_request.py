"""What happens to a run after ``approve``/``deny``/``signal`` recorded a request.

A parked run is resumed in the background as ``up --detach`` does (``python -m smithers
up --resume RUN`` in its own session, output in ``executions/RUN/logs/up.log``), and the
command says what comes next (`say_what_next`): the resume, a live owner that picks the
request up, a queue's workers, or ``--no-resume``.
"""

from __future__ import annotations

import getpass
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from smithers.engine import default_log_dir, spawn_detached

from ._detach import UP_LOG_FILE, _started, _tail, detach_target
from ._options import command_line
from ._text import echo

if TYPE_CHECKING:
    from collections.abc import Sequence

    import click
    from smithers.engine import Client, DecisionResult, ResumeProcess, SignalResult

__all__ = (
    "Resumed",
    "resume_actor_args",
    "default_by",
    "resume_for",
    "resumed_json",
    "say_what_next",
)

_START_WAIT_S = 10.0
"""How long a deciding command waits for its background resume to record its start."""


def resume_actor_args(by: str | None, reason: str | None) -> list[str]:
    """``--by``/``--reason`` as given, for the background resume a decision starts."""
    return [*(["--by", by] if by is not None else []), *(["--reason", reason] if reason else [])]


def default_by() -> str | None:
    """The OS user name (``--by``'s default), or None if it cannot be found."""
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry, no LOGNAME: record no name
        return None


class Resumed:
    """How the background resume went: its process, and whether the run started."""

    def __init__(self, proc: ResumeProcess, started: bool, log_file: str) -> None:
        self.proc = proc
        self.started = started
        self.log_file = log_file


async def resume_in_background(
    client: Client, run_id: str, after_seq: int, actor_args: Sequence[str] = ()
) -> Resumed:
    """Start ``up --resume RUN`` detached; wait until the run records a new start.

    `actor_args` (``--by NAME``, ``--reason TEXT``) are passed on, so the resume
    records the decider as its actor.
    """
    db_path, log_anchor = detach_target(client.db)
    log_file = default_log_dir(log_anchor, run_id) / UP_LOG_FILE
    cmd = [sys.executable, "-m", "smithers", "up", "--resume", run_id, "--db", db_path]
    cmd += actor_args
    proc = spawn_detached(cmd, log_file)
    deadline = time.monotonic() + _START_WAIT_S
    started = await _started(client, run_id, after_seq)
    while not started and time.monotonic() < deadline and proc.poll() is None:
        await anyio.sleep(0.05)
        started = await _started(client, run_id, after_seq)
    if not started and proc.poll() is not None:
        started = await _started(client, run_id, after_seq)
    return Resumed(proc, started, str(log_file))


async def resume_for(
    client: Client, result: DecisionResult | SignalResult, actor_args: Sequence[str] = ()
) -> tuple[str, Resumed]:
    """Resume the run a parked request's result names; ``(that run, how it went)``.

    The request may have been recorded in a child run of the run named (a `Subflow`):
    the run resumed is then the one the engine chose (`DecisionResult.resume_run_id`).
    """
    target = result.resume_run_id or result.run_id
    after = result.seq
    if target != result.run_id:  # its log is not the one the request went to
        after = (await (await client.get_run(target)).state()).seq
    return target, await resume_in_background(client, target, after, actor_args)


def resumed_json(resumed: Resumed | None) -> dict[str, Any] | None:
    if resumed is None:
        return None
    return {"pid": resumed.proc.pid, "logFile": resumed.log_file, "started": resumed.started}


def say_what_next(
    ctx: click.Context,
    run_id: str,
    parked: bool,
    resumed: Resumed | None,
    no_resume: bool,
    db: str | None,
    *,
    as_json: bool,
    queue: str | None = None,
) -> None:
    """Say what happens to the run next; exit with the resume's code if it failed.

    `queue`: the parked run was submitted there, and a worker of it resumes it.
    """
    if resumed is not None and not resumed.started:
        code = resumed.proc.poll()
        if code is not None and code not in (0, 3):
            echo(tail_of(resumed.log_file).rstrip(), err=True, multiline=True)
            echo(
                f"The request is recorded, but the resume of run {run_id} stopped (exit "
                f"{code}); see {resumed.log_file}, then "
                f"`{command_line('up', options=[('--resume', run_id)], db=db)}`.",
                err=True,
            )
            ctx.exit(code)
    if as_json:
        return
    if resumed is not None:
        echo(f"Resumed run {run_id} in the background (pid {resumed.proc.pid}).")
        echo(f"  log:     {resumed.log_file}")
        echo("  follow:  " + command_line("logs", args=[run_id], options=[("-f", None)], db=db))
    elif parked and queue is not None:
        echo(
            f"Run {run_id} was submitted to queue {queue!r}: a worker of it resumes the run"
            " (`" + command_line("worker", options=[("--queues", queue)], db=db) + "`)."
        )
    elif parked and no_resume:
        echo(
            f"Run {run_id} stays parked (--no-resume); continue it with "
            f"`{command_line('up', options=[('--resume', run_id)], db=db)}`."
        )
    elif not parked:
        echo(f"Run {run_id} is live: its owner picks this up within a second or so.")
    echo("  inspect: " + command_line("inspect", args=[run_id], db=db))


def tail_of(path: str) -> str:
    return _tail(Path(path))
