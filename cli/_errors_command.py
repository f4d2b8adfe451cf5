"""``smithers errors [CODE]``: the error catalogue, one code or all of them."""

from __future__ import annotations

import click
import msgspec
from smithers.engine import lookup_error_code
from smithers.eventstore.errors import (
    ERROR_DEFINITIONS,
    get_error_docs_url,
    render_errors_markdown,
)

from ._commands import main
from ._options import json_option
from ._output import echo_json, print_table
from ._text import echo

__all__ = ("errors",)


def _entry(code: str) -> dict[str, object]:
    entry: dict[str, object] = msgspec.to_builtins(ERROR_DEFINITIONS[code])
    entry["docsUrl"] = get_error_docs_url(code)
    return entry


@main.command()
@click.argument("code", required=False)
@json_option
@click.option(
    "--markdown", is_flag=True, help="Print the whole catalogue as docs/errors.md (Markdown)."
)
def errors(code: str | None, as_json: bool, markdown: bool) -> None:
    """Explain an error code, or list every code smithers knows.

    \b
    CODE is a code as an error printed it (`Error [RUN_NOT_FOUND]: ...`), in
    any case, with - or _. Each entry says when the code is raised, the keys of
    its details, whether a task failing with it is retried, and whether it is
    planned (a feature not built yet).
        smithers errors                  # every code, by category
        smithers errors run-not-found    # one entry
        smithers errors --json           # every code as JSON
        smithers errors --markdown > docs/errors.md
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    if markdown:
        click.echo(render_errors_markdown(), nl=False)
        return
    if code is not None:
        definition = lookup_error_code(code)
        if as_json:
            echo_json(_entry(definition.code))
            return
        echo(f"{definition.code}  ({definition.category})")
        echo(f"  When:      {definition.when}")
        echo(f"  Details:   {', '.join(definition.details) or '--'}")
        echo(f"  Retryable: {'yes' if definition.retryable else 'no'}")
        if definition.http_status is not None:
            echo(f"  HTTP:      {definition.http_status}")
        if definition.planned:
            echo("  Planned:   a feature smithers-py does not build yet; never raised today")
        echo(f"  Docs:      {get_error_docs_url(definition.code)}")
        return
    if as_json:
        echo_json([_entry(c) for c in ERROR_DEFINITIONS])
        return
    rows = [
        (d.code, d.category, "yes" if d.retryable else "", "planned" if d.planned else "", d.when)
        for d in ERROR_DEFINITIONS.values()
    ]
    print_table(("CODE", "CATEGORY", "RETRY", "STATUS", "WHEN"), rows, styles=(None,) * 5)
