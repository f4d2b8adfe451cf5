"""Text of recorded errors: where they were raised, their tracebacks, failed attempts.

Shared by ``inspect`` (one line per failed attempt, with its file:line) and ``node``
(every attempt, with its traceback). Plain text only (``click.echo``), never rich
markup, so user text prints as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._options import command_line
from ._text import echo, safe

if TYPE_CHECKING:
    from smithers.eventstore.events import ErrorInfo
    from smithers.projections import RunState

__all__ = ("error_location", "failure_lines", "indented", "node_ref", "print_failures")


def _shown_path(file: str) -> str:
    """`file` relative to the current directory when it is under it, else as recorded."""
    try:
        rel = os.path.relpath(file)
    except ValueError:  # another drive (Windows)
        return file
    return file if rel.startswith("..") else str(Path(rel))


def error_location(error: ErrorInfo | Mapping[str, Any] | None) -> str:
    """Return ``path:line in function`` of where `error` was raised, or empty if unknown.

    `error` is a recorded `ErrorInfo` or its JSON (`error_info_to_json`'s shape).
    """
    if error is None:
        return ""
    if isinstance(error, Mapping):
        file, line, function = error.get("file"), error.get("line"), error.get("function")
    else:
        file, line, function = error.file, error.line, error.function
    if not isinstance(file, str) or not file:
        return ""
    where = _shown_path(file)
    if isinstance(line, int):
        where += f":{line}"
    if isinstance(function, str) and function:
        where += f" in {function}"
    return where


def node_ref(node_id: str, iteration: int) -> str:
    """Return ``node`` or ``node#iteration`` (loop iterations after the first)."""
    return f"{node_id}#{iteration}" if iteration else node_id


def indented(text: str, prefix: str = "    ") -> list[str]:
    """Return `text`'s lines, each prefixed (trailing blank lines dropped)."""
    return [prefix + line for line in text.rstrip("\n").splitlines()]


def _label(error: ErrorInfo) -> str:
    message = " ".join(error.message.split())
    text = f"{error.name}: {message}" if not error.code else f"[{error.code}] {message}"
    return text if len(text) <= 100 else text[:99] + "…"


def failure_lines(state: RunState, *, db: str | None = None) -> list[str]:
    """Return the ``inspect`` lines about failures: each failed attempt with its file:line.

    When the run failed outside any task (its builder raised), the run error's
    traceback is included, since no ``smithers node`` shows it.

    Args:
        state: The run's folded state.
        db: The ``--db`` path for the suggested command, or None.

    Returns:
        Lines to print (empty when nothing failed).
    """
    lines: list[str] = []
    first_failed: str | None = None
    for rec in state.nodes.values():
        for attempt in rec.attempts:
            if attempt.error is None:
                continue
            first_failed = first_failed or rec.node_id
            where = error_location(attempt.error)
            ref = node_ref(rec.node_id, rec.iteration)
            lines.append(
                f"  {safe(ref)} attempt {attempt.attempt}: {safe(_label(attempt.error))}"
                + (f"  at {where}" if where else "")
            )
    if first_failed is not None:
        return [
            "Failed attempts:",
            *lines,
            "  traceback: " + command_line("node", args=[state.run_id, first_failed], db=db),
        ]
    error = state.error
    if error is None or (not error.stack and not error.file):
        return []
    out = ["Run error:", f"  {safe(_label(error))}"]
    where = error_location(error)
    if where:
        out.append(f"  at {where}")
    if error.stack:
        out.extend(indented(error.stack, "  "))
    return out


def print_failures(state: RunState, *, db: str | None = None) -> None:
    """Print `failure_lines` and a blank line, or nothing when nothing failed."""
    lines = failure_lines(state, db=db)
    if lines:
        echo("\n".join(lines), multiline=True)
        echo()
