"""Run ids are names, not paths: one check at every entry, and paths that stay put.

A run id names a run in the log and a folder on disk (``executions/<run_id>/logs``),
so it is checked wherever one comes in (the CLI's ``RUN`` arguments and ``--run-id``
options, `run_workflow`, the client, the time-travel operations): letters, digits and
``-_.:`` only, at most `MAX_RUN_ID_LENGTH` characters, not ``.`` or ``..``. A path
built from an id is also resolved and checked to stay under its folder
(`path_under`), so no id, checked or not, writes outside it.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import InvalidInputError

__all__ = (
    "CHILD_MARKER",
    "EXISTING_RUN_HINT",
    "MAX_RUN_ID_LENGTH",
    "SUBFLOW_ID",
    "child_run_id",
    "child_tail",
    "parse_child_run_id",
    "path_under",
    "validate_run_id",
)

MAX_RUN_ID_LENGTH = 128
"""The longest run id accepted, in characters."""

_RUN_ID = re.compile(r"[A-Za-z0-9_.:-]+")
_HINT = (
    "Use letters, digits and - _ . : only (at most 128 characters), "
    "e.g. --run-id nightly-2024-05-01, or leave the id out to get a new one."
)
EXISTING_RUN_HINT = "Run ids use letters, digits and - _ . : only; list runs with `smithers ps`."
"""The hint for an invalid id that names an existing run (a ``RUN`` argument)."""


def validate_run_id(run_id: object, *, what: str = "run id", hint: str | None = None) -> str:
    """Return `run_id` if it is a valid run id, else raise ``INVALID_INPUT``.

    A valid id is a non-empty string of letters, digits and ``-_.:``, at most
    `MAX_RUN_ID_LENGTH` (128) characters, and neither ``.`` nor ``..``. Pure: reads
    nothing, so an id is refused before anything is opened or recorded.

    Args:
        run_id: The id to check (anything: a non-string is refused too).
        what: How the message names it (e.g. ``"--run-id"``, ``"new run id"``).
        hint: The error's next step (default: how to pick a valid new id).

    Returns:
        `run_id`, unchanged.

    Raises:
        InvalidInputError: code ``INVALID_INPUT``, details ``runId`` and ``reason``,
            if `run_id` is not a valid run id.

    Example:
        >>> validate_run_id("run-lx2k3j-1a2b3c")
        'run-lx2k3j-1a2b3c'
    """
    if not isinstance(run_id, str):
        reason = f"must be a string, got {type(run_id).__name__}"
    elif not run_id:
        reason = "is empty"
    elif len(run_id) > MAX_RUN_ID_LENGTH:
        reason = f"is {len(run_id)} characters long (at most {MAX_RUN_ID_LENGTH})"
    elif run_id in (".", ".."):
        reason = "cannot be '.' or '..'"
    elif not _RUN_ID.fullmatch(run_id):
        bad = sorted({c for c in run_id if not _RUN_ID.fullmatch(c)})
        reason = "has characters other than letters, digits and -_.: (" + _shown(bad) + ")"
    else:
        return run_id
    shown = repr(run_id) if not isinstance(run_id, str) else repr(run_id[:140])
    raise InvalidInputError(
        f"Invalid {what} {shown}: it {reason}.",
        details={"runId": run_id if isinstance(run_id, str) else repr(run_id), "reason": reason},
        hint=hint or _HINT,
    )


def _shown(chars: list[str]) -> str:
    """The refused characters, each as `repr` shows it (so a slash or a newline is visible)."""
    return " ".join(repr(c) for c in chars[:10]) + (" …" if len(chars) > 10 else "")


def path_under(base: str | Path, *parts: str) -> Path:
    """Return ``base / parts...``, resolved, after checking it stays under `base`.

    Symlinks and ``..`` are resolved on both sides (`Path.resolve`, non-strict: the
    path need not exist). Touches the file system only to resolve links.

    Args:
        base: The folder the path must stay inside.
        *parts: Path parts to join below it (e.g. ``"executions", run_id, "logs"``).

    Returns:
        The resolved, absolute path.

    Raises:
        InvalidInputError: code ``INVALID_INPUT``, details ``path`` and ``base``, if
            the joined path resolves to `base` itself or outside it.
    """
    root = Path(base).resolve()
    path = root.joinpath(*parts).resolve()
    if path == root or not path.is_relative_to(root):
        raise InvalidInputError(
            f"The path {str(Path(base).joinpath(*parts))!r} leaves its folder {str(root)!r}.",
            details={"path": str(path), "base": str(root)},
            hint=_HINT,
        )
    return path


# ---------------------------------------------------------------------- subflow children

CHILD_MARKER = ":child:"
"""What separates a parent's run id from the rest of its child's run id."""

SUBFLOW_ID = re.compile(r"[A-Za-z0-9_.-]+")
"""What a `Subflow` node id may be made of: run id characters but ``:``."""


def child_run_id(parent_run_id: str, node_id: str, iteration: int, *, round_no: int = 1) -> str:
    """Return the run id of a `Subflow`'s child: ``<parentRunId>:child:<nodeId>:<iteration>``.

    `round_no` counts the child runs of the node: 1 for the first, n + 1 after n failed
    ones (a retry of a failed child starts a new run ``...:<iteration>:<round>``). A
    crash or a resume does not start a new round: the same child run is resumed.
    Pure.
    """
    base = f"{parent_run_id}{CHILD_MARKER}{node_id}:{iteration}"
    return base if round_no <= 1 else f"{base}:{round_no}"


def parse_child_run_id(run_id: str) -> tuple[str, str, int] | None:
    """Return ``(parent run id, node id, iteration)`` of a child run id, else None.

    The inverse of `child_run_id` (the round is dropped), read from the right: the
    node id has no ``:``, so ``...:child:<node>:<iteration>[:<round>]`` is found
    whatever the parent's id (a child's child, a node named ``child``). An id of
    another shape is not a child's. Pure.
    """
    parts = run_id.split(":")
    for size in (4, 3):  # with a round, then without
        if len(parts) <= size:
            continue
        tail = parts[-size:]
        parsed = child_tail(":".join(tail[1:])) if tail[0] == CHILD_MARKER[1:-1] else None
        parent = ":".join(parts[:-size])
        if parsed is not None and parent:
            return parent, parsed[0], parsed[1]
    return None


def child_tail(rest: str) -> tuple[str, int] | None:
    """``(node id, iteration)`` of what follows ``<parentRunId>:child:`` in a child's id.

    `rest` is ``<node>:<iteration>`` or ``<node>:<iteration>:<round>``; None if it is
    not. Pure.
    """
    parts = rest.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        return None
    if not SUBFLOW_ID.fullmatch(parts[0]):
        return None
    return parts[0], int(parts[1])
