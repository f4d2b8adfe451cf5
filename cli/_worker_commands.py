"""Beyond one machine: ``migrate``, ``submit`` and ``worker``.

``migrate`` copies a SQLite database into PostgreSQL; ``submit`` records a queued run;
``worker`` takes queued runs (and runs whose owner is gone) from a shared database and
drives them. Registered on the ``smithers`` group when `smithers.cli` is imported. The
work is in the engine (`migrate_database`, `submit_run`, `run_worker`,
`list_workers`); this module parses, calls and prints.
"""

from __future__ import annotations

import functools
import signal
import threading
from typing import Any

import anyio
import click
import msgspec
from smithers.engine import (
    DEFAULT_POLL_S,
    DEFAULT_STALE_THRESHOLD_MS,
    list_workers,
    migrate_database,
    run_worker,
    submit_run,
)
from smithers.eventstore import SmithersError
from smithers.eventstore.events import DEFAULT_QUEUE

from ._commands import main
from ._options import (
    actor_options,
    check_run_id,
    cli_actor,
    command_line,
    db_option,
    json_option,
    parse_duration_ms,
    parse_input_json,
)
from ._output import echo_json
from ._text import echo

__all__ = ("migrate_command", "submit_command", "worker_command", "workers_command")


def _progress(done: int, total: int) -> None:
    click.echo(f"migrate: {done}/{total} runs", err=True)


