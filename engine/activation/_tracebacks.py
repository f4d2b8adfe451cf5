"""Tracebacks of user code, as data: the engine's own frames trimmed, and where it raised.

A task's ``run=`` callable and a workflow's builder run under the engine (its loop,
anyio's task groups and worker threads, asyncio). Their frames say nothing about what
went wrong, so they are cut from the recorded traceback; what stays is the user's code
(and the libraries it called). The location recorded with the error is the innermost
frame of the user's own code: outside the standard library and installed packages when
such a frame exists, else the innermost frame that stayed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import sysconfig
import threading
import traceback
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ("MAX_STACK_CHARS", "SourceLocation", "raised_at", "trimmed_stack")

MAX_STACK_CHARS = 16_000
"""Longest traceback text kept in an event; a longer one keeps its end (where it raised)."""


@cache
def _internal_prefixes() -> tuple[str, ...]:
    """Directories (with a trailing separator) whose frames are the engine's own."""
    engine_dir = Path(__file__).resolve().parents[1]
    dirs = {engine_dir}
    for name in ("smithers", "smithers.eventstore", "smithers.projections", "smithers.cli"):
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if file:
            dirs.add(Path(file).resolve().parent)
    for module_file in (anyio.__file__, asyncio.__file__, concurrent.futures.__file__):
        if module_file:
            dirs.add(Path(module_file).resolve().parent)
    return tuple(sorted(str(d) + os.sep for d in dirs))


@cache
def _internal_files() -> frozenset[str]:
    """Single-file modules whose frames are the engine's own (worker threads)."""
    files = {threading.__file__}
    return frozenset(str(Path(f).resolve()) for f in files if f)


@cache
def _library_prefixes() -> tuple[str, ...]:
    """Directories of the standard library and installed packages."""
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    return tuple(sorted(str(Path(d).resolve()) + os.sep for d in dirs))


@cache
def _resolved(filename: str) -> str:
    try:
        return str(Path(filename).resolve())
    except (OSError, RuntimeError):
        return filename


def _is_internal(filename: str) -> bool:
    path = _resolved(filename)
    return path in _internal_files() or path.startswith(_internal_prefixes())


def _is_library(filename: str) -> bool:
    if filename.startswith("<"):  # <frozen runpy>, <string>: not a file of the user's
        return True
    return _resolved(filename).startswith(_library_prefixes())


def _user_frames(tb_exc: traceback.TracebackException) -> list[traceback.FrameSummary]:
    return [f for f in tb_exc.stack if not _is_internal(f.filename)]


class SourceLocation:
    """Where an exception was raised: ``file`` (absolute), 1-based ``line``, ``function``."""

    __slots__ = ("file", "function", "line")

    def __init__(self, file: str, line: int | None, function: str) -> None:
        self.file = file
        """Absolute path of the source file."""
        self.line = line
        """1-based line number, or None when Python did not record one."""
        self.function = function
        """Function name, or ``<module>``."""

    def __repr__(self) -> str:
        return f"SourceLocation({self.file}:{self.line} in {self.function})"


def raised_at(err: BaseException) -> SourceLocation | None:
    """Return where `err` was raised in user code, or None if no user frame was involved.

    The innermost frame of `err`'s own traceback outside the engine (smithers, anyio,
    asyncio, worker threads), preferring one outside the standard library and installed
    packages: for ``json.loads(text)`` failing in a task, the task's line, not
    ``json/decoder.py``. No I/O beyond resolving paths.
    """
    frames = [
        f
        for f in traceback.extract_tb(err.__traceback__)
        if f.filename and not _is_internal(f.filename)
    ]
    if not frames:
        return None
    own = [f for f in frames if not _is_library(f.filename)]
    frame = (own or frames)[-1]
    return SourceLocation(_resolved(frame.filename), frame.lineno, frame.name)


def _chain(tb_exc: traceback.TracebackException) -> Iterable[traceback.TracebackException]:
    """`tb_exc` and the exceptions it chains (cause, context, group members), once each."""
    seen: set[int] = set()
    todo = [tb_exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(
            linked for linked in (current.__cause__, current.__context__) if linked is not None
        )
        todo.extend(getattr(current, "exceptions", None) or ())


def trimmed_stack(err: BaseException) -> str | None:
    """Return `err`'s traceback as Python prints it, without the engine's frames.

    Chained exceptions (``raise ... from``, ``during handling of``) are kept, each
    trimmed the same way. A text longer than `MAX_STACK_CHARS` keeps its end. No I/O
    beyond reading source lines, as `traceback` does.

    Returns:
        The traceback text, or None when no frame outside the engine is left in the
        whole chain (the engine raised the error itself, e.g. a task timeout).
    """
    tb_exc = traceback.TracebackException.from_exception(err)
    kept_any = False
    for link in _chain(tb_exc):
        frames = _user_frames(link)
        kept_any = kept_any or bool(frames)
        link.stack = traceback.StackSummary.from_list(frames)
    if not kept_any:
        return None
    text = "".join(tb_exc.format())
    if len(text) > MAX_STACK_CHARS:
        text = "... (start of the traceback cut)\n" + text[-MAX_STACK_CHARS:]
    return text
