"""The workflow pack's listing: which workflows exist, where, and which are the system's.

Two places hold workflows, looked up by name (``review``, ``post-failure``): the
project's ``.smithers/workflows/`` (the nearest one walking up from the current folder,
written by ``smithers init`` and edited by the user) and the pack shipped with smithers
(`PACK_WORKFLOWS_DIR`). A project copy wins over the pack's. A workflow's name is its
file's stem with ``_`` read as ``-`` (``post_failure.py`` is ``post-failure``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Literal

import msgspec

from ..errors import InvalidInputError

__all__ = (
    "PACK_WORKFLOWS_DIR",
    "PROJECT_WORKFLOWS_DIR",
    "SYSTEM_WORKFLOWS",
    "PackWorkflow",
    "file_name_for",
    "find_workflow",
    "list_workflows",
    "pack_workflows",
    "project_workflows_dir",
    "validate_workflow_name",
    "workflow_name_for",
)

SYSTEM_WORKFLOWS: frozenset[str] = frozenset({"post-failure"})
"""Workflows smithers runs itself (the post-failure autopsy): hidden from
``workflow list`` unless ``--system``, always runnable by name."""

PACK_WORKFLOWS_DIR = Path(__file__).resolve().parent / "workflows"
"""The pack's workflow files, shipped as package data."""

PROJECT_WORKFLOWS_DIR = Path(".smithers") / "workflows"
"""Where a project keeps its workflows, relative to the project's folder."""

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")

Origin = Literal["project", "pack"]


class PackWorkflow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One workflow file found by name."""

    name: str
    """Its name: the file's stem with ``_`` read as ``-``."""
    path: str
    """The file (absolute)."""
    origin: Origin
    """``"project"`` (in the project's ``.smithers/workflows/``) or ``"pack"``."""
    system: bool = False
    """True for `SYSTEM_WORKFLOWS`."""
    summary: str = ""
    """The first line of the file's docstring (empty if none)."""
    overrides_pack: bool = False
    """True for a project file with the name of a pack workflow (the project's wins)."""


def workflow_name_for(path: str | Path) -> str:
    """Return the workflow name of a file: its stem with ``_`` as ``-`` (pure).

    Args:
        path: A workflow file, e.g. ``.smithers/workflows/post_failure.py``.

    Returns:
        The name, e.g. ``"post-failure"``.
    """
    return Path(path).stem.replace("_", "-")


def file_name_for(name: str) -> str:
    """Return the file name of workflow `name` (``post-failure`` -> ``post_failure.py``)."""
    return name.replace("-", "_") + ".py"


def validate_workflow_name(name: str) -> str:
    """Return `name` if it is a workflow name, else raise ``INVALID_INPUT`` (pure).

    A name is 1-64 lower-case letters, digits, ``-`` (or ``_``, read as ``-``),
    starting with a letter or digit: never a path.

    Args:
        name: What the user typed.

    Returns:
        The name, ``_`` replaced by ``-``.

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` for anything else (a path, ``..``).
    """
    normal = name.replace("_", "-") if isinstance(name, str) else ""
    if not _NAME.fullmatch(normal):
        raise InvalidInputError(
            f"{name!r} is not a workflow name: use lower-case letters, digits and '-' "
            "(a name, not a path).",
            details={"name": name},
            hint="List the names with `smithers workflow list --system`; run a file by "
            "path with `smithers up FILE`.",
        )
    return normal


def project_workflows_dir(start: str | Path | None = None) -> Path | None:
    """Return the nearest ``.smithers/workflows/`` folder walking up from `start`, if any.

    Args:
        start: Where to start (default: the current folder).

    Returns:
        The folder (absolute), or None when no folder up the tree has one.
    """
    base = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (base, *base.parents):
        candidate = folder / PROJECT_WORKFLOWS_DIR
        if candidate.is_dir():
            return candidate
    return None


def _summary(path: Path) -> str:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return ""
    doc = ast.get_docstring(tree) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _files(folder: Path | None) -> list[Path]:
    if folder is None or not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.glob("*.py")
        if p.is_file()
        and not p.name.startswith(("_", "."))
        and _NAME.fullmatch(p.stem.replace("_", "-"))
    )


def pack_workflows() -> list[PackWorkflow]:
    """Return the workflows shipped with smithers, by name. Reads the pack's folder.

    Returns:
        One `PackWorkflow` per ``*.py`` file of `PACK_WORKFLOWS_DIR` (origin ``pack``).
    """
    return [_entry(p, "pack") for p in _files(PACK_WORKFLOWS_DIR)]


def _entry(path: Path, origin: Origin, *, overrides: bool = False) -> PackWorkflow:
    name = workflow_name_for(path)
    return PackWorkflow(
        name=name,
        path=str(path.resolve()),
        origin=origin,
        system=name in SYSTEM_WORKFLOWS,
        summary=_summary(path),
        overrides_pack=overrides,
    )


def list_workflows(
    *, project_dir: str | Path | None = None, system: bool = False
) -> list[PackWorkflow]:
    """Return the workflows runnable by name: the project's, then the pack's others.

    Reads the folders (`project_workflows_dir` when `project_dir` is None).

    Args:
        project_dir: The project's workflows folder (default: the nearest
            ``.smithers/workflows/``).
        system: Include `SYSTEM_WORKFLOWS` (hidden otherwise).

    Returns:
        `PackWorkflow` entries sorted by name; a name in both places is listed once,
        as the project's (``overrides_pack`` set).
    """
    folder = Path(project_dir) if project_dir is not None else project_workflows_dir()
    pack = {w.name: w for w in pack_workflows()}
    found: dict[str, PackWorkflow] = {}
    for path in _files(folder):
        name = workflow_name_for(path)
        found[name] = _entry(path, "project", overrides=name in pack)
    for name, entry in pack.items():
        found.setdefault(name, entry)
    return [w for _, w in sorted(found.items()) if system or not w.system]


def find_workflow(name: str, *, project_dir: str | Path | None = None) -> PackWorkflow:
    """Return the workflow called `name`: the project's copy first, else the pack's.

    Args:
        name: A workflow name (`validate_workflow_name`), e.g. ``review``.
        project_dir: The project's workflows folder (default: the nearest
            ``.smithers/workflows/``).

    Returns:
        Its `PackWorkflow` (system workflows included).

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if `name` is not a workflow name, or
            no workflow has it (the message lists the names there are).
    """
    wanted = validate_workflow_name(name)
    every = list_workflows(project_dir=project_dir, system=True)
    for entry in every:
        if entry.name == wanted:
            return entry
    names = ", ".join(w.name for w in every) or "none"
    raise InvalidInputError(
        f"No workflow named {wanted!r}. Workflows: {names}.",
        details={"name": wanted, "available": [w.name for w in every]},
        hint="List them with `smithers workflow list --system`; `smithers init` writes the "
        "pack's into .smithers/workflows/.",
    )
