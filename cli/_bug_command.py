"""``smithers bug --run RUN``: write a scrubbed bug bundle of a run; post it if configured."""

from __future__ import annotations

import functools

import anyio
import click
import msgspec
from smithers.engine import BUG_URL_ENV, file_bug

from ._commands import main
from ._errors import EXIT_FAILED
from ._options import check_run_id, db_option, json_option
from ._output import echo_json
from ._text import echo

__all__ = ("bug",)


@main.command()
@click.option(
    "--run",
    "run_id",
    required=True,
    metavar="RUN",
    callback=check_run_id,
    help="The run the report is about.",
)
@click.option("--title", metavar="TEXT", help="Title of the report (default: status and error).")
@click.option("--body", metavar="TEXT", help="What you did and what you expected.")
@db_option
@json_option
@click.pass_context
def bug(
    ctx: click.Context,
    run_id: str,
    title: str | None,
    body: str | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Write a bug report about a run, with its secrets scrubbed.

    \b
    The report holds the workflow's source, the run's status and error, its last
    80 events, the smithers version and the platform. API keys, tokens,
    passwords and anything that looks like a credential are replaced by
    [REDACTED], and so are the values of environment variables whose names say
    key, token, secret or password, wherever they appear. It is written to
    <db folder>/bugs/<run>-<time>.json; read it before you send it anywhere.
    It is posted (JSON) only when SMITHERS_BUG_URL is set; nothing else leaves
    the machine. Exit code 1 if that post fails (the file is kept).
    \b
    Examples:
        smithers bug --run RUN --title "resume hangs" --body "after a rewind"
        SMITHERS_BUG_URL=https://bugs.example/api/bugs smithers bug --run RUN --json
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    report = anyio.run(functools.partial(file_bug, run_id, title=title, body=body, db=db))
    if as_json:
        echo_json(msgspec.to_builtins(report))
    else:
        echo(f"Bug report of run {run_id} written to {report.path}")
        if report.redactions:
            echo(f"  {report.redactions} secret(s) replaced by [REDACTED]; read it before sharing.")
        if report.posted:
            echo(f"  posted to {report.endpoint}" + (f": {report.url}" if report.url else ""))
        elif report.endpoint is None:
            echo(f"  not posted ({BUG_URL_ENV} is not set): attach the file to your report.")
    if report.post_error is not None:
        click.echo(
            f"Warning: the report was not posted to {report.endpoint}: {report.post_error}. "
            f"It is saved in {report.path}; send that file instead.",
            err=True,
        )
        ctx.exit(EXIT_FAILED)
