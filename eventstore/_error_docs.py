"""``docs/errors.md``: the error reference, rendered from the catalogue.

The file is generated, never edited by hand: ``smithers errors --markdown >
docs/errors.md`` writes it, and a test fails when it is out of date.
"""

from __future__ import annotations

from ._error_catalogue import ERROR_DEFINITIONS, ERROR_REFERENCE_URL
from ._error_definition import CATEGORIES, ErrorDefinition

__all__ = ("render_errors_markdown",)

_INTRO = f"""\
# Error reference

<!-- Generated from smithers.eventstore.errors.ERROR_DEFINITIONS by
     `smithers errors --markdown > docs/errors.md`; do not edit by hand. -->

Every error smithers-py raises on purpose is a `SmithersError` with a SCREAMING_SNAKE
`code`, a `summary`, a `details` mapping and a `docs_url` ({ERROR_REFERENCE_URL}). The
codes and their meaning are Smithers' own (its error reference); smithers-py adds a few,
marked *smithers-py*. Codes marked *planned* belong to features not built yet: they are
known (`is_known_error_code`) but never raised today. *Retryable* says whether a task
failing with the code may run another attempt under its retry policy.

`smithers errors CODE` prints one entry; `smithers errors --json` prints them all.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _details(d: ErrorDefinition) -> str:
    return ", ".join(f"`{k}`" for k in d.details) if d.details else "--"


def _notes(d: ErrorDefinition) -> str:
    notes = []
    if d.retryable:
        notes.append("retryable")
    if d.planned:
        notes.append("*planned*")
    if not d.reference:
        notes.append("*smithers-py*")
    return ", ".join(notes) if notes else "--"


def render_errors_markdown() -> str:
    """Return the Markdown text of ``docs/errors.md``: one table per category.

    Returns:
        The document, ending with a newline. The HTTP section lists every code with an
        HTTP status (some also appear in their own category).
    """
    out = [_INTRO]
    for category, title in CATEGORIES.items():
        rows = [d for d in ERROR_DEFINITIONS.values() if d.category == category]
        if category == "http":
            rows = [d for d in ERROR_DEFINITIONS.values() if d.http_status is not None]
            out.append(f"\n## {title}\n\nJSON response codes of the HTTP API.\n")
            out.append("| Code | Status | When | Notes |\n| --- | --- | --- | --- |")
            out.extend(
                f"| `{d.code}` | {d.http_status} | {_cell(d.when)} | {_notes(d)} |" for d in rows
            )
            continue
        if not rows:
            continue
        out.append(f"\n## {title}\n")
        out.append("| Code | When | Details | Notes |\n| --- | --- | --- | --- |")
        out.extend(f"| `{d.code}` | {_cell(d.when)} | {_details(d)} | {_notes(d)} |" for d in rows)
    return "\n".join(out) + "\n"
