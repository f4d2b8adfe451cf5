"""Beyond one machine: ``migrate`` (a SQLite database into PostgreSQL).

Registered on the ``smithers`` group when `smithers.cli` is imported. The work is in the
engine (`smithers.engine._migrate`); this module parses, calls and prints.
"""

from __future__ import annotations

import functools

import anyio
import click
import msgspec
from smithers.engine._migrate import migrate_database

from ._commands import main
from ._options import command_line, json_option
from ._output import echo_json
from ._text import echo

__all__ = ("migrate_command",)


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
        smithers migrate --from runs/smithers.db --to postgresql://me@db:5432/smithers
        smithers worker --db postgresql://me@db:5432/smithers
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
