"""``smithers init``: copy the pack's workflows into the project's ``.smithers/workflows/``.

Resumable by construction: each file is written to a temporary file in the same folder
and renamed into place, so a file is either absent, or whole; an interrupted init
leaves at most a stray temporary file (removed by the next init), and running it again
writes what is missing. Files the project already has are kept unless ``force``.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from .._files import write_atomic
from ..errors import InvalidInputError
from ._listing import PROJECT_WORKFLOWS_DIR, pack_workflows

__all__ = ("InitResult", "init_pack")


class InitResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What `init_pack` did."""

    folder: str
    """The project's workflows folder (absolute)."""
    written: tuple[str, ...] = ()
    """Files written (created, or replaced with ``force``), absolute paths."""
    kept: tuple[str, ...] = ()
    """Files the project had already and that were left as they are."""
    removed_tmp: tuple[str, ...] = ()
    """Temporary files of an interrupted init that were removed."""


def _tmp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def _is_tmp_of(path: Path, names: set[str]) -> bool:
    """True for ``.<file>.<pid>.tmp`` files of the pack's files (an interrupted init)."""
    if not (path.name.startswith(".") and path.name.endswith(".tmp")):
        return False
    inner = path.name[1:-4].rpartition(".")[0]
    return inner in names


def init_pack(directory: str | Path = ".", *, force: bool = False) -> InitResult:
    """Write the pack's workflows into ``DIRECTORY/.smithers/workflows/``. Sync file I/O.

    Each pack file (`pack_workflows`) is copied unless a file of that name exists
    (kept) or `force` (replaced). Each copy is written atomically (temporary file,
    fsync, rename); temporary files left by an interrupted init are removed first, so
    running it again completes it.

    Args:
        directory: The project's folder (default: the current folder).
        force: Replace files the project already has.

    Returns:
        An `InitResult` naming the files written and kept.

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if `directory` is not a folder or the
            files cannot be written there.
    """
    base = Path(directory).resolve()
    if not base.is_dir():
        raise InvalidInputError(
            f"{directory} is not a folder.",
            details={"dir": str(directory)},
            hint="Pass --dir with an existing folder (default: the current one).",
        )
    folder = base / PROJECT_WORKFLOWS_DIR
    entries = pack_workflows()
    names = {Path(e.path).name for e in entries}
    written: list[str] = []
    kept: list[str] = []
    removed: list[str] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stray in sorted(folder.iterdir()):
            if _is_tmp_of(stray, names):
                stray.unlink(missing_ok=True)
                removed.append(str(stray))
        for entry in entries:
            source = Path(entry.path)
            target = folder / source.name
            if target.exists() and not force:
                kept.append(str(target))
                continue
            write_atomic(target, (source.read_bytes(),), tmp=_tmp_name(target))
            written.append(str(target))
    except OSError as e:
        raise InvalidInputError(
            f"Cannot write the workflow pack into {folder}: {e.strerror or e}.",
            details={"dir": str(folder), "reason": str(e)},
            hint="Run it in a folder you can write to, or pass --dir.",
        ) from e
    return InitResult(
        folder=str(folder), written=tuple(written), kept=tuple(kept), removed_tmp=tuple(removed)
    )
