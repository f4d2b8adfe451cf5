"""The workflow pack: ``smithers init`` and ``smithers workflow list|path|run``.

``init`` copies the pack's workflows into ``.smithers/workflows/``; ``workflow`` finds a
workflow by name (the project's copy first, then the pack's) and ``workflow run`` hands
it to ``up`` with every other argument, so it runs exactly as ``smithers up FILE`` would.
"""

from __future__ import annotations

import os

import click
import msgspec
from smithers.engine.pack import find_workflow, init_pack, list_workflows

from ._commands import main, up
from ._options import json_option
from ._output import echo_json, print_table
from ._text import echo

__all__ = ("init", "workflow_group")


@main.command()
@click.option("--force", is_flag=True, help="Replace workflow files the project already has.")
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    metavar="DIR",
    help="The project's folder: the pack goes into DIR/.smithers/workflows/.",
)
@json_option
def init(force: bool, directory: str, as_json: bool) -> None:
    """Write the workflow pack into .smithers/workflows/ (keeps files you have).

    \b
    The pack: review (review a diff), research (answer a question about the
    files), implement (implement a ticket with a review loop) and the system
    workflow post-failure (the autopsy `up` launches after a failed run). Edit
    them there: `smithers workflow run NAME` runs the project's copy first.
    Files that exist are kept unless --force. Each file is written whole
    (temporary file, then rename), so an interrupted init is completed by
    running it again. --json prints {"folder", "written", "kept", "removedTmp"}.
    \b
    Examples:
        smithers init
        smithers init --dir ../other-project --force
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    result = init_pack(directory, force=force)
    if as_json:
        echo_json(msgspec.to_builtins(result))
        return
    for path in result.written:
        echo(f"wrote  {path}")
    for path in result.kept:
        echo(f"kept   {path} (exists; --force replaces it)")
    for path in result.removed_tmp:
        echo(f"removed {path} (left by an interrupted init)")
    echo(f"{len(result.written)} written, {len(result.kept)} kept in {result.folder}.")
    echo("  list them: smithers workflow list")
    echo("  run one:   smithers workflow run review --root .")


@main.group("workflow")
def workflow_group() -> None:
    """Workflows by name: the project's .smithers/workflows/ and the pack's.

    \b
    A name is the file's name without .py, with _ read as - (post_failure.py
    is post-failure). The project's copy of a workflow (written by `smithers
    init`, then edited) wins over the pack's.
        smithers workflow list [--system] [--json]
        smithers workflow path NAME
        smithers workflow run NAME [--input JSON] [any option of `smithers up`]
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"


@workflow_group.command("list")
@click.option("--system", is_flag=True, help="Also list system workflows (post-failure).")
@json_option
def list_command(system: bool, as_json: bool) -> None:
    """List the workflows runnable by name, and where each comes from.

    FROM is "project" (.smithers/workflows/, nearest up from here) or "pack"
    (shipped with smithers); "project*" is a project copy of a pack workflow.
    --json prints [{"name", "path", "origin", "system", "summary",
    "overridesPack"}].
    """
    entries = list_workflows(system=system)
    if as_json:
        echo_json([msgspec.to_builtins(e) for e in entries])
        return
    rows = [
        (
            e.name,
            e.origin + ("*" if e.overrides_pack else ""),
            "system" if e.system else "",
            e.summary,
        )
        for e in entries
    ]
    print_table(("NAME", "FROM", "KIND", "SUMMARY"), rows, styles=(None, "", "", ""))


@workflow_group.command("path")
@click.argument("name")
def path_command(name: str) -> None:
    """Print the file of workflow NAME (the project's copy first, else the pack's).

    \b
    Examples:
        smithers workflow path review
        $EDITOR "$(smithers workflow path review)"
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    echo(find_workflow(name).path)


@workflow_group.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("name")
@click.argument("up_args", nargs=-1, type=click.UNPROCESSED, metavar="[UP OPTIONS]...")
@click.pass_context
def run_command(ctx: click.Context, name: str, up_args: tuple[str, ...]) -> None:
    """Run workflow NAME as `smithers up FILE` would, with the same options.

    \b
    Every option after NAME is `up`'s (--input, --root, --detach, --json, --db,
    ...; see `smithers up --help`), and so are the exit codes. The tool sandbox's
    root is the current folder unless --root says otherwise.
    \b
    Examples:
        smithers workflow run review --root . --input '{"base": "main"}'
        smithers workflow run research --input '{"question": "Where are retries set?"}'
        smithers workflow run post-failure --input '{"targetRunId": "RUN"}'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    entry = find_workflow(name)
    args = [entry.path, *up_args]
    if not any(a == "--root" or a.startswith("--root=") for a in up_args):
        args += ["--root", os.getcwd()]  # the project's files, not the workflow file's folder
    with up.make_context("up", args, parent=ctx.find_root()) as sub:  # usage: `smithers up`
        up.invoke(sub)
