"""Runs that travel and retention: ``export``, ``import``, ``gc``.

``export RUN`` writes a self-contained bundle (the run, its fork ancestry, its workflow
source); ``import FILE`` loads one into a database without running anything; ``gc``
deletes whole finished runs, optionally keeping their audit. Registered on the
``smithers`` group when `smithers.cli` is imported.
"""

from __future__ import annotations

import functools
import sys
import time

import anyio
import click
import msgspec
from smithers.engine import collect_runs, export_run, import_bundle, resolve_actor

from ._commands import main
from ._options import check_run_id, command_line, db_option, json_option, parse_duration_ms
from ._output import echo_json
from ._text import echo

__all__ = ("export_command", "gc_command", "import_command")


def _err(text: str) -> None:
    click.echo(text, err=True)


def _stdin_is_tty() -> bool:
    """True when a person can answer a prompt."""
    isatty = getattr(sys.stdin, "isatty", None)
    return bool(isatty and isatty())


@main.command("export")
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@click.option(
    "-o",
    "--output",
    "output",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Bundle file to write (default: RUN.smithers.jsonl; a name ending in .gz is "
    "gzip-compressed).",
)
@click.option(
    "--with-ancestry",
    is_flag=True,
    help="Bundle each run RUN forks from whole, not only up to its fork point.",
)
@db_option
@json_option
def export_command(
    run_id: str, output: str | None, with_ancestry: bool, db: str | None, as_json: bool
) -> None:
    """Write a run to a bundle file another database can import.

    The bundle holds the run's events byte for byte, the events of the runs it forks
    from up to each fork point (whole with --with-ancestry), and the source of the
    workflow the run recorded at start (when the file still has the recorded hash).
    Nothing in the database changes. --json prints {"path", "runId", "runs", "events",
    "workflows", "warnings"}.

    \b
    Examples:
        smithers export RUN -o run.smithers.jsonl.gz
        smithers import run.smithers.jsonl.gz --db other/smithers.db
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    result = anyio.run(
        functools.partial(export_run, run_id, output, db=db, with_ancestry=with_ancestry)
    )
    for warning in result.warnings:
        _err(f"Warning: {warning}")
    if as_json:
        echo_json(msgspec.to_builtins(result))
        return
    ancestors = len(result.runs) - 1
    more = f" and {ancestors} run(s) it forks from" if ancestors else ""
    echo(f"Exported run {run_id}{more} ({result.events} events) to {result.path}.")
    echo("  import it: " + command_line("import", args=[result.path]))


@main.command("import")
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
@click.option(
    "--no-sources",
    is_flag=True,
    help="Do not write the bundled workflow source next to the database.",
)
@db_option
@json_option
def import_command(file: str, no_sources: bool, db: str | None, as_json: bool) -> None:
    """Load a bundle written by `smithers export` into this database; nothing runs.

    The whole file is checked first; then every run is written in one transaction,
    event bytes unchanged. Importing the same bundle again changes nothing; a run id
    this database holds with other events is refused (exit 4) and nothing is written.
    The bundled workflow source is written (never imported) under
    <db folder>/imported/<hash>/: fork onto it with `smithers fork RUN --frame N
    --workflow FILE --run`. Runs that had not ended get status "imported": nothing
    resumes them unless asked (`smithers up --resume RUN`). --json prints {"path",
    "runId", "runs": [{"runId", "outcome", "rows", "complete"}], "workflows"}.
    """
    result = anyio.run(functools.partial(import_bundle, file, db=db, write_sources=not no_sources))
    if as_json:
        echo_json(msgspec.to_builtins(result))
        return
    for run in result.runs:
        part = "" if run.complete else " (up to its fork point)"
        echo(f"{run.outcome:<9} {run.run_id}{part}: {run.rows} events")
    for entry in result.workflows:
        echo(f"workflow source: {entry}")
    echo("  inspect: " + command_line("inspect", args=[result.run_id], db=db))


@main.command("gc")
@click.option(
    "--finished-before",
    "finished_before",
    required=True,
    metavar="AGE",
    help="Delete runs whose last event is older than AGE (e.g. 30d, 12h, 90m).",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option(
    "--keep-audit",
    is_flag=True,
    help="Keep each run's operation events and last event (status 'collected').",
)
@click.option(
    "--include-forked-from",
    is_flag=True,
    help="Also delete runs that other (kept) runs fork from; those forks then cannot "
    "be inspected or resumed.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--by", metavar="NAME", help="Who deletes (default: $SMITHERS_ACTOR, else you).")
@click.option("--reason", metavar="TEXT", help="Why, recorded with the deletion.")
@db_option
@json_option
def gc_command(
    finished_before: str,
    dry_run: bool,
    keep_audit: bool,
    include_forked_from: bool,
    yes: bool,
    by: str | None,
    reason: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Delete whole runs that ended (finished, failed, cancelled) before a cutoff.

    Never part of a run, never a run still going or waiting, never a run another
    run forks from (unless --include-forked-from). On a terminal, asks for
    confirmation unless --yes or --dry-run. The deletion is recorded, with
    --by/--reason, as a RunsDeleted event in the database's "_audit" stream. --json
    prints {"finishedBeforeMs", "dryRun", "keepAudit", "runIds", "protected",
    "deletedEvents"}.

    \b
    Examples:
        smithers gc --finished-before 30d --dry-run
        smithers gc --finished-before 90d --keep-audit --yes --reason "retention policy"
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    age_ms = parse_duration_ms(finished_before, "--finished-before")
    actor = resolve_actor("cli", by=by, reason=reason)
    cutoff_ms = int(time.time() * 1000) - age_ms
    if not (yes or dry_run) and _stdin_is_tty():
        click.confirm(
            f"Delete every run that ended more than {finished_before} ago? This cannot be "
            "undone (see them first with --dry-run).",
            abort=True,
        )

    def progress(done: int, total: int) -> None:
        if not as_json:
            _err(f"deleted {done}/{total} runs")

    result = anyio.run(
        functools.partial(
            collect_runs,
            finished_before_ms=cutoff_ms,
            actor=actor,
            db=db,
            dry_run=dry_run,
            keep_audit=keep_audit,
            include_forked_from=include_forked_from,
            on_progress=progress,
        )
    )
    if as_json:
        echo_json(msgspec.to_builtins(result))
        return
    verb = "would be deleted" if dry_run else "deleted"
    for run_id in result.run_ids:
        echo(f"{'would delete' if dry_run else 'deleted'} {run_id}")
    for run_id in result.protected:
        echo(f"kept    {run_id} (a kept run forks from it, or it is a kept run's subflow)")
    how = " (audit kept)" if keep_audit else ""
    echo(f"{len(result.run_ids)} run(s) {verb}{how}; {result.deleted_events} events deleted.")
