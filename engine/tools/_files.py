"""The filesystem tools `read`, `write`, `edit`, `grep`: confined to the sandbox root."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import msgspec

from ._context import cap_text, relative, resolve_path
from ._errors import (
    ToolContentTooLargeError,
    ToolFileTooLargeError,
    ToolGrepFailedError,
    ToolPatchFailedError,
    ToolPatchTooLargeError,
    ToolPathEscapeError,
    ToolPathInvalidError,
)
from ._patch import PatchError, apply_unified_diff

if TYPE_CHECKING:
    from pathlib import Path

    from ._context import ToolContext

__all__ = (
    "EditArgs",
    "GrepArgs",
    "ReadArgs",
    "WriteArgs",
    "edit_file",
    "grep_files",
    "read_file",
    "write_file",
)

_SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".smithers", "node_modules", "__pycache__"})


class ReadArgs(msgspec.Struct, forbid_unknown_fields=True):
    """Arguments of `read`."""

    path: str
    """File to read, relative to the sandbox root."""


class WriteArgs(msgspec.Struct, forbid_unknown_fields=True):
    """Arguments of `write`."""

    path: str
    """File to create or replace, relative to the sandbox root (folders are created)."""
    content: str
    """The whole new content (UTF-8)."""


class EditArgs(msgspec.Struct, forbid_unknown_fields=True):
    """Arguments of `edit`."""

    path: str
    """File to patch, relative to the sandbox root."""
    patch: str
    """A unified diff (``@@ -a,b +c,d @@`` hunks) against the file's current content."""


class GrepArgs(msgspec.Struct, forbid_unknown_fields=True):
    """Arguments of `grep`."""

    pattern: str
    """A Python regular expression searched in each line."""
    path: str = "."
    """File or folder to search, relative to the sandbox root."""
    ignore_case: bool = False
    """Match case-insensitively."""
    max_matches: int = 1000
    """Stop after this many matching lines."""


def _open_nofollow(path: Path, flags: int) -> int:
    """Open without following a symlink at the last component (closes a swap race)."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)
    except OSError as e:
        if os.path.islink(path):
            raise ToolPathEscapeError(str(path), str(path), "(symlink swapped in)") from e
        raise


def _read_text(ctx: ToolContext, rel: str, path: Path) -> str:
    if not path.exists():
        raise ToolPathInvalidError(rel, "no such file")
    if not path.is_file():
        raise ToolPathInvalidError(rel, "not a regular file")
    size = path.stat().st_size
    if size > ctx.max_file_bytes:
        raise ToolFileTooLargeError(rel, size, ctx.max_file_bytes)
    fd = _open_nofollow(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        data = f.read(ctx.max_file_bytes + 1)
    if len(data) > ctx.max_file_bytes:
        raise ToolFileTooLargeError(rel, len(data), ctx.max_file_bytes)
    return data.decode("utf-8", errors="replace")


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def read_file(ctx: ToolContext, args: ReadArgs) -> str:
    """The text of a file in the sandbox, capped at `ctx.max_output_bytes` (blocking I/O).

    Raises:
        ToolPathInvalidError, ToolPathEscapeError: for a bad, missing or outside path.
        ToolFileTooLargeError: if the file is over `ctx.max_file_bytes`.
    """
    path = resolve_path(ctx, args.path)
    text, _ = cap_text(_read_text(ctx, args.path, path), ctx.max_output_bytes)
    return text


def write_file(ctx: ToolContext, args: WriteArgs) -> dict[str, Any]:
    """Create or replace a file in the sandbox (blocking I/O).

    Returns:
        ``{"path": relative path, "bytesWritten": int}``.

    Raises:
        ToolPathInvalidError, ToolPathEscapeError: for a bad or outside path.
        ToolContentTooLargeError: if the content is over `ctx.max_content_bytes`.
    """
    path = resolve_path(ctx, args.path)
    data = args.content.encode("utf-8")
    if len(data) > ctx.max_content_bytes:
        raise ToolContentTooLargeError(args.path, len(data), ctx.max_content_bytes)
    if path.is_dir():
        raise ToolPathInvalidError(args.path, "is a folder")
    _write_bytes(path, data)
    return {"path": relative(ctx, path), "bytesWritten": len(data)}


def edit_file(ctx: ToolContext, args: EditArgs) -> dict[str, Any]:
    """Apply a unified diff to a file in the sandbox; all hunks or none (blocking I/O).

    A missing file counts as empty, so a diff from ``/dev/null`` creates it.

    Returns:
        ``{"path": relative path, "hunksApplied": int, "bytesWritten": int}``.

    Raises:
        ToolPathInvalidError, ToolPathEscapeError: for a bad or outside path.
        ToolPatchTooLargeError: if the patch is over `ctx.max_patch_bytes`.
        ToolFileTooLargeError: if the file is over `ctx.max_file_bytes`.
        ToolPatchFailedError: if the diff does not parse or apply (file unchanged).
    """
    path = resolve_path(ctx, args.path)
    patch_size = len(args.patch.encode("utf-8"))
    if patch_size > ctx.max_patch_bytes:
        raise ToolPatchTooLargeError(args.path, patch_size, ctx.max_patch_bytes)
    text = _read_text(ctx, args.path, path) if path.exists() else ""
    try:
        new_text, hunks = apply_unified_diff(text, args.patch)
    except PatchError as e:
        raise ToolPatchFailedError(args.path, e.hunk, e.reason) from e
    data = new_text.encode("utf-8")
    _write_bytes(path, data)
    return {"path": relative(ctx, path), "hunksApplied": hunks, "bytesWritten": len(data)}


def grep_files(ctx: ToolContext, args: GrepArgs) -> str:
    """Lines matching a regular expression under a sandbox path (blocking I/O).

    Walks folders without following symlinked folders, skips VCS and cache folders,
    binary files, files over `ctx.max_file_bytes` and symlinked files that resolve
    outside the root. Output lines are ``relpath:lineno:line``, sorted by path, capped at
    `ctx.max_output_bytes`; ``""`` when nothing matches.

    Raises:
        ToolPathInvalidError, ToolPathEscapeError: for a bad, missing or outside path.
        ToolGrepFailedError: if the pattern is not a valid regular expression.
    """
    try:
        regex = re.compile(args.pattern, re.IGNORECASE if args.ignore_case else 0)
    except re.error as e:
        raise ToolGrepFailedError(args.pattern, str(e)) from e
    base = resolve_path(ctx, args.path)
    if not base.exists():
        raise ToolPathInvalidError(args.path, "no such file or folder")
    files: list[Path] = []
    if base.is_file():
        files.append(base)
    else:
        for folder, dirs, names in os.walk(base, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
            files.extend(base.joinpath(folder, name) for name in sorted(names))
    out: list[str] = []
    size = 0
    for file in files:
        if len(out) >= args.max_matches or size > ctx.max_output_bytes:
            break
        real = os.path.realpath(file)
        if not os.path.isfile(real) or not (real + os.sep).startswith(str(ctx.root_dir) + os.sep):
            continue
        try:
            if os.path.getsize(real) > ctx.max_file_bytes:
                continue
            with open(real, "rb") as f:
                data = f.read()
        except OSError:
            continue
        if b"\x00" in data[:8192]:
            continue
        rel = relative(ctx, file)
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if regex.search(line):
                entry = f"{rel}:{number}:{line}"
                out.append(entry)
                size += len(entry) + 1
                if len(out) >= args.max_matches:
                    break
    text, _ = cap_text("\n".join(out), ctx.max_output_bytes)
    return text
