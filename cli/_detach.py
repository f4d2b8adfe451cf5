"""``smithers up --detach``: start the run in a background process of its own session.

The command checks what it can first (input, workflow file, run id), then starts
``python -m smithers up ... --run-id ID`` (or ``up --resume ID``) with
``start_new_session=True`` and its output appended to
``<db dir>/executions/<id>/logs/up.log``, waits briefly until the run has started (so a
resume refused at start-up is reported here, with its exit code), and prints the run id,
pid and log file.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import TYPE_CHECKING

import anyio
import click
from smithers.engine import (
    RunNotFoundError,
    default_log_dir,
    load_run,
    load_workflow,
    new_run_id,
    read_events,
    spawn_detached,
)
from smithers.eventstore import RunAlreadyExistsError, SmithersError, resolve_db_path

from ._options import db_args, parse_input_json
from ._output import echo_json

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.projections import RunState

__all__ = ("UP_LOG_FILE", "start_detached")

UP_LOG_FILE = "up.log"
_START_WAIT_S = 10.0
"""How long ``--detach`` waits for the background run to record its start."""


def _state(run_id: str, db: str) -> RunState | None:
    """The run's state, or None if it (or the database) does not exist yet."""
    try:
        return anyio.run(functools.partial(load_run, run_id, db=db))
    except RunNotFoundError:
        return None
    except SmithersError as e:
        if e.code == "CLI_DB_NOT_FOUND":
            return None
        raise


def _started(run_id: str, db: str, after_seq: int) -> bool:
    """True once the run has a RunStarted after `after_seq` (the new activation's claim)."""
    try:
        rows = anyio.run(
            functools.partial(
                read_events, run_id, db=db, after_seq=after_seq, types=["RunStarted"], limit=1
            )
        )
    except SmithersError:  # not there yet (no database, no run, schema being created)
        return False
    return bool(rows)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-limit:]


def start_detached(
    ctx: click.Context,
    *,
    file: str | None,
    input_json: str | None,
    run_id: str | None,
    resume_id: str | None,
    force: bool,
    max_concurrency: int | None,
    db: str | None,
    log_dir: str | None,
    no_log: bool,
    as_json: bool,
) -> None:
    """Start ``up`` in the background and exit 0 once the run has started.

    Raises:
        SmithersError: for invalid input, a missing workflow, a run id already used or
            (resume) a run that does not exist; nothing is started.
        click.exceptions.Exit: always, with 0, or with the background process's exit
            code if it ended before the run started.
    """
    db_path = str(resolve_db_path(db).resolve())
    if resume_id is not None:
        run_id = resume_id
        state = _state(resume_id, db_path)
        if state is None:
            raise RunNotFoundError(resume_id)
        if state.status == "finished":
            click.echo(f"Run {resume_id} already finished; nothing to resume.")
            ctx.exit(0)
        before = state.seq
        args = ["--resume", resume_id] + (["--force"] if force else [])
    else:
        assert file is not None
        parse_input_json(input_json)
        load_workflow(file)  # a missing file or workflow is reported here, not in a log
        run_id = run_id or new_run_id()
        existing = _state(run_id, db_path)
        if existing is not None:
            raise RunAlreadyExistsError(run_id, actual_seq=existing.seq)
        before = 0
        args = [file, "--run-id", run_id]
        if input_json is not None:
            args += ["--input", input_json]
    if max_concurrency is not None:
        args += ["-c", str(max_concurrency)]
    if no_log:
        args.append("--no-log")
    elif log_dir is not None:
        args += ["--log-dir", os.path.abspath(log_dir)]
    log_file = default_log_dir(db_path, run_id) / UP_LOG_FILE
    proc = spawn_detached(
        [sys.executable, "-m", "smithers", "up", *args, "--db", db_path], log_file
    )
    deadline = time.monotonic() + _START_WAIT_S
    while time.monotonic() < deadline and not _started(run_id, db_path, before):
        code = proc.poll()
        if code is not None:
            break
        time.sleep(0.05)
    code = proc.poll()
    if code is not None and not _started(run_id, db_path, before):
        # Ended before the run started (e.g. RUN_OWNER_ALIVE on resume): its output says why.
        click.echo(_tail(log_file).rstrip(), err=True)
        ctx.exit(code)
    if as_json:
        echo_json({"runId": run_id, "pid": proc.pid, "logFile": str(log_file)})
    else:
        verb = "Resumed" if resume_id is not None else "Started"
        click.echo(f"{verb} run {run_id} in the background (pid {proc.pid}).")
        click.echo(f"  log:     {log_file}")
        click.echo(f"  follow:  smithers logs {run_id} -f{db_args(db)}")
        click.echo(f"  cancel:  smithers cancel {run_id}{db_args(db)}")
    ctx.exit(0)
