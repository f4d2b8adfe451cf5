"""``smithers up --detach``: start the run in a background process of its own session.

The command checks what it can first (input, workflow file, run id), then starts
``python -m smithers up ... --run-id ID`` (or ``up --resume ID``) with
``start_new_session=True`` and its output appended to
``<db dir>/executions/<id>/logs/up.log``, waits briefly until the run has started (so a
resume refused at start-up is reported here, with its exit code), and prints the run id,
pid and log file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from smithers.engine import (
    RunNotFoundError,
    default_log_dir,
    load_workflow,
    new_run_id,
    spawn_detached,
)
from smithers.eventstore import RunAlreadyExistsError, SmithersError, resolve_db

from ._options import command_line, parse_input_json
from ._output import echo_json
from ._text import echo

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import click
    from smithers.engine import Client, ResumeProcess
    from smithers.eventstore import RunRecord

    from ._clients import Clients

__all__ = ("UP_LOG_FILE", "start_detached")

UP_LOG_FILE = "up.log"
_START_WAIT_S = 10.0
"""How long ``--detach`` waits for the background run to record its start."""


async def _record(client: Client, run_id: str) -> RunRecord | None:
    """The run's index row, or None if it (or the database) does not exist yet."""
    try:
        return await (await client.get_run(run_id)).describe()
    except RunNotFoundError:
        return None
    except SmithersError as e:
        if e.code == "CLI_DB_NOT_FOUND":
            return None
        raise


async def _started(client: Client, run_id: str, after_seq: int) -> bool:
    """True once the run has a RunStarted after `after_seq` (the new activation's claim)."""
    try:
        run = await client.get_run(run_id)
        rows = await run.events(after_seq=after_seq, types=["RunStarted"], limit=1)
    except SmithersError:  # not there yet (no database, no run, schema being created)
        return False
    return bool(rows)


def detach_target(db: str | None) -> tuple[str, str]:
    """``(--db for a background process, the path its log folder is beside)``.

    A file resolves to its absolute path, both times; a PostgreSQL URL is passed on
    as given, and the logs go to the current directory's ``.smithers`` folder.
    """
    target = resolve_db(db)
    if isinstance(target, str):
        return target, str(Path.cwd() / ".smithers" / "smithers.db")
    path = str(target.resolve())
    return path, path


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-limit:]


def _sandbox_args(sandbox: Mapping[str, Any]) -> list[str]:
    """The ``up`` flags of the tool-sandbox options in `sandbox`."""
    args: list[str] = []
    if sandbox.get("root_dir") is not None:
        args += ["--root", str(sandbox["root_dir"])]
    if sandbox.get("allow_network"):
        args.append("--allow-network")
    if sandbox.get("max_output_bytes") is not None:
        args += ["--max-output-bytes", str(sandbox["max_output_bytes"])]
    if sandbox.get("tool_timeout_ms") is not None:
        args += ["--tool-timeout-ms", str(sandbox["tool_timeout_ms"])]
    if sandbox.get("max_task_output_bytes") is not None:
        args += ["--max-task-output-bytes", str(sandbox["max_task_output_bytes"])]
    return args


def start_detached(
    ctx: click.Context,
    clients: Clients,
    *,
    file: str | None,
    input_json: str | None,
    run_id: str | None,
    resume_id: str | None,
    force: bool,
    allow_nondeterminism: bool = False,
    max_concurrency: int | None,
    db: str | None,
    log_dir: str | None,
    no_log: bool,
    as_json: bool,
    hold_ms: int | None = None,
    sandbox: Mapping[str, Any] | None = None,
    actor_args: Sequence[str] = (),
) -> None:
    """Start ``up`` in the background and exit 0 once the run has started.

    `sandbox` holds the tool-sandbox options given (``root_dir`` absolute,
    ``allow_network``, ``max_output_bytes``, ``tool_timeout_ms``), forwarded as flags;
    `actor_args` (``--by NAME``, ``--reason TEXT``) are forwarded as given, so the
    background run records who started it and why.

    One client (from `clients`) does every read: the checks, then the polls for the
    background run's start.

    Raises:
        SmithersError: for invalid input, a missing workflow, a run id already used or
            (resume) a run that does not exist; nothing is started.
        click.exceptions.Exit: always, with 0, or with the background process's exit
            code if it ended before the run started.
    """
    db_path, log_anchor = detach_target(db)
    if resume_id is not None:
        rid = resume_id
        args = ["--resume", rid] + (["--force"] if force else [])
        args += ["--allow-nondeterminism"] if allow_nondeterminism else []
    else:
        assert file is not None
        input_value = parse_input_json(input_json)
        load_workflow(file)  # a missing file or workflow is reported here, not in a log
        rid = run_id or new_run_id()
        args = [file, "--run-id", rid]
        if input_value is not None:
            # The JSON itself: the child has no stdin and may not see the same @file.
            args += ["--input", json.dumps(input_value)]
    if max_concurrency is not None:
        args += ["-c", str(max_concurrency)]
    if hold_ms is not None:
        args += ["--hold-ms", str(hold_ms)]
    args += _sandbox_args(sandbox or {})
    args += list(actor_args)
    if no_log:
        args.append("--no-log")
    elif log_dir is not None:
        args += ["--log-dir", os.path.abspath(log_dir)]
    log_file = default_log_dir(log_anchor, rid) / UP_LOG_FILE

    async def session(client: Client) -> tuple[ResumeProcess, bool] | None:
        record = await _record(client, rid)
        if resume_id is not None:
            if record is None:
                raise RunNotFoundError(resume_id)
            if record.status == "finished":
                return None
            before = record.last_seq
        else:
            if record is not None:
                raise RunAlreadyExistsError(rid, actual_seq=record.last_seq)
            before = 0
        proc = spawn_detached(
            [sys.executable, "-m", "smithers", "up", *args, "--db", db_path],
            log_file,
            db_path=db_path,
        )
        deadline = time.monotonic() + _START_WAIT_S
        started = await _started(client, rid, before)
        while not started and time.monotonic() < deadline and proc.poll() is None:
            await anyio.sleep(0.05)
            started = await _started(client, rid, before)
        if not started and proc.poll() is not None:
            started = await _started(client, rid, before)
        return proc, started

    launched = clients.run(db_path, session)
    if launched is None:
        echo(f"Run {rid} already finished; nothing to resume.")
        ctx.exit(0)
    proc, started = launched
    code = proc.poll()
    if code is not None and not started:
        # Ended before the run started (e.g. RUN_OWNER_ALIVE on resume): its output says why.
        echo(_tail(log_file).rstrip(), err=True, multiline=True)
        ctx.exit(code)
    if as_json:
        echo_json({"runId": rid, "pid": proc.pid, "logFile": str(log_file)})
    else:
        verb = "Resumed" if resume_id is not None else "Started"
        echo(f"{verb} run {rid} in the background (pid {proc.pid}).")
        echo(f"  log:     {log_file}")
        echo("  follow:  " + command_line("logs", args=[rid], options=[("-f", None)], db=db))
        echo("  cancel:  " + command_line("cancel", args=[rid], db=db))
    ctx.exit(0)