@main.command("migrate")
@click.option(
    "--from",
    "source",
    required=True,
    metavar="PATH",
    help="The SQLite database to copy from (e.g. runs/smithers.db).",
)
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL",
    help="The PostgreSQL database to copy to (postgresql://USER@HOST:5432/DB).",
)
@json_option
def migrate_command(source: str, target: str, as_json: bool) -> None:
    """Copy every run of a SQLite database into PostgreSQL, events byte for byte.

    Each run keeps its events, seqs, timestamps and payload bytes (so its hash chain
    verifies the same) and its latest checkpoint. Running it again writes nothing new;
    runs that grew in the source since are extended. A run id the target holds with
    other events is refused (exit 4). Leases are not copied: a run still running in the
    source has no owner in the target. Progress goes to stderr. --json prints {"source",
    "target", "runs": [{"runId", "outcome", "rows", "checkpointSeq"}], "events",
    "written"}.

    \b
    Examples:
        smithers migrate --from runs/smithers.db --to postgresql://db.internal:5432/smithers
        smithers worker --db postgresql://db.internal:5432/smithers
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    result = anyio.run(functools.partial(migrate_database, source, target, on_progress=_progress))
    if as_json:
        echo_json(msgspec.to_builtins(result))
        return
    same = len(result.runs) - result.written
    echo(
        f"Migrated {len(result.runs)} run(s) ({result.events} events) from {result.source} "
        f"to {result.target}: {result.written} written, {same} already there."
    )
    echo("  list them: " + command_line("ps", db=result.target))


@main.command("submit")
@click.argument("file", metavar="FILE")
@click.option(
    "-i",
    "--input",
    "input_json",
    metavar="JSON",
    help="The run's input: a JSON object, @FILE or - (standard input).",
)
@click.option("--run-id", metavar="ID", callback=check_run_id, help="Run id (default: new).")
@click.option(
    "--queue",
    metavar="NAME",
    default=DEFAULT_QUEUE,
    show_default=True,
    help="Queue to wait in; workers started with --queues take only theirs.",
)
@click.option("--priority", type=int, default=0, show_default=True, help="Higher is taken first.")
@click.option(
    "-c",
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    metavar="N",
    help="The run's cap on tasks at once.",
)
@db_option
@actor_options()
@json_option
def submit_command(
    file: str,
    input_json: str | None,
    run_id: str | None,
    queue: str,
    priority: int,
    max_concurrency: int,
    db: str | None,
    by: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Record a run of FILE for a worker to start (status "queued"); nothing runs here.

    FILE is loaded to check the input against the workflow's schema and to record its
    code's hash, as `smithers up` does. The run waits until a `smithers worker` on any
    host takes it; `smithers ps` lists it, `smithers down`/`cancel` cancel it. --json
    prints {"runId", "queue", "priority", "workflowName", "workflowPath", "status"}.

    \b
    Examples:
        smithers submit examples/hello.py --input '{"name": "Ada"}' --queue nightly
        smithers worker --db postgresql://db.internal:5432/smithers --queues nightly
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    actor = cli_actor(by, reason)
    value = parse_input_json(input_json)
    result = anyio.run(
        functools.partial(
            submit_run,
            file,
            input=value,
            run_id=run_id,
            queue=queue,
            priority=priority,
            max_concurrency=max_concurrency,
            db=db,
            actor=actor,
        )
    )
    if as_json:
        echo_json(msgspec.to_builtins(result))
        return
    echo(f"Queued run {result.run_id} ({result.workflow_name}) on queue {result.queue}.")
    echo("  inspect it: " + command_line("inspect", args=[result.run_id], db=db))


async def _work_until_signal(**options: Any) -> int:
    """`run_worker` until SIGINT/SIGTERM drains it; a second signal stops at once."""
    stop = anyio.Event()
    code = 0
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal code
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    code = 128 + signum
                    if stop.is_set():
                        tg.cancel_scope.cancel()  # second signal: stop waiting for runs
                        return
                    stop.set()

        if threading.current_thread() is threading.main_thread():
            tg.start_soon(watch)
        await run_worker(stop=stop, **options)
        tg.cancel_scope.cancel()
    return code


def _queue_limit(text: str) -> tuple[str, int]:
    """``NAME=N`` of ``--queue-limit``; ``INVALID_INPUT`` (exit 4) otherwise."""
    name, sep, number = text.partition("=")
    if not sep or not number.strip().isdigit():
        raise SmithersError(
            f"--queue-limit takes NAME=N, not {text!r}.",
            code="INVALID_INPUT",
            details={"queueLimit": text},
            hint="e.g. --queue-limit nightly=2",
        )
    return name.strip(), int(number)


@main.command("worker")
@db_option
@click.option(
    "--queues",
    metavar="A,B",
    help="Take runs only from these queues (comma-separated). Default: every queue.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    metavar="N",
    help="Runs driven at once by this worker.",
)
@click.option("--name", metavar="NAME", help="This worker's name (default: HOST:PID).")
@click.option(
    "--queue-limit",
    "queue_limits",
    metavar="NAME=N",
    multiple=True,
    help="At most N runs of queue NAME running at once, across every worker given the "
    "same limit (repeatable).",
)
@click.option(
    "--stale-threshold",
    metavar="DURATION",
    default=f"{DEFAULT_STALE_THRESHOLD_MS // 1000}s",
    show_default=True,
    help="A run whose owner has sent no heartbeat for this long is taken over.",
)
@click.option(
    "--poll",
    metavar="DURATION",
    default=f"{int(DEFAULT_POLL_S * 1000)}ms",
    show_default=True,
    help="Longest wait between looks for work (PostgreSQL NOTIFY wakes it sooner).",
)
def worker_command(
    db: str | None,
    queues: str | None,
    concurrency: int,
    name: str | None,
    queue_limits: tuple[str, ...],
    stale_threshold: str,
    poll: str,
) -> None:
    """Take queued runs from the database and drive them here, until SIGTERM.

    Claims queued runs (highest --priority first), runs whose owner is gone (a worker
    that was killed: after --stale-threshold on another host, at once on this one) and
    parked runs whose timer is due, each by a conditional append: of two workers
    racing, one wins. --queue-limit caps a queue's running runs across all workers
    (on PostgreSQL, claims of a limited queue take turns under an advisory lock).
    Any number of workers on any number of hosts may share one PostgreSQL database.
    SIGTERM or SIGINT drains: nothing more is claimed and the runs in hand are
    finished, then it exits (143/130); a second signal stops at once and hands its
    runs back (nothing more recorded, leases released: another worker takes them
    over). One line per claim and outcome on stderr.

    \b
    Examples:
        smithers worker --db postgresql://db.internal:5432/smithers --concurrency 8
        smithers worker --db runs/smithers.db --queues nightly,batch --name box-1
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    chosen = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    limits = dict(_queue_limit(text) for text in queue_limits)
    code = anyio.run(
        functools.partial(
            _work_until_signal,
            db=db,
            queues=chosen,
            concurrency=concurrency,
            name=name,
            queue_limits=limits,
            stale_threshold_ms=parse_duration_ms(stale_threshold, "--stale-threshold"),
            poll_s=parse_duration_ms(poll, "--poll") / 1000,
        )
    )
    raise click.exceptions.Exit(code)


@main.command("workers")
@db_option
@json_option
def workers_command(db: str | None, as_json: bool) -> None:
    """List the workers of the database: host, pid, queues, the runs they drive.

    Each `smithers worker` keeps a row with a heartbeat every 2 s and deletes it when
    it exits; a row silent for over 6 s is shown "stale" (killed or hung: its runs are
    taken over by another worker when their leases go stale). --json prints
    [{"worker": {"name", "host", "pid", "queues", "concurrency", "runs",
    "startedAtMs", "heartbeatAtMs", "draining"}, "alive", "silentMs"}].
    """
    rows = anyio.run(functools.partial(list_workers, db))
    if as_json:
        echo_json(msgspec.to_builtins(rows))
        return
    if not rows:
        echo("No workers. Start one: " + command_line("worker", db=db))
        return
    echo(f"{'NAME':<20} {'STATE':<9} {'HOST':<16} {'PID':>7}  {'QUEUES':<16} RUNS")
    for row in rows:
        w = row.worker
        state = "draining" if w.draining else "alive" if row.alive else "stale"
        queues = ",".join(w.queues) or "*"
        runs = f"{len(w.runs)}/{w.concurrency} " + " ".join(w.runs)
        echo(f"{w.name:<20} {state:<9} {w.host:<16} {w.pid:>7}  {queues:<16} {runs}")
