"""Workflow identity: a hash of the entry file and the local modules it imports.

Resume refuses to continue a run whose code changed (``RESUME_METADATA_MISMATCH``):
replaying recorded outputs into different code would silently mix two workflows.
"Local" means relative imports and absolute imports that resolve to a file under the
entry file's directory; site-packages and the standard library are not hashed. Imports
are found by parsing (no code runs), so the identity is the same in every process.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    import os

__all__ = ("WorkflowIdentity", "workflow_identity")


class WorkflowIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Hashes of a workflow's source files."""

    digest: str
    """SHA-256 hex over every file's relative path and content hash, in path order."""
    files: tuple[tuple[str, str], ...]
    """``(path relative to the entry's directory, SHA-256 of its bytes)``, sorted."""

    def diff(self, other: WorkflowIdentity) -> list[str]:
        """Return the relative paths that differ (changed, added or removed) vs `other`."""
        mine, theirs = dict(self.files), dict(other.files)
        return sorted(p for p in mine.keys() | theirs.keys() if mine.get(p) != theirs.get(p))


def _module_file(base: Path, parts: list[str]) -> Path | None:
    target = base.joinpath(*parts) if parts else base
    for candidate in (target.with_suffix(".py"), target / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


_ImportSpec = tuple[int, tuple[str, ...], tuple[str, ...]]
"""An import statement: ``(level, module parts, imported names)``; level -1 is ``import``."""
_PARSED: dict[str, tuple[_ImportSpec, ...]] = {}
"""Import statements by the SHA-256 of a file's bytes: a file is parsed once per process."""
_PARSE_LOCK = threading.Lock()
"""CPython 3.11's parser keeps one recursion counter per interpreter: two threads parsing
at once can fail with ``SystemError: AST constructor recursion depth mismatch``."""


def _import_specs(data: bytes, digest: str, path: Path) -> tuple[_ImportSpec, ...]:
    specs = _PARSED.get(digest)
    if specs is not None:
        return specs
    try:
        with _PARSE_LOCK:
            tree = ast.parse(data, filename=str(path))
    except (SyntaxError, ValueError):
        return ()
    found: list[_ImportSpec] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((-1, tuple(alias.name.split(".")), ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = tuple(node.module.split(".")) if node.module else ()
            found.append((node.level, parts, tuple(alias.name for alias in node.names)))
    specs = _PARSED[digest] = tuple(found)
    return specs


def _local_imports(specs: tuple[_ImportSpec, ...], path: Path, root: Path) -> list[Path]:
    found: list[Path] = []
    here = path.parent
    for level, parts, names in specs:
        if level < 0:
            hit = _module_file(root, list(parts))
            if hit is not None:
                found.append(hit)
            continue
        base = here if level else root
        for _ in range(level - 1):
            base = base.parent
        hit = _module_file(base, list(parts))
        if hit is not None:
            found.append(hit)
        # `from pkg import mod` may name a submodule.
        for name in names:
            sub = _module_file(base, [*parts, name])
            if sub is not None:
                found.append(sub)
    return found


def workflow_identity(entry: str | os.PathLike[str]) -> WorkflowIdentity:
    """Hash `entry` and, transitively, the local modules it imports.

    Reads files (sync I/O; small). Unreadable files hash as empty. A file's imports are
    parsed once per process for the same bytes (cached by their SHA-256).

    Returns:
        A `WorkflowIdentity`; equal identities mean the same code.
    """
    entry_path = Path(entry).resolve()
    root = entry_path.parent
    seen: dict[Path, str] = {}
    todo = [entry_path]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        digest = seen[path] = hashlib.sha256(data).hexdigest()
        specs = _import_specs(data, digest, path) if data else ()
        todo.extend(
            p.resolve() for p in _local_imports(specs, path, root) if p.resolve() not in seen
        )
    files = []
    for path, digest in seen.items():
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            rel = path.as_posix()
        files.append((rel, digest))
    files.sort()
    overall = hashlib.sha256("\n".join(f"{p} {d}" for p, d in files).encode()).hexdigest()
    return WorkflowIdentity(digest=overall, files=tuple(files))
